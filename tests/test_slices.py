"""Slices (--group-by FIELD): every metric per value of a metadata field beside the
overall value, each slice equal to a run over its samples alone; too-small slices are
null with the reason; gate, compare and the report per slice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from genmetrics import gate as g
from genmetrics.compare import compare
from genmetrics.errors import UsageError
from genmetrics.runner import score
from genmetrics.scorecard import Scorecard
from tests.conftest import assert_one_line_error, write_files

SENTENCES = [
    ("The cat sat on the mat.", "The cat was sitting on the mat."),
    ("A quick brown fox jumps over the dog.", "The quick brown fox jumped over the lazy dog."),
    ("Prices rose by 3.5% in May.", "Prices went up 3.5% in May."),
    ("It rained all day in the city.", "It was raining all day in the city."),
    ("The meeting was moved to Friday.", "The meeting has been moved to Friday."),
    ("She reads a book every week.", "She reads one book each week."),
]
TOPICS = ["animals", "animals", "news", "news", "news", None]


def _meta(path: Path, topics: list[str | None], field: str = "topic") -> Path:
    lines = [json.dumps({"id": f"{i}", **({field: t} if t is not None else {})})
             for i, t in enumerate(topics)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def text_run(tmp_path: Path) -> dict[str, Path]:
    samples = write_files(tmp_path / "s", {f"{i}.txt": h for i, (h, _) in enumerate(SENTENCES)})
    refs = write_files(tmp_path / "r", {f"{i}.txt": r for i, (_, r) in enumerate(SENTENCES)})
    return {"samples": samples, "refs": refs, "meta": _meta(tmp_path / "meta.jsonl", TOPICS)}


def _subset(root: Path, src: dict[str, Path], ids: list[int]) -> tuple[Path, Path]:
    for side in ("samples", "refs"):
        (root / side).mkdir(parents=True)
        for i in ids:
            for f in src[side].glob(f"{i}.*"):
                shutil.copy(f, root / side / f.name)
    return root / "samples", root / "refs"


def test_each_slice_equals_a_run_over_its_samples_alone(text_run, tmp_path) -> None:
    card = score(text_run["samples"], text_run["refs"], metrics=["bleu", "chrf", "rouge"],
                 metadata=text_run["meta"], group_by="topic")
    whole = score(text_run["samples"], text_run["refs"], metrics=["bleu", "chrf", "rouge"])
    for name, result in whole.metrics.items():  # the overall values do not change
        assert card.metrics[name].value == result.value
    slices = card.slices
    assert slices["by"] == "topic" and slices["unlabelled"] == 1
    assert {v: g["n"] for v, g in slices["groups"].items()} == {"animals": 2, "news": 3}
    for topic, ids in (("animals", [0, 1]), ("news", [2, 3, 4])):
        alone = score(*_subset(tmp_path / topic, text_run, ids),
                      metrics=["bleu", "chrf", "rouge"])
        got = slices["groups"][topic]["metrics"]
        assert set(got) == set(alone.metrics)  # every result of every metric
        for name, result in alone.metrics.items():
            assert got[name].value == pytest.approx(result.value, rel=1e-12), (topic, name)
            assert got[name].n == result.n
    # the sample in no slice is named
    assert any("5.txt" in w["message"] and "no 'topic'" in w["message"]
               for w in card.warnings)


def test_slices_round_trip_through_the_schema(text_run, tmp_path) -> None:
    card = score(text_run["samples"], text_run["refs"], metrics=["bleu"],
                 metadata=text_run["meta"], group_by="topic")
    path = tmp_path / "card.json"
    card.save(path)  # validates against the shipped schema
    loaded = Scorecard.load(path)
    assert loaded.slices["groups"]["news"]["metrics"]["bleu"].value == \
        card.slices["groups"]["news"]["metrics"]["bleu"].value
    plain = tmp_path / "plain.json"
    score(text_run["samples"], text_run["refs"], metrics=["bleu"]).save(plain)
    assert "slices" not in json.loads(plain.read_text())  # older readers see nothing new
    assert Scorecard.load(plain).slices is None


def test_group_by_refuses_a_bad_metadata_file(text_run, tmp_path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "0", "topic": "a"}\nnot json\n')
    with pytest.raises(UsageError, match=r"bad.jsonl:2: not JSON"):
        score(text_run["samples"], text_run["refs"], metrics=["bleu"], metadata=bad,
              group_by="topic")
    with pytest.raises(UsageError, match="no line of .* has a 'colour' field"):
        score(text_run["samples"], text_run["refs"], metrics=["bleu"],
              metadata=text_run["meta"], group_by="colour")


def _card(text_run, tmp_path: Path, name: str, change: dict[int, str] | None = None) -> Path:
    samples = tmp_path / f"{name}-s"
    shutil.copytree(text_run["samples"], samples)
    for i, text in (change or {}).items():
        (samples / f"{i}.txt").write_text(text)
    out = tmp_path / f"{name}.json"
    score(samples, text_run["refs"], metrics=["chrf"], metadata=text_run["meta"],
          group_by="topic").save(out)
    return out


def test_gate_fails_on_a_regression_in_one_slice_and_names_it(text_run, tmp_path,
                                                                run_cli) -> None:
    base = _card(text_run, tmp_path, "base")
    # one "animals" sample much worse; the overall chrF drops less than the slice's
    new = _card(text_run, tmp_path, "new", {0: "Dogs bark loudly at night."})
    report = g.gate(Scorecard.load(new), Scorecard.load(base))
    failed = [c.metric for c in report.regressions]
    assert "chrf [topic=animals]" in failed
    assert "chrf [topic=news]" not in failed
    news = next(c for c in report.checks if c.metric == "chrf [topic=news]")
    assert news.status == g.PASS and news.delta == 0
    done = run_cli("gate", new, "--baseline", base)
    assert done.returncode == 1
    assert "chrf [topic=animals]" in done.stdout.split("gate failed:")[1]
    same = run_cli("gate", base, "--baseline", base)
    assert same.returncode == 0, same.stdout


def test_gate_fails_when_the_new_card_lacks_the_slices(text_run, tmp_path) -> None:
    base = Scorecard.load(_card(text_run, tmp_path, "base"))
    plain = score(text_run["samples"], text_run["refs"], metrics=["chrf"])
    report = g.gate(plain, base)
    assert not report.passed
    assert {c.metric for c in report.regressions} == {"chrf [topic=animals]",
                                                      "chrf [topic=news]"}
    assert "--group-by topic" in report.regressions[0].message


def test_compare_has_a_row_per_slice(text_run, tmp_path) -> None:
    base = Scorecard.load(_card(text_run, tmp_path, "base"))
    new = Scorecard.load(_card(text_run, tmp_path, "new", {0: "Dogs bark loudly at night."}))
    rows = {r.metric: r for r in compare([base, new], ["base", "new"]).rows}
    assert set(rows) == {"chrf", "chrf [topic=animals]", "chrf [topic=news]"}
    animals = rows["chrf [topic=animals]"]
    assert animals.values == [base.slices["groups"]["animals"]["metrics"]["chrf"].value,
                              new.slices["groups"]["animals"]["metrics"]["chrf"].value]
    assert animals.delta[1] < -5 and rows["chrf [topic=news]"].delta[1] == 0


def test_report_shows_the_slice_table(text_run, tmp_path) -> None:
    from genmetrics.report import render_report

    html = render_report([_card(text_run, tmp_path, "base")])
    assert "<h3>Slices by topic</h3>" in html
    assert "<td>news</td><td class=\"num\">3</td>" in html
    assert "1 sample(s) have no topic" in html


def test_cli_group_by_metadata(text_run, tmp_path, run_cli) -> None:
    out = tmp_path / "card.json"
    done = run_cli("score", text_run["samples"], "-r", text_run["refs"], "--metrics", "bleu",
                   "--metadata", text_run["meta"], "--group-by", "topic", "--out", out, "-q")
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert doc["slices"]["groups"]["news"]["n"] == 3
    done = run_cli("score", text_run["samples"], "-r", text_run["refs"], "--metrics", "bleu",
                   "--metadata", tmp_path / "nope.jsonl", "--group-by", "topic", "--out", out)
    assert_one_line_error(done, "--metadata", "nope.jsonl: no such file")


# -- images: one decode, one forward pass; a one-image slice gets FID null ------------
def test_image_slices_share_the_forward_pass_and_null_small_slices(
        real_weights, tmp_path, monkeypatch) -> None:
    from genmetrics.metrics.image import _inception
    from tests.photos import degraded_folders

    folders = degraded_folders(tmp_path)  # 14 samples, 12 references
    topics = ["a"] * 7 + ["b"] * 6 + ["solo"]
    meta = tmp_path / "meta.jsonl"
    meta.write_text("".join(json.dumps({"id": f"{i:03d}", "kind": t}) + "\n"
                            for i, t in enumerate(topics)))
    through = []
    real = _inception.extract_with_cache

    def counting(extractor, images):
        through.append(len(images))
        return real(extractor, images)

    monkeypatch.setattr(_inception, "extract_with_cache", counting)
    from genmetrics.metrics.image.fid import FID

    reference_batches = []
    real_reference = FID.update_reference
    monkeypatch.setattr(FID, "update_reference", lambda self, batch: (
        reference_batches.append(len(batch)), real_reference(self, batch))[1])
    common = {"metrics": ["fid", "kid"], "inception_weights": real_weights,
              "feature_cache": False, "diagnostics": False, "batch_size": 8}
    card = score(folders["samples"], folders["refs"], metadata=meta, group_by="kind", **common)
    assert sum(through) == 14 + 12  # every image through the network once
    assert sum(reference_batches) == 12  # the slices share the run's reference moments
    groups = card.slices["groups"]
    assert {v: grp["n"] for v, grp in groups.items()} == {"a": 7, "b": 6, "solo": 1}
    solo = groups["solo"]["metrics"]["fid"]
    assert solo.value != solo.value  # NaN: null in JSON
    assert "needs at least 2 sample images" in solo.reason
    assert solo.to_dict()["value"] is None
    # slice a equals FID over its 7 images alone, against the same references
    alone_dir = tmp_path / "alone"
    alone_dir.mkdir()
    for i in range(7):
        shutil.copy(folders["samples"] / f"{i:03d}.png", alone_dir)
    alone = score(alone_dir, folders["refs"], **common)
    assert groups["a"]["metrics"]["fid"].value == pytest.approx(alone.metrics["fid"].value,
                                                                rel=1e-6)
    assert groups["a"]["metrics"]["kid"].value == pytest.approx(alone.metrics["kid"].value,
                                                                rel=1e-6, abs=1e-9)
    card.save(tmp_path / "img.json")
    # gate per slice on FID: a regression in slice a fails naming it; the slice that is
    # null in the baseline (solo) is skipped, not a failure
    doc = json.loads((tmp_path / "img.json").read_text())
    doc["slices"]["groups"]["a"]["metrics"]["fid"]["value"] *= 1.5
    worse = Scorecard.from_dict(doc)
    report = g.gate(worse, card)
    assert [c.metric for c in report.regressions] == ["fid [kind=a]"]
    solo_check = next(c for c in report.checks if c.metric == "fid [kind=solo]")
    assert solo_check.status == g.SKIPPED and "needs at least 2" in solo_check.message
    assert g.gate(card, card).passed
