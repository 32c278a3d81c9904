"""The Metric base: options parsing, state reductions, merge and state dicts."""

import pytest

from genmetrics.errors import MetricError, UsageError
from genmetrics.metric import Metric, MetricSpec, Option


class Lengths(Metric):
    spec = MetricSpec(
        name="lengths", modality="text", kind="paired", higher_is_better=True, unit="chars",
        options=(Option("scale", 1.0, "multiply", type=float),
                 Option("strip", False, "strip first", type=bool),
                 Option("mode", "mean", "aggregate", choices=("mean", "max"))),
    )
    state_reductions = {"total": "sum", "values": "cat"}

    def update(self, samples, references=None):
        for s in samples:
            n = len(s.strip() if self.options["strip"] else s) * self.options["scale"]
            self.state["total"] += n
            self.state["values"].append(n)

    def compute(self, per_sample=False):
        values = self.state["values"]
        self.require_samples(len(values))
        value = self.state["total"] / len(values) if self.options["mode"] == "mean" else max(values)
        return {"lengths": self.result(value, n=len(values),
                                       per_sample=values if per_sample else None)}


def test_options_parse_strings_and_check_choices():
    m = Lengths(scale="2.5", strip="yes", mode="max")
    assert m.options == {"scale": 2.5, "strip": True, "mode": "max"}
    with pytest.raises(UsageError, match="one of mean, max"):
        Lengths(mode="median")
    with pytest.raises(UsageError, match="takes true or false"):
        Lengths(strip="maybe")
    with pytest.raises(UsageError, match="'scale' takes a number, not 'big'"):
        Lengths(scale="big")
    with pytest.raises(UsageError, match="has no option 'colour'"):
        Lengths(colour="red")


def test_merge_equals_one_pass():
    data = ["a", "bb ", "ccc", "dddd"]
    whole = Lengths()
    whole.update(data)
    left, right = Lengths(), Lengths()
    left.update(data[:1])
    right.update(data[1:])
    left.merge(right)
    assert left.state == whole.state
    assert left.compute(per_sample=True)["lengths"].per_sample == [1, 3, 3, 4]


def test_merge_refuses_other_options():
    with pytest.raises(MetricError, match="different settings"):
        Lengths().merge(Lengths(scale=2))


def test_state_dict_round_trip_and_reset():
    m = Lengths()
    m.update(["abc"])
    saved = m.state_dict()
    m.update(["zzzzzz"])
    m.load_state_dict(saved)
    assert m.compute()["lengths"].value == 3
    m.reset()
    with pytest.raises(MetricError, match="no samples"):
        m.compute()


def test_result_carries_signature_and_rejects_nan():
    m = Lengths(scale=2)
    m.update(["ab"])
    r = m.compute()["lengths"]
    assert r.signature["metric"] == "lengths" and r.signature["scale"] == 2.0
    assert r.signature["n"] == 1 and "genmetrics" in r.signature
    assert r.signature_str.startswith("lengths|v:1|scale:2.0|")
    with pytest.raises(MetricError, match="not a finite number"):
        m.result(float("nan"), n=1)


def test_options_that_do_not_change_values_stay_out_of_the_signature():
    class Threads(Lengths):
        spec = MetricSpec(
            name="threads", modality="text", kind="paired", higher_is_better=True, unit="-",
            options=(*Lengths.spec.options, Option("threads", 1, "workers", type=int,
                                                   affects_values=False)))
        merge_ignores = frozenset({"threads"})

    a, b = Threads(threads=1), Threads(threads=4)
    a.update(["ab"])
    b.update(["abc"])
    a.merge(b)  # threads may differ
    assert "threads" not in a.compute()["lengths"].signature
    with pytest.raises(MetricError, match="different settings"):
        a.merge(Threads(scale=2))
