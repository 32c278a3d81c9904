"""Histograms of per-sample values as embedded PNGs (matplotlib's Agg canvas, no pyplot)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from genmetrics.report._html import data_uri, esc

COLORS = ("#3566c6", "#e0752d", "#2e9b5a", "#b03a8c", "#7a6a2d")


def finite(values: Sequence[float | None]) -> list[float]:
    """The finite numbers of ``values`` (``None``, NaN and infinities dropped).

        >>> finite([1.0, None, float("nan"), 2])
        [1.0, 2.0]
    """
    return [float(v) for v in values
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def _bins(values: list[float]) -> int:
    return max(5, min(30, math.ceil(math.sqrt(len(values))) + 2))


def histogram(title: str, series: Sequence[tuple[str, list[float]]],
              marks: Sequence[tuple[str, float | None]] = ()) -> str:
    """An ``<img>`` of the histogram(s) of ``series`` (label, values), overlaid on shared
    bins; ``marks`` draw dashed vertical lines (e.g. the scorecard's value)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    every = [v for _, values in series for v in values]
    low, high = min(every), max(every)
    if low == high:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, _bins(every) + 1)
    fig = Figure(figsize=(3.8, 2.3), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    several = len(series) > 1
    for i, (label, values) in enumerate(series):
        ax.hist(values, bins=edges, color=COLORS[i % len(COLORS)], alpha=0.55 if several else 0.85,
                label=f"{label} (n={len(values)})", edgecolor="white", linewidth=0.5)
    for i, (label, value) in enumerate(marks):
        if value is not None and math.isfinite(value):
            ax.axvline(value, color=COLORS[i % len(COLORS)] if several else "#b3261e",
                       linestyle="--", linewidth=1.2, label=label)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("samples", fontsize=8)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, frameon=False)
    fig.tight_layout(pad=0.4)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return f'<img src="{data_uri(buf.getvalue(), "image/png")}" alt="{esc(title)} histogram">'
