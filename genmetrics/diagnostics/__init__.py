"""Failure-mode diagnostics: cheap checks run on the samples while they are scored.

A metric averages; a diagnostic points at samples. Each modality has a collector
(:func:`collector`) that the runner gives every batch of scored samples (skipped inputs
and the reference distribution are not given). It keeps per-sample scalars and 8-byte
hashes, never the samples. :meth:`Diagnostics.result` returns one entry per diagnostic::

    {"value": float,          # the set's figure (for per-sample checks: the mean)
     "threshold": float, "direction": "above" | "below",  # a value past it is flagged
     "scope": "sample" | "set",  # what the threshold applies to
     "n": int,                # samples measured
     "alert": bool,           # something is flagged (a sample, or the set's value)
     "flagged": [{"id": ..., "value": ...}, ...],  # the worst 50, worst first
     "flagged_count": int,    # all of them
     "description": str}

Text: :mod:`genmetrics.diagnostics.text`; images: :mod:`genmetrics.diagnostics.image`;
audio: :mod:`genmetrics.diagnostics.audio`.

    >>> from genmetrics.io.text import TextPair
    >>> diag = collector("text")
    >>> diag.update([TextPair("a", "the cat sat on the mat", []), TextPair("b", "", [])])
    >>> report = diag.result()
    >>> report["short_outputs"]["flagged"]
    [{'id': 'b', 'value': 0.0}]
    >>> summary(report)
    'diagnostics: short_outputs 1 sample(s) (see the scorecard\\'s "diagnostics")'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: flagged samples listed per diagnostic (all are counted)
FLAGGED_LIMIT = 50
ABOVE, BELOW = "above", "below"


def _number(value: float) -> float:
    """A float for the scorecard: six significant digits (ratios can be tiny)."""
    return float(f"{float(value):.6g}")


def crosses(value: float, threshold: float, direction: str) -> bool:
    """Whether ``value`` is past ``threshold`` (strictly) in ``direction``.

    >>> crosses(0.5, 0.3, "above"), crosses(0.5, 0.3, "below")
    (True, False)
    """
    return value > threshold if direction == ABOVE else value < threshold


@dataclass
class SampleCheck:
    """A per-sample statistic with a threshold: its running mean, how many samples cross
    the threshold and the :data:`FLAGGED_LIMIT` worst of them (worst first, then by id).

    >>> check = SampleCheck(0.3, "above", "repeats")
    >>> for ident, value in [("a", 0.1), ("b", 0.9), ("c", 0.5)]:
    ...     check.add(ident, value)
    >>> entry = check.entry()
    >>> entry["value"], entry["flagged_count"], [f["id"] for f in entry["flagged"]]
    (0.5, 2, ['b', 'c'])
    """

    threshold: float
    direction: str
    description: str
    limit: int = FLAGGED_LIMIT
    total: float = 0.0
    n: int = 0
    flagged_count: int = 0
    worst: list[dict[str, Any]] = field(default_factory=list)

    def add(self, ident: str, value: float, flagged: bool | None = None,
            **extra: Any) -> None:
        """Count one sample's ``value``; ``flagged`` overrides the threshold test; ``extra``
        goes into its flagged entry."""
        self.total += value
        self.n += 1
        if flagged is None:
            flagged = crosses(value, self.threshold, self.direction)
        if flagged:
            self.flagged_count += 1
            self.worst.append({"id": ident, "value": _number(value), **extra})
            if len(self.worst) > 4 * self.limit:
                self._trim()

    def add_many(self, idents: Sequence[str], values: Any, flagged: Any = None) -> None:
        """:meth:`add` for a batch: ``values`` (and ``flagged``, if given) are arrays."""
        import numpy as np

        values = np.asarray(values, dtype=np.float64)
        self.total += float(values.sum())
        self.n += values.size
        if flagged is None:
            flagged = values > self.threshold if self.direction == ABOVE else (
                values < self.threshold)
        for index in np.flatnonzero(flagged):
            self.flag(idents[index], float(values[index]))

    def flag(self, ident: str, value: float, **extra: Any) -> None:
        """Flag a sample already counted in ``n`` (checks decided over the whole set)."""
        self.flagged_count += 1
        self.worst.append({"id": ident, "value": _number(value), **extra})
        if len(self.worst) > 4 * self.limit:
            self._trim()

    def _trim(self) -> None:
        sign = -1.0 if self.direction == ABOVE else 1.0
        self.worst.sort(key=lambda f: (sign * f["value"], f["id"]))
        del self.worst[self.limit:]

    def merge(self, other: SampleCheck) -> None:
        """Add another process's share of the samples."""
        self.total += other.total
        self.n += other.n
        self.flagged_count += other.flagged_count
        self.worst.extend(other.worst)
        self._trim()

    def entry(self, value: float | None = None) -> dict[str, Any]:
        """The scorecard entry; ``value`` defaults to the mean of the samples' values."""
        self._trim()
        mean = self.total / self.n if self.n else 0.0
        return {"value": _number(mean if value is None else value),
                "threshold": _number(self.threshold), "direction": self.direction,
                "scope": "sample", "n": self.n, "alert": self.flagged_count > 0,
                "flagged": list(self.worst), "flagged_count": self.flagged_count,
                "description": self.description}


def set_entry(value: float, threshold: float, direction: str, n: int, description: str,
              **extra: Any) -> dict[str, Any]:
    """The entry of a check of the whole set (e.g. distinct-2): nothing listed per sample.

    >>> set_entry(0.02, 0.05, "below", 10, "distinct bigrams")["alert"]
    True
    """
    return {"value": _number(value), "threshold": _number(threshold), "direction": direction,
            "scope": "set", "n": n, "alert": crosses(value, threshold, direction),
            "flagged": [], "flagged_count": 0, "description": description,
            **{k: _number(v) for k, v in extra.items()}}


class Diagnostics:
    """The collector of one modality: :meth:`update` per batch, :meth:`result` at the end.

    ``notes`` lists diagnostics that could not run (e.g. a missing optional package);
    the runner puts them in the scorecard's warnings.
    """

    modality = ""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.stopped = False  # an unexpected error: no diagnostics, a note says why

    def feed(self, items: Sequence[Any]) -> None:
        """:meth:`update`, except that an unexpected error stops the diagnostics (noted)
        instead of the run: they must never cost a scorecard."""
        if self.stopped:
            return
        try:
            self.update(items)
        except Exception as exc:  # recorded, never raised
            self.stopped = True
            self.notes.append(f"diagnostics stopped by an error: {type(exc).__name__}: {exc}")

    def report(self) -> dict[str, dict[str, Any]]:
        """:meth:`result`, or nothing when the diagnostics were stopped (see ``notes``)."""
        if self.stopped:
            return {}
        try:
            return self.result()
        except Exception as exc:  # recorded, never raised
            self.stopped = True
            self.notes.append(f"diagnostics stopped by an error: {type(exc).__name__}: {exc}")
            return {}

    def update(self, items: Sequence[Any]) -> None:
        """Measure a batch of scored items (``TextPair``, ``ImageItem`` or ``AudioPair``)."""
        raise NotImplementedError

    def merge(self, other: Diagnostics) -> None:
        """Add the state of another process's collector (torchrun: rank order)."""
        raise NotImplementedError

    def result(self) -> dict[str, dict[str, Any]]:
        """One entry per diagnostic (see the module docstring)."""
        raise NotImplementedError


def collector(modality: str, **thresholds: float) -> Diagnostics:
    """The diagnostics collector of ``modality``; keyword arguments override thresholds
    (see each module's ``THRESHOLDS``).

    >>> collector("audio", clipping_ratio=0.01).thresholds["clipping_ratio"]
    0.01
    """
    if modality == "text":
        from genmetrics.diagnostics.text import TextDiagnostics

        return TextDiagnostics(**thresholds)
    if modality == "image":
        from genmetrics.diagnostics.image import ImageDiagnostics

        return ImageDiagnostics(**thresholds)
    if modality == "audio":
        from genmetrics.diagnostics.audio import AudioDiagnostics

        return AudioDiagnostics(**thresholds)
    from genmetrics.errors import UsageError

    raise UsageError(f"no diagnostics for modality {modality!r}")


def combine(parts: Sequence[Diagnostics]) -> Diagnostics:
    """One collector holding every part's samples, in order (the first is changed)."""
    first = parts[0]
    for part in parts[1:]:
        if part.stopped:
            first.stopped = True
            first.notes.extend(n for n in part.notes if n not in first.notes)
        if not first.stopped:
            first.merge(part)
    return first


def checked_thresholds(defaults: dict[str, float], given: dict[str, float]) -> dict[str, float]:
    """``defaults`` updated by ``given``; an unknown name is a :class:`UsageError`."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        from genmetrics.errors import UsageError

        raise UsageError(f"unknown diagnostic threshold(s): {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(defaults))}")
    return {**defaults, **{k: float(v) for k, v in given.items()}}


def summary(diagnostics: dict[str, dict[str, Any]] | None) -> str | None:
    """One line naming what is flagged, or None when nothing is."""
    if not diagnostics:
        return None
    parts = []
    for name, entry in diagnostics.items():
        if not entry.get("alert"):
            continue
        if entry.get("scope") == "set":
            sign = ">" if entry["direction"] == ABOVE else "<"
            parts.append(f"{name} {entry['value']:.3g} {sign} {entry['threshold']:.3g}")
        else:
            parts.append(f"{name} {entry['flagged_count']} sample(s)")
    if not parts:
        return None
    return f"diagnostics: {', '.join(parts)} (see the scorecard's \"diagnostics\")"


__all__ = ["Diagnostics", "SampleCheck", "collector", "combine", "set_entry", "summary",
           "FLAGGED_LIMIT"]
