"""In-memory batches the Evaluator refuses rather than scores wrongly: float images in
0-255 (or [-1, 1]), float audio outside [-1, 1], and batches with a bad item -- refused
whole, with the state exactly as before."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genmetrics import Evaluator
from genmetrics.errors import UsageError
from tests.photos import blur, resize_longer_side, tiles


def _same(a, b) -> bool:
    """Deep equality of state dicts holding numpy arrays."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and \
            all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
    return a == b


@pytest.fixture(scope="module")
def photo_batch() -> tuple[torch.Tensor, torch.Tensor]:
    clean = [resize_longer_side(t, 48) for _, t in tiles()[:4]]
    to_tensor = lambda ims: torch.from_numpy(np.stack(ims)).permute(0, 3, 1, 2)  # noqa: E731
    return to_tensor([blur(c) for c in clean]), to_tensor(clean)


def test_float_images_in_0_255_are_refused_not_clipped(photo_batch):
    samples, refs = photo_batch
    ev = Evaluator(["ssim", "psnr"], modality="image", device="cpu")
    high = int(samples.max())
    with pytest.raises(UsageError, match=rf"float images must be in \[0, 1\]; got min .*, max "
                       rf"{high} -- pass uint8, or divide by 255"):
        ev.update(samples.float(), refs.float())
    with pytest.raises(UsageError, match=r"\(x \+ 1\) / 2"):
        ev.update(samples.float() / 127.5 - 1, refs.float() / 127.5 - 1)
    # the same pixels as uint8 and as floats in [0, 1] give the same values
    ev.update(samples, refs)
    as_uint8 = ev.compute()
    other = Evaluator(["ssim", "psnr"], modality="image", device="cpu")
    other.update(samples.float() / 255, refs.float() / 255)
    as_float = other.compute()
    for name in ("ssim", "psnr"):
        assert as_float.metrics[name].value == as_uint8.metrics[name].value
    assert as_uint8.metrics["ssim"].value > 0.5  # real photo pairs, blurred


def test_float_audio_outside_minus_one_one_is_refused():
    wave = np.sin(np.linspace(0, 200, 16000))
    ev = Evaluator(["snr"], modality="audio", device="cpu")
    with pytest.raises(UsageError, match="float audio must be in \\[-1, 1\\]; got peak 32767"):
        ev.update(np.stack([wave * 32767]), np.stack([wave]), sample_rate=16000)
    ev.update(np.stack([wave * 0.9]), np.stack([wave]), sample_rate=16000)
    assert ev.compute().metrics["snr"].n == 1


@pytest.mark.parametrize("modality, metrics, bad", [
    ("text", ["bleu", "chrf", "rouge"], lambda: (["a cat", "a dog", None], ["a cat"] * 3)),
    ("text", ["bleu", "chrf", "rouge"], lambda: (["a cat", "a dog"], ["a cat", [None]])),
    ("text", ["bleu", "chrf"], lambda: (["a cat", "a dog"], ["a cat"])),
    ("image", ["ssim", "psnr"], lambda: ([torch.zeros(3, 8, 8, dtype=torch.uint8), None],
                                         torch.zeros(2, 3, 8, 8, dtype=torch.uint8))),
    ("image", ["ssim", "psnr"], lambda: (torch.full((2, 3, 8, 8), 200.0),
                                         torch.zeros(2, 3, 8, 8))),
    ("audio", ["snr", "si_snr"], lambda: ([np.zeros(800), None], [np.ones(800)] * 2)),
    ("audio", ["snr", "si_snr"], lambda: (np.stack([np.full(800, np.nan)]),
                                          np.stack([np.ones(800)]))),
])
def test_a_bad_batch_raises_once_and_changes_nothing(modality, metrics, bad):
    ev = Evaluator(metrics, modality=modality, device="cpu")
    rng = np.random.default_rng(0)
    if modality == "text":
        ev.update(["the cat sat on the mat", "a dog"], ["the cat is on the mat", "a dog"])
    elif modality == "image":
        good = torch.from_numpy(rng.integers(0, 256, (2, 3, 8, 8), dtype=np.uint8))
        ev.update(good, good.flip(-1))
    else:
        wave = rng.uniform(-0.5, 0.5, (2, 800))
        ev.update(wave, wave * 0.5 + 0.1, sample_rate=8000)
    before = ev.state_dict()
    card_before = ev.compute().to_dict()
    samples, refs = bad()
    kwargs = {"sample_rate": 8000} if modality == "audio" else {}
    with pytest.raises(UsageError):
        ev.update(samples, refs, **kwargs)
    assert _same(ev.state_dict(), before)
    card_after = ev.compute().to_dict()
    assert card_after["metrics"] == card_before["metrics"]
    assert card_after["inputs"] == card_before["inputs"]
