"""Image diagnostics: blurry or flat images, near-duplicates, a low-diversity hint.

Each decoded sample (``3 x H x W`` uint8) is turned into 8-bit grayscale once
(Pillow's ``convert("L")``: ITU-R 601 luma, as OpenCV's ``COLOR_RGB2GRAY``); then

* ``blur`` (per sample, flagged below 30): the variance of the image's Laplacian (the
  3x3 kernel ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]``, over the interior pixels) on the
  0-255 scale, as ``cv2.Laplacian(gray, cv2.CV_64F).var()`` is commonly used. Sharp
  detail gives large values, a blurred or flat (blank) image values near 0. It depends
  on resolution and content: on the 15 scikit-image photographs at 128-512 px, sharp
  images measured 3-7400 (median about 860; only two smooth ones, ``clock`` and
  ``cell``, fall below 30), the same after a Gaussian blur of sigma 2 measured 1-31.
  The common OpenCV-tutorial threshold of 100 flags too many sharp but smooth images.
* ``near_duplicates`` (per sample, flagged below 5): the Hamming distance, out of 64
  bits, from the sample's perceptual hash (``imagehash.phash``) to the closest other
  sample's; both samples of a pair are flagged, each naming the other as ``match``.
  The pairs of 111 unrelated photo tiles are 18-46 bits apart (31.5 on average);
  re-encodings, small shifts and brightness changes of one image stay within a few
  bits. The set's value is the fraction of samples flagged.
* ``phash_diversity`` (the set, flagged below 20): the mean Hamming distance between the
  perceptual hashes of all pairs of samples (computed exactly from per-bit counts).
  Unrelated images average about 32 (random bits); a generator that produces variations
  of a few images scores far lower. A cheap hint, not a feature-space measure: FID,
  KID and Inception Score are the measures of diversity.

Only two numbers per sample are kept (the blur value is folded in at once; the hash is
8 bytes), never the pixels. Without the optional ``imagehash`` package the hash-based
checks are left out and a warning says so.

    >>> import torch
    >>> from genmetrics.io.image import ImageItem
    >>> flat = torch.full((3, 16, 16), 128, dtype=torch.uint8)
    >>> noisy = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8,
    ...                       generator=torch.Generator().manual_seed(0))
    >>> diag = ImageDiagnostics()
    >>> diag.update([ImageItem("flat", flat), ImageItem("noisy", noisy)])
    >>> [f["id"] for f in diag.result()["blur"]["flagged"]]
    ['flat']
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any

import numpy as np

from genmetrics.diagnostics import (
    BELOW,
    Diagnostics,
    SampleCheck,
    checked_thresholds,
    set_entry,
)

#: default thresholds (override with ``collector("image", name=value)``)
THRESHOLDS = {
    "blur": 30.0,  # variance of the Laplacian, 0-255 scale
    "near_duplicates": 5.0,  # phash Hamming distance (bits of 64)
    "phash_diversity": 20.0,  # mean pairwise phash Hamming distance (bits of 64)
}
HASH_BITS = 64


def laplacian_variance(gray: np.ndarray) -> float:
    """The variance of the 4-neighbour Laplacian over the interior of a 2-D image.

    Exact for 8-bit images (integer Laplacian, squares summed in float64).

    >>> laplacian_variance(np.zeros((5, 5), dtype=np.uint8))
    0.0
    """
    g = np.asarray(gray)
    if g.ndim != 2 or g.shape[0] < 3 or g.shape[1] < 3:
        raise ValueError("the Laplacian needs a 2-D image of at least 3 x 3 pixels")
    if g.dtype == np.uint8:  # |Laplacian| <= 1020: int16, squares exact in float32
        g = g.astype(np.int16)
        lap = g[1:-1, :-2] + g[1:-1, 2:]
        lap += g[:-2, 1:-1]
        lap += g[2:, 1:-1]
        lap -= 4 * g[1:-1, 1:-1]
        mean = lap.mean(dtype=np.float64)
        return float(np.square(lap, dtype=np.float32).mean(dtype=np.float64) - mean * mean)
    g = g.astype(np.float64)
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]
    return float(lap.var())


def grayscale(image: Any) -> Any:
    """A ``3 x H x W`` uint8 tensor or array (any device) as an 8-bit Pillow image."""
    from PIL import Image

    if hasattr(image, "detach"):  # a torch tensor, possibly on the GPU (nvJPEG decode)
        image = image.detach().cpu().numpy()
    planes = [Image.fromarray(np.ascontiguousarray(p, dtype=np.uint8)) for p in image]
    return Image.merge("RGB", planes).convert("L")  # planar: no interleaving copy


def phash(gray: Any) -> int:
    """The 64-bit perceptual hash of a Pillow image (``imagehash.phash``) as an int."""
    import imagehash

    return int(str(imagehash.phash(gray)), 16)


def _popcount(values: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy >= 2
        return np.bitwise_count(values).astype(np.int64)
    as_bytes = values.astype("<u8").view(np.uint8).reshape(-1, 8)
    return np.unpackbits(as_bytes, axis=1).sum(axis=1).astype(np.int64)


def nearest_duplicates(hashes: np.ndarray, within: int) -> tuple[np.ndarray, np.ndarray]:
    """For each 64-bit hash, the Hamming distance to the closest other hash and that
    hash's index (the lowest index among equally close ones), where the distance is at
    most ``within``; -1 for both elsewhere.

    Exact: a pair within ``within`` bits agrees on at least one of ``within + 1``
    disjoint bit ranges, so only hashes that share a range are compared.

    >>> hashes = np.array([0b1111, 0b0111, 1 << 40, 0b1111], dtype=np.uint64)
    >>> nearest_duplicates(hashes, 1)
    (array([ 0,  1, -1,  0]), array([ 3,  0, -1,  0]))
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    n = hashes.size
    distance = np.full(n, -1, dtype=np.int64)
    match = np.full(n, -1, dtype=np.int64)
    if n < 2:
        return distance, match
    unique, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    # best (distance, partner's first sample) per unique hash, as one sortable key
    best = np.full(unique.size, np.iinfo(np.int64).max, dtype=np.int64)
    chunks = within + 1
    bounds = np.linspace(0, HASH_BITS, chunks + 1).astype(int)
    for low, high in zip(bounds[:-1], bounds[1:], strict=True):
        keys = (unique >> np.uint64(low)) & np.uint64((1 << int(high - low)) - 1)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        offset = 1
        while offset < unique.size:
            same = np.flatnonzero(sorted_keys[:-offset] == sorted_keys[offset:])
            if not same.size:
                break  # no group has more than `offset` members
            a, b = order[same], order[same + offset]
            d = _popcount(unique[a] ^ unique[b])
            close = d <= within
            a, b, d = a[close], b[close], d[close]
            np.minimum.at(best, a, d * (n + 1) + first[b])
            np.minimum.at(best, b, d * (n + 1) + first[a])
            offset += 1
    found = best != np.iinfo(np.int64).max
    distance_u = np.where(found, best // (n + 1), -1)
    match_u = np.where(found, best % (n + 1), -1)
    distance[:] = distance_u[inverse]
    match[:] = match_u[inverse]
    # identical hashes: distance 0, the first other sample with the same hash
    counts = np.bincount(inverse, minlength=unique.size)
    repeated = counts[inverse] > 1
    if repeated.any():
        order = np.argsort(inverse, kind="stable")
        starts = np.searchsorted(inverse[order], np.arange(unique.size))
        leader = order[starts]  # the first sample of each hash
        second = order[np.minimum(starts + 1, n - 1)]
        own = leader[inverse]
        partner = np.where(own == np.arange(n), second[inverse], own)
        distance[repeated] = 0
        match[repeated] = partner[repeated]
    return distance, match


def mean_pairwise_distance(hashes: np.ndarray) -> float:
    """The mean Hamming distance over all pairs of 64-bit hashes, from per-bit counts.

    >>> mean_pairwise_distance(np.array([0, 2**64 - 1, 0], dtype=np.uint64))
    42.666666666666664
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    n = hashes.size
    if n < 2:
        raise ValueError("a mean pairwise distance needs two hashes")
    bits = (hashes[:, None] >> np.arange(HASH_BITS, dtype=np.uint64)) & np.uint64(1)
    ones = bits.sum(axis=0, dtype=np.int64)
    return float((ones * (n - ones)).sum() / (n * (n - 1) / 2))


class ImageDiagnostics(Diagnostics):
    """Blur, near-duplicates and perceptual-hash diversity (see the module docstring)."""

    modality = "image"

    def __init__(self, **thresholds: float) -> None:
        super().__init__()
        self.thresholds = t = checked_thresholds(THRESHOLDS, thresholds)
        self.blur = SampleCheck(t["blur"], BELOW, (
            "variance of the Laplacian of the 8-bit grayscale image (0-255 scale): low for "
            "blurred or flat images; depends on resolution and content; value: the mean"))
        self.ids: list[str] = []
        self.hashes = array("Q")
        self.unmeasured = 0  # samples that arrived without pixels
        try:
            import imagehash  # noqa: F401
        except ImportError:
            self.hashing = False
            self.notes.append("near_duplicates and phash_diversity need the imagehash "
                              "package: pip install imagehash (or genmetrics[report])")
        else:
            self.hashing = True

    def update(self, items: Sequence[Any]) -> None:
        for item in items:
            image = item.sample
            if image is None or not hasattr(image, "shape") or len(image.shape) != 3:
                self.unmeasured += 1
                continue
            gray = grayscale(image)
            if min(gray.size) >= 3:
                self.blur.add(item.id, laplacian_variance(np.asarray(gray)))
            if self.hashing:
                self.ids.append(item.id)
                self.hashes.append(phash(gray))

    def merge(self, other: Diagnostics) -> None:
        assert isinstance(other, ImageDiagnostics)
        self.blur.merge(other.blur)
        self.ids.extend(other.ids)
        self.hashes.extend(other.hashes)
        self.unmeasured += other.unmeasured

    def result(self) -> dict[str, dict[str, Any]]:
        doc: dict[str, dict[str, Any]] = {}
        if self.blur.n:
            doc["blur"] = self.blur.entry()
        if not self.hashing or not self.ids:
            return doc
        hashes = np.frombuffer(self.hashes, dtype=np.uint64)
        threshold = self.thresholds["near_duplicates"]
        check = SampleCheck(threshold, BELOW, (
            "Hamming distance (bits of 64) from the sample's perceptual hash (imagehash.phash) "
            "to the closest other sample's, with that sample as match; value: the fraction "
            "of samples flagged"))
        check.n = len(self.ids)
        within = int(np.ceil(threshold)) - 1
        if within >= 0:
            distance, match = nearest_duplicates(hashes, within)
            for index in np.flatnonzero(distance >= 0):
                check.flag(self.ids[index], float(distance[index]),
                           match=self.ids[match[index]])
        doc["near_duplicates"] = check.entry(value=check.flagged_count / check.n)
        if len(self.ids) >= 2:
            doc["phash_diversity"] = set_entry(
                mean_pairwise_distance(hashes), self.thresholds["phash_diversity"], BELOW,
                len(self.ids), ("mean Hamming distance (bits of 64) between the perceptual "
                                "hashes of all pairs of samples: about 32 for unrelated "
                                "images, low when the samples are variations of a few"))
        return doc


__all__ = ["ImageDiagnostics", "laplacian_variance", "nearest_duplicates",
           "mean_pairwise_distance", "THRESHOLDS"]
