"""The CPU kernel of :mod:`genmetrics.metrics.image.ssim`: one pair's SSIM in one fused pass.

:func:`pair_ssim` is plain Python, compiled by numba on first use (:func:`compiled`);
importing this module imports numpy only. See the SSIM module docstring for what it
computes and why it stays within ~1e-14 of scikit-image.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from genmetrics.metrics.image import _jit

#: the compiled function's type: (sample, reference, weights, C1, C2) -> mean SSIM
SIGNATURE = "float64(uint8[:, :, ::1], uint8[:, :, ::1], float64[::1], float64, float64)"
#: numba options: no fast-math (the arithmetic keeps its order, as scipy's), no GIL (the
#: CPU worker threads run pairs side by side), numpy's error model (no division checks,
#: which would stop the loops from being vectorised; the denominators are >= C1 * C2 > 0)
OPTIONS = {"nogil": True, "fastmath": False, "boundscheck": False, "error_model": "numpy"}


def pair_ssim(x: np.ndarray, y: np.ndarray, w: np.ndarray, c1: float, c2: float) -> float:
    """Mean SSIM over the channels of ``x`` and ``y`` (``C x H x W`` uint8, ``H, W >= 11``),
    each channel's mean taken over its valid ``(H - 10) x (W - 10)`` area.

    ``w``: the Gaussian's centre weight then the weights at distance 1..5. Per output row:
    the vertical pass of the four maps ``x``, ``y``, ``x**2 + y**2``, ``x y`` over all
    columns (tap sums exact in integers), then the horizontal pass over the valid columns
    and SSIM; both passes as ``scipy.ndimage.correlate1d`` orders a symmetric window's
    arithmetic: ``w0 m[j]``, then ``+ (m[j - k] + m[j + k]) w_k`` for ``k = 5..1``.

    >>> x = np.full((1, 11, 11), 7, np.uint8)
    >>> w = np.array([1.0, 0, 0, 0, 0, 0])
    >>> float(pair_ssim(x, x, w, 6.5025, 58.5225))
    1.0
    """
    nc, h, wd = x.shape
    hv = h - 10
    wv = wd - 10
    vx = np.empty(wd)
    vy = np.empty(wd)
    vs = np.empty(wd)
    vp = np.empty(wd)
    row = np.empty(wv)
    w0 = w[0]
    total = 0.0
    for c in range(nc):
        xc = x[c]
        yc = y[c]
        plane = 0.0
        for i in range(hv):
            r = i + 5
            for j in range(wd):  # vertical pass, from the uint8 rows
                a = np.int32(xc[r, j])
                b = np.int32(yc[r, j])
                sx = w0 * a
                sy = w0 * b
                ss = w0 * (a * a + b * b)
                sp = w0 * (a * b)
                for k in range(5, 0, -1):
                    a1 = np.int32(xc[r - k, j])
                    a2 = np.int32(xc[r + k, j])
                    b1 = np.int32(yc[r - k, j])
                    b2 = np.int32(yc[r + k, j])
                    wk = w[k]
                    sx += (a1 + a2) * wk
                    sy += (b1 + b2) * wk
                    ss += (a1 * a1 + b1 * b1 + a2 * a2 + b2 * b2) * wk
                    sp += (a1 * b1 + a2 * b2) * wk
                vx[j] = sx
                vy[j] = sy
                vs[j] = ss
                vp[j] = sp
            for j in range(wv):  # horizontal pass over the valid columns, then SSIM
                q = j + 5
                ux = w0 * vx[q]
                uy = w0 * vy[q]
                us = w0 * vs[q]
                up = w0 * vp[q]
                for k in range(5, 0, -1):
                    wk = w[k]
                    ux += (vx[q - k] + vx[q + k]) * wk
                    uy += (vy[q - k] + vy[q + k]) * wk
                    us += (vs[q - k] + vs[q + k]) * wk
                    up += (vp[q - k] + vp[q + k]) * wk
                uxy = ux * uy
                means = ux * ux + uy * uy
                num = (2.0 * uxy + c1) * (2.0 * (up - uxy) + c2)
                row[j] = num / ((means + c1) * ((us - means) + c2))
            t0 = 0.0
            t1 = 0.0
            t2 = 0.0
            t3 = 0.0
            j = 0
            while j + 4 <= wv:  # four running sums: no dependency chain on one register
                t0 += row[j]
                t1 += row[j + 1]
                t2 += row[j + 2]
                t3 += row[j + 3]
                j += 4
            while j < wv:
                t0 += row[j]
                j += 1
            plane += (t0 + t1) + (t2 + t3)
        total += plane / (hv * wv)
    return total / nc


def compiled() -> Callable[..., float] | None:
    """:func:`pair_ssim` compiled by numba for :data:`SIGNATURE`, or None without numba
    (see :func:`genmetrics.metrics.image._jit.compiled`).

    >>> kernel = compiled()
    >>> kernel is None or kernel is compiled()
    True
    """
    return _jit.compiled(pair_ssim, SIGNATURE, **OPTIONS)
