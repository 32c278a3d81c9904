"""SSIM and PSNR against scikit-image, on real photographs (``skimage.data``).

Parity: each pair's SSIM equals ``skimage.metrics.structural_similarity(...,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=-1,
data_range=255)`` within 1e-5 (measured: ~1e-13), and its PSNR equals
``peak_signal_noise_ratio(reference, sample, data_range=255)`` within 1e-12 relative.
The pairs are crops of several photographs at several sizes (odd, strip-shaped, the
11 x 11 minimum) against degraded copies: Gaussian blur, additive noise (rounded and
clipped to uint8), JPEG re-encoding with Pillow at quality 10-50, brightness shifts.
Per-sample values must not depend on batching, order or merging.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from genmetrics.errors import MetricError, UsageError
from genmetrics.io.image_batch import ImageBatch
from genmetrics.metrics.image import psnr as psnr_module
from genmetrics.metrics.image import ssim as ssim_module
from genmetrics.metrics.image._paired import Failed
from genmetrics.metrics.image.psnr import IDENTICAL, PSNR, psnr_values, squared_error
from genmetrics.metrics.image.ssim import SSIM, TOO_SMALL, ssim_values
from genmetrics.registry import get_metric
from tests.conftest import TEST_DEVICE
from tests.photos import blur, brighten, jpeg, noise, photos, save_png

torch = pytest.importorskip("torch")
skimage_metrics = pytest.importorskip("skimage.metrics")

SSIM_TOL = 1e-5  # absolute, per image (the contract; float64 gives ~1e-13)
PSNR_REL = 1e-12
SSIM_KW = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False,
           "channel_axis": -1, "data_range": 255}
# (height, width): odd sizes, a strip, the 11 x 11 minimum (one valid pixel), a 12 x 11
SIZES = ((64, 64), (37, 53), (11, 11), (12, 11), (23, 130), (96, 71))
DEGRADE = {
    "blur1": lambda im, i: blur(im, sigma=1.0),
    "blur2.5": lambda im, i: blur(im, sigma=2.5),
    "noise5": lambda im, i: noise(im, std=5.0, seed=i),
    "noise25": lambda im, i: noise(im, std=25.0, seed=i),
    "jpeg10": lambda im, i: jpeg(im, quality=10),
    "jpeg30": lambda im, i: jpeg(im, quality=30),
    "jpeg50": lambda im, i: jpeg(im, quality=50),
    "bright+40": lambda im, i: brighten(im, 40),
    "dark-60": lambda im, i: brighten(im, -60),
}


def tensor(image: np.ndarray):
    """``H x W x 3`` uint8 array -> ``3 x H x W`` tensor (as the image reader gives)."""
    return torch.from_numpy(np.ascontiguousarray(image).copy()).permute(2, 0, 1).contiguous()


def sk_ssim(sample: np.ndarray, ref: np.ndarray) -> float:
    return float(skimage_metrics.structural_similarity(sample, ref, **SSIM_KW))


def sk_psnr(sample: np.ndarray, ref: np.ndarray) -> float:
    return float(skimage_metrics.peak_signal_noise_ratio(ref, sample, data_range=255))


@pytest.fixture(scope="module")
def pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, degraded sample, reference): crops of six photographs, every size, each
    degradation in turn."""
    rng = np.random.default_rng(0)
    pictures = photos()
    names = ("astronaut", "chelsea", "coffee", "rocket", "camera", "immunohistochemistry")
    kinds = list(DEGRADE)
    out = []
    for k, name in enumerate(names):
        image = pictures[name]
        for j, (h, w) in enumerate(SIZES):
            top = int(rng.integers(0, image.shape[0] - h + 1))
            left = int(rng.integers(0, image.shape[1] - w + 1))
            ref = np.ascontiguousarray(image[top:top + h, left:left + w])
            kind = kinds[(k * len(SIZES) + j) % len(kinds)]
            out.append((f"{name}-{h}x{w}-{kind}", DEGRADE[kind](ref, k * 10 + j), ref))
    return out


def per_sample(metric, samples: list, refs: list, batch: int | None = None) -> list:
    batch = batch or len(samples) or 1
    for i in range(0, len(samples), batch):
        metric.update(ImageBatch(samples[i:i + batch]), [[r] for r in refs[i:i + batch]])
    return metric.compute(per_sample=True)[metric.spec.name].per_sample


@pytest.fixture(scope="module")
def tensors(pairs):
    return [tensor(s) for _, s, _ in pairs], [tensor(r) for _, _, r in pairs]


# -- parity ------------------------------------------------------------------------------


def test_ssim_matches_skimage_per_pair(pairs, tensors):
    ours = per_sample(SSIM(device=TEST_DEVICE), *tensors)
    for (label, sample, ref), value in zip(pairs, ours, strict=True):
        assert value == pytest.approx(sk_ssim(sample, ref), abs=SSIM_TOL), label
    assert min(ours) < 0.5 < max(ours) < 1.0  # the degradations really differ


def test_ssim_multi_pair_chunks_and_other_tiles(pairs, tensors):
    """The batched chunk that CUDA runs (several pairs at once, larger tiles), on the CPU."""
    samples, refs = tensors
    by_size: dict[tuple, list[int]] = {}
    for i, s in enumerate(samples):
        by_size.setdefault(tuple(s.shape), []).append(i)
    for tiles in ((64, 64), (7, 5), (24, 16)):
        for indices in by_size.values():
            x = torch.stack([samples[i] for i in indices])
            y = torch.stack([refs[i] for i in indices])
            values = ssim_module._ssim_chunk(x, y, *tiles).tolist()
            for i, value in zip(indices, values, strict=True):
                label, sample, ref = pairs[i]
                assert value == pytest.approx(sk_ssim(sample, ref), abs=SSIM_TOL), (label, tiles)


def test_ssim_cpu_kernel_and_its_torch_fallback(pairs, tensors, monkeypatch):
    """The CPU's compiled kernel agrees with skimage to 1e-12 (non-contiguous views too);
    without numba the CPU takes the torch path, with the same values."""
    pytest.importorskip("numba")
    assert ssim_module._kernel() is not None
    samples, refs = tensors
    big = next(i for i, (label, _, _) in enumerate(pairs) if "-96x71-" in label)
    views = [samples[big][:, 3:, 5:], refs[big][:, 3:, 5:]]  # not contiguous
    assert not views[0].is_contiguous()
    fast = ssim_values([*samples, views[0]], [*refs, views[1]], device="cpu", threads=2)
    expected = [sk_ssim(s, r) for _, s, r in pairs]
    expected.append(sk_ssim(pairs[big][1][3:, 5:], pairs[big][2][3:, 5:]))
    assert max(abs(a - b) for a, b in zip(fast, expected, strict=True)) < 1e-12
    monkeypatch.setattr(ssim_module, "_kernel", lambda: None)
    slow = ssim_values([*samples, views[0]], [*refs, views[1]], device="cpu", threads=2)
    assert slow == pytest.approx(fast, abs=1e-12)


def test_psnr_matches_skimage_per_pair(pairs, tensors):
    ours = per_sample(PSNR(), *tensors)
    for (label, sample, ref), value in zip(pairs, ours, strict=True):
        assert value == pytest.approx(sk_psnr(sample, ref), rel=PSNR_REL), label
    samples, refs = tensors
    for s, r in zip(samples, refs, strict=True):  # the squared error is exact
        exact = int(((s.long() - r.long()) ** 2).sum())
        assert squared_error(s, r) == exact


def test_psnr_large_image_sum_stays_exact():
    """1000 x 1000 x 3 values all 255 apart: the sum (1.95e11) is far above 2**24."""
    a = torch.zeros(3, 1000, 1000, dtype=torch.uint8)
    b = torch.full((3, 1000, 1000), 255, dtype=torch.uint8)
    b[0, 0, 0] = 254  # and a tail that is not a multiple of 256 values off by 255
    assert squared_error(b, a) == 3 * 10**6 * 255**2 - 255**2 + 254**2
    assert psnr_values([b], [a])[0] == pytest.approx(
        sk_psnr(b.permute(1, 2, 0).numpy(), a.permute(1, 2, 0).numpy()), rel=PSNR_REL)


def test_psnr_cpu_kernel_and_its_numpy_fallback(pairs, tensors, monkeypatch):
    """The compiled kernel and the numpy path give the same exact integers (photos,
    non-contiguous views, odd sizes, 0 against 255 everywhere) and skimage's PSNR."""
    pytest.importorskip("numba")
    assert psnr_module._kernel() is not None
    samples, refs = tensors
    extremes = (torch.zeros(3, 37, 53, dtype=torch.uint8),
                torch.full((3, 37, 53), 255, dtype=torch.uint8))
    cases = [*zip(samples, refs, strict=True), (samples[0][:, 1:, 2:], refs[0][:, 1:, 2:]),
             extremes, extremes[::-1]]
    fast = [squared_error(s, r) for s, r in cases]
    assert fast == [int(((s.long() - r.long()) ** 2).sum()) for s, r in cases]
    monkeypatch.setattr(psnr_module, "_kernel", lambda: None)
    assert [squared_error(s, r) for s, r in cases] == fast
    slow = per_sample(PSNR(), *tensors)
    for (label, sample, ref), value in zip(pairs, slow, strict=True):
        assert value == pytest.approx(sk_psnr(sample, ref), rel=PSNR_REL), label


def test_corpus_value_is_the_mean_of_pairs(pairs, tensors):
    for metric, theirs in ((SSIM(device=TEST_DEVICE), sk_ssim), (PSNR(), sk_psnr)):
        metric.update(ImageBatch(tensors[0]), [[r] for r in tensors[1]])
        result = metric.compute()[metric.spec.name]
        expected = math.fsum(theirs(s, r) for _, s, r in pairs) / len(pairs)
        assert result.value == pytest.approx(expected, rel=1e-9, abs=SSIM_TOL)
        assert result.n == len(pairs) and result.higher_is_better


# -- batching, order, merging --------------------------------------------------------------


@pytest.mark.parametrize("cls", [SSIM, PSNR])
def test_per_sample_values_do_not_depend_on_batching(cls, tensors):
    samples, refs = tensors
    whole = per_sample(cls(threads=2), samples, refs)  # sizes mixed in one batch
    one_by_one = per_sample(cls(threads=1), samples, refs, batch=1)
    sevens = per_sample(cls(), samples, refs, batch=7)
    order = list(range(len(samples)))
    random.Random(3).shuffle(order)
    shuffled = per_sample(cls(), [samples[i] for i in order], [refs[i] for i in order])
    unshuffled = [None] * len(order)
    for position, i in enumerate(order):
        unshuffled[i] = shuffled[position]
    assert whole == one_by_one == sevens == unshuffled  # bit for bit on the CPU


@pytest.mark.parametrize("cls", [SSIM, PSNR])
def test_merge_of_partial_states_equals_one_pass(cls, tensors):
    samples, refs = tensors
    half = len(samples) // 2
    one = cls()
    one.update(ImageBatch(samples), [[r] for r in refs])
    first, second = cls(threads=1), cls(threads=2)  # thread counts may differ: they merge
    first.update(ImageBatch(samples[:half]), [[r] for r in refs[:half]])
    second.update(ImageBatch(samples[half:]), [[r] for r in refs[half:]])
    first.merge(second)
    a, b = one.compute(per_sample=True), first.compute(per_sample=True)
    name = cls.spec.name
    assert a[name].value == b[name].value and a[name].per_sample == b[name].per_sample
    assert a[name].n == b[name].n == len(samples)
    assert a[name].signature == b[name].signature


# -- edge cases ---------------------------------------------------------------------------


def test_images_smaller_than_the_window_fail_with_a_reason():
    big = tensor(photos()["astronaut"][:40, :40])
    small = [big[:, :10, :40], big[:, :40, :10], big[:, :3, :3]]
    m = SSIM(device=TEST_DEVICE)
    m.update(ImageBatch([big, *small]), [[big]] + [[s] for s in small])
    result = m.compute(per_sample=True)["ssim"]
    assert result.per_sample[0] == pytest.approx(1.0, abs=1e-12)
    assert result.per_sample[1:] == [None, None, None] and result.n == 1
    assert [f["reason"] for f in result.components["failed"]] == [TOO_SMALL] * 3
    with pytest.raises(ValueError, match="win_size exceeds image extent"):  # skimage refuses
        sk_ssim(small[0].permute(1, 2, 0).numpy(), small[0].permute(1, 2, 0).numpy())
    only_small = SSIM(device=TEST_DEVICE)
    only_small.update(ImageBatch(small), [[s] for s in small])
    with pytest.raises(MetricError, match="none of the 3 pairs could be scored"):
        only_small.compute()


def test_identical_pairs_psnr_policy(pairs, tensors):
    samples, refs = tensors
    m = PSNR()
    m.update(ImageBatch([refs[0], samples[1], refs[2]]), [[refs[0]], [refs[1]], [refs[2]]])
    result = m.compute(per_sample=True)["psnr"]
    assert result.per_sample[0] is None and result.per_sample[2] is None
    assert result.value == pytest.approx(sk_psnr(pairs[1][1], pairs[1][2]), rel=PSNR_REL)
    assert result.components["failed"] == [{"index": 0, "reason": IDENTICAL},
                                           {"index": 2, "reason": IDENTICAL}]
    with np.errstate(divide="ignore"):
        assert math.isinf(sk_psnr(pairs[0][2], pairs[0][2]))  # what skimage says
    assert psnr_values([refs[0]], [refs[0]]) == [Failed(IDENTICAL)]
    every = PSNR()
    every.update(ImageBatch(refs[:2]), [[r] for r in refs[:2]])
    with pytest.raises(MetricError, match=r"first reason: identical images \(PSNR is infinite"):
        every.compute()
    # SSIM of identical images is 1 (to rounding), as skimage's
    assert ssim_values(refs[:3], refs[:3]) == pytest.approx([1.0] * 3, abs=1e-12)


@pytest.mark.parametrize("cls", [SSIM, PSNR])
def test_bad_input_is_a_clear_error(cls, tensors):
    samples, refs = tensors
    name = cls.spec.name
    with pytest.raises(UsageError, match="one reference per sample"):
        cls().update(ImageBatch(samples[:2]), None)
    with pytest.raises(UsageError, match="takes exactly one"):
        cls().update(ImageBatch(samples[:1]), [[]])
    mismatched = cls()  # a pair of two sizes fails alone, with both sizes named
    mismatched.update(ImageBatch(samples[:2]), [[refs[0]], [refs[0]]])
    result = mismatched.compute(per_sample=True)[name]
    assert result.per_sample[1] is None and result.n == 1
    assert "differs from its reference (64x64)" in result.components["failed"][0]["reason"]
    with pytest.raises(UsageError, match="3 x H x W uint8"):
        cls().update([samples[0].float()], [[refs[0]]])
    with pytest.raises(UsageError, match="threads must be 0"):
        cls(threads=-1).update(ImageBatch(samples[:1]), [[refs[0]]])
    with pytest.raises(MetricError, match="no samples"):
        cls().compute()


# -- spec, signature, bootstrap, end to end --------------------------------------------------


def test_specs_and_signatures():
    ssim_spec, psnr_spec = get_metric("ssim").spec, get_metric("psnr").spec
    assert (ssim_spec.unit, ssim_spec.value_range, ssim_spec.kind) == ("-", (-1.0, 1.0), "paired")
    assert (psnr_spec.unit, psnr_spec.value_range) == ("dB", (0.0, None))
    assert ssim_spec.higher_is_better and psnr_spec.higher_is_better
    a = torch.zeros(3, 12, 12, dtype=torch.uint8)
    m = SSIM(device=TEST_DEVICE, threads=1)
    m.update([a + 1], [[a]])
    sig = m.compute()["ssim"].signature
    assert {k: sig[k] for k in ("window", "sigma", "K1", "K2", "data_range")} == {
        "window": "gaussian11", "sigma": 1.5, "K1": 0.01, "K2": 0.03, "data_range": 255}
    assert "device" not in sig and "threads" not in sig and sig["torch"] != "-"
    p = PSNR()
    p.update([a + 1], [[a]])
    assert p.compute()["psnr"].signature["data_range"] == 255


def test_bootstrap_rows_give_the_mean(tensors):
    samples, refs = tensors
    m = PSNR()
    m.update(ImageBatch([refs[0], *samples[1:6]]), [[r] for r in refs[:6]])  # one identical
    rows = m.bootstrap_rows()["psnr"]
    assert rows.shape == (6, 2) and list(rows[0]) == [0.0, 0.0]
    totals = rows.sum(axis=0, keepdims=True)
    assert m.value_from_totals("psnr", totals, 6)[0] == pytest.approx(
        m.compute()["psnr"].value, rel=1e-12)


def test_score_folders_with_bootstrap(tmp_path, pairs):
    """The runner: PNG folders paired by name, per-sample values and a bootstrap CI."""
    from genmetrics.runner import score

    chosen = [p for p in pairs if p[1].shape[:2] == (64, 64)][:5]
    for folder in ("samples", "refs"):
        (tmp_path / folder).mkdir()
    for i, (_, sample, ref) in enumerate(chosen):
        save_png(sample, tmp_path / "samples" / f"{i}.png")
        save_png(ref, tmp_path / "refs" / f"{i}.png")
    save_png(chosen[0][2], tmp_path / "samples" / "same.png")  # identical to its reference
    save_png(chosen[0][2], tmp_path / "refs" / "same.png")
    card = score(tmp_path / "samples", tmp_path / "refs", modality="image",
                 metrics=["ssim", "psnr"], per_sample=True, bootstrap=200, workers=0,
                 device=TEST_DEVICE)
    assert not card.errors, card.errors
    ssim, psnr = card.metrics["ssim"], card.metrics["psnr"]
    expected_ssim = [sk_ssim(s, r) for _, s, r in chosen] + [1.0]
    expected_psnr = [sk_psnr(s, r) for _, s, r in chosen]
    assert ssim.value == pytest.approx(np.mean(expected_ssim), abs=SSIM_TOL)
    assert psnr.value == pytest.approx(np.mean(expected_psnr), rel=1e-9)
    assert ssim.n == 6 and psnr.n == 5 and psnr.components["failed"][0]["reason"] == IDENTICAL
    for result in (ssim, psnr):
        low, high = result.ci95
        assert low <= result.value <= high and low < high


def test_worker_threads_leave_torch_thread_settings_alone():
    import threading

    before = torch.get_num_threads()
    a = torch.zeros(3, 20, 20, dtype=torch.uint8)
    flat = sk_ssim(np.full((20, 20, 3), 3, np.uint8), np.zeros((20, 20, 3), np.uint8))
    assert ssim_values([a + 3] * 4, [a] * 4, threads=3) == pytest.approx([flat] * 4, abs=1e-12)
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert torch.get_num_threads() == before and seen == [before]
