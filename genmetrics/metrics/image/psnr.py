"""PSNR of each sample against its reference, as scikit-image computes it.

Each pair's value is ``skimage.metrics.peak_signal_noise_ratio(reference, sample,
data_range=255)`` on the uint8 arrays::

    PSNR = 10 * log10(255**2 / MSE),   MSE = mean over all pixels and channels of (x - y)**2

in dB, higher is better; the corpus value is the mean of the per-pair values (not the
PSNR of the mean MSE). The squared error is summed exactly, as an integer (see
:func:`squared_error`), so the value equals skimage's to the last bit or so (skimage sums
the same integers in float64).

    >>> import torch
    >>> from skimage.metrics import peak_signal_noise_ratio
    >>> ref = torch.zeros(3, 4, 4, dtype=torch.uint8)
    >>> sample = ref.clone()
    >>> sample[0, 0, :2] = 255  # 2 of 48 values off by 255: MSE = 255**2 / 24
    >>> m = PSNR()
    >>> m.update([sample, ref], [[ref], [ref]])
    >>> r = m.compute(per_sample=True)["psnr"]
    >>> round(r.value, 6), r.per_sample[1], r.components["failed"][0]["reason"]
    (13.802112, None, 'identical images (PSNR is infinite)')
    >>> hwc = lambda t: t.permute(1, 2, 0).numpy()
    >>> round(float(peak_signal_noise_ratio(hwc(ref), hwc(sample), data_range=255)), 6)
    13.802112

**Identical images.** Their MSE is 0 and skimage returns ``inf`` (with a division
warning); one such pair would make the mean infinite. Such a pair is not scored: it
fails with the reason ``"identical images (PSNR is infinite)"``, its per-sample value is
``None`` and the mean is over the other pairs. (If every pair is identical, no value can
be given and the metric reports an error.) Compare the ``failed`` component's count
with ``n`` to see how many samples reproduced their reference exactly. Audio SNR and
SI-SNR follow the same rule: a pair without noise is infinite, so it fails with
``"identical signals (SNR is infinite)"`` rather than counting torchmetrics' eps-bound
~180 dB (see :mod:`genmetrics.metrics.audio.snr`).

Computation: on the CPU (the work is one pass over the pixels; a GPU would spend more
on the copy than on the arithmetic), each pair a task for the worker threads of option
``threads`` (see :func:`~genmetrics.metrics.image._paired.cpu_map`). With numba (the
``image`` extra) each pair is one pass of a compiled kernel that does not hold the GIL,
so the threads run side by side; starting numba costs ~0.7 s once per process (shared
with SSIM's kernel; see :mod:`._jit`). Without numba, numpy computes the same integers.
Per-sample values never depend on batching. Signature: ``data_range`` and the torch version.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from genmetrics.metric import Option
from genmetrics.metrics.image._paired import (
    THREADS_HELP,
    Failed,
    MetricSpec,
    PairedImageMetric,
    cpu_array,
    cpu_map,
    worker_count,
)

__all__ = ["PSNR", "psnr_values", "squared_error", "pair_squared_error", "IDENTICAL",
           "DATA_RANGE"]

DATA_RANGE = 255
IDENTICAL = "identical images (PSNR is infinite)"
_ROW = 256  # squares summed per float32 row: 256 * 255**2 < 2**24, so the sums are exact


def pair_squared_error(x: Any, y: Any) -> int:
    """The sum of ``(x - y)**2`` over two same-size 1-D uint8 arrays, in int64 (exact:
    at most ``2**63 / 255**2`` values). Plain Python, compiled by numba (:func:`_kernel`).

    >>> import numpy as np
    >>> int(pair_squared_error(np.array([0, 255, 3], np.uint8), np.array([255, 0, 1], np.uint8)))
    130054
    """
    total = 0
    for i in range(x.size):
        d = np.int32(x[i]) - np.int32(y[i])
        total += d * d
    return total


#: the compiled kernel's type and numba options (no GIL: worker threads run side by side)
KERNEL_SIGNATURE = "int64(uint8[::1], uint8[::1])"
KERNEL_OPTIONS = {"nogil": True, "boundscheck": False}


def _kernel() -> Any:
    """:func:`pair_squared_error` compiled (see :mod:`._jit`), or None where numba is missing."""
    from genmetrics.metrics.image import _jit

    return _jit.compiled(pair_squared_error, KERNEL_SIGNATURE, **KERNEL_OPTIONS)


def squared_error(sample: Any, reference: Any) -> int:
    """The exact sum of squared differences of two same-size uint8 tensors (or arrays).

    With numba (the ``image`` extra): the compiled :func:`pair_squared_error`, one pass
    without the GIL. Without it, numpy: ``|x - y|`` in uint8 (``max - min``), squared and
    summed in float32 ``_ROW`` values at a time (every partial sum is an integer below
    ``256 * 255**2 < 2**24``: exact in any order), those row sums added in float64
    (exact). Both give the same integer.

    >>> import torch
    >>> squared_error(torch.tensor([0, 255, 3], dtype=torch.uint8),
    ...               torch.tensor([255, 0, 1], dtype=torch.uint8))
    130054
    """
    a, b = cpu_array(sample).reshape(-1), cpu_array(reference).reshape(-1)
    kernel = _kernel()
    if kernel is not None:
        return int(kernel(a, b))
    diff = np.maximum(a, b)
    diff -= np.minimum(a, b)
    whole = diff.size // _ROW * _ROW
    rows = diff[:whole].reshape(-1, _ROW).astype(np.float32)
    total = int(np.einsum("ij,ij->i", rows, rows).sum(dtype=np.float64))
    tail = diff[whole:].astype(np.int64)
    return total + int(tail @ tail)


def psnr_values(samples: Sequence[Any], references: Sequence[Any], *,
                threads: int = 0) -> list[float | Failed]:
    """PSNR in dB of each ``samples[i]`` against ``references[i]`` (same-size uint8 tensors),
    or :class:`Failed` for identical images; ``threads``: CPU worker threads (0: torch's).

    >>> import torch
    >>> a = torch.zeros(3, 2, 2, dtype=torch.uint8)
    >>> close, same = psnr_values([a + 1, a], [a, a])
    >>> round(close, 6), same
    (48.130804, Failed(reason='identical images (PSNR is infinite)'))
    """
    import torch

    def one(i: int) -> float | Failed:
        sse = squared_error(samples[i], references[i])
        if sse == 0:
            return Failed(IDENTICAL)
        mse = sse / samples[i].numel()
        return 10.0 * math.log10(DATA_RANGE**2 / mse)

    def block(indices: range) -> list[float | Failed]:
        with torch.inference_mode():
            return [one(i) for i in indices]

    # one block of consecutive pairs per worker: a task costs more than a pair's arithmetic
    size = max(1, -(-len(samples) // worker_count(threads)))
    blocks = [range(i, min(i + size, len(samples))) for i in range(0, len(samples), size)]
    return [value for values in cpu_map(block, blocks, threads) for value in values]


class PSNR(PairedImageMetric):
    spec = MetricSpec(
        name="psnr",
        modality="image",
        kind="paired",
        higher_is_better=True,
        unit="dB",
        description="Peak signal-to-noise ratio 10*log10(255^2 / MSE) of each sample against "
        "its reference (MSE over all pixels and RGB channels), mean over the pairs, as "
        "scikit-image peak_signal_noise_ratio(data_range=255); identical pairs (infinite "
        "PSNR) are left out with a reason.",
        value_range=(0.0, None),
        options=(Option("threads", 0, THREADS_HELP, type=int, affects_values=False),),
    )

    def score_pairs(self, samples: Sequence[Any], references: Sequence[Any]
                    ) -> list[float | Failed]:
        return psnr_values(samples, references, threads=self.options["threads"])

    def signature_extra(self) -> dict[str, Any]:
        return {"data_range": DATA_RANGE}
