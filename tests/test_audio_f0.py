"""F0 RMSE (cents) and V/UV error: the definition computed directly (pyworld F0, the DTW
path of mel-cepstral-distance's own alignment) on real espeak-ng speech, pitch shifts
of known size, bad pairs named.

Clips are 16-bit WAVs (peaks at 0.9); the library reads the paths, genmetrics the
samples those files hold.
"""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

from genmetrics.io.audio import AudioClip, read_clip
from tests.speech import SENTENCES, add_noise, require_speech_tools, speech, write_wav

pytest.importorskip("pyworld")

from genmetrics.metrics.audio.f0 import F0RMSE  # noqa: E402

RATE = 16000


def _sox(src: Path, out: Path, *effect: str) -> Path:
    subprocess.run(["sox", "-D", str(src), str(out), *effect], check=True,
                   capture_output=True)
    return out


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    require_speech_tools()
    root = tmp_path_factory.mktemp("f0")
    clean = speech(SENTENCES[0], RATE)
    ref = write_wav(root / "ref.wav", clean / np.max(np.abs(clean)) * 0.9, RATE)
    noisy = add_noise(clean, 20)
    raw = root / "voice2raw.wav"
    subprocess.run(["espeak-ng", "-v", "en-us+f3", "-w", str(raw), SENTENCES[0]], check=True,
                   capture_output=True)
    return {
        "ref": ref,
        "up100": _sox(ref, root / "up100.wav", "pitch", "100"),
        "down200": _sox(ref, root / "down200.wav", "pitch", "-200"),
        "slower": _sox(ref, root / "slower.wav", "tempo", "0.8"),
        "noisy": write_wav(root / "noisy.wav", noisy / np.max(np.abs(noisy)) * 0.9, RATE),
        "voice2": _sox(raw, root / "voice2.wav", "rate", str(RATE), "norm", "-1"),
    }


def _direct(sample: Path, reference: Path, method: str) -> tuple[float, float]:
    """The docstring's definition, from the libraries: mel-cepstral-distance's log-mel
    frames and DTW path (fastdtw, exact), pyworld F0 every 8 ms, frame k -> F0 frame k+2."""
    from mel_cepstral_distance.alignment import align_2d_sequences_using_dtw
    from mel_cepstral_distance.api import get_amplitude_spectrogram, get_mel_spectrogram

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        import pyworld
    import soundfile as sf

    logmel, f0 = [], []
    for path in (sample, reference):
        spec = get_amplitude_spectrogram(path, n_fft=32, win_len=32, hop_len=8)
        logmel.append(get_mel_spectrogram(spec, RATE, 32))
        x = sf.read(str(path), dtype="float64")[0]
        x = x / np.max(np.abs(x))
        if method == "harvest":
            f, _ = pyworld.harvest(x, RATE, frame_period=8.0)
        else:
            f, t = pyworld.dio(x, RATE, frame_period=8.0)
            f = pyworld.stonemask(x, f, t, RATE)
        f0.append(f)
    _, _, path = align_2d_sequences_using_dtw(logmel[0].T, logmel[1].T)
    a, b = f0[0][path[:, 0] + 2], f0[1][path[:, 1] + 2]
    both = (a > 0) & (b > 0)
    rmse = float(np.sqrt(np.mean((1200 * np.log2(a[both] / b[both])) ** 2)))
    return rmse, float(np.mean((a > 0) != (b > 0)))


@pytest.mark.parametrize("method", ["dio", "harvest"])
def test_equal_to_the_definition_from_pyworld_and_the_librarys_dtw(wavs, method):
    names = ["up100", "slower", "noisy", "voice2"] if method == "dio" else ["slower"]
    metric = F0RMSE(f0_method=method, device="cpu")
    ref = read_clip(wavs["ref"], "ref")
    metric.update([read_clip(wavs[n], n) for n in names], [[ref]] * len(names))
    r = metric.compute(per_sample=True)
    for k, name in enumerate(names):
        rmse, vuv = _direct(wavs[name], wavs["ref"], method)
        assert r["f0_rmse"].per_sample[k] == pytest.approx(rmse, rel=1e-9, abs=1e-9), name
        assert r["vuv_error"].per_sample[k] == pytest.approx(vuv, abs=1e-12), name


def test_pitch_shifts_give_their_size_in_cents_and_identity_zero(wavs):
    ref = read_clip(wavs["ref"], "ref")
    names = ["ref", "up100", "down200", "voice2"]
    metric = F0RMSE(f0_method="dio", device="cpu")
    metric.update([read_clip(wavs[n], n) for n in names], [[ref]] * len(names))
    r = metric.compute(per_sample=True)
    same, up, down, other = r["f0_rmse"].per_sample
    assert same == 0.0 and r["vuv_error"].per_sample[0] == 0.0
    assert 90 < up < 115  # sox pitch 100: ~100 cents (WORLD's errors on a few frames)
    assert 185 < down < 225
    assert other > 500  # another espeak-ng voice (en-us+f3): a far higher register
    assert max(r["vuv_error"].per_sample[1:3]) < 0.1
    assert r["f0_rmse"].signature["align"] == "mcd-dtw-logmel"
    assert (r["f0_rmse"].unit, r["vuv_error"].unit) == ("cents", "fraction of frames, 0-1")
    assert r["vuv_error"].signature["f0_method"] == "dio"


def test_bad_pairs_are_named_and_the_rest_scored(wavs):
    ref = read_clip(wavs["ref"], "ref")
    noise = AudioClip("noise", np.random.default_rng(0).standard_normal(2 * RATE) * 0.1, RATE)
    silent = AudioClip("silent", np.zeros(RATE), RATE)
    tiny = AudioClip("tiny", ref.waveform[:300], RATE)
    metric = F0RMSE(f0_method="dio", device="cpu")
    metric.update([ref, silent, tiny, noise], [[ref], [ref], [ref], [noise]])
    r = metric.compute(per_sample=True)
    rmse, vuv = r["f0_rmse"], r["vuv_error"]
    assert rmse.per_sample[0] == 0.0 and rmse.n == 1
    failed = {f["index"]: f["reason"] for f in rmse.components["failed"]}
    assert "silent" in failed[1] and "too short" in failed[2]
    assert failed[3].startswith("no frame is voiced in both")
    assert vuv.n == 2 and vuv.per_sample[3] == 0.0  # white noise: unvoiced on both sides
    assert sorted(f["index"] for f in vuv.components["failed"]) == [1, 2]


def test_vuv_error_selects_the_metric_by_name():
    from genmetrics.registry import get_metric

    assert get_metric("vuv_error") is F0RMSE
    assert F0RMSE.spec.outputs == ("f0_rmse", "vuv_error")
