"""Per-sample state as typed numpy rows (:mod:`genmetrics.rows`): its size per text pair,
and merge, state dicts, pickles, the distributed gather and the bootstrap giving the
values of the reference libraries and of the list-based state it replaced."""

from __future__ import annotations

import copy
import gc
import math
import pickle
import random
import tracemalloc

import numpy as np
import pytest
from rouge_score import rouge_scorer as py_rouge
from sacrebleu.metrics import BLEU as SacreBLEU
from sacrebleu.metrics import CHRF

from genmetrics import distributed, rows
from genmetrics.metric import MetricSpec
from genmetrics.metrics._per_pair import Failed, PerPairMean
from genmetrics.metrics.text.bleu import BLEU
from genmetrics.metrics.text.chrf import ChrF
from genmetrics.metrics.text.rouge import ROUGE, ROUGE_TYPES
from genmetrics.rows import Rows, cat_states
from genmetrics.stats import bootstrap_values, percentile_interval
from tests.textcorpus import make_pairs

#: the issue's target for bleu + chrf + rouge together
MAX_BYTES_PER_PAIR = 300
WORDS = ("the a cat dog sat ran on under mat log quickly slowly red blue big small house "
         "tree river model data sample loss value train test metric image sound").split()


def _word_pairs(n: int, seed: int, length: tuple[int, int] = (8, 30)) -> tuple[list[str],
                                                                           list[list[str]]]:
    """Pairs like the load test's: 8-30 words, a reference with ~30% of them replaced."""
    rng = random.Random(seed)
    hyps, refs = [], []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(*length))]
        hyps.append(" ".join(words))
        refs.append([" ".join(w if rng.random() > 0.3 else rng.choice(WORDS) for w in words)])
    return hyps, refs


def _streams(refs: list[list[str]]) -> list[list[str | None]]:
    width = max(len(r) for r in refs)
    return [[r[k] if k < len(r) else None for r in refs] for k in range(width)]


# -- the Rows helper ---------------------------------------------------------------------
def test_rows_grow_in_chunks_and_read_as_one_array(monkeypatch):
    monkeypatch.setattr(rows, "CHUNK_BYTES", 64 * 3 * 4)  # 64 rows of 3 int32 a chunk
    expected: list[list[int]] = []
    r = Rows("int32")
    rng = random.Random(0)
    for size in [1, 0, 5, 17, 64, 200, 3, 1, 90]:
        block = [[rng.randrange(1000) for _ in range(3)] for _ in range(size)]
        r.append(np.asarray(block, dtype=np.int64).reshape(size, 3))
        expected.extend(block)
        assert len(r) == len(expected)
    assert len(r._frozen) >= 5  # several full chunks, frozen
    assert all(not c.flags.writeable for c in r._frozen)
    whole = r.array()
    assert whole.tolist() == expected and whole.dtype == np.int32
    assert r.array() is whole and not whole.flags.writeable  # one concatenation
    assert r.nbytes == len(expected) * 3 * 4  # no spare capacity once read
    r.append([[1, 2, 3]])
    assert r.tolist() == [*expected, [1, 2, 3]]
    assert list(r.iter_lists(block=7)) == r.tolist()
    with pytest.raises(ValueError, match="do not fit"):
        r.append([[1, 2]])


def test_rows_widen_integers_instead_of_truncating():
    r = Rows("int32")
    r.append([[1, 2]])
    r.append([[2**31, -(2**31) - 1]])
    assert r.dtype == np.int64 and r.tolist() == [[1, 2], [2**31, -(2**31) - 1]]
    with pytest.raises(TypeError, match="floats"):
        r.append([[0.5, 1.0]])
    with pytest.raises(OverflowError):
        Rows.of([[2**64]], "int32")
    floats = Rows.of([1.0, None, 3], "float64")  # None (an older state's failure) is NaN
    assert np.isnan(floats.array()[1]) and floats.array()[2] == 3.0


def test_rows_copy_pickle_and_concatenate():
    a = Rows.of([[1.5, math.nan], [2.0, 3.0]], "float64")
    b = Rows("float64")
    b.append([[4.0, 5.0]])
    for copied in (copy.deepcopy(a), pickle.loads(pickle.dumps(a))):
        assert copied == a and copied is not a
        copied.append([[9.0, 9.0]])
        assert len(copied) == 3 and len(a) == 2  # independent
    both = cat_states([a, Rows("float64"), b])
    assert both.tolist()[1:] == [[2.0, 3.0], [4.0, 5.0]] and len(a) == 2 and len(b) == 1
    assert cat_states([Rows("int32"), Rows("int32")]).tolist() == []
    assert cat_states([[1], [2, 3]]) == [1, 2, 3]  # plain "cat" lists stay lists
    assert Rows.concat([Rows.of([1], "int32"), Rows.of([2**40], "int64")]).dtype == np.int64


# -- size ---------------------------------------------------------------------------------
def _state_bytes(metrics) -> int:
    return sum(v.nbytes for m in metrics for v in m.state.values())


def _fed(n: int, trace: bool = False) -> tuple[list, float]:
    """bleu, chrf and rouge fed ``n`` short pairs (3-8 words: the state is a fixed-size
    row per pair whatever the length) in batches of 1000; with ``trace``, the bytes per
    pair that tracemalloc sees allocated and still held after the updates."""
    hyps, refs = _word_pairs(n, seed=1, length=(3, 8))
    metrics = [BLEU(), ChrF(), ROUGE()]
    for metric in metrics:  # scorers' caches and first allocations out of the count
        metric.update(hyps[:10], refs[:10])
        metric.reset()
    gc.collect()
    if trace:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for k in range(0, n, 1000):
            for metric in metrics:
                metric.update(hyps[k:k + 1000], refs[k:k + 1000])
        gc.collect()
        traced = (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()
    return metrics, traced


def test_bleu_chrf_rouge_keep_at_most_300_bytes_per_pair():
    n = 20_000
    metrics, _ = _fed(n)
    assert all(isinstance(v, Rows) for m in metrics for v in m.state.values())
    held = _state_bytes(metrics) / n  # spare room of the chunks being filled included
    for metric in metrics:
        metric.compute()  # reading concatenates: no spare room left
    exact = _state_bytes(metrics) / n
    print(f"\nper-pair state of bleu+chrf+rouge over {n:,} pairs: {held:.0f} bytes while "
          f"growing, {exact:.0f} once read (list state: ~1,000 bytes)")
    assert held <= MAX_BYTES_PER_PAIR
    assert exact == (10 + 1) * 4 + (18 + 1) * 4 + 12 * 8  # int32 counts, float64 ROUGE


def test_nothing_but_the_state_arrays_grows_per_pair():
    """tracemalloc over the updates (6x slower, hence fewer pairs): what stays allocated
    is the state arrays, not Python objects next to them."""
    n = 3_000
    metrics, traced = _fed(n, trace=True)
    held = _state_bytes(metrics) / n
    assert held <= traced <= held + 16, (held, traced)  # a Python object per pair: >= 28


# -- same values as the reference libraries, through merge / state dicts / pickles --------
PAIRS = make_pairs(150, seed=21, max_refs=3, multiline=False)
HYPS = [h for h, _ in PAIRS]
REFS = [r for _, r in PAIRS]
CUTS = (0, 40, 41, 150)  # three parts, one of a single pair


def _parts(make):
    parts = []
    for start, stop in zip(CUTS, CUTS[1:], strict=False):
        metric = make()
        metric.update(HYPS[start:stop], REFS[start:stop])
        parts.append(metric)
    return parts


def _merged(make):
    first, *rest = _parts(make)
    for other in rest:
        first.merge(other)
    return first


def _round_trips(make, metric):
    """The metric itself, and copies through every way a state travels."""
    loaded = make()
    loaded.load_state_dict(pickle.loads(pickle.dumps(metric.state_dict())))
    as_lists = make()  # a state saved by an older version: plain lists
    saved = metric.state_dict()
    as_lists.load_state_dict({"options": saved["options"],
                              "state": {k: np.asarray(v).tolist() for k, v in
                                        saved["state"].items()}})
    return [metric, loaded, as_lists, copy.deepcopy(metric), pickle.loads(pickle.dumps(metric))]


def _gather_into_first(ranks, monkeypatch):
    """``ranks`` combined into ``ranks[0]`` by distributed.reduce_metric_states, with a
    fake all_gather_object that, like the real one, pickles every rank's value."""
    keys = iter([k for k, r in ranks[0].state_reductions.items() if r == "cat"])

    def fake_all_gather(value):
        key = next(keys)  # reduce_metric_states gathers the "cat" fields in order
        return [pickle.loads(pickle.dumps(value)),
                *(pickle.loads(pickle.dumps(r.state[key])) for r in ranks[1:])]

    monkeypatch.setattr(distributed, "all_gather", fake_all_gather)
    distributed.reduce_metric_states({"m": ranks[0]})
    return ranks[0]


def _gathered(make, monkeypatch):
    return _gather_into_first(_parts(make), monkeypatch)


@pytest.mark.parametrize("name", ["bleu", "chrf"])
def test_sacrebleu_metrics_equal_sacrebleu_after_merge_and_round_trips(name, monkeypatch):
    make, reference = {"bleu": (BLEU, SacreBLEU), "chrf": (ChrF, CHRF)}[name]
    corpus = reference().corpus_score(HYPS, _streams(REFS)).score
    sentence = reference(effective_order=True) if name == "bleu" else reference()
    per_sample = [sentence.sentence_score(h, r).score for h, r in PAIRS]
    list_rows = reference()._extract_corpus_statistics(HYPS, _streams(REFS))
    for metric in [*_round_trips(make, _merged(make)), _gathered(make, monkeypatch)]:
        assert metric.state["stats"].tolist() == list_rows
        got = metric.compute(per_sample=True)[name]
        assert got.value == corpus and got.per_sample == per_sample
        assert got.signature["nrefs"] == "var" and got.n == len(PAIRS)


def test_rouge_equals_rouge_score_after_merge_and_round_trips(monkeypatch):
    scorer = py_rouge.RougeScorer(list(ROUGE_TYPES))
    expected = [scorer.score_multi(r, h) for h, r in PAIRS]
    for metric in [*_round_trips(ROUGE, _merged(ROUGE)), _gathered(ROUGE, monkeypatch)]:
        got = metric.compute(per_sample=True)
        for rouge_type in ROUGE_TYPES:
            p, r, f = ([e[rouge_type][i] for e in expected] for i in range(3))
            assert got[rouge_type].per_sample == f
            assert got[rouge_type].value == math.fsum(f) / len(f)
            assert got[rouge_type].components["precision"] == math.fsum(p) / len(p)
            assert got[rouge_type].components["recall"] == math.fsum(r) / len(r)


def _ci(metric, name, rows_):
    values = bootstrap_values(rows_, lambda t, n: metric.value_from_totals(name, t, n), 200, 7)
    return percentile_interval(values[np.isfinite(values)])


def test_bootstrap_rows_and_intervals_equal_the_list_based_ones():
    for make, reference in ((BLEU, SacreBLEU), (ChrF, CHRF)):
        metric = _merged(make)
        name = metric.spec.name
        listed = np.asarray(reference()._extract_corpus_statistics(HYPS, _streams(REFS)),
                            dtype=np.float64)  # what the list state gave
        got = metric.bootstrap_rows()[name]
        assert got.dtype == np.float64 and np.array_equal(got, listed)
        assert _ci(metric, name, got) == _ci(metric, name, listed)
    rouge = _merged(ROUGE)
    scorer = py_rouge.RougeScorer(list(ROUGE_TYPES))
    expected = [scorer.score_multi(r, h) for h, r in PAIRS]
    for rouge_type, got in rouge.bootstrap_rows().items():
        listed = np.asarray([[e[rouge_type].fmeasure] for e in expected], dtype=np.float64)
        assert np.array_equal(got, listed)
        assert _ci(rouge, rouge_type, got) == _ci(rouge, rouge_type, listed)


# -- paired metrics: values as float64 (NaN = failed), reasons only for failures ----------
class Half(PerPairMean):
    spec = MetricSpec(name="half", modality="text", kind="paired", higher_is_better=True,
                      unit="-")

    def update(self, samples, references=None):
        self.record([Failed(f"zero at {x}") if x == 0 else
                     (math.inf if x < 0 else x / 3) for x in samples])


XS = [4, 0, 7, -1, 2, 0, 5, 1, 9, 3]
#: what the list state held: a value or None, and a reason or None, for every pair
OLD_VALUES = [None if x <= 0 else x / 3 for x in XS]
OLD_REASONS = [None if x > 0 else (f"zero at {x}" if x == 0 else "value is inf") for x in XS]


def test_per_pair_failures_survive_merge_round_trips_and_gather(monkeypatch):
    scored = [v for v in OLD_VALUES if v is not None]
    failed = [{"index": i, "reason": r} for i, r in enumerate(OLD_REASONS) if r is not None]
    list_rows = np.asarray([[v, 1.0] if v is not None else [0.0, 0.0] for v in OLD_VALUES])
    parts = []
    for chunk in (XS[:2], XS[2:3], XS[3:]):
        part = Half()
        part.update(chunk)
        parts.append(part)
    merged = copy.deepcopy(parts[0])
    for other in parts[1:]:
        merged.merge(other)
    assert merged.state["reasons"] == [f["reason"] for f in failed]  # failures only
    old = Half()  # a state saved by an older version
    old.load_state_dict({"options": {}, "state": {"values": OLD_VALUES, "reasons": OLD_REASONS}})
    gathered = _gather_into_first(parts, monkeypatch)
    for metric in [*_round_trips(Half, merged), old, gathered]:
        got = metric.compute(per_sample=True)["half"]
        assert got.per_sample == OLD_VALUES and got.value == math.fsum(scored) / len(scored)
        assert got.components["failed"] == failed and got.n == len(scored)
        assert np.array_equal(metric.bootstrap_rows()["half"], list_rows)
