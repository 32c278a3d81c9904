"""The part every paired metric shares (audio SNR/PESQ/MCD/STOI, image SSIM/PSNR): one
value per pair, and the corpus value their mean.

``score_pairs`` returns, per pair, a float or a :class:`Failed` with the reason. Failed
pairs never abort the run: their per-sample value is ``None`` (``null`` in the
scorecard), they are listed under the component ``failed`` with the reason, and the
corpus value is the mean over the scored pairs (``math.fsum``: independent of order and
batching). Bootstrap rows are ``[value, 1]`` per scored pair and ``[0, 0]`` otherwise.

The state is one float64 per pair (NaN for a failed pair; a scored value is always
finite) and, for the failed pairs only, their reasons in order: the k-th NaN's reason is
``reasons[k]``, so both fields concatenate (``"cat"``) across batches and processes.

    >>> class Half(PerPairMean):
    ...     spec = MetricSpec(name="half", modality="text", kind="paired",
    ...                       higher_is_better=True, unit="-")
    ...     def update(self, samples, references=None):
    ...         self.record([x / 2 if x else Failed("zero") for x in samples])
    >>> m = Half()
    >>> m.update([2, 0, 4])
    >>> r = m.compute(per_sample=True)["half"]
    >>> r.value, r.per_sample, r.components["failed"]
    (1.5, [1.0, None, 2.0], [{'index': 1, 'reason': 'zero'}])
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from genmetrics.errors import MetricError
from genmetrics.metric import Metric, MetricResult, MetricSpec

__all__ = ["Failed", "PerPairMean", "MetricSpec"]


@dataclass(frozen=True)
class Failed:
    """A pair the metric could not score, and why."""

    reason: str


class PerPairMean(Metric):
    """Base class: per-pair values (or failures) kept in order; their mean is the value."""

    # per pair: the value, or NaN; per failed pair, in order: the reason
    state_reductions = {"values": "cat", "reasons": "cat"}
    state_dtypes = {"values": "float64"}
    sample_fields, reason_fields = ("values",), ("reasons",)  # slices: see restricted()
    _device: str | None = None  # option "device", resolved on first use

    def device(self) -> str:
        """The torch device of option ``device`` (``auto`` resolved once, on first use;
        ``cpu`` for metrics without the option)."""
        if self._device is None:
            from genmetrics.features.causal_lm import resolve_device

            self._device = resolve_device(self.options.get("device", "cpu"))
        return self._device

    def record(self, outcomes: Iterable[float | Failed]) -> None:
        """Append each pair's value, or its failure (a non-finite value is a failure)."""
        values: list[float] = []
        for out in outcomes:
            if isinstance(out, Failed):
                values.append(math.nan)
                self.state["reasons"].append(out.reason)
            elif not math.isfinite(out):
                values.append(math.nan)
                self.state["reasons"].append(f"value is {out}")
            else:
                values.append(float(out))
        self.state["values"].append(values)

    def failed_masks(self) -> dict[str, Any]:
        return {"reasons": self._values()[1]}

    def _values(self) -> tuple[Any, Any]:
        """The per-pair values (float64, NaN where failed) and the mask of failed pairs."""
        import numpy as np

        values = self.state["values"].array()
        return values, np.isnan(values)

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        import numpy as np

        values, failed_mask = self._values()
        reasons = self.state["reasons"]
        scored = values[~failed_mask].tolist()
        if not scored:
            if len(values):
                raise MetricError(f"{self.spec.name}: none of the {len(values)} pairs could be "
                                  f"scored (first reason: {reasons[0]})")
            self.require_samples(0)
        components: dict[str, Any] = {}
        failed_at = np.flatnonzero(failed_mask).tolist()
        failed = [{"index": i, "reason": r} for i, r in zip(failed_at, reasons, strict=True)]
        if failed:
            components["failed"] = failed
        per_pair: list[float | None] | None = None
        if per_sample:
            per_pair = values.tolist()
            for i in failed_at:
                per_pair[i] = None
        return {self.spec.name: self.result(
            math.fsum(scored) / len(scored), n=len(scored), components=components,
            per_sample=per_pair, **self.signature_extra())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        # older states kept a reason or None for every pair (and None for a failed value)
        self.state["reasons"] = [r for r in self.state["reasons"] if r is not None]

    def signature_extra(self) -> dict[str, Any]:
        """Fields this metric adds to its signature (e.g. a rate or its constants)."""
        return {}

    def bootstrap_rows(self) -> dict[str, Any]:
        import numpy as np

        values, failed = self._values()
        rows = np.column_stack([np.where(failed, 0.0, values), (~failed).astype(np.float64)])
        return {self.spec.name: rows.reshape(-1, 2)}

    def value_from_totals(self, result: str, totals: Any, n: int) -> Any:
        import numpy as np

        with np.errstate(divide="ignore", invalid="ignore"):
            return totals[:, 0] / totals[:, 1]
