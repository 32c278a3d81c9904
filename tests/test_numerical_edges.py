"""Numerical edge cases with documented values (the rest live beside their metric:
identical sets give FID 0 in test_image_fid.py, rank deficiency is flagged there too,
silent audio and empty hypotheses in test_bad_inputs_text_audio.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from genmetrics.metric import MetricResult
from genmetrics.runner import score
from genmetrics.scorecard import Scorecard
from tests.photos import save_png


def _strict_loads(text: str):
    def refuse(name: str):
        raise ValueError(f"bare {name} in JSON")

    return json.loads(text, parse_constant=refuse)


def test_a_non_finite_value_is_written_as_null_with_a_reason(tmp_path):
    results = {
        "nan": MetricResult("nan", math.nan, 3, True, "", {"metric": "nan", "v": 1, "n": 3,
                                                              "genmetrics": "x"},
                            components={"parts": [1.0, math.inf]}, per_sample=[1.0, math.nan],
                            reason="every pair was silent"),
        "inf": MetricResult("inf", -math.inf, 3, True, "", {"metric": "inf", "v": 1, "n": 3,
                                                              "genmetrics": "x"}),
    }
    card = Scorecard(modality="text", inputs={"samples": {"path": "s", "count": 3}},
                     metrics=results, per_sample={"ids": ["a", "b"], "values": {
                         "nan": [1.0, math.nan]}, "stats": {}})
    card.save(tmp_path / "card.json")
    doc = _strict_loads((tmp_path / "card.json").read_text())
    assert doc["metrics"]["nan"]["value"] is None
    assert doc["metrics"]["nan"]["reason"] == "every pair was silent"
    assert doc["metrics"]["nan"]["components"] == {"parts": [1.0, None]}
    assert doc["metrics"]["inf"]["value"] is None
    assert "-inf" in doc["metrics"]["inf"]["reason"]
    assert doc["per_sample"]["values"]["nan"] == [1.0, None]
    loaded = Scorecard.load(tmp_path / "card.json")
    assert math.isnan(loaded.metrics["nan"].value)
    assert loaded.metrics["nan"].reason == "every pair was silent"


@pytest.fixture(scope="module")
def weights(random_weights):
    return random_weights()


def test_fid_with_fewer_than_two_samples_is_a_clear_error(tmp_path, weights):
    rng = np.random.default_rng(0)
    for side, count in (("samples", 1), ("refs", 3)):
        (tmp_path / side).mkdir()
        for i in range(count):
            save_png(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8),
                     tmp_path / side / f"{i}.png")
    card = score(tmp_path / "samples", tmp_path / "refs", modality="image", metrics=["fid"],
                 inception_weights=weights, workers=0, device="cpu")
    assert card.metrics == {}
    assert card.errors["fid"] == "fid needs at least 2 sample images; got 1"
    _strict_loads(card.to_json())


@pytest.mark.parametrize("levels", [(0, 0), (128, 128), (255, 255), (40, 200), (0, 255)])
def test_ssim_of_constant_images_matches_scikit_image(tmp_path, levels):
    """Constant images: SSIM is finite (the constants C1, C2 keep the ratio defined):
    1.0 for two equal constants, and scikit-image's value otherwise."""
    from skimage.metrics import structural_similarity

    a = np.full((32, 32, 3), levels[0], np.uint8)
    b = np.full((32, 32, 3), levels[1], np.uint8)
    save_png(a, (tmp_path / "s").mkdir() or tmp_path / "s" / "x.png")
    save_png(b, (tmp_path / "r").mkdir() or tmp_path / "r" / "x.png")
    card = score(tmp_path / "s", tmp_path / "r", modality="image", metrics=["ssim"], workers=0)
    theirs = structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                   use_sample_covariance=False, channel_axis=-1,
                                   data_range=255)
    assert card.metrics["ssim"].value == pytest.approx(theirs, abs=1e-12)
    if levels[0] == levels[1]:
        assert card.metrics["ssim"].value == pytest.approx(1.0, abs=1e-12)


def test_psnr_of_identical_images_is_a_failed_pair_not_infinity(tmp_path):
    """scikit-image returns inf for identical images; we leave that pair out of the mean
    with the reason (an infinite mean would say nothing about the other pairs)."""
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    b = a.copy()
    b[0, 0, 0] ^= 1
    for folder, images in (("s", (a, a)), ("r", (a, b))):
        (tmp_path / folder).mkdir()
        for i, image in enumerate(images):
            save_png(image, tmp_path / folder / f"{i}.png")
    card = score(tmp_path / "s", tmp_path / "r", modality="image", metrics=["psnr"], workers=0)
    from skimage.metrics import peak_signal_noise_ratio

    assert card.metrics["psnr"].value == pytest.approx(peak_signal_noise_ratio(a, b,
                                                                               data_range=255))
    failed = card.metrics["psnr"].components["failed"]
    assert failed == [{"index": 0, "id": "0", "reason": "identical images (PSNR is infinite)"}]
    _strict_loads(card.to_json())
