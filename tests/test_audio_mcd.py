"""MCD: parity with mel-cepstral-distance on real speech, DTW internals, edge cases.

The library reads WAV paths; every WAV here is written once as 16-bit PCM (peaks at
0.9, so no sample is -32768, whose int16 ``abs`` the library gets wrong) and
genmetrics is given the very samples the file holds (decoded with soundfile, as the
CLI does), so both sides see identical input.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from genmetrics.errors import MetricError, UsageError
from genmetrics.io.audio import AudioClip, read_clip
from genmetrics.metrics.audio import _dtw
from genmetrics.metrics.audio._base import Failed
from genmetrics.metrics.audio.mcd import MCD
from tests.speech import (
    SENTENCES,
    add_noise,
    lowpass,
    require_speech_tools,
    speech,
    write_wav,
)

TOL = 1e-9
RATE = 16000


def _peak(wave: np.ndarray, peak: float = 0.9) -> np.ndarray:
    return wave / np.max(np.abs(wave)) * peak


def _tempo(src: Path, factor: float, out: Path) -> Path:
    # -D: no dither, so the file is the same on every run
    subprocess.run(["sox", "-D", str(src), str(out), "tempo", str(factor)], check=True,
                   capture_output=True)
    return out


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    require_speech_tools()
    root = tmp_path_factory.mktemp("mcd")
    clean = _peak(speech(SENTENCES[0], RATE))
    silence = np.zeros(int(0.3 * RATE))
    files = {
        "ref": write_wav(root / "ref.wav", clean, RATE),
        "noisy": write_wav(root / "noisy.wav", _peak(add_noise(clean, 10)), RATE),
        "noisy5": write_wav(root / "noisy5.wav", _peak(add_noise(clean, 5)), RATE),
        "lowpass": write_wav(root / "lowpass.wav", _peak(lowpass(clean, RATE, 2000)), RATE),
        # digital silence around both: runs of identical frames, so DTW meets exact ties
        "ref_sil": write_wav(root / "ref_sil.wav",
                             np.concatenate([silence[:3000], clean, silence]), RATE),
        "noisy_sil": write_wav(root / "noisy_sil.wav", np.concatenate(
            [silence, _peak(add_noise(clean, 15, seed=3)), silence[:1000]]), RATE),
    }
    files["slow"] = _tempo(files["noisy5"], 0.7, root / "slow.wav")  # 4.4 s vs 3.1 s
    files["fast"] = _tempo(files["lowpass"], 1.25, root / "fast.wav")  # 2.5 s
    return files


def _clip(path: Path) -> AudioClip:
    return read_clip(path, path.stem)


def ours(pairs: list[tuple[Path, Path]], **options) -> list[float | None]:
    metric = MCD(device="cpu", **options)
    metric.update([_clip(s) for s, _ in pairs], [[_clip(r)] for _, r in pairs])
    return metric.compute(per_sample=True)["mcd"].per_sample or []


def theirs(pairs: list[tuple[Path, Path]], **kwargs) -> list[float]:
    mcd = pytest.importorskip("mel_cepstral_distance")
    return [float(mcd.compare_audio_files(s, r, **kwargs)[0]) for s, r in pairs]


def _close(a: list, b: list, tol: float = TOL) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x is not None and abs(x - y) <= tol, (a, b)


# -- parity on real speech ------------------------------------------------------------


def test_pad_parity(wavs):
    pairs = [(wavs[k], wavs["ref"]) for k in ("noisy", "lowpass", "slow", "fast")]
    pairs.append((wavs["noisy_sil"], wavs["ref_sil"]))
    for target in ("mel", "spec", "mfcc"):
        _close(ours(pairs, align="pad", align_target=target),
               theirs(pairs, aligning="pad", align_target=target))
    # other settings: resampling, window, bands, coefficient range, frame sizes
    _close(ours(pairs, align="pad", sample_rate=8000),
           theirs(pairs, aligning="pad", sample_rate=8000))
    _close(ours(pairs, align="pad", window="hamming", n_mels=24, coef_start=0, coef_stop=24,
                fmin=100, fmax=7000),
           theirs(pairs, aligning="pad", window="hamming", M=24, s=0, D=24, fmin=100,
                  fmax=7000))
    _close(ours(pairs, align="pad", n_fft=64, win_len=25, hop_len=10),
           theirs(pairs, aligning="pad", n_fft=64, win_len=25, hop_len=10))


def test_exact_dtw_parity(wavs):
    pairs = [(wavs["noisy"], wavs["ref"]), (wavs["lowpass"], wavs["ref"]),
             (wavs["slow"], wavs["ref"]), (wavs["noisy_sil"], wavs["ref_sil"])]
    mine = ours(pairs)
    _close(mine, theirs(pairs, dtw_radius=None))
    assert all(v > 1 for v in mine)


def test_fastdtw_parity_and_how_the_library_default_differs(wavs):
    pair = [(wavs["slow"], wavs["ref"])]
    default = theirs(pair)  # the library's default: fastdtw, radius 10
    _close(ours(pair, dtw_radius=10), default)
    # the example of the module docstring: exact DTW (ours by default) equals the
    # library's exact DTW, and its default fastdtw path differs by far more than rounding
    exact = ours(pair)
    _close(exact, theirs(pair, dtw_radius=None))
    print(f"exact DTW {exact[0]:.4f}, the library's default {default[0]:.4f}")
    assert abs(default[0] - exact[0]) > 1e-3 * exact[0]
    short = [(wavs["fast"], wavs["ref"])]
    for target in ("spec", "mfcc"):
        _close(ours(short, dtw_radius=2, align_target=target),
               theirs(short, dtw_radius=2, align_target=target))


@pytest.mark.filterwarnings("ignore::scipy.io.wavfile.WavFileWarning")  # PEAK chunk
def test_other_sample_rate_and_float_wavs(tmp_path):
    require_speech_tools()
    # 22.05 kHz: 32 ms is 705 samples, not a power of two
    wave = _peak(speech(SENTENCES[1], 22050))
    ref = write_wav(tmp_path / "ref.wav", wave, 22050)
    deg = write_wav(tmp_path / "deg.wav", _peak(add_noise(wave, 10)), 22050)
    _close(ours([(deg, ref)], align="pad"), theirs([(deg, ref)], aligning="pad"))
    # without peak normalisation the library works on what the file holds: float64
    # WAVs give it the same numbers as genmetrics (16-bit ones give it integers)
    ref64 = write_wav(tmp_path / "ref64.wav", 0.5 * wave, 22050, subtype="DOUBLE")
    deg64 = write_wav(tmp_path / "deg64.wav", 0.3 * add_noise(wave, 10), 22050,
                      subtype="DOUBLE")
    _close(ours([(deg64, ref64)], align="pad", norm_audio=False),
           theirs([(deg64, ref64)], aligning="pad", norm_audio=False))


def test_shortest_clip_that_has_a_frame(wavs, tmp_path):
    wave = _clip(wavs["ref"]).waveform
    a = write_wav(tmp_path / "a.wav", wave[4000:4513], RATE)  # 513 samples: one frame
    b = write_wav(tmp_path / "b.wav", wave[9000:9900], RATE)
    _close(ours([(a, b)], align="pad"), theirs([(a, b)], aligning="pad"))
    _close(ours([(a, b)]), theirs([(a, b)], dtw_radius=None))


# -- sample and reference at different rates ---------------------------------------------

#: name -> (sentence, sample rate, reference rate); the library scores each pair at the
#: lower of its two rates, so these pairs are scored at 16000, 16000, 8000 and 22050 Hz
MIXED = {
    "s44-r16": (SENTENCES[0], 44100, 16000),
    "s16-r22": (SENTENCES[2], 16000, 22050),
    "s8-r16": (SENTENCES[1], 8000, 16000),
    "s48-r22": (SENTENCES[3], 48000, 22050),
}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``all/{s,r}``: the four MIXED pairs; ``at16k/{s,r}``: the two scored at 16 kHz.
    Each side is the sentence synthesised at its own rate; the sample with noise."""
    require_speech_tools()
    root = tmp_path_factory.mktemp("mcd-rates")
    for name, (text, s_rate, r_rate) in MIXED.items():
        sample = _peak(add_noise(speech(text, s_rate), 10, seed=len(name)))
        reference = _peak(speech(text, r_rate))
        folders = ["all"] + (["at16k"] if min(s_rate, r_rate) == 16000 else [])
        for folder in folders:
            write_wav(root / folder / "s" / f"{name}.wav", sample, s_rate)
            write_wav(root / folder / "r" / f"{name}.wav", reference, r_rate)
    return root


def _files(root: Path) -> list[tuple[Path, Path]]:
    return [(s, root / "r" / s.name) for s in sorted((root / "s").iterdir())]


def test_pairs_of_two_rates_equal_the_library(mixed):
    """The library resamples both files to the lower of their rates (scipy's FFT
    resample from each file's own rate); so does genmetrics, given the clips as read."""
    pairs = _files(mixed / "all")
    one_by_one = [ours([pair])[0] for pair in pairs]  # scored at different rates
    _close(one_by_one, theirs(pairs, dtw_radius=None))
    _close([ours([pair], align="pad")[0] for pair in pairs], theirs(pairs, aligning="pad"))
    _close(ours(pairs, sample_rate=16000), theirs(pairs, sample_rate=16000, dtw_radius=None))
    metric = MCD(device="cpu")
    metric.update([_clip(s) for s, _ in pairs[:1]], [[_clip(r)] for _, r in pairs[:1]])
    assert metric.compute()["mcd"].signature["rate"] == min(MIXED[pairs[0][0].stem][1:])


def test_a_folder_of_mixed_rates_through_score(mixed):
    """End to end (the CLI's path): a 44.1 kHz sample against a 16 kHz reference gives
    the library's value (it gave 7x that before: the reference was resampled to 44.1 kHz
    first). Pairs that the library scores at different rates are not averaged into one
    value: the metric fails with the rates it met, unless one rate is set."""
    from genmetrics.runner import score

    pairs = _files(mixed / "at16k")
    card = score(mixed / "at16k" / "s", mixed / "at16k" / "r", modality="audio",
                 metrics=["mcd"], per_sample=True, diagnostics=False)
    expected = theirs(pairs, dtw_radius=None)
    result = card.metrics["mcd"]
    _close(result.per_sample, expected)
    assert result.value == pytest.approx(math.fsum(expected) / len(expected), abs=TOL)
    assert result.signature["rate"] == 16000 and "rates" not in result.components

    everything = score(mixed / "all" / "s", mixed / "all" / "r", modality="audio",
                       metrics=["mcd"], diagnostics=False)
    assert "mcd" not in everything.metrics
    reason = everything.errors["mcd"]
    for part in ("8000 Hz: 1 pair", "16000 Hz: 2 pairs", "22050 Hz: 1 pair",
                 "--set mcd.sample_rate=8000"):
        assert part in reason, reason

    one_rate = score(mixed / "all" / "s", mixed / "all" / "r", modality="audio",
                     metrics=["mcd"], options={"mcd": {"sample_rate": 16000}},
                     per_sample=True, diagnostics=False)
    result = one_rate.metrics["mcd"]
    _close(result.per_sample, theirs(_files(mixed / "all"), sample_rate=16000,
                                     dtw_radius=None))
    assert result.signature["rate"] == 16000 and result.signature["sample_rate"] == 16000


# -- properties -------------------------------------------------------------------------


def test_a_clip_against_itself_is_zero(wavs):
    clip = _clip(wavs["noisy_sil"])
    for options in ({}, {"dtw_radius": 10}, {"align": "pad"}, {"align_target": "spec"}):
        metric = MCD(device="cpu", **options)
        metric.update([clip], [[clip]])
        assert metric.compute()["mcd"].value == 0.0


def test_grows_with_noise():
    require_speech_tools()
    clean = speech(SENTENCES[2], RATE)
    ref = AudioClip("ref", clean, RATE)
    levels = [30, 20, 10, 0]
    samples = [AudioClip(f"n{db}", add_noise(clean, db, seed=1), RATE) for db in levels]
    metric = MCD(device="cpu")
    metric.update(samples, [[ref]] * len(samples))
    values = metric.compute(per_sample=True)["mcd"].per_sample
    assert values == sorted(values) and values[0] > 0


def test_batching_does_not_change_values():
    require_speech_tools()
    rng = np.random.default_rng(5)
    clips = []
    for k, text in enumerate(SENTENCES[:4]):
        wave = speech(text, RATE)
        cut = wave[: len(wave) - int(rng.integers(0, 8000))]
        clips.append((AudioClip(f"s{k}", add_noise(cut, 10 + k, seed=k), RATE),
                      AudioClip(f"r{k}", wave, RATE)))
    for options in ({}, {"dtw_radius": 3}, {"align": "pad"}):
        together = MCD(device="cpu", **options)
        together.update([s for s, _ in clips], [[r] for _, r in clips])
        one_by_one = MCD(device="cpu", **options)
        for s, r in clips:
            one_by_one.update([s], [[r]])
        backwards = MCD(device="cpu", **options)
        backwards.update([s for s, _ in clips[::-1]], [[r] for _, r in clips[::-1]])
        a = together.compute(per_sample=True)["mcd"].per_sample
        b = one_by_one.compute(per_sample=True)["mcd"].per_sample
        c = backwards.compute(per_sample=True)["mcd"].per_sample[::-1]
        assert np.allclose(a, b, rtol=0, atol=1e-12) and np.allclose(a, c, rtol=0, atol=1e-12)


# -- failures and options ---------------------------------------------------------------


def test_too_short_and_silent_clips_fail_with_a_reason():
    rng = np.random.default_rng(0)
    ok = AudioClip("ok", rng.standard_normal(RATE), RATE)
    short = AudioClip("short", rng.standard_normal(512), RATE)  # 32 ms: no whole frame
    silent = AudioClip("silent", np.zeros(RATE), RATE)
    metric = MCD(device="cpu")
    out = metric.score_pairs([ok, short, ok], [ok, ok, silent])
    # a clip against itself: 0 up to rounding (the two copies sit in different rows of
    # one batched FFT, whose rounding may differ by a few ulp)
    assert out[0] == pytest.approx(0.0, abs=1e-12)
    assert isinstance(out[1], Failed) and "too short" in out[1].reason
    assert "512 samples" in out[1].reason and "more than 512" in out[1].reason
    assert isinstance(out[2], Failed) and "silent" in out[2].reason
    metric.update([ok, short], [[ok], [ok]])
    result = metric.compute(per_sample=True)["mcd"]
    assert result.per_sample[0] == pytest.approx(0.0, abs=1e-12)
    assert result.per_sample[1] is None and result.n == 1
    assert result.components["failed"][0]["index"] == 1
    only_bad = MCD(device="cpu")
    only_bad.update([short], [[ok]])
    with pytest.raises(MetricError, match="too short"):
        only_bad.compute()


def test_rate_dependent_settings_fail_per_pair():
    clip = AudioClip("a", np.random.default_rng(1).standard_normal(8000), 8000)
    out = MCD(device="cpu", fmax=6000).score_pairs([clip], [clip])
    assert isinstance(out[0], Failed) and "fmax" in out[0].reason


@pytest.mark.parametrize("options", [
    {"align": "warp"}, {"dtw_radius": 0}, {"coef_start": 16}, {"coef_stop": 21},
    {"n_fft": 0}, {"fmin": 9000, "fmax": 8000}, {"window": "blackman"}, {"sample_rate": -1},
])
def test_bad_options(options):
    with pytest.raises(UsageError):
        MCD(**options)


def test_signature_has_the_settings_but_not_the_device():
    clip = AudioClip("a", np.random.default_rng(2).standard_normal(8000), 8000)
    metric = MCD(device="cpu", dtw_radius="10")
    metric.update([clip], [[clip]])
    sig = metric.compute()["mcd"].signature
    assert "device" not in sig
    assert sig["dtw_radius"] == 10 and sig["align"] == "dtw" and sig["coef_stop"] == 16
    assert MCD.spec.higher_is_better is False


# -- DTW internals against fastdtw ------------------------------------------------------


def _costs(pairs, windows=None):
    out = []
    for (x, y), win in zip(pairs, windows or [None] * len(pairs), strict=True):
        full = np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))
        out.append(full if win is None else full[_dtw.window_cells(win)])
    return out


def _halve(x):
    k = len(x) // 2
    return (x[0: 2 * k: 2] + x[1: 2 * k: 2]) / 2


def _plain_dtw(cost: np.ndarray) -> list[tuple[int, int]]:
    """Textbook O(nm) DTW, ties to (up, left, diagonal) in that order, as fastdtw."""
    n, m = cost.shape
    D = np.full((n + 1, m + 1), math.inf)
    D[0, 0] = 0.0
    step = {}
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            c = cost[i - 1, j - 1]
            options = [(D[i - 1, j] + c, (i - 1, j)), (D[i, j - 1] + c, (i, j - 1)),
                       (D[i - 1, j - 1] + c, (i - 1, j - 1))]
            D[i, j], step[i, j] = min(options, key=lambda o: o[0])
    path, at = [], (n, m)
    while at != (0, 0):
        path.append((at[0] - 1, at[1] - 1))
        at = step[at]
    return path[::-1]


def test_dtw_paths_match_exact_and_fastdtw():
    fastdtw = pytest.importorskip("fastdtw.fastdtw")
    from scipy.spatial.distance import euclidean

    rng = np.random.default_rng(7)
    xs, ys = [], []
    for trial in range(24):
        n, m = (int(v) for v in rng.integers(1, 40, 2))
        if trial % 3 == 0:  # small integers: many exact ties
            xs.append(rng.integers(0, 3, (n, 2)).astype(float))
            ys.append(rng.integers(0, 3, (m, 2)).astype(float))
        else:
            xs.append(rng.standard_normal((n, 3)))
            ys.append(rng.standard_normal((m, 3)))
    pairs = list(zip(xs, ys, strict=True))
    exact = _dtw.paths(_costs(pairs))  # all in one batch, of mixed sizes
    for (x, y), path, cost in zip(pairs, exact, _costs(pairs), strict=True):
        assert [tuple(p) for p in path.tolist()] == _plain_dtw(cost)
        assert [tuple(p) for p in path.tolist()] == fastdtw.dtw(x, y, dist=euclidean)[1]
    for radius in (1, 2, 3):
        approx = _dtw.fastdtw_paths(xs, ys, radius, _costs, _halve)
        for (x, y), path in zip(pairs, approx, strict=True):
            want = fastdtw.fastdtw(x, y, radius=radius, dist=euclidean)[1]
            assert [tuple(p) for p in path.tolist()] == want


def test_expand_window_matches_fastdtw():
    fastdtw = pytest.importorskip("fastdtw.fastdtw")
    from scipy.spatial.distance import euclidean

    expand = vars(fastdtw)["__expand_window"]
    rng = np.random.default_rng(8)
    for _ in range(30):
        n, m = (int(v) for v in rng.integers(4, 70, 2))
        coarse = fastdtw.dtw(rng.standard_normal((n // 2, 2)), rng.standard_normal((m // 2, 2)),
                             dist=euclidean)[1]
        radius = int(rng.integers(1, 4))
        lo, hi = _dtw.expand_window(np.array(coarse), n, m, radius)
        mine = [(i, j) for i in range(n) for j in range(lo[i], hi[i] + 1)]
        assert mine == expand(coarse, n, m, radius)


def test_cuda_matches_cpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    rng = np.random.default_rng(9)
    t = np.arange(3 * RATE) / RATE
    samples, refs = [], []
    for k in range(5):  # a harmonic tone with a syllable-rate envelope, some noise
        n = int(rng.integers(RATE, 3 * RATE))
        tone = sum(np.sin(2 * np.pi * h * (110 + 20 * k) * t[:n]) / h for h in range(1, 6))
        tone *= 0.5 + 0.5 * np.sin(2 * np.pi * (3 + k) * t[:n])
        refs.append(AudioClip(f"r{k}", tone, RATE))
        stretched = np.interp(np.linspace(0, n - 1, int(n * 1.1)), np.arange(n), tone)
        samples.append(AudioClip(f"s{k}", stretched + 0.05 * rng.standard_normal(len(stretched)),
                                 RATE))
    for options in ({}, {"dtw_radius": 10}, {"align": "pad"}, {"align_target": "spec"}):
        values = []
        for device in ("cpu", "cuda"):
            metric = MCD(device=device, **options)
            metric.update(samples, [[r] for r in refs])
            values.append(metric.compute(per_sample=True)["mcd"].per_sample)
        _close(values[1], values[0])
