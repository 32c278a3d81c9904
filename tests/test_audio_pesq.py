"""PESQ: per pair identical (==) to ``pesq.pesq`` on the same resampled arrays; failures.

Real speech from espeak-ng (see ``tests/speech.py``), degraded with white noise at
several SNRs and with a lowpass filter, at 16 kHz and at other rates, in both modes.
"""

from __future__ import annotations

import copy
import os
import pickle
import tempfile

import numpy as np
import pytest

from genmetrics.errors import MetricError, UsageError
from genmetrics.io.audio import AudioClip, resample
from genmetrics.metrics.audio import pesq as pesq_module
from genmetrics.metrics.audio.pesq import PESQ, RATES
from tests.speech import SENTENCES, add_noise, lowpass, speech

pesq = pytest.importorskip("pesq")

SNRS = (0, 5, 10, 20, 30, 40)


def clips(pairs: list[tuple[np.ndarray, np.ndarray]], rate: int):
    """(degraded, reference) waveforms -> the samples and references ``update`` takes."""
    samples = [AudioClip(f"s{i}", deg, rate) for i, (deg, _) in enumerate(pairs)]
    refs = [[AudioClip(f"s{i}", ref, rate)] for i, (_, ref) in enumerate(pairs)]
    return samples, refs


def score(metric: PESQ, pairs, rate: int, batch: int | None = None):
    samples, refs = clips(pairs, rate)
    batch = batch or len(pairs)
    for start in range(0, len(pairs), batch):
        metric.update(samples[start:start + batch], refs[start:start + batch])
    return metric.compute(per_sample=True)["pesq"]


def reference_scores(pairs, rate: int, mode: str) -> list[float]:
    """What a user of the pesq package gets: pesq.pesq on the resampled float arrays."""
    target = RATES[mode]
    return [pesq.pesq(target, resample(ref, rate, target), resample(deg, rate, target), mode)
            for deg, ref in pairs]


def degraded_pairs(rate: int, sentences=SENTENCES[:2], snrs=(0, 10, 20, 40)):
    pairs = []
    for k, text in enumerate(sentences):
        clean = speech(text, rate)
        pairs += [(add_noise(clean, snr, seed=k), clean) for snr in snrs]
        pairs.append((lowpass(clean, rate, 3000), clean))
    return pairs


@pytest.mark.parametrize(("rate", "mode"), [(16000, "wb"), (22050, "wb"), (8000, "nb"),
                                            (16000, "nb"), (22050, "nb")])
def test_parity_with_pesq_package(rate, mode):
    pairs = degraded_pairs(rate)
    with PESQ(mode=mode, workers=2) as metric:
        result = score(metric, pairs, rate)
    expected = reference_scores(pairs, rate, mode)
    assert result.per_sample == expected
    assert result.value == pytest.approx(np.mean(expected), abs=1e-12)
    assert result.n == len(pairs) and "failed" not in result.components
    assert result.signature["rate"] == RATES[mode] and result.signature["mode"] == mode


def test_a_narrowband_sample_is_brought_up_never_the_reference_down(tmp_path):
    """An 8 kHz sample against a 16 kHz reference (files, through ``score``): wide-band
    PESQ judges 0-8 kHz, so the sample is resampled up to 16 kHz and the reference is
    used as it is -- what a user of the pesq package does. Downsampling the reference to
    8 kHz first (as genmetrics did) removed the band the sample lacks and scored it
    near-perfect. Narrow band (0-4 kHz) takes both to 8 kHz; a 44.1 kHz sample is taken
    down to 16 kHz directly (not the reference up to 44.1 kHz and back)."""
    import soundfile as sf

    from genmetrics.runner import score as score_files
    from tests.speech import write_wav

    text = SENTENCES[1]
    write_wav(tmp_path / "r" / "a.wav", speech(text, 16000), 16000)
    write_wav(tmp_path / "s" / "a.wav", add_noise(speech(text, 8000), 30, seed=2), 8000)
    write_wav(tmp_path / "r" / "b.wav", speech(text, 16000), 16000)
    write_wav(tmp_path / "s" / "b.wav", add_noise(speech(text, 44100), 20, seed=3), 44100)
    read = {f"{side}/{n}": sf.read(tmp_path / side / f"{n}.wav")[0]
            for side in "sr" for n in "ab"}

    def cut(x, y):
        n = min(len(x), len(y))
        return x[:n], y[:n]

    wb = [pesq.pesq(16000, *cut(read["r/a"], resample(read["s/a"], 8000, 16000)), "wb"),
          pesq.pesq(16000, *cut(read["r/b"], resample(read["s/b"], 44100, 16000)), "wb")]
    nb = [pesq.pesq(8000, *cut(resample(read["r/a"], 16000, 8000), read["s/a"]), "nb"),
          pesq.pesq(8000, *cut(resample(read["r/b"], 16000, 8000),
                               resample(read["s/b"], 44100, 8000)), "nb")]
    for mode, expected in (("wb", wb), ("nb", nb)):
        card = score_files(tmp_path / "s", tmp_path / "r", modality="audio", metrics=["pesq"],
                           options={"pesq": {"mode": mode, "workers": 1}}, per_sample=True,
                           diagnostics=False)
        assert card.per_sample["ids"] == ["a", "b"]
        assert card.metrics["pesq"].per_sample == expected, mode
        assert card.metrics["pesq"].signature["rate"] == RATES[mode]
    # the same pairs in the worker processes (they resample them)
    with PESQ(workers=2) as metric:
        clip = {k: AudioClip(k[2:], v, sf.info(tmp_path / f"{k}.wav").samplerate)
                for k, v in read.items()}
        metric.update([clip[f"s/{n}"] for n in "abab"], [[clip[f"r/{n}"]] for n in "abab"])
        assert metric.compute(per_sample=True)["pesq"].per_sample == wb + wb
    # the old direction: the reference taken down to 8 kHz, both back up to 16 kHz
    ref8 = resample(read["r/a"], 16000, 8000)
    old = pesq.pesq(16000, *(resample(x, 8000, 16000) for x in cut(ref8, read["s/a"])), "wb")
    assert old - wb[0] > 0.3, (old, wb[0])


@pytest.mark.parametrize("mode", ["wb", "nb"])
def test_monotone_in_noise_level(mode):
    pairs = [(add_noise(speech(SENTENCES[2]), snr, seed=3), speech(SENTENCES[2])) for snr in SNRS]
    values = score(PESQ(mode=mode, workers=1), pairs, 16000).per_sample
    assert values == sorted(values) and len(set(values)) == len(values), values
    assert values[0] < 1.5 < values[-1]


def test_silence_fails_with_no_utterances():
    clean = speech()
    silent = np.zeros_like(clean)
    result = score(PESQ(workers=1), [(add_noise(clean, 20), clean), (silent, silent),
                                     (add_noise(clean, 20), silent)], 16000)
    assert result.per_sample[0] is not None and result.per_sample[1:] == [None, None]
    failed = result.components["failed"]
    assert [f["index"] for f in failed] == [1, 2]
    assert all("no utterances" in f["reason"].lower() for f in failed), failed
    assert result.n == 1 and result.value == result.per_sample[0]


def test_silent_degraded_and_nan_fail_with_a_reason():
    clean = speech()
    broken = clean.copy()
    broken[100] = np.nan
    result = score(PESQ(workers=1), [(np.zeros_like(clean), clean), (broken, clean),
                                     (clean, clean)], 16000)
    reasons = {f["index"]: f["reason"] for f in result.components["failed"]}
    assert "silent" in reasons[0] and "NaN" in reasons[1] and 2 not in reasons


@pytest.mark.parametrize(("rate", "mode"), [(16000, "wb"), (22050, "wb"), (8000, "nb")])
def test_too_short_fails_before_pesq(rate, mode):
    clean = speech(rate=rate)[: rate // 10]  # 0.1 s
    result = score(PESQ(mode=mode, workers=1),
                   [(add_noise(clean, 10), clean), (speech(rate=rate), speech(rate=rate))], rate)
    assert result.per_sample[0] is None and result.per_sample[1] is not None
    (failed,) = result.components["failed"]
    assert failed["index"] == 0 and failed["reason"].startswith("too short: 0.100 s")
    assert "0.25 s" in failed["reason"]


def test_quarter_second_is_the_limit():
    # pesq itself scores rate // 4 samples and refuses one fewer; so do we
    clean, noisy = speech(), add_noise(speech(), 10)
    result = score(PESQ(workers=1), [(noisy[:4000], clean[:4000]), (noisy[:3999], clean[:3999])],
                   16000)
    assert result.per_sample[0] == pesq.pesq(16000, clean[:4000], noisy[:4000], "wb")
    with pytest.raises(pesq.BufferTooShortError):
        pesq.pesq(16000, clean[:3999], noisy[:3999], "wb")
    assert result.per_sample[1] is None
    assert result.components["failed"][0]["reason"].startswith("too short: 0.250 s")


def test_mixed_good_and_bad_pairs_in_the_pool():
    clean = speech(SENTENCES[1])
    good = [(add_noise(clean, snr, seed=5), clean) for snr in (5, 15, 25)]
    bad = [(np.zeros_like(clean), np.zeros_like(clean)), (clean[:800], clean[:800])]
    pairs = [good[0], bad[0], good[1], bad[1], good[2]]
    with PESQ(workers=2) as metric:
        result = score(metric, pairs, 16000)
    expected = reference_scores(good, 16000, "wb")
    assert result.per_sample == [expected[0], None, expected[1], None, expected[2]]
    assert [f["index"] for f in result.components["failed"]] == [1, 3]
    assert result.n == 3 and result.value == pytest.approx(np.mean(expected), abs=1e-12)


def test_all_pairs_failing_is_a_metric_error():
    silent = np.zeros(16000)
    metric = PESQ(workers=1)
    metric.update(*clips([(silent, silent)], 16000))
    with pytest.raises(MetricError, match="No utterances"):
        metric.compute()


def test_independent_of_workers_and_batching():
    pairs = degraded_pairs(16000, sentences=SENTENCES[3:5], snrs=(5, 25))
    pairs.insert(3, (np.zeros(16000), np.zeros(16000)))
    results = []
    for workers, batch in ((1, None), (2, None), (2, 3), (2, 1), (0, 5)):
        with PESQ(workers=workers) as metric:
            results.append(score(metric, pairs, 16000, batch))
    first = results[0]
    for other in results[1:]:
        assert other.per_sample == first.per_sample
        assert other.value == first.value
        assert other.components == first.components
        assert other.signature == first.signature
    # states made with different workers merge (workers is not a scoring setting)
    a, b = PESQ(workers=1), PESQ(workers=2)
    samples, refs = clips(pairs, 16000)
    a.update(samples[:4], refs[:4])
    b.update(samples[4:], refs[4:])
    a.merge(b)
    assert a.compute(per_sample=True)["pesq"].per_sample == first.per_sample
    with pytest.raises(MetricError):
        a.merge(PESQ(mode="nb"))


def test_signature_and_options():
    metric = PESQ(mode="nb", workers=3)
    assert metric.workers == 3 and PESQ().workers == (len(os.sched_getaffinity(0))
                                                       if hasattr(os, "sched_getaffinity")
                                                       else os.cpu_count())
    metric.update(*clips([(add_noise(speech(), 10), speech())], 16000))
    sig = metric.compute()["pesq"].signature
    assert "workers" not in sig
    assert sig["mode"] == "nb" and sig["rate"] == 8000
    assert sig["pesq"] == pesq_version()
    assert PESQ(workers="2").options["workers"] == 2
    with pytest.raises(UsageError):
        PESQ(mode="swb")
    with pytest.raises(UsageError):
        PESQ(workers=-1)


def pesq_version() -> str:
    from importlib.metadata import version

    return version("pesq")


def test_copies_pickles_and_checkpoints_carry_no_pool():
    clean = speech()
    pairs = [(add_noise(clean, snr), clean) for snr in (5, 10, 15, 20)]
    metric = PESQ(workers=2)
    score(metric, pairs, 16000)
    assert metric._pool is not None
    clone = copy.deepcopy(metric)
    restored = pickle.loads(pickle.dumps(metric))
    for other in (clone, restored):
        assert other._pool is None and other.state == metric.state
    fresh = PESQ(workers=1)
    fresh.load_state_dict(metric.state_dict())  # workers differ: still loads
    assert fresh.state == metric.state
    metric.close()
    assert metric._pool is None
    metric.close()  # twice is fine
    # a closed metric starts a new pool for its next large batch
    assert score(metric, pairs, 16000).per_sample[:4] == metric.state["values"].tolist()[:4]


ORIGINAL_SCORE_STORED = pesq_module.score_stored  # also in the workers, which import this


def crash_on_one_second(path, reference, degraded, sample_rate, mode):
    """A stand-in worker task that kills its process on 1 s pairs, else scores normally."""
    if degraded[1] == sample_rate:
        os._exit(3)
    return ORIGINAL_SCORE_STORED(path, reference, degraded, sample_rate, mode)


def test_a_crashing_worker_fails_only_its_pair(monkeypatch):
    clean = speech()
    pairs = [(add_noise(clean, snr, seed=k), clean) for k, snr in enumerate((5, 15, 25, 5, 15))]
    pairs.insert(1, (add_noise(clean[:16000], 10), clean[:16000]))
    monkeypatch.setattr(pesq_module, "score_stored", crash_on_one_second)
    with PESQ(workers=2) as metric:
        result = score(metric, pairs, 16000)
    # every other pair is scored (in a fresh pool, alone, or before the crash: which one
    # depends on timing, so the pool's state afterwards is not asserted)
    expected = reference_scores(pairs[:1] + pairs[2:], 16000, "wb")
    assert result.per_sample == expected[:1] + [None] + expected[1:]
    assert result.components["failed"] == [{"index": 1, "reason": pesq_module.CRASHED}]


def test_float32_clips_are_passed_as_they_are():
    clean = speech(SENTENCES[4]).astype(np.float32)
    pairs = [(add_noise(clean, snr).astype(np.float32), clean) for snr in (5, 15, 25, 35)]
    with PESQ(workers=2) as metric:
        result = score(metric, pairs, 16000)
    assert result.per_sample == reference_scores(pairs, 16000, "wb")


class NoChildren:
    """A pool whose processes cannot start, as inside a daemonic process."""

    def __init__(self, *args, **kwargs):
        pass

    def submit(self, *args, **kwargs):
        raise AssertionError("daemonic processes are not allowed to have children")

    def shutdown(self, *args, **kwargs):
        pass


@pytest.mark.parametrize("how", ["no pool", "no processes"])
def test_without_processes_pairs_are_scored_here(monkeypatch, how):
    clean = speech(SENTENCES[5])
    pairs = [(add_noise(clean, snr), clean) for snr in (5, 15, 25, 35)]
    if how == "no pool":
        def refuse():
            raise OSError("no semaphores here")

        monkeypatch.setattr(pesq_module, "_mp_context", refuse)
    else:
        monkeypatch.setattr(pesq_module, "ProcessPoolExecutor", NoChildren)
    metric = PESQ(workers=2)
    result = score(metric, pairs, 16000)
    assert result.per_sample == reference_scores(pairs, 16000, "wb")
    assert metric._pool is None


@pytest.mark.parametrize("files", [True, False])
def test_pairs_reach_workers_through_files_or_the_pipe(monkeypatch, tmp_path, files):
    clean = speech(SENTENCES[3])
    pairs = [(add_noise(clean, snr, seed=2), clean) for snr in (0, 10, 20, 30)]
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    if not files:
        def no_folder(*args, **kwargs):
            raise OSError("read-only file system")

        monkeypatch.setattr(tempfile, "TemporaryDirectory", no_folder)
    paths = []
    task = pesq_module._Spool.task

    def spy(self, index, job):
        call, path = task(self, index, job)
        paths.append(path)
        return call, path

    monkeypatch.setattr(pesq_module._Spool, "task", spy)
    with PESQ(workers=2) as metric:
        assert score(metric, pairs, 16000).per_sample == reference_scores(pairs, 16000, "wb")
    assert len(paths) == 4 and all((p is not None) == files for p in paths)
    # every file and folder removed (multiprocessing may have put its own pymp-* there)
    assert [p for p in tmp_path.iterdir() if p.name.startswith("genmetrics-pesq")] == []
