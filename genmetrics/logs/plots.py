"""One PNG per series (matplotlib's Agg canvas, no pyplot state), annotated with what the
checks found: the fitted line over the last window, spikes, non-finite steps."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from genmetrics.errors import InputError


def plot_name(name: str, taken: set[str]) -> str:
    """A file name for series ``name``: unsafe characters replaced, made unique in ``taken``.

    >>> taken = set()
    >>> plot_name("train/loss", taken), plot_name("train:loss", taken)
    ('train_loss.png', 'train_loss-2.png')
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "series"
    candidate, n = f"{stem}.png", 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{stem}-{n}.png"
    taken.add(candidate.lower())
    return candidate


def plot_series(name: str, steps: np.ndarray, values: np.ndarray, out: Path, *,
                role: str | None = None, findings: Iterable[Mapping[str, Any]] = (),
                context: tuple[str, np.ndarray, np.ndarray] | None = None) -> Path:
    """Draw one series to ``out`` (PNG, written atomically); returns ``out``. ``context``:
    another series drawn faintly behind it (the train loss behind the validation loss).

    >>> import tempfile
    >>> p = plot_series("loss", np.arange(5.0), np.ones(5), Path(tempfile.mkdtemp()) / "a.png")
    >>> p.read_bytes()[:4] == b"\\x89PNG"
    True
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    finite = np.isfinite(values)
    if context is not None:
        other, cs, cv = context
        ok = np.isfinite(cv)
        ax.plot(cs[ok], cv[ok], lw=0.8, color="#999999", alpha=0.7, label=other)
    ax.plot(steps[finite], values[finite], lw=1, color="#1f77b4", label=name,
            marker="o" if finite.sum() <= 60 else None, ms=3)
    verdicts = []
    for f in findings:
        verdicts.append(f"{f['check']}: {f['verdict']}")
        stats = f.get("statistics", {})
        if f["check"].endswith("loss trend") and "slope" in stats and "start" in stats:
            xs = np.array([stats["start"], stats["end"]], dtype=float)
            ax.axvspan(xs[0], xs[1], color="#dddddd", alpha=0.5, lw=0)
            ax.plot(xs, stats["intercept"] + stats["slope"] * xs, color="#d62728", lw=2,
                    label=f"last-window fit ({f['verdict']})")
        elif f["check"] == "gradient spikes" and f.get("steps"):
            marks = np.isin(steps, np.array(f["steps"], dtype=float)) & finite
            ax.scatter(steps[marks], values[marks], color="#d62728", s=18, zorder=3,
                       label="spikes")
    for i, s in enumerate(steps[~finite]):
        ax.axvline(s, color="#d62728", ls=":", lw=0.8, label="non-finite" if i == 0 else None)
    positive = finite & (values > 0)
    if role == "grad_norm" and positive.any() and positive.sum() == finite.sum():
        lo, hi = values[positive].min(), values[positive].max()
        if hi / lo > 20:
            ax.set_yscale("log")
    title = name + (f"  [{role.replace('_', ' ')}]" if role else "")
    ax.set_title(title, fontsize=10)
    if verdicts:
        ax.text(0.01, 0.98, "\n".join(verdicts), transform=ax.transAxes, va="top",
                fontsize=8, color="#444444",
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    if len(ax.get_legend_handles_labels()[0]) > 1:
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format="png")
        os.replace(tmp, out)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise InputError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out
