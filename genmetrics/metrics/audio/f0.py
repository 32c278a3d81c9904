"""F0 RMSE (cents) and voiced/unvoiced error of a clip against its reference, WORLD F0
aligned by MCD's DTW path: what voice-conversion papers report beside MCD.

Per pair (sample ``s``, reference ``r``):

1. **Alignment**: exactly the DTW path MCD scores (:meth:`MCD.alignments
   <genmetrics.metrics.audio.mcd.MCD.alignments>`, default settings: both clips at the
   lower of their two rates, peak-normalised, exact DTW on 20-band log-mel frames of
   32 ms every 8 ms), ``P = [(i_1, j_1), ..., (i_L, j_L)]``. Aligning F0 tracks with the
   DTW path of spectral features, not of F0 itself, is the convention of voice-conversion
   evaluations (e.g. ESPnet's ``utils/evaluate_f0.py``: DTW on mel-cepstra, the path
   applied to F0).
2. **F0**: WORLD (``pyworld``) on each prepared waveform, ``f0_method`` ``harvest``
   (default; Morise 2017, robust) or ``dio`` (Dio refined by StoneMask, faster), F0 range
   ``f0_floor``-``f0_ceil`` Hz (WORLD's defaults, 71-800), frame period = MCD's hop
   (8 ms at 16 kHz; ``hop / rate`` s exactly). WORLD frame ``t`` is centred at
   ``t * hop``; MCD frame ``k`` spans ``[k * hop, k * hop + win)``, so it takes WORLD frame
   ``k + d`` with ``d = round(win / (2 hop))`` (2 by default). ``f = 0`` is unvoiced.
3. With ``a_l = f_s[i_l + d]``, ``b_l = f_r[j_l + d]`` and ``V = {l : a_l > 0 and
   b_l > 0}`` (frames voiced on both sides)::

       f0_rmse   = sqrt( 1/|V| * sum_{l in V} (1200 * log2(a_l / b_l))^2 )     [cents]
       vuv_error = 1/L * #{l : (a_l > 0) xor (b_l > 0)}                       [0-1]

   F0 RMSE over the frames voiced in both and the V/UV decision error over all frames
   is the convention of statistical parametric synthesis and VC evaluations (Merlin: Wu,
   Watts & King, SSW 2016, which reports F0 RMSE in Hz and V/UV error in %; ESPnet's
   log-F0 RMSE). Here the F0 error is in cents (``1200 log2``: log-F0 RMSE times
   ``1200 / ln 2``) rather than Hz, so that it does not depend on the speaker's register:
   a +100 cent pitch shift gives about 100.

The corpus values are the means over the pairs (``math.fsum``), as MCD's. Both lower is
better, 0 for a clip against itself.

**Bad input** (the pair named in ``failed``; the run goes on): whatever MCD cannot align
(a silent clip, a clip of one window or less); for ``f0_rmse`` only, a pair with no frame
voiced on both sides (``vuv_error`` is still defined).

    >>> import numpy as np
    >>> from genmetrics.io.audio import AudioClip
    >>> t = np.arange(16000) / 16000
    >>> buzz = sum(np.sin(2 * np.pi * 150 * h * t) / h for h in range(1, 20))  # 150 Hz
    >>> clip = AudioClip("a", 0.1 * buzz, 16000)
    >>> m = F0RMSE(device="cpu")
    >>> m.update([clip], [[clip]])
    >>> r = m.compute()
    >>> r["f0_rmse"].value, r["vuv_error"].value
    (0.0, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from genmetrics.errors import MetricError, MetricUnavailable, UsageError
from genmetrics.io.audio import AudioClip
from genmetrics.metric import Metric, MetricResult, MetricSpec, Option, library_version
from genmetrics.metrics._per_pair import Failed

__all__ = ["F0RMSE", "world_f0", "f0_errors"]

OUTPUTS = ("f0_rmse", "vuv_error")


def _pyworld() -> Any:
    """The ``pyworld`` module; :class:`MetricUnavailable` naming the extra without it."""
    import warnings

    try:
        with warnings.catch_warnings():  # pyworld 0.3.5 imports the deprecated pkg_resources
            warnings.simplefilter("ignore", UserWarning)
            import pyworld
    except ImportError as exc:
        raise MetricUnavailable(f"pyworld is not installed ({exc}): pip install "
                                "'genmetrics[tts]'") from None
    return pyworld


def world_f0(wave: np.ndarray, rate: int, frame_period_ms: float, method: str = "harvest",
             f0_floor: float = 71.0, f0_ceil: float = 800.0) -> np.ndarray:
    """WORLD F0 (Hz, 0 = unvoiced) every ``frame_period_ms``: harvest, or dio + stonemask."""
    pyworld = _pyworld()
    x = np.ascontiguousarray(wave, dtype=np.float64)
    if method == "harvest":
        f0, _ = pyworld.harvest(x, rate, f0_floor=f0_floor, f0_ceil=f0_ceil,
                                frame_period=frame_period_ms)
        return f0
    f0, t = pyworld.dio(x, rate, f0_floor=f0_floor, f0_ceil=f0_ceil,
                        frame_period=frame_period_ms)
    return pyworld.stonemask(x, f0, t, rate)


def f0_errors(f0_sample: np.ndarray, f0_reference: np.ndarray, path: np.ndarray,
              offset: int) -> tuple[float | Failed, float]:
    """``(f0_rmse in cents, or why not; vuv_error)`` of two F0 tracks along ``path``.

    >>> f0_errors(np.array([0, 200.0, 200]), np.array([0, 0, 100.0]),
    ...           np.array([[0, 0], [1, 1], [2, 2]]), 0)
    (1200.0, 0.3333333333333333)
    """
    a = f0_sample[np.minimum(path[:, 0] + offset, len(f0_sample) - 1)]
    b = f0_reference[np.minimum(path[:, 1] + offset, len(f0_reference) - 1)]
    va, vb = a > 0, b > 0
    vuv = float(np.count_nonzero(va != vb) / len(path))
    both = va & vb
    if not both.any():
        return Failed("no frame is voiced in both clips: F0 RMSE undefined"), vuv
    cents = 1200.0 * np.log2(a[both] / b[both])
    return float(np.sqrt(np.mean(cents * cents))), vuv


class F0RMSE(Metric):
    """F0 RMSE in cents and V/UV error (WORLD F0, MCD's DTW path); see the module doc."""

    spec = MetricSpec(
        name="f0_rmse",
        modality="audio",
        kind="paired",
        higher_is_better=False,
        unit="cents",
        value_range=(0.0, None),
        description="F0 RMSE in cents over frames voiced in both, and the V/UV error rate "
        "(vuv_error); WORLD F0 aligned by MCD's DTW path.",
        options=(
            Option("f0_method", "harvest", "WORLD F0 estimator: harvest, or dio (refined "
                   "with stonemask)", choices=("harvest", "dio")),
            Option("f0_floor", 71.0, "lowest F0 in Hz (WORLD's default)", type=float),
            Option("f0_ceil", 800.0, "highest F0 in Hz (WORLD's default)", type=float),
            Option("device", "auto", "device of the MCD features that give the alignment: "
                   "auto, cpu, cuda, cuda:N", affects_values=False),
        ),
        outputs=OUTPUTS,
        default=False,  # opt-in (--metrics f0_rmse): WORLD harvest costs ~0.2 s CPU per s
    )
    # per pair: f0_rmse, vuv_error (NaN where failed); per failed value, in order: why
    state_reductions = {"scores": "cat", "reasons_f0_rmse": "cat", "reasons_vuv_error": "cat"}
    sample_fields, reason_fields = ("scores",), ("reasons_f0_rmse", "reasons_vuv_error")
    state_dtypes = {"scores": "float64"}
    merge_ignores = frozenset({"device"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if not 0 < self.options["f0_floor"] < self.options["f0_ceil"]:
            raise UsageError("f0_rmse: need 0 < f0_floor < f0_ceil")
        from genmetrics.metrics.audio.mcd import MCD

        self._mcd = MCD(device=self.options["device"])

    def preflight(self) -> None:
        _pyworld()

    def update(self, samples: Sequence[AudioClip],
               references: Sequence[Sequence[AudioClip]] | None = None) -> None:
        if references is None or len(references) != len(samples):
            raise UsageError("f0_rmse needs one reference clip per sample")
        if any(len(r) != 1 for r in references):
            raise UsageError("f0_rmse takes exactly one reference per sample")
        if not samples:
            return
        o = self.options
        rows = []
        for found in self._mcd.alignments(samples, [r[0] for r in references]):
            if isinstance(found, Failed):
                rmse: float | Failed = found
                vuv: float | Failed = found
            else:
                path, a, b, setup = found
                period = 1000.0 * setup.hop / setup.rate
                f0 = [world_f0(w, setup.rate, period, o["f0_method"], o["f0_floor"],
                               o["f0_ceil"]) for w in (a, b)]
                rmse, vuv = f0_errors(f0[0], f0[1], path, round(setup.win / (2 * setup.hop)))
            row = []
            for name, value in zip(OUTPUTS, (rmse, vuv), strict=True):
                if isinstance(value, Failed):
                    self.state[f"reasons_{name}"].append(value.reason)
                    row.append(math.nan)
                else:
                    row.append(value)
            rows.append(row)
        self.state["scores"].append(rows)

    def failed_masks(self) -> dict[str, Any]:
        scores = self._scores()
        return {f"reasons_{name}": np.isnan(scores[:, k]) for k, name in enumerate(OUTPUTS)}

    def _scores(self) -> np.ndarray:
        return self.state["scores"].array().reshape(-1, 2)

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        scores = self._scores()
        self.require_samples(len(scores))
        results = {}
        for k, name in enumerate(OUTPUTS):
            column = scores[:, k]
            failed = np.isnan(column)
            reasons = self.state[f"reasons_{name}"]
            kept = column[~failed].tolist()
            if not kept:
                raise MetricError(f"{name}: none of the {len(column)} pairs could be scored "
                                  f"(first reason: {reasons[0]})")
            components: dict[str, Any] = {}
            if failed.any():
                components["failed"] = [{"index": i, "reason": r} for i, r in zip(
                    np.flatnonzero(failed).tolist(), reasons, strict=True)]
            values: list[float | None] | None = None
            if per_sample:
                values = [None if f else v for v, f in zip(column.tolist(), failed.tolist(),
                                                            strict=True)]
            results[name] = self.result(math.fsum(kept) / len(kept), n=len(kept), name=name,
                                        components=components, per_sample=values)
        results["vuv_error"].unit = "fraction of frames, 0-1"
        return results

    def signature(self, **extra: Any) -> dict[str, Any]:
        sig = super().signature(**extra)
        sig["align"] = "mcd-dtw-logmel"  # MCD's defaults: exact DTW, 32 ms / 8 ms frames
        return sig

    def libraries(self) -> dict[str, str]:
        return {name: library_version(name) for name in ("pyworld", "torch", "scipy")}

    def result_range(self, result: str) -> tuple[float | None, float | None]:
        return (0.0, 1.0) if result == "vuv_error" else (0.0, None)

    def bootstrap_rows(self) -> dict[str, Any]:
        scores = self._scores()
        out = {}
        for k, name in enumerate(OUTPUTS):
            failed = np.isnan(scores[:, k])
            out[name] = np.column_stack([np.where(failed, 0.0, scores[:, k]),
                                         (~failed).astype(np.float64)])
        return out

    def value_from_totals(self, result: str, totals: Any, n: int) -> Any:
        with np.errstate(divide="ignore", invalid="ignore"):
            return totals[:, 0] / totals[:, 1]

    def close(self) -> None:
        self._mcd.close()
