"""Slices scored from the overall instance's per-sample statistics (no second run of a
model per slice), the Evaluator's slices (``group_by=`` / ``groups=``), and the run's
device as one setting that models read (not copied into every metric's options)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from genmetrics import Evaluator
from genmetrics.devices import current_device, using_device
from genmetrics.errors import UsageError
from genmetrics.runner import score
from tests.conftest import write_files
from tests.test_bad_inputs_text_audio import noisy, tone, write_wav


def _meta(path: Path, labels: dict[str, str | None], field: str = "topic") -> Path:
    path.write_text("".join(json.dumps({"id": k, **({field: v} if v else {})}) + "\n"
                            for k, v in labels.items()))
    return path


def _copy(root: Path, folders: tuple[Path, ...], keys: list[str]) -> list[Path]:
    out = []
    for folder in folders:
        target = root / folder.name
        target.mkdir(parents=True)
        for key in keys:
            for f in folder.glob(f"{key}.*"):
                shutil.copy(f, target / f.name)
        out.append(target)
    return out


# -- audio: a failed pair, its reason and id in the right slice; SNR runs once ----------
def test_audio_slices_come_from_the_per_sample_state(tmp_path, monkeypatch) -> None:
    from genmetrics.metrics.audio import snr

    freqs = {"a": 220.0, "b": 330.0, "c": 440.0, "d": 550.0, "e": 660.0}
    for key, f in freqs.items():
        write_wav(tmp_path / "s" / f"{key}.wav", noisy(tone(4000, f), ord(key)))
        ref = np.zeros(4000) if key == "d" else tone(4000, f)  # d: silent, SNR undefined
        write_wav(tmp_path / "r" / f"{key}.wav", ref)
    meta = _meta(tmp_path / "m.jsonl", {"a": "x", "b": "y", "c": "x", "d": "x", "e": None})
    calls: list[int] = []
    real = snr.snr_values

    def counting(samples, references, **kw):
        calls.append(len(samples))
        return real(samples, references, **kw)

    monkeypatch.setattr(snr, "snr_values", counting)
    common = {"modality": "audio", "metrics": ["snr", "si_snr"], "diagnostics": False}
    card = score(tmp_path / "s", tmp_path / "r", metadata=meta, group_by="topic", **common)
    assert sum(calls) == 2 * 5  # each metric scored each pair once, slices or not
    groups = card.slices["groups"]
    assert {v: g["n"] for v, g in groups.items()} == {"x": 3, "y": 1}
    calls.clear()
    alone = score(*_copy(tmp_path / "x", (tmp_path / "s", tmp_path / "r"), ["a", "c", "d"]),
                  **common)
    for name, result in alone.metrics.items():
        got = groups["x"]["metrics"][name]
        assert got.value == result.value and got.n == result.n == 2
        assert got.components["failed"] == result.components["failed"]
        assert [f["id"] for f in got.components["failed"]] == ["d"]
        assert "silent reference" in got.components["failed"][0]["reason"]
    assert "failed" not in groups["y"]["metrics"]["snr"].components


# -- text: BERTScore's encoder embeds each text once, with or without slices ------------
def test_bertscore_slices_run_the_encoder_once_per_text(tmp_path, monkeypatch) -> None:
    pytest.importorskip("transformers")
    from genmetrics.features import text_encoder
    from tests.test_bertscore import save_tiny_bert

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    model = save_tiny_bert(tmp_path / "bert")
    pairs = {"0": ("the cat sat on the mat", "a cat was on the mat"),
             "1": ("prices rose in may", "prices went up in may"),
             "2": ("it rained all day", "rain fell the whole day"),
             "3": ("the meeting moved to friday", "the meeting is now on friday"),
             "4": ("she reads every week", "she reads a book each week")}
    samples = write_files(tmp_path / "s", {f"{k}.txt": h for k, (h, _) in pairs.items()})
    refs = write_files(tmp_path / "r", {f"{k}.txt": r for k, (_, r) in pairs.items()})
    meta = _meta(tmp_path / "m.jsonl", {"0": "pets", "1": "news", "2": "news", "3": "news",
                                        "4": "pets"})
    embedded: list[int] = []
    real = text_encoder.Encoder.embed

    def counting(self, rows, *args, **kwargs):
        embedded.append(len(rows))
        return real(self, rows, *args, **kwargs)

    monkeypatch.setattr(text_encoder.Encoder, "embed", counting)
    common = {"metrics": ["bertscore", "bleu"], "diagnostics": False,
              "options": {"bertscore": {"model": str(model), "idf": True, "layer": 3}}}
    card = score(samples, refs, metadata=meta, group_by="topic", **common)
    assert sum(embedded) == 10  # 5 samples + 5 references, each once
    for topic, keys in (("pets", ["0", "4"]), ("news", ["1", "2", "3"])):
        embedded.clear()
        alone = score(*_copy(tmp_path / topic, (samples, refs), keys), **common)
        assert sum(embedded) == 2 * len(keys)
        for name, result in alone.metrics.items():  # idf over the slice's references;
            got = card.slices["groups"][topic]["metrics"][name]  # float32 embeddings move
            tol = 2e-6 if name == "bertscore" else 1e-12  # ~1e-8 with the batch's padding
            assert got.value == pytest.approx(result.value, rel=tol), (topic, name)
            assert got.n == result.n == len(keys)


def test_a_metric_whose_state_is_not_per_sample_is_not_restricted() -> None:
    from genmetrics.registry import get_metric

    assert get_metric("bleu").restrictable() and get_metric("wer", "audio").restrictable()
    assert get_metric("snr", "audio").restrictable() and get_metric("ssim").restrictable()
    assert not get_metric("fid").restrictable()  # sums: an instance per slice instead
    bleu = get_metric("bleu")()
    bleu.update(["a b c", "d e f"], [["a b c"], ["d e f"]])
    assert bleu.restricted([0], 3) is None  # the state does not hold 3 samples


# -- the Evaluator: group_by= and groups= ------------------------------------------------
HYPS = ["the cat sat on the mat", "a dog barked at night", "it rained all day",
        "prices rose in may", "the meeting moved to friday", "she reads every week"]
REFS = ["the cat is on the mat", "a dog barks at night", "it was raining all day",
        "prices went up in may", "the meeting is on friday", "she reads each week"]
GROUPS = ["pets", "pets", "weather", "news", "news", None]


def test_evaluator_slices_equal_an_evaluator_per_slice() -> None:
    ev = Evaluator(["bleu", "chrf"], "text", group_by="topic", sync="none")
    ev.update(HYPS[:3], REFS[:3], groups=GROUPS[:3])
    ev.update(HYPS[3:], REFS[3:], groups=GROUPS[3:])
    card = ev.compute()
    groups = card.slices["groups"]
    assert card.slices["by"] == "topic" and card.slices["unlabelled"] == 1
    assert {v: g["n"] for v, g in groups.items()} == {"news": 2, "pets": 2, "weather": 1}
    for topic in groups:
        index = [i for i, g in enumerate(GROUPS) if g == topic]
        alone = Evaluator(["bleu", "chrf"], "text", sync="none")
        alone.update([HYPS[i] for i in index], [REFS[i] for i in index])
        for name, result in alone.compute().metrics.items():
            assert groups[topic]["metrics"][name].value == result.value, (topic, name)
    # a checkpoint keeps the slices; reset() empties them
    state = ev.state_dict()
    again = Evaluator(["bleu", "chrf"], "text", group_by="topic", sync="none")
    again.load_state_dict(state)
    assert again.compute().slices["groups"]["news"]["metrics"]["bleu"].value == \
        groups["news"]["metrics"]["bleu"].value
    ev.reset()
    ev.update(HYPS[:1], REFS[:1], groups=["pets"])
    assert {v: g["n"] for v, g in ev.compute().slices["groups"].items()} == {"pets": 1}


def test_evaluator_groups_are_checked_before_anything_is_added() -> None:
    ev = Evaluator(["bleu"], "text", group_by="topic", sync="none")
    with pytest.raises(UsageError, match="give one group per sample"):
        ev.update(HYPS[:2], REFS[:2], groups=["pets"])
    with pytest.raises(UsageError, match="group_by=FIELD"):
        Evaluator(["bleu"], "text", sync="none").update(HYPS[:1], REFS[:1], groups=["x"])
    with pytest.raises(UsageError, match="group_by needs a name"):
        Evaluator(["bleu"], "text", group_by=" ")
    ev.update(HYPS[:2], REFS[:2], groups=["pets", "pets"])
    assert ev.compute().metrics["bleu"].n == 2


def test_evaluator_image_slices_share_the_reference_distribution(real_weights) -> None:
    torch = pytest.importorskip("torch")
    from tests.photos import blur, resize_longer_side, tiles

    photos = [resize_longer_side(t, 64) for _, t in tiles()[:12]]
    as_tensor = lambda ims: torch.from_numpy(np.stack(ims)).permute(0, 3, 1, 2)  # noqa: E731
    refs, samples = as_tensor(photos[:6]), as_tensor([blur(p) for p in photos[6:]])
    clean = as_tensor(photos[6:])
    kinds = ["a", "a", "a", "b", "b", "b"]
    common = {"device": "cpu", "inception_weights": real_weights, "sync": "none",
              "options": {"kid": {"subset_size": 3}}}
    ev = Evaluator(["kid", "ssim"], "image", group_by="kind", **common)
    ev.update_reference(refs)  # before any slice exists
    ev.update(samples[:4], clean[:4], groups=kinds[:4])
    ev.update(samples[4:], clean[4:], groups=kinds[4:])
    groups = ev.compute().slices["groups"]
    for kind in ("a", "b"):
        index = [i for i, k in enumerate(kinds) if k == kind]
        alone = Evaluator(["kid", "ssim"], "image", **common)
        alone.update_reference(refs)
        alone.update(samples[index], clean[index])
        for name, result in alone.compute().metrics.items():
            got = groups[kind]["metrics"][name]
            assert got.value == pytest.approx(result.value, rel=1e-6, abs=1e-9), (kind, name)


# -- the run's device --------------------------------------------------------------------
def test_the_run_device_is_read_by_models_not_copied_into_options(tmp_path,
                                                                  monkeypatch) -> None:
    from genmetrics.features.causal_lm import resolve_device
    from genmetrics.metrics.audio import snr

    with using_device("cpu"):
        assert resolve_device("auto") == "cpu" and current_device() == "cpu"
    assert current_device() is None
    seen = []
    real = snr.SNR.score_pairs

    def spy(self, samples, references):
        seen.append((self.options["device"], self.device(), current_device()))
        return real(self, samples, references)

    monkeypatch.setattr(snr.SNR, "score_pairs", spy)
    for key, f in (("a", 220.0), ("b", 330.0)):
        write_wav(tmp_path / "s" / f"{key}.wav", noisy(tone(4000, f), 1))
        write_wav(tmp_path / "r" / f"{key}.wav", tone(4000, f))
    card = score(tmp_path / "s", tmp_path / "r", modality="audio", metrics=["snr"],
                 device="cpu", diagnostics=False)
    assert card.metrics["snr"].n == 2
    assert seen == [("auto", "cpu", "cpu")]  # the option stays auto; the run says cpu
    seen.clear()  # a metric's own device wins over the run's ("meta": no data needed)
    score(tmp_path / "s", tmp_path / "r", modality="audio", metrics=["snr"], device="meta",
          options={"snr": {"device": "cpu"}}, diagnostics=False)
    assert seen == [("cpu", "cpu", "meta")]
    assert current_device() is None
    ev = Evaluator(["snr"], "audio", device="cpu", sync="none")
    seen.clear()
    ev.update(np.stack([noisy(tone(4000, 220.0), 2)]), np.stack([tone(4000, 220.0)]),
              sample_rate=16000)
    assert seen == [("auto", "cpu", "cpu")] and current_device() is None
    with pytest.raises(UsageError, match="none of the metrics being run has a device"):
        score(write_files(tmp_path / "t", {"1.txt": "a b"}),
              write_files(tmp_path / "u", {"1.txt": "a b"}), metrics=["bleu"], device="cpu")


def test_a_device_that_cannot_be_used_is_a_usage_error(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    write_wav(tmp_path / "s" / "a.wav", noisy(tone(4000, 220.0), 1))
    write_wav(tmp_path / "r" / "a.wav", tone(4000, 220.0))
    with pytest.raises(UsageError, match="CUDA is not available"):
        score(tmp_path / "s", tmp_path / "r", modality="audio", metrics=["snr"],
              device="cuda")
