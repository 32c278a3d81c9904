"""SSIM (Wang et al. 2004) of each sample against its reference, as scikit-image computes it.

Each pair's value equals ``skimage.metrics.structural_similarity(sample, reference,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=-1,
data_range=255)`` on the ``H x W x 3`` uint8 arrays (within 1e-5; in practice about
1e-14): local means, variances and covariance under an 11 x 11 Gaussian window
(``sigma`` 1.5, truncated at 3.5 sigma: radius 5, the 1-D weights
``exp(-k**2 / (2 sigma**2))``, ``k = -5..5``, normalised as scipy's ``gaussian_filter``),
``C1 = (0.01 * 255)**2``, ``C2 = (0.03 * 255)**2``, population (not sample) covariances::

    S = (2 ux uy + C1) (2 sxy + C2) / ((ux**2 + uy**2 + C1) (sx**2 + sy**2 + C2))

averaged over the pixels whose window lies inside the image (skimage filters with
reflected borders, then crops 5 pixels on every side, so the border never counts: the
valid area is ``(H - 10) x (W - 10)``), per channel, then over the three channels. The
corpus value is the mean over the pairs. Higher is better, 1 for identical images.

    >>> import torch
    >>> from skimage.metrics import structural_similarity
    >>> g = torch.Generator().manual_seed(0)
    >>> ref = torch.randint(0, 256, (3, 24, 32), dtype=torch.uint8, generator=g)
    >>> noise = torch.randint(-20, 21, ref.shape, generator=g)
    >>> noisy = (ref.short() + noise).clamp(0, 255).to(torch.uint8)
    >>> m = SSIM(device="cpu")
    >>> m.update([ref, noisy], [[ref], [ref]])
    >>> [round(v, 6) for v in m.compute(per_sample=True)["ssim"].per_sample]
    [1.0, 0.98728]
    >>> hwc = lambda t: t.permute(1, 2, 0).numpy()
    >>> round(float(structural_similarity(hwc(noisy), hwc(ref), gaussian_weights=True,
    ...       sigma=1.5, use_sample_covariance=False, channel_axis=-1, data_range=255)), 6)
    0.98728

Images smaller than 11 x 11 (the window does not fit; skimage raises an error) fail
with a reason: their per-sample value is ``None`` and they do not count in the mean.

Computation: float64 throughout. With 0-255 values ``E[x**2] - E[x]**2`` cancels about
9 of float32's 24 bits: skimage's own float32 path is off by up to ~7e-5 on 11-16 pixel
crops of real photographs (2e-7 on 256 x 256, where the errors average out). Four maps
are filtered: ``x``, ``y``, ``x**2 + y**2`` and ``x y`` (the variances' sum enters only
as a sum, which saves a pass; ``2 x y`` is twice the filtered ``x y``, exactly), only
over the valid area: since skimage crops the border, its reflected padding never
matters.

On the CPU each pair goes through one fused kernel (:mod:`._ssim_kernel`, compiled by
numba): per output row, the vertical pass of the four maps straight from the uint8 rows
(tap sums exact in integers), the horizontal pass over the valid columns only, then SSIM
and the row's sum, so the working set is a few rows and stays in the core's cache. Both
passes order the arithmetic as ``scipy.ndimage.correlate1d`` does for a symmetric window
(``w0 m[j]``, then ``+ (m[j - k] + m[j + k]) w_k`` for ``k = 5..1``; vertical first, as
``gaussian_filter``), without fast-math: the filtered ``x``, ``y`` and ``x y`` are
skimage's to the bit, and the values differ from skimage's by ~1e-14. The kernel is
compiled at the first CPU use in a process, with numba's on-disk cache (see
:mod:`._jit`). Measured: compiling costs ~0.8 s, a cache hit ~0.01 s, on top of importing
and starting numba (~0.7 s once per process, shared with PSNR's kernel).
Without numba (it comes with the ``image`` extra), the CPU runs the torch path below.

The torch path (CUDA, or the CPU without numba) runs the separable Gaussian as matrix
products with banded matrices: per strip of ``TILE[0]`` output rows, one product for the
vertical pass (a ``th x (th + 10)`` band) and one batched product for the horizontal
pass (tiles of ``TILE[1]`` output columns, each ``tw + 10`` input columns times a
``(tw + 10) x tw`` band), with the constants folded into the filtered maps
(``x**2 + y**2 + C1 + C2`` and ``2 x y + C1 + C2``: the weights sum to 1).

On the CPU each pair is a task of its own for a small pool of worker threads (option
``threads``, default torch's thread count; the kernel releases the GIL, and torch ops
there run single-threaded): on a busy machine this scales far better than torch's
intra-op threads, which wait for one another after every operation. So a pair's value
depends only on that pair: batches of 1, 7 or all pairs, in any order, merged or not,
give bit-identical per-sample values. On CUDA the pairs of one size go through together,
in chunks of up to ``CHUNK_PIXELS`` pixels (values may then differ from the CPU's in the
last bits).

Signature: window ``gaussian11``, ``sigma``, ``K1``, ``K2``, ``data_range`` and the torch
version. The device and thread count are not part of it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from functools import cache
from typing import Any

from genmetrics.metric import Option
from genmetrics.metrics.image._paired import (
    DEVICE_HELP,
    THREADS_HELP,
    Failed,
    MetricSpec,
    PairedImageMetric,
    cpu_array,
    cpu_map,
    size_groups,
)

__all__ = ["SSIM", "ssim_values", "gaussian_window", "SIGMA", "RADIUS", "K1", "K2",
           "DATA_RANGE"]

SIGMA = 1.5
TRUNCATE = 3.5  # skimage's choice with gaussian_weights=True: an 11-tap window at sigma 1.5
RADIUS = int(TRUNCATE * SIGMA + 0.5)  # 5, as scipy.ndimage rounds it
WINDOW = 2 * RADIUS + 1
K1, K2 = 0.01, 0.03
DATA_RANGE = 255.0
C1 = (K1 * DATA_RANGE) ** 2
C2 = (K2 * DATA_RANGE) ** 2
#: output rows and columns per tile of the banded matrix products, by device type
TILE = {"cpu": (24, 16), "cuda": (64, 64)}
#: pixels per image times pairs per chunk on CUDA; on the CPU every pair is a chunk of its own
#: (so that its value never depends on the other pairs of its batch)
CHUNK_PIXELS = 1 << 22
TOO_SMALL = (f"image smaller than {WINDOW}x{WINDOW} pixels: SSIM's {WINDOW}x{WINDOW} "
             "Gaussian window does not fit")


@cache
def gaussian_window() -> tuple[float, ...]:
    """The 1-D weights, exactly as ``scipy.ndimage.gaussian_filter(sigma=1.5, truncate=3.5)``.

    >>> w = gaussian_window()
    >>> len(w), round(sum(w), 12), round(w[RADIUS], 6)
    (11, 1.0, 0.266012)
    """
    import numpy as np

    k = np.arange(-RADIUS, RADIUS + 1)
    phi = np.exp(-0.5 / (SIGMA * SIGMA) * k**2)
    return tuple(float(v) for v in phi / phi.sum())


@cache
def _band(size: int, device: str) -> Any:
    """The ``(size + 10) x size`` matrix whose column ``j`` holds the window at rows
    ``j..j+10``: ``rows @ band`` filters ``size`` consecutive outputs."""
    import torch

    window = torch.tensor(gaussian_window(), dtype=torch.float64)
    band = torch.zeros(size + 2 * RADIUS, size, dtype=torch.float64)
    for j in range(size):
        band[j:j + WINDOW, j] = window
    return band.to(device)


def _split(length: int, tile: int) -> int:
    """Tile length: ``length`` outputs in ``ceil(length / tile)`` nearly equal tiles."""
    parts = -(-length // tile)
    return -(-length // parts)


_scratch = threading.local()


def _buffers(device: str, sizes: tuple[int, ...]) -> list[Any]:
    """Float64 work buffers for one chunk. On the CPU they are kept per thread and reused
    while the sizes stay the same (the pairs of a run mostly share one size): fresh
    multi-megabyte buffers would cost page faults on every pair. ``sizes[1]`` and
    ``sizes[2]`` are ``v_buf``'s body and its zeroed tail (see :func:`_ssim_chunk`)."""
    import torch

    cached = getattr(_scratch, "buffers", None)
    if cached is not None and cached[0] == (device, sizes):
        return cached[1]
    z_size, v_size, tail, o_size, ab_size = sizes
    make = functools.partial(torch.empty, dtype=torch.float64, device=device)
    v_buf = make(v_size + tail + 2 * RADIUS)
    v_buf[v_size:].zero_()
    buffers = [make(z_size), v_buf, make(o_size), make(ab_size), make(ab_size)]
    if device == "cpu":  # (CUDA has its own caching allocator; chunks there are large)
        _scratch.buffers = ((device, sizes), buffers)
    return buffers


def _ssim_chunk(x: Any, y: Any, tile_h: int, tile_w: int) -> Any:
    """Mean SSIM of each pair of ``n x 3 x H x W`` uint8 tensors (``H, W >= 11``) as an
    ``n`` float64 tensor, on their device.

    Strip by strip of ``th`` output rows: the four maps of the strip's ``th + 10`` input
    rows (``z``), the vertical pass (one product with a ``th x (th + 10)`` band: ``v``),
    the horizontal pass (one batched product: for each tile of ``tw`` output columns,
    ``tw + 10`` columns of every row of ``v`` times a ``(tw + 10) x tw`` band: ``o``),
    then SSIM and its sums down the columns.
    """
    import torch

    n, c, h, w = x.shape
    hv, wv = h - 2 * RADIUS, w - 2 * RADIUS  # the valid area
    p = n * c
    th, tw = _split(hv, tile_h), _split(wv, tile_w)
    tiles = -(-wv // tw)
    f64, dev = torch.float64, x.device
    span = th + 2 * RADIUS
    rows = th * 4 * p  # rows of v: (output row, map, image, channel)
    z, v_buf, o, a1, b1 = _buffers(str(dev), (span * 4 * p * w, rows * w, tiles * tw - w,
                                               rows * tiles * tw, th * p * wv))
    z = z.view(span, 4, n, c, w)
    z_flat = z.view(span, 4 * p * w)
    # the last column tile reads up to tiles * tw + 10 - w columns past a row's end; past
    # the last row, these are the zeroed tail of v_buf (values past the valid area are
    # never used)
    v = v_buf[:rows * w].view(th, 4 * p * w)
    v_tiles = v_buf.as_strided((tiles, rows, tw + 2 * RADIUS), (tw, w, 1))
    o_tiles = o.view(rows, tiles, tw).transpose(0, 1)  # the products write here directly
    o_maps = o.view(th, 4, p, tiles * tw)[..., :wv]
    a1, b1 = a1.view(th, p, wv), b1.view(th, p, wv)
    vert = _band(th, str(dev)).t()
    horiz = _band(tw, str(dev)).expand(tiles, tw + 2 * RADIUS, tw)
    c1 = torch.tensor(C1, dtype=f64, device=dev)
    c12 = torch.tensor(C1 + C2, dtype=f64, device=dev)
    xs, ys = x.permute(2, 0, 1, 3), y.permute(2, 0, 1, 3)  # (H, n, 3, W) views
    zx, zy, zsq, zxy = z.unbind(1)
    col_sums = torch.zeros(p, wv, dtype=f64, device=dev)
    for start in range(0, hv, th):
        top = min(start, hv - th)  # the last strip may overlap the one before
        skip, count = start - top, min(th, hv - start)
        zx.copy_(xs[top:top + span])
        zy.copy_(ys[top:top + span])
        torch.addcmul(c12, zx, zx, out=zsq)
        zsq.addcmul_(zy, zy)
        torch.addcmul(c12, zx, zy, value=2.0, out=zxy)
        torch.mm(vert, z_flat, out=v)
        torch.bmm(v_tiles, horiz, out=o_tiles)
        ux, uy, sq, xy = o_maps[skip:skip + count].unbind(1)  # (count, p, wv) each
        num, den = a1[:count], b1[:count]
        torch.addcmul(c1, ux, uy, value=2.0, out=num)  # 2 ux uy + C1
        torch.addcmul(c1, ux, ux, out=den)
        den.addcmul_(uy, uy)  # ux^2 + uy^2 + C1
        xy.sub_(num)  # 2 sxy + C2
        sq.sub_(den)  # sx^2 + sy^2 + C2
        num.mul_(xy)
        den.mul_(sq)
        num.div_(den)
        col_sums += num.sum(dim=0)
    return (col_sums.sum(dim=1) / (hv * wv)).view(n, c).mean(dim=1)


def _kernel() -> Any:
    """The compiled CPU kernel (:mod:`._ssim_kernel`), or None where numba is missing."""
    from genmetrics.metrics.image import _ssim_kernel

    return _ssim_kernel.compiled()


@cache
def _weights() -> Any:
    """The window's centre weight, then its weights at distance 1..5 (float64 array)."""
    import numpy as np

    return np.array(gaussian_window()[RADIUS:], dtype=np.float64)


def _chunks(groups: dict[tuple[int, int], list[int]], budget: int) -> list[list[int]]:
    """Runs of same-size pairs of at most ``budget`` pixels (at least one pair each)."""
    out = []
    for (h, w), indices in groups.items():
        per_chunk = max(1, budget // (h * w))
        out.extend(indices[i:i + per_chunk] for i in range(0, len(indices), per_chunk))
    return out


def ssim_values(samples: Sequence[Any], references: Sequence[Any], *, device: str = "cpu",
                threads: int = 0) -> list[float | Failed]:
    """SSIM of each ``samples[i]`` against ``references[i]`` (``3 x H x W`` uint8 tensors
    of the same size), as skimage's ``structural_similarity`` (see the module docstring).

    ``device``: a torch device name (not ``auto``). ``threads``: CPU worker threads
    (0: ``torch.get_num_threads()``).

    >>> import torch
    >>> a = torch.arange(3 * 12 * 12, dtype=torch.uint8).view(3, 12, 12)
    >>> same, tiny = ssim_values([a, a[:, :5]], [a, a[:, :5]])
    >>> round(same, 12), tiny.reason == TOO_SMALL
    (1.0, True)
    """
    import torch

    out: list[float | Failed | None] = [None] * len(samples)
    groups: dict[tuple[int, int], list[int]] = {}
    for size, indices in size_groups(samples).items():
        if min(size) < WINDOW:
            for i in indices:
                out[i] = Failed(TOO_SMALL)
        else:
            groups[size] = indices
    kind = torch.device(device).type
    tile = TILE.get(kind, TILE["cuda"])
    chunks = _chunks(groups, 1 if kind == "cpu" else CHUNK_PIXELS)

    kernel = _kernel() if kind == "cpu" and chunks else None
    weights = _weights()

    def run(chunk: list[int]) -> tuple[list[int], list[float]]:
        if kernel is not None:  # one pair: the compiled kernel, without the GIL
            x, y = (cpu_array(t) for t in (samples[chunk[0]], references[chunk[0]]))
            return chunk, [kernel(x, y, weights, C1, C2)]
        with torch.inference_mode():
            x = torch.stack([samples[i] for i in chunk]).to(device)
            y = torch.stack([references[i] for i in chunk]).to(device)
            return chunk, _ssim_chunk(x, y, *tile).tolist()

    if not chunks:
        results: Any = ()
    elif kind != "cpu":
        results = map(run, chunks)
    else:
        results = cpu_map(run, chunks, threads)
    for chunk, values in results:
        for i, value in zip(chunk, values, strict=True):
            out[i] = value
    return out  # type: ignore[return-value]


class SSIM(PairedImageMetric):
    spec = MetricSpec(
        name="ssim",
        modality="image",
        kind="paired",
        higher_is_better=True,
        unit="-",
        description="Structural similarity of each sample to its reference (11x11 Gaussian "
        "window, sigma 1.5, K1 0.01, K2 0.03, data range 255), mean over pixels and RGB "
        "channels, as scikit-image structural_similarity(gaussian_weights=True, "
        "use_sample_covariance=False).",
        value_range=(-1.0, 1.0),
        options=(
            Option("device", "auto", DEVICE_HELP, affects_values=False),
            Option("threads", 0, THREADS_HELP, type=int, affects_values=False),
        ),
    )

    def score_pairs(self, samples: Sequence[Any], references: Sequence[Any]
                    ) -> list[float | Failed]:
        return ssim_values(samples, references, device=self.device(),
                           threads=self.options["threads"])

    def signature_extra(self) -> dict[str, Any]:
        return {"window": f"gaussian{WINDOW}", "sigma": SIGMA, "K1": K1, "K2": K2,
                "data_range": int(DATA_RANGE)}
