"""CLAP score and prompts as input for audio.

Parity: against the same definition computed directly with transformers' ``ClapModel``
and ``ClapProcessor`` (clips resampled to the model's 48 kHz with soxr, cut to the
model's 10 s window, ``get_audio_features`` / ``get_text_features``, 100 x cosine), on a
tiny random CLAP built from a ``ClapConfig`` and saved with ``save_pretrained`` (no real
LAION-CLAP can be downloaded here), loaded through the path a real model folder takes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.tiny_models import _bytes_to_unicode

PROMPTS = ["a dog barks", "rain on a tin roof", "a violin plays a slow melody",
           "a car passes by", "birds singing in the morning"]


def tiny_clap(path: Path, seed: int = 0) -> Path:
    """A tiny random ``ClapModel`` + ``ClapProcessor`` (LAION-CLAP's feature extractor
    settings: 48 kHz, 64 mel bins, 10 s, ``rand_trunc``/``repeatpad``; a byte-level
    RoBERTa tokenizer) saved in ``path``."""
    import torch
    from transformers import (
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        ClapTextConfig,
        RobertaTokenizer,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokens = ["<s>", "<pad>", "</s>", "<unk>", *_bytes_to_unicode(), "<mask>"]
    tokenizer = RobertaTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[],
                                 model_max_length=512)
    torch.manual_seed(seed)
    text = ClapTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                          num_hidden_layers=2, num_attention_heads=2,
                          max_position_embeddings=514, projection_dim=16, pad_token_id=1,
                          bos_token_id=0, eos_token_id=2)
    audio = ClapAudioConfig(hidden_size=128, patch_embeds_hidden_size=16, depths=[1, 1, 1, 1],
                            num_attention_heads=[1, 1, 1, 1], projection_dim=16)
    config = ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(),
                        projection_dim=16)
    ClapModel(config).eval().save_pretrained(path)
    extractor = ClapFeatureExtractor(truncation="rand_trunc", padding="repeatpad")
    ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def clap_folder(tmp_path_factory) -> Path:
    # seed 2: the cosines on these clips and prompts take both signs
    return tiny_clap(tmp_path_factory.mktemp("clap") / "tiny-clap", seed=2)


def clip(seed: int, seconds: float, rate: int) -> np.ndarray:
    """A tone with harmonics and noise, different for each seed."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 110 * (seed + 1)
    wave = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 4))
    return (0.2 * wave + 0.05 * rng.standard_normal(len(t))).astype(np.float64) * 0.8


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory) -> tuple[Path, dict[str, tuple[np.ndarray, int]]]:
    root = tmp_path_factory.mktemp("t2a") / "clips"
    root.mkdir()
    clips = {}
    for i, (seconds, rate) in enumerate([(2.0, 16000), (1.5, 44100), (12.0, 16000),
                                         (3.0, 48000), (0.5, 22050)]):
        wave = clip(i, seconds, rate)
        sf.write(root / f"{i}.wav", wave, rate, subtype="FLOAT")
        clips[str(i)] = (wave, rate)
    return root, clips


def direct_scores(folder: Path, clips: list[tuple[np.ndarray, int]],
                  prompts: list[str]) -> np.ndarray:
    import soxr
    import torch
    from transformers import ClapModel, ClapProcessor

    model = ClapModel.from_pretrained(folder).eval()
    processor = ClapProcessor.from_pretrained(folder)
    rate = processor.feature_extractor.sampling_rate
    waves = [soxr.resample(w, r, rate, quality="VHQ")[: 10 * rate].astype(np.float32)
             for w, r in clips]
    with torch.inference_mode():
        audio = processor(audio=waves, sampling_rate=rate, return_tensors="pt")
        a = model.get_audio_features(input_features=audio["input_features"],
                                     is_longer=audio["is_longer"]).pooler_output
        tok = processor(text=prompts, return_tensors="pt", padding=True)
        t = model.get_text_features(input_ids=tok["input_ids"],
                                    attention_mask=tok["attention_mask"]).pooler_output
    a = a.double() / a.double().norm(dim=-1, keepdim=True)
    t = t.double() / t.double().norm(dim=-1, keepdim=True)
    return (100 * (a * t).sum(-1)).numpy()


def score_clap(samples, clap_folder, **kw):
    from genmetrics.runner import score

    kw.setdefault("options", {"clap_score": {"weights": str(clap_folder), "device": "cpu"}})
    return score(samples, metrics=["clap_score"], per_sample=True, **kw)


def test_clap_score_equals_clap_model_computed_directly(clip_folder, clap_folder, tmp_path):
    root, clips = clip_folder
    keys = sorted(clips)
    jsonl = tmp_path / "prompts.jsonl"
    jsonl.write_text("".join(json.dumps({"id": k, "prompt": PROMPTS[int(k)]}) + "\n"
                             for k in keys))
    card = score_clap(root, clap_folder, prompts=jsonl, batch_size=2)
    result = card.metrics["clap_score"]
    expected = direct_scores(clap_folder, [clips[k] for k in keys],
                             [PROMPTS[int(k)] for k in keys])
    np.testing.assert_allclose(result.per_sample, expected, rtol=0, atol=2e-4)
    assert result.value == pytest.approx(max(expected.mean(), 0), abs=2e-4)
    assert len(set(np.round(expected, 3))) == len(keys)  # the clips really differ
    assert expected.min() < 0 < expected.max()
    pair = score_clap(root, clap_folder, prompts=jsonl, options={"clap_score": {
        "weights": str(clap_folder), "device": "cpu", "clamp": "pair"}})
    assert pair.metrics["clap_score"].value == pytest.approx(np.maximum(expected, 0).mean(),
                                                             abs=2e-4)
    sig = result.signature
    assert sig["backbone"] == "clap" and sig["text"] == "truncate-512"
    assert sig["preprocessing"].startswith("soxr-vhq-48000|ClapFeatureExtractor:")
    assert sig["preprocessing"].endswith("|long:first-10s")
    assert sig["refs"] == card.inputs["prompts"]["digest"]
    # the 12 s clip was cut to its first 10 s (else a random crop would be scored)
    assert any("1 clip(s) were longer than the CLAP model's window" in w["message"]
               for w in card.warnings)
    again = score_clap(root, clap_folder, prompts=jsonl, batch_size=5)
    assert again.metrics["clap_score"].per_sample == pytest.approx(result.per_sample,
                                                                   abs=1e-4)


def test_bad_prompts_are_named_and_the_rest_scored(clip_folder, clap_folder, tmp_path):
    root, clips = clip_folder
    jsonl = tmp_path / "prompts.jsonl"
    jsonl.write_text("".join(json.dumps({"id": k, "prompt": p}) + "\n" for k, p in (
        ("0", PROMPTS[0]), ("1", PROMPTS[1]), ("2", "  "), ("3", PROMPTS[3]))))  # 4: none
    card = score_clap(root, clap_folder, prompts=jsonl)
    result = card.metrics["clap_score"]
    reasons = {f["id"]: f["reason"] for f in result.components["failed"]}
    assert reasons["2"] == "empty prompt"
    assert reasons["4"].startswith("no prompt: no id '4' in ") and set(reasons) == {"2", "4"}
    expected = direct_scores(clap_folder, [clips[k] for k in ("0", "1", "3")],
                             [PROMPTS[0], PROMPTS[1], PROMPTS[3]])
    assert [v for v in result.per_sample if v is not None] == pytest.approx(expected, abs=2e-4)
    assert any("2 sample(s) have no usable prompt" in w["message"] for w in card.warnings)


def test_txt_beside_clips_are_transcripts_not_prompts(clip_folder, tmp_path):
    """A text-to-speech folder (a .txt transcript beside each clip): its default run has
    no clap_score, neither scored nor listed as unavailable; prompts come from --prompts."""
    import shutil

    from genmetrics.io.audio import open_audio
    from genmetrics.runner import score

    src, _ = clip_folder
    root = tmp_path / "tts"
    shutil.copytree(src, root)
    for k in range(5):
        (root / f"{k}.txt").write_text(PROMPTS[k])
    assert open_audio(root).provides == {"transcript"}
    assert all(p.sample.prompt is None and p.sample.text == PROMPTS[int(p.id)]
               for p in open_audio(root))
    card = score(root)
    assert "clap_score" not in card.metrics and "clap_score" not in card.unavailable
    assert "wer" in card.metrics or "wer" in card.unavailable  # the .txt: transcripts


def test_evaluator_audio_prompts(clip_folder, clap_folder):
    from genmetrics import Evaluator

    _, clips = clip_folder
    ev = Evaluator(["clap_score"], "audio", device="cpu",
                   options={"clap_score": {"weights": str(clap_folder)}})
    waves = [clip(i, 1.0, 16000) for i in range(3)]
    ev.update(waves, sample_rate=16000, prompts=PROMPTS[:3])
    result = ev.compute().metrics["clap_score"]
    expected = direct_scores(clap_folder, [(w, 16000) for w in waves], PROMPTS[:3])
    assert result.value == pytest.approx(max(expected.mean(), 0), abs=2e-4)
    assert result.n == 3


def test_clap_unavailable_offline_names_the_fetch_command():
    from genmetrics.registry import get_metric
    from genmetrics.runner import default_metrics

    assert "clap_score" in default_metrics("audio", False, provides=frozenset({"prompt"}))
    reason = get_metric("clap_score")(device="cpu").default_unavailable()
    assert reason is not None and reason.endswith("genmetrics assets fetch clap")


def test_slices_run_the_audio_tower_once_per_clip(clip_folder, clap_folder, tmp_path,
                                                  monkeypatch):
    """A CLAP slice comes from the overall run's per-clip rows: every clip through the
    audio tower once (the 12 s one cut once, counted in its own slice only)."""
    from genmetrics.features.clap import ClapBackbone

    root, clips = clip_folder
    jsonl = tmp_path / "prompts.jsonl"
    jsonl.write_text("".join(json.dumps({"id": k, "prompt": PROMPTS[int(k)],
                                         "kind": "long" if k == "2" else "short"}) + "\n"
                             for k in sorted(clips)))
    seen: list[int] = []
    real = ClapBackbone.embed_audio
    monkeypatch.setattr(ClapBackbone, "embed_audio",
                        lambda self, c: (seen.append(len(c)), real(self, c))[1])
    card = score_clap(root, clap_folder, prompts=jsonl, group_by="kind", batch_size=2)
    assert sum(seen) == len(clips)
    overall = dict(zip(sorted(clips), card.metrics["clap_score"].per_sample, strict=True))
    groups = card.slices["groups"]
    short = groups["short"]["metrics"]["clap_score"]
    assert groups["short"]["n"] == 4 and short.value == pytest.approx(
        max(np.mean([v for k, v in overall.items() if k != "2"]), 0), abs=1e-9)
    assert groups["long"]["metrics"]["clap_score"].value == pytest.approx(max(overall["2"], 0))


def test_cut_and_truncation_are_kept_per_clip(clip_folder, clap_folder):
    """A batch where one clip of two is cut and one prompt of two truncated: the flags
    belong to those clips, so a subset (a slice) counts its own."""
    from genmetrics.io.audio import AudioClip
    from genmetrics.registry import get_metric

    _, clips = clip_folder
    metric = get_metric("clap_score")(device="cpu", weights=str(clap_folder))
    batch = [AudioClip(k, *clips[k], prompt=p) for k, p in (
        ("2", PROMPTS[2]), ("3", "a long prompt " + "with many words " * 200))]
    metric.update(batch)
    assert metric.count("cut") == 1 and metric.count("truncated") == 1
    first, second = metric.restricted([0], 2), metric.restricted([1], 2)
    assert (first.count("cut"), first.count("truncated")) == (1, 0)
    assert (second.count("cut"), second.count("truncated")) == (0, 1)
    assert second.compute()["clap_score"].components["truncated_prompts"] == 1
