"""DNSMOS: equal to speechmos's own DNSMOS on real (espeak-ng) speech, bad inputs named,
results independent of threads and batching, reference-free through the CLI.

Every clip is written once as a 16-bit WAV and genmetrics gets the samples that file
holds (decoded with soundfile, as the CLI does), while speechmos is given the path, so
both sides start from the same file. Values must be identical (``==``): both run the
same ONNX models on the same float32 windows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from genmetrics.errors import MetricUnavailable
from genmetrics.io.audio import AudioClip, read_clip
from tests.speech import SENTENCES, add_noise, lowpass, require_speech_tools, speech, write_wav

pytest.importorskip("onnxruntime")
pytest.importorskip("speechmos")
pytest.importorskip("pyworld")

from genmetrics.metrics.audio import dnsmos as dnsmos_module  # noqa: E402
from genmetrics.metrics.audio.dnsmos import DNSMOS  # noqa: E402

RATE = 16000
KEYS = ("sig_mos", "bak_mos", "ovrl_mos", "p808_mos")


def _peak(wave: np.ndarray, peak: float = 0.9) -> np.ndarray:
    return wave / np.max(np.abs(wave)) * peak


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    require_speech_tools()
    root = tmp_path_factory.mktemp("dnsmos")
    clean = _peak(speech(SENTENCES[0], RATE))
    long = _peak(np.concatenate([speech(s, RATE) for s in SENTENCES[:4]]))  # > 9.01 s
    return {
        "clean": write_wav(root / "clean.wav", clean, RATE),
        "noisy0": write_wav(root / "noisy0.wav", _peak(add_noise(clean, 0)), RATE),
        "noisy15": write_wav(root / "noisy15.wav", _peak(add_noise(clean, 15, seed=1)), RATE),
        "lowpass": write_wav(root / "lowpass.wav", _peak(lowpass(clean, RATE, 2000)), RATE),
        "long": write_wav(root / "long.wav", long, RATE),
        "short": write_wav(root / "short.wav", clean[: int(1.2 * RATE)], RATE),
        # another rate: both sides resample with soxr_hq (librosa.load(path, sr=16000))
        "at22k": write_wav(root / "at22k.wav", _peak(speech(SENTENCES[1], 22050)), 22050),
    }


def _theirs(path: Path, personalized: bool = False) -> tuple[float, ...]:
    from speechmos import dnsmos

    out = dnsmos.run(str(path), 16000,
                     model_type="dnsmos_personalized" if personalized else "dnsmos")
    return tuple(float(out[k]) for k in KEYS)


def _clips(wavs: dict[str, Path]) -> list[AudioClip]:
    return [read_clip(path, name) for name, path in wavs.items()]


def test_equal_to_speechmos_on_real_speech(wavs):
    assert len(sf_windows(wavs["long"])) > 1  # several 9.01 s windows, 1 s apart
    metric = DNSMOS(workers=2)
    ours = metric.score(_clips(wavs))
    for (name, path), got in zip(wavs.items(), ours, strict=True):
        assert got == _theirs(path), name


def sf_windows(path: Path) -> list[np.ndarray]:
    import soundfile as sf

    return dnsmos_module.windows(sf.read(str(path), dtype="float32")[0])


def test_personalized_model_equal_to_speechmos(wavs):
    names = ["clean", "noisy0"]
    ours = DNSMOS(personalized=True, workers=1).score([read_clip(wavs[n], n) for n in names])
    assert ours == [_theirs(wavs[n], personalized=True) for n in names]


def test_results_do_not_depend_on_threads_or_batching(wavs):
    clips = _clips(wavs)
    one = DNSMOS(workers=1)
    one.update(clips)
    many = DNSMOS(workers=2)
    for k in range(0, len(clips), 3):
        many.update(clips[k:k + 3])
    a, b = one.compute(per_sample=True), many.compute(per_sample=True)
    for name in ("dnsmos", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"):
        assert a[name].value == b[name].value
        assert a[name].per_sample == b[name].per_sample


def test_headline_is_ovrl_and_noise_lowers_bak(wavs):
    names = ["clean", "noisy15", "noisy0"]
    metric = DNSMOS(workers=2)
    metric.update([read_clip(wavs[n], n) for n in names])
    r = metric.compute(per_sample=True)
    theirs = [_theirs(wavs[n]) for n in names]
    assert r["dnsmos"].per_sample == [t[2] for t in theirs]  # OVRL
    assert r["dnsmos"].value == pytest.approx(np.mean([t[2] for t in theirs]), abs=1e-12)
    bak = r["dnsmos_bak"].per_sample
    assert bak[0] > bak[1] > bak[2]  # more noise, worse background score
    assert r["dnsmos"].signature["score"] == "ovrl"
    assert r["dnsmos_p808"].signature["model"].startswith("dnsmos_models/sig_bak_ovr.onnx:")


def test_bad_clips_are_named_and_the_rest_scored(wavs):
    clean = read_clip(wavs["clean"], "clean")
    bad = [
        AudioClip("silent", np.zeros(3 * RATE), RATE),
        AudioClip("tiny", clean.waveform[: RATE // 2], RATE),
        AudioClip("nan", np.full(2 * RATE, np.nan), RATE),
    ]
    metric = DNSMOS(workers=2)
    metric.update([bad[0], clean, bad[1], bad[2]])
    r = metric.compute(per_sample=True)["dnsmos"]
    assert r.n == 1 and r.per_sample[1] == _theirs(wavs["clean"])[2]
    reasons = {f["index"]: f["reason"] for f in r.components["failed"]}
    assert reasons[0].startswith("silent clip")
    assert reasons[2].startswith("too short: 0.500 s") and "min_seconds=0" in reasons[2]
    assert "NaN" in reasons[3]
    # min_seconds=0 scores the short clip as speechmos does (repeated to 9.01 s)
    anyway = DNSMOS(min_seconds=0, workers=1).score([read_clip(wavs["short"], "s")])
    assert anyway == [_theirs(wavs["short"])]


def test_changed_model_file_makes_the_metric_unavailable(monkeypatch):
    monkeypatch.setitem(dnsmos_module.MODELS, dnsmos_module.P808, "0" * 64)
    monkeypatch.setattr(dnsmos_module, "_SESSIONS", {})
    with pytest.raises(MetricUnavailable, match="sha256 .* differs.*speechmos"):
        DNSMOS().preflight()


def test_cli_scores_a_folder_without_reference(run_cli, tmp_path, wavs):
    folder = tmp_path / "tts"
    folder.mkdir()
    for name in ("clean", "noisy0"):
        (folder / f"{name}.wav").write_bytes(wavs[name].read_bytes())
    write_wav(folder / "silent.wav", np.zeros(2 * RATE), RATE)
    out = tmp_path / "card.json"
    done = run_cli("score", "--modality", "audio", folder, "--metrics", "dnsmos",
                   "--set", "dnsmos.workers=2", "--per-sample", "-o", out)
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert set(doc["metrics"]) == {"dnsmos", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"}
    result = doc["metrics"]["dnsmos"]
    assert result["n"] == 2
    assert [(f["id"], f["reason"][:12]) for f in result["components"]["failed"]] == [
        ("silent", "silent clip ")]
    assert "refs" not in result["signature"]
    by_id = dict(zip(doc["per_sample"]["ids"], doc["per_sample"]["values"]["dnsmos"],
                     strict=True))
    assert by_id["clean"] == _theirs(wavs["clean"])[2]


def test_evaluator_scores_waveforms_without_references(wavs):
    from genmetrics import Evaluator

    clip = read_clip(wavs["clean"], "clean")
    ev = Evaluator(["dnsmos"], modality="audio", options={"dnsmos": {"workers": 2}})
    ev.update([clip.waveform], sample_rate=RATE)
    card = ev.compute()
    assert card.metrics["dnsmos"].value == _theirs(wavs["clean"])[2]
    assert card.metrics["dnsmos_bak"].value == _theirs(wavs["clean"])[1]
