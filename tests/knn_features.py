"""Real pool3 features of real photographs (and of their degradations) for the k-NN
metric tests, computed once per session with the real FID Inception weights.

The tiles of every ``skimage.data`` photograph alternate between two halves: ``refs``
(the reference set) and the samples ``clean``; ``blur`` and ``noise`` degrade the same
sample tiles; ``clean_half`` keeps the sample tiles of half of the photographs only
(half of the image "classes").
"""

from __future__ import annotations

from functools import cache

import numpy as np

from tests.photos import PHOTOS, blur, noise, tiles

PER_PHOTO = 3  # tiles per photograph on each side


@cache
def photo_tiles() -> dict[str, list[np.ndarray]]:
    by_photo: dict[str, list[np.ndarray]] = {}
    for name, tile in tiles(size=64, longer_side=256):
        by_photo.setdefault(name.rsplit("-", 2)[0], []).append(tile)
    refs, clean, half = [], [], []
    for i, photo in enumerate(PHOTOS):
        own = by_photo[photo]
        refs += own[0:2 * PER_PHOTO:2]
        clean += own[1:2 * PER_PHOTO:2]
        if i % 2 == 0:
            half += own[1:2 * PER_PHOTO:2]
    return {"refs": refs, "clean": clean, "clean_half": half,
            "blur": [blur(t, sigma=2.0) for t in clean],
            "noise": [noise(t, std=25.0, seed=i) for i, t in enumerate(clean)]}


@cache
def photo_features() -> dict[str, np.ndarray]:
    """``N x 2048`` float32 pool3 rows of each set of :func:`photo_tiles`."""
    import torch

    from genmetrics.features.inception import get_extractor

    extractor = get_extractor(device="cpu")
    sets = photo_tiles()
    everything = [t for key in ("refs", "clean", "blur", "noise") for t in sets[key]]
    rows = extractor.extract([torch.from_numpy(t).permute(2, 0, 1).contiguous()
                              for t in everything])["2048"]
    out, start = {}, 0
    for key in ("refs", "clean", "blur", "noise"):
        out[key] = rows[start:start + len(sets[key])]
        start += len(sets[key])
    n = PER_PHOTO
    out["clean_half"] = np.concatenate([out["clean"][i * n:(i + 1) * n]
                                        for i in range(len(PHOTOS)) if i % 2 == 0])
    return out


@cache
def gaussian_sets(n: int = 1500, d: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Two larger float32 sets shaped like pool3 rows (non-negative, correlated)."""
    rng = np.random.default_rng(7)
    mix = rng.normal(size=(64, d)) / 8
    a = np.maximum(rng.normal(size=(n, 64)) @ mix + 0.3, 0) * 0.5
    b = np.maximum(rng.normal(size=(n, 64)) @ mix * 1.1 + 0.32, 0) * 0.5
    return a.astype(np.float32), b.astype(np.float32)
