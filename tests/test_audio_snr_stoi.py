"""SNR, SI-SNR and STOI against torchmetrics and pystoi, on real (espeak-ng) speech.

Parity: every pair's value equals torchmetrics' ``signal_noise_ratio`` /
``scale_invariant_signal_noise_ratio`` on the float64 tensors within 1e-5 dB, and
``pystoi.stoi`` exactly (ESTOI within 1e-12: pystoi adds eps-scale random noise).
Pairs are batched with different lengths, so the padding, masking and chunking of the
batched computation are exercised; per-sample values must not depend on how the pairs
are batched.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from genmetrics.errors import MetricError, UsageError
from genmetrics.io.audio import AudioClip
from genmetrics.metrics.audio import snr as snr_module
from genmetrics.metrics.audio._base import Failed
from genmetrics.metrics.audio.snr import BLOCK, SISNR, SNR, snr_values
from genmetrics.metrics.audio.stoi import STOI, TOO_FEW_FRAMES
from tests.speech import SENTENCES, add_noise, lowpass, speech

torch = pytest.importorskip("torch")
tm_audio = pytest.importorskip("torchmetrics.functional.audio")
pystoi = pytest.importorskip("pystoi")

RATE = 16000
TOL_DB = 1e-5
NOISE_DB = (-5.0, 0.0, 5.0, 10.0, 20.0, 40.0)


# -- helpers ----------------------------------------------------------------------------


def clips(waves: list[np.ndarray], prefix: str = "c") -> list[AudioClip]:
    return [AudioClip(f"{prefix}{i}", w, RATE) for i, w in enumerate(waves)]


def per_sample(metric, samples: list[np.ndarray], refs: list[np.ndarray]) -> list:
    metric.update(clips(samples, "s"), [[c] for c in clips(refs, "r")])
    return metric.compute(per_sample=True)[metric.spec.name].per_sample


def tensor(wave: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(wave))  # filtfilt output runs backwards


def tm_snr(p: np.ndarray, t: np.ndarray, zero_mean: bool = False) -> float:
    return float(tm_audio.signal_noise_ratio(tensor(p), tensor(t), zero_mean=zero_mean))


def tm_si_snr(p: np.ndarray, t: np.ndarray) -> float:
    return float(tm_audio.scale_invariant_signal_noise_ratio(tensor(p), tensor(t)))


@pytest.fixture(scope="module")
def degraded_batch() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(samples, references): 6 sentences of different lengths, noisy and lowpassed,
    some cut to lengths that are not multiples of the block size."""
    samples, refs = [], []
    for k, text in enumerate(SENTENCES):
        clean = speech(text, RATE)
        if k % 2:
            clean = clean[: len(clean) - 1234 * k]  # odd lengths, not block-aligned
        for j, snr_db in enumerate(NOISE_DB):
            samples.append(add_noise(clean, snr_db, seed=10 * k + j))
            refs.append(clean)
        samples.append(lowpass(clean, RATE, 1000.0))
        refs.append(clean)
        samples.append(0.7 * lowpass(add_noise(clean, 15.0, seed=k), RATE, 3000.0))
        refs.append(clean)
    return samples, refs


# -- parity with torchmetrics -----------------------------------------------------------


@pytest.fixture(params=["foreach", "packed"])
def plain_snr_path(request, monkeypatch) -> str:
    """Plain SNR on the CPU uses multi-tensor ops; "packed" forces the packed blocks
    that every other device uses, so that the CPU tests cover them too."""
    if request.param == "packed":
        monkeypatch.setattr(snr_module, "FOREACH_DEVICES", ())
    return request.param


@pytest.mark.parametrize("zero_mean", [False, True])
def test_snr_matches_torchmetrics(degraded_batch, zero_mean, plain_snr_path):
    samples, refs = degraded_batch
    assert len({len(r) for r in refs}) == len(SENTENCES)  # really of different lengths
    ours = per_sample(SNR(device="cpu", zero_mean=zero_mean), samples, refs)
    theirs = [tm_snr(p, t, zero_mean) for p, t in zip(samples, refs, strict=True)]
    assert ours == pytest.approx(theirs, abs=TOL_DB, rel=0)


def test_si_snr_matches_torchmetrics(degraded_batch):
    samples, refs = degraded_batch
    ours = per_sample(SISNR(device="cpu"), samples, refs)
    theirs = [tm_si_snr(p, t) for p, t in zip(samples, refs, strict=True)]
    assert ours == pytest.approx(theirs, abs=TOL_DB, rel=0)


@pytest.mark.parametrize("metric_cls", [SNR, SISNR])
def test_batch_of_one_and_all_equal_lengths(degraded_batch, metric_cls, plain_snr_path):
    samples, refs = degraded_batch
    ref = tm_si_snr if metric_cls is SISNR else tm_snr
    one = per_sample(metric_cls(device="cpu"), samples[:1], refs[:1])
    assert one == pytest.approx([ref(samples[0], refs[0])], abs=TOL_DB, rel=0)
    same = [i for i, r in enumerate(refs) if len(r) == len(refs[0])]
    assert len(same) == len(NOISE_DB) + 2  # every degradation of the first sentence
    values = per_sample(metric_cls(device="cpu"), [samples[i] for i in same],
                        [refs[i] for i in same])
    assert values == pytest.approx([ref(samples[i], refs[i]) for i in same], abs=TOL_DB,
                                   rel=0)


def test_corpus_value_is_the_mean(degraded_batch):
    samples, refs = degraded_batch
    m = SNR(device="cpu")
    m.update(clips(samples), [[c] for c in clips(refs)])
    result = m.compute(per_sample=True)["snr"]
    assert result.n == len(samples)
    assert result.value == pytest.approx(sum(result.per_sample) / len(samples), abs=1e-12)
    assert result.unit == "dB" and result.higher_is_better


# -- what the numbers mean -------------------------------------------------------------


def test_measured_snr_is_the_noise_level_added():
    clean = speech(SENTENCES[1], RATE)
    noisy = [add_noise(clean, s, seed=3) for s in NOISE_DB]
    values = per_sample(SNR(device="cpu"), noisy, [clean] * len(noisy))
    for got, want in zip(values, NOISE_DB, strict=True):
        assert abs(got - want) < 0.01
    assert values == sorted(values)  # more noise, lower SNR
    si = per_sample(SISNR(device="cpu"), noisy, [clean] * len(noisy))
    assert si == sorted(si)


def test_si_snr_is_gain_invariant_and_snr_is_not():
    clean = speech(SENTENCES[2], RATE)
    noisy = add_noise(clean, 10.0, seed=5)
    gains = [1.0, 0.5, 2.0]
    si = per_sample(SISNR(device="cpu"), [g * noisy for g in gains], [clean] * 3)
    assert max(si) - min(si) < 1e-9
    snr = per_sample(SNR(device="cpu"), [g * noisy for g in gains], [clean] * 3)
    assert snr[0] == pytest.approx(10.0, abs=0.01)
    assert abs(snr[1] - snr[0]) > 1.0 and abs(snr[2] - snr[0]) > 1.0


def test_identical_pairs_are_infinite_so_they_fail_as_psnr_does(plain_snr_path):
    """One rule for SNR, SI-SNR and PSNR: a pair with no error at all has an infinite
    value, so it is not scored -- it fails with the reason, and the mean is over the
    other pairs. torchmetrics gives such a pair a large finite number (about 180 dB for
    speech) that comes from its eps, a float floor, not from the signals."""
    from genmetrics.metrics.image.psnr import IDENTICAL, PSNR

    clean = speech(SENTENCES[0], RATE)
    noisy = add_noise(clean, 10.0)
    assert 150 < tm_snr(clean, clean) < 250 and 150 < tm_si_snr(clean, clean) < 250
    for metric, word, tm in [(SNR(device="cpu"), "SNR", tm_snr),
                             (SNR(device="cpu", zero_mean=True), "SNR",
                              lambda p, t: tm_snr(p, t, zero_mean=True)),
                             (SISNR(device="cpu"), "SI-SNR", tm_si_snr)]:
        metric.update(clips([clean, noisy]), [[c] for c in clips([clean, clean])])
        result = metric.compute(per_sample=True)[metric.spec.name]
        assert result.per_sample[0] is None and result.n == 1
        assert result.per_sample[1] == pytest.approx(tm(noisy, clean), abs=TOL_DB)
        assert result.value == result.per_sample[1]
        assert result.components["failed"] == [
            {"index": 0, "reason": f"identical signals ({word} is infinite)"}]
    # SI-SNR ignores the gain: a copy at twice the level has no noise either
    assert snr_values([2 * clean], [clean], scale_invariant=True) == [
        Failed("identical signals (SI-SNR is infinite)")]
    assert isinstance(snr_values([2 * clean], [clean])[0], float)  # SNR: about 0 dB
    # PSNR, by the same rule
    image = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0))
    other = image.clone()
    other[0, 0, 0] ^= 1
    psnr = PSNR()
    psnr.update([image, other], [[image], [image]])
    result = psnr.compute(per_sample=True)["psnr"]
    assert result.per_sample[0] is None and result.n == 1
    assert IDENTICAL == "identical images (PSNR is infinite)"
    assert result.components["failed"] == [{"index": 0, "reason": IDENTICAL}]
    every = SNR(device="cpu")
    every.update(clips([clean]), [clips([clean])])
    with pytest.raises(MetricError, match=r"identical signals \(SNR is infinite\)"):
        every.compute()


@pytest.mark.parametrize(("s_rate", "r_rate"), [(8000, 16000), (16000, 8000), (44100, 16000)])
def test_pairs_of_two_rates_are_compared_at_the_higher(tmp_path, s_rate, r_rate):
    """Resampling never removes a band the metrics judge: of a pair at two rates, the
    clip at the lower rate is brought up to the higher one (soxr), never the other down.
    An 8 kHz sample is judged against the 16 kHz reference's whole band (0-8 kHz), so
    the 4-8 kHz it lacks counts as error. In memory and through files alike."""
    import soundfile as sf

    from genmetrics.io.audio import resample
    from genmetrics.runner import score
    from tests.speech import write_wav

    text = SENTENCES[1]
    write_wav(tmp_path / "s" / "a.wav", add_noise(speech(text, s_rate), 20, seed=4), s_rate)
    write_wav(tmp_path / "r" / "a.wav", speech(text, r_rate), r_rate)
    sample, reference = (sf.read(tmp_path / side / "a.wav")[0] for side in "sr")
    high = max(s_rate, r_rate)
    p, t = resample(sample, s_rate, high), resample(reference, r_rate, high)
    n = min(len(p), len(t))
    p, t = p[:n], t[:n]
    expected = {"snr": tm_snr(p, t), "si_snr": tm_si_snr(p, t),
                "stoi": float(pystoi.stoi(t, p, high))}
    card = score(tmp_path / "s", tmp_path / "r", modality="audio", metrics=list(expected),
                 options={"snr": {"device": "cpu"}, "si_snr": {"device": "cpu"}},
                 diagnostics=False)
    for metric in (SNR(device="cpu"), SISNR(device="cpu"), STOI()):
        name = metric.spec.name
        metric.update([AudioClip("a", sample, s_rate)], [[AudioClip("a", reference, r_rate)]])
        got = metric.compute()[name]
        if name == "stoi":
            assert got.value == card.metrics[name].value == expected[name]
        else:
            assert got.value == pytest.approx(expected[name], abs=TOL_DB, rel=0)
            assert card.metrics[name].value == pytest.approx(expected[name], abs=TOL_DB, rel=0)


# -- edge cases -------------------------------------------------------------------------


def test_silent_reference_fails_the_pair_not_the_run(plain_snr_path):
    clean = speech(SENTENCES[3], RATE)
    noisy = add_noise(clean, 5.0)
    for metric, word in [(SNR(device="cpu"), "SNR"), (SNR(device="cpu", zero_mean=True), "SNR"),
                         (SISNR(device="cpu"), "SI-SNR")]:
        metric.update(clips([noisy, noisy]), [[c] for c in clips([clean, np.zeros_like(clean)])])
        result = metric.compute(per_sample=True)[metric.spec.name]
        assert result.per_sample[1] is None and result.n == 1
        assert result.value == result.per_sample[0]
        assert result.components["failed"] == [
            {"index": 1, "reason": f"silent reference: {word} undefined"}]


def test_constant_reference_fails_once_the_mean_is_removed():
    dc = np.full(5000, 0.1)
    wave = add_noise(np.sin(np.arange(5000) / 7.0), 10.0)
    assert isinstance(snr_values([wave], [dc])[0], float)  # plain SNR: defined
    for out in (snr_values([wave], [dc], zero_mean=True),
                snr_values([wave], [dc], scale_invariant=True),
                snr_values([dc], [dc], scale_invariant=True),
                snr_values([np.array([1.0])], [np.array([2.0])], scale_invariant=True)):
        assert isinstance(out[0], Failed) and out[0].reason.startswith("constant reference")
    # a reference with a tiny ripple on a large offset is not constant
    ripple = 1000.0 + 1e-3 * np.sin(np.arange(5000) / 3.0)
    noisy = ripple + 1e-4 * np.random.default_rng(0).standard_normal(5000)
    out = snr_values([noisy], [ripple], scale_invariant=True)
    assert out[0] == pytest.approx(tm_si_snr(noisy, ripple), abs=TOL_DB)


def test_silent_sample_and_empty_and_mismatched_clips():
    clean = speech(SENTENCES[4], RATE)
    assert snr_values([np.zeros_like(clean)], [clean]) == [0.0]
    assert snr_values([np.zeros(0)], [np.zeros(0)]) == [Failed("empty clip")]
    with pytest.raises(UsageError, match="lengths must be equal"):
        snr_values([clean[:-1]], [clean])
    # in-memory pairs of different lengths are cut to the shorter clip, as files are
    noisy = add_noise(clean, 7.0)
    cut = len(clean) - 999
    for metric, want in [(SNR(device="cpu"), tm_snr(noisy[:cut], clean[:cut])),
                         (SISNR(device="cpu"), tm_si_snr(noisy[:cut], clean[:cut])),
                         (STOI(), pystoi.stoi(clean[:cut], noisy[:cut], RATE))]:
        metric.update(clips([noisy]), [[AudioClip("r", clean[:cut], RATE)]])
        assert metric.compute()[metric.spec.name].value == pytest.approx(want, abs=TOL_DB)
    m = SNR(device="cpu")
    m.update(clips([clean]), [[AudioClip("r", np.zeros_like(clean), RATE)]])
    with pytest.raises(MetricError, match="silent reference"):
        m.compute()


def test_device_option():
    with pytest.raises(UsageError, match="unknown device"):
        SNR(device="gpu9").update(clips([np.ones(4)]), [clips([np.ones(4)])])
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA is not available"):
            SISNR(device="cuda").update(clips([np.ones(4)]), [clips([np.ones(4)])])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(degraded_batch):
    samples, refs = degraded_batch
    for cls, kwargs in [(SNR, {}), (SNR, {"zero_mean": True}), (SISNR, {})]:
        cpu = per_sample(cls(device="cpu", **kwargs), samples, refs)
        gpu = per_sample(cls(device="cuda", **kwargs), samples, refs)
        assert gpu == pytest.approx(cpu, abs=1e-9, rel=0)


# -- batching, chunking, merging --------------------------------------------------------


MAKERS = {
    "snr": lambda: SNR(device="cpu"),
    "snr-packed": lambda: SNR(device="cpu"),  # with FOREACH_DEVICES = ()
    "snr-zero-mean": lambda: SNR(device="cpu", zero_mean=True),
    "si_snr": lambda: SISNR(device="cpu"),
    "stoi": lambda: STOI(),
}


@pytest.mark.parametrize("name", list(MAKERS))
def test_batching_invariance(degraded_batch, name, monkeypatch):
    if name == "snr-packed":
        monkeypatch.setattr(snr_module, "FOREACH_DEVICES", ())
    make = MAKERS[name]
    samples, refs = degraded_batch
    samples, refs = samples[::2], refs[::2]  # 24 pairs, all sentences, all lengths
    one_pass = per_sample(make(), samples, refs)
    for size in (1, 3):
        merged = make()
        for start in range(0, len(samples), size):
            part = make()
            part.update(clips(samples[start:start + size]),
                        [[c] for c in clips(refs[start:start + size])])
            merged.merge(part)
        assert merged.compute(per_sample=True)[merged.spec.name].per_sample == one_pass


def test_chunk_boundaries_do_not_change_values(degraded_batch, monkeypatch, plain_snr_path):
    samples, refs = degraded_batch
    expected = [snr_values(samples, refs, zero_mean=z, scale_invariant=s)
                for z, s in [(False, False), (True, False), (False, True)]]
    # chunks of 3 blocks: most pairs alone (longer than a chunk), short ones together
    monkeypatch.setitem(snr_module.CHUNK_ELEMENTS, "cpu", 3 * BLOCK)
    monkeypatch.setattr(snr_module, "FOREACH_ELEMENTS", 3 * BLOCK)
    short = [w[: 2 * BLOCK - 5] for w in samples[:4]] + samples
    short_refs = [w[: 2 * BLOCK - 5] for w in refs[:4]] + refs
    got = [snr_values(short, short_refs, zero_mean=z, scale_invariant=s)
           for z, s in [(False, False), (True, False), (False, True)]]
    for e, g in zip(expected, got, strict=True):
        assert g[4:] == e
    assert got[0][:4] == pytest.approx([tm_snr(p, t) for p, t in zip(short[:4], short_refs[:4],
                                                                       strict=True)],
                                       abs=TOL_DB, rel=0)


def test_states_on_different_devices_merge_and_signature():
    clean = speech(SENTENCES[5], RATE)
    a, b = SNR(device="cpu"), SNR(device="auto")
    a.update(clips([add_noise(clean, 3.0)]), [clips([clean])])
    b.update(clips([add_noise(clean, 9.0)]), [clips([clean])])
    a.merge(b)
    b.load_state_dict(a.state_dict())
    result = a.compute()["snr"]
    assert result.n == 2 and result.value == pytest.approx(6.0, abs=0.01)
    sig = result.signature
    assert "device" not in sig and sig["zero_mean"] is False
    assert sig["torch"] == torch.__version__.split("+")[0] or sig["torch"] == torch.__version__
    with pytest.raises(MetricError):
        a.merge(SNR(device="cpu", zero_mean=True))
    si = SISNR(device="cpu")
    si.update(clips([add_noise(clean, 3.0)]), [clips([clean])])
    assert "device" not in si.compute()["si_snr"].signature


def test_states_saved_before_rates_were_kept_still_load():
    """A checkpoint from before the per-pair rates were kept loads (rates unknown) and
    computes the same value; one that has them keeps them through merges."""
    clean = speech(SENTENCES[5], RATE)
    a = SNR(device="cpu")
    a.update(clips([add_noise(clean, 3.0)]), [clips([clean])])
    b = SNR(device="cpu")
    b.update([AudioClip("x", add_noise(clean, 9.0), RATE)],
             [[AudioClip("x", speech(SENTENCES[5], 22050), 22050)]])
    a.merge(b)
    assert a.compute()["snr"].components["rates"] == {"16000": 1, "22050": 1}
    old = a.state_dict()
    del old["state"]["rates"]
    fresh = SNR(device="cpu")
    fresh.load_state_dict(old)
    result = fresh.compute()["snr"]
    assert result.value == a.compute()["snr"].value and "rates" not in result.components


def test_importing_the_modules_does_not_import_torch():
    code = ("import sys, genmetrics.metrics.audio.snr, genmetrics.metrics.audio.stoi; "
            "assert 'torch' not in sys.modules and 'pystoi' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- STOI -------------------------------------------------------------------------------


@pytest.mark.parametrize("extended", [False, True])
def test_stoi_matches_pystoi(degraded_batch, extended):
    samples, refs = degraded_batch
    samples, refs = samples[1::3], refs[1::3]
    ours = per_sample(STOI(extended=extended), samples, refs)
    theirs = [float(pystoi.stoi(t, p, RATE, extended=extended))
              for p, t in zip(samples, refs, strict=True)]
    if extended:  # ESTOI adds eps-scale noise from numpy's global RNG: last digits vary
        assert ours == pytest.approx(theirs, abs=1e-12, rel=0)
    else:
        assert ours == theirs


def test_stoi_decreases_with_noise_and_signature():
    clean = speech(SENTENCES[0], RATE)
    noisy = [add_noise(clean, s, seed=1) for s in sorted(NOISE_DB, reverse=True)]
    m = STOI()
    m.update(clips(noisy), [[c] for c in clips([clean] * len(noisy))])
    result = m.compute(per_sample=True)["stoi"]
    assert result.per_sample == sorted(result.per_sample, reverse=True)
    assert 0.0 < result.per_sample[-1] < result.per_sample[0] <= 1.0
    assert result.signature["extended"] is False
    assert result.signature["pystoi"] == pystoi.__version__


def test_stoi_failures():
    clean = speech(SENTENCES[1], RATE)
    too_short = clean[: RATE // 4]  # 0.25 s: fewer than 30 frames
    tiny = clean[:100]  # a fraction of one frame: pystoi raises
    m = STOI()
    m.update(clips([add_noise(too_short, 5.0), tiny, clean, clean]),
             [[c] for c in clips([too_short, tiny, np.zeros_like(clean), clean])])
    result = m.compute(per_sample=True)["stoi"]
    assert result.per_sample[:3] == [None, None, None]
    assert result.per_sample[3] == pytest.approx(1.0)
    reasons = [f["reason"] for f in result.components["failed"]]
    assert reasons[0] == TOO_FEW_FRAMES
    assert reasons[1].startswith("pystoi failed on a clip of 100 samples (0.006 s at 16000 Hz)")
    assert reasons[2] == "silent reference: STOI undefined"
