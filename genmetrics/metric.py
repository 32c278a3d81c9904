"""The metric base class: a spec, sufficient statistics, update / merge / compute.

Every metric is a plugin that subclasses :class:`Metric` and declares

* ``spec`` -- a :class:`MetricSpec` (name, modality, kind, direction, unit, options);
* ``state_reductions`` -- its state fields and how two partial states combine
  (``"sum"``: add numbers or arrays; ``"cat"``: concatenate per-sample rows);
* ``state_dtypes`` (optional) -- ``"cat"`` fields kept as typed numpy rows
  (:class:`~genmetrics.rows.Rows`, a few bytes per sample) instead of Python lists;
* ``update(samples, references)`` -- add a batch to the state;
* ``compute(per_sample=False)`` -- turn the state into :class:`MetricResult` objects.

Because the state is made of sufficient statistics, partial states from several
batches, workers or processes ``merge`` into exactly the state one pass would build.

Example -- a tiny metric that counts words::

    >>> class WordCount(Metric):
    ...     spec = MetricSpec(name="words", modality="text", kind="paired",
    ...                       higher_is_better=True, unit="words per sample")
    ...     state_reductions = {"counts": "cat"}
    ...     def update(self, samples, references=None):
    ...         self.state["counts"].extend(len(s.split()) for s in samples)
    ...     def compute(self, per_sample=False):
    ...         counts = self.state["counts"]
    ...         return {"words": self.result(sum(counts) / len(counts), n=len(counts))}
    >>> m = WordCount()
    >>> m.update(["a b c", "d"])
    >>> m.compute()["words"].value
    2.0
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar, Literal

from genmetrics.errors import MetricError, UsageError
from genmetrics.signature import render

Modality = Literal["text", "image", "audio"]
Kind = Literal["paired", "distribution"]
Reduction = Literal["sum", "cat"]
MODALITIES: tuple[str, ...] = ("text", "image", "audio")

_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n"}


@cache
def library_version(distribution: str) -> str:
    """The installed version of ``distribution`` (cached: the lookup costs milliseconds)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "-"


#: how an option's type reads in an error message
_TYPE_WORDS = {int: "a whole number", float: "a number", str: "text"}


@dataclass(frozen=True)
class Option:
    """One setting of a metric; the CLI exposes it as ``--set METRIC.NAME=VALUE``."""

    name: str
    default: Any
    help: str
    type: type = str
    choices: tuple[Any, ...] | None = None
    #: False for settings that cannot change a value (device, workers, batch size):
    #: they stay out of the signature.
    affects_values: bool = True

    def describe(self) -> str:
        """The help text, with the allowed values when there is a fixed set."""
        if self.choices is None:
            return self.help
        return f"{self.help} (one of {'|'.join(map(str, self.choices))})"

    def parse(self, raw: Any) -> Any:
        """Convert a value (a string from the command line, or a Python value) and check it."""
        value = raw
        if self.type is float and isinstance(raw, int) and not isinstance(raw, bool):
            value = float(raw)  # 2 and "2" give the same value and the same signature
        elif isinstance(raw, str) and self.type is not str:
            text = raw.strip().lower()
            if text in ("none", "null", "", "auto") and self.default is None:
                value = None
            elif self.type is bool:
                if text not in _TRUE | _FALSE:
                    raise UsageError(f"option {self.name!r} takes true or false, not {raw!r}")
                value = text in _TRUE
            else:
                try:
                    value = self.type(raw)
                except ValueError:
                    kind = _TYPE_WORDS.get(self.type, self.type.__name__)
                    raise UsageError(f"option {self.name!r} takes {kind}, not {raw!r}") from None
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise UsageError(f"option {self.name!r} must be one of {allowed}; got {raw!r}")
        return value


@dataclass(frozen=True)
class MetricSpec:
    """What a metric is: everything the registry, CLI and scorecard need to know."""

    name: str
    modality: Modality
    kind: Kind
    higher_is_better: bool
    unit: str
    description: str = ""
    value_range: tuple[float | None, float | None] = (None, None)
    options: tuple[Option, ...] = ()
    outputs: tuple[str, ...] = ()
    assets: tuple[str, ...] = ()
    #: True for distribution metrics that compare with a reference *distribution* (FID,
    #: KID): they take ``update_reference`` batches or precomputed reference statistics.
    reference_set: bool = False
    #: per-item inputs each sample must carry instead of ``--reference`` files
    #: (``"transcript"``, ``"speaker_reference"``: text-to-speech audio, see
    #: :mod:`genmetrics.io.audio`); such a metric runs by default when the run has them
    needs: tuple[str, ...] = ()
    #: False for metrics a run includes only when named (``--metrics``): those needing a
    #: model no offline source has (BERTScore's roberta-large) or a large set (MAUVE)
    default: bool = True
    #: False for a reference-free metric left out of the default set of a run with
    #: paired references and no text-to-speech inputs (speech enhancement, voice
    #: conversion: the references are the measure there); it stays in the default set of
    #: runs without references or with transcripts / speaker references (DNSMOS)
    default_with_references: bool = True
    version: str = "1"

    @property
    def result_names(self) -> tuple[str, ...]:
        """Names of the results this metric produces (``outputs`` or just its name)."""
        return self.outputs or (self.name,)

    def option(self, name: str) -> Option:
        for opt in self.options:
            if opt.name == name:
                return opt
        known = ", ".join(o.name for o in self.options) or "none"
        raise UsageError(f"metric {self.name!r} has no option {name!r} (options: {known})")


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (strict JSON).

    >>> json_safe({"a": [1.0, float("inf")], "b": float("nan")})
    {'a': [1.0, None], 'b': None}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


@dataclass
class MetricResult:
    """One number of a scorecard, with its provenance."""

    name: str
    value: float
    n: int
    higher_is_better: bool
    unit: str
    signature: dict[str, Any]
    components: dict[str, Any] = field(default_factory=dict)
    per_sample: list[float | None] | None = None
    ci95: tuple[float, float] | None = None
    #: why ``value`` is not a finite number (NaN or infinite), when it is not
    reason: str | None = None

    @property
    def signature_str(self) -> str:
        return render(self.signature)

    def to_dict(self) -> dict[str, Any]:
        """Strict JSON: a NaN or infinite value becomes ``null`` with a ``reason``.

            >>> MetricResult("x", float("nan"), 0, True, "", {"metric": "x"}).to_dict()["reason"]
            'the value is nan (no finite result)'
        """
        out: dict[str, Any] = {
            "value": self.value if math.isfinite(self.value) else None,
            "n": self.n,
            "higher_is_better": self.higher_is_better,
            "unit": self.unit,
        }
        if not math.isfinite(self.value):
            out["reason"] = self.reason or f"the value is {self.value!r} (no finite result)"
        if self.ci95 is not None:
            out["ci95"] = json_safe(list(self.ci95))
        if self.components:
            out["components"] = json_safe(self.components)
        out["signature"] = self.signature
        out["signature_str"] = self.signature_str
        return out


class Metric:
    """Base class of every metric plugin (see the module docstring for an example)."""

    spec: ClassVar[MetricSpec]
    state_reductions: ClassVar[dict[str, Reduction]] = {}
    #: ``"cat"`` fields held as :class:`~genmetrics.rows.Rows` of this numpy dtype (one
    #: row per sample: ``state[field].append(rows)``, ``.array()`` to read); other
    #: ``"cat"`` fields are lists
    state_dtypes: ClassVar[dict[str, str]] = {}
    #: options that may differ between two states that are merged or loaded
    merge_ignores: ClassVar[frozenset[str]] = frozenset()
    #: state fields that describe the reference distribution (FID, KID): kept by
    #: :meth:`reset_samples`, so an evaluation loop feeds its references once
    reference_state: ClassVar[frozenset[str]] = frozenset()
    #: True when the metric reads only features the runner's feature cache can hold
    #: (Inception outputs): images it alone would read need not even be decoded
    uses_feature_cache: ClassVar[bool] = False
    #: ``"cat"`` state fields holding one row per sample fed, in order, and fields listing
    #: the reasons of failed samples in sample order (see :meth:`failed_masks`): when they
    #: are the whole state, :meth:`restricted` scores a subset of the samples (a slice)
    #: from this state, with no second run of the per-sample work (ASR, DNSMOS, BERTScore)
    sample_fields: ClassVar[tuple[str, ...]] = ()
    reason_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **options: Any) -> None:
        self.options: dict[str, Any] = {o.name: o.default for o in self.spec.options}
        for name, raw in options.items():
            self.options[name] = self.spec.option(name).parse(raw)
        self.state: dict[str, Any] = {}
        self.reset()

    # -- state -------------------------------------------------------------
    def _empty(self, key: str) -> Any:
        """The initial value of state field ``key``."""
        if self.state_reductions[key] == "sum":
            return 0
        if key in self.state_dtypes:
            from genmetrics.rows import Rows  # numpy: not imported with the registry

            return Rows(self.state_dtypes[key])
        return []

    def reset(self) -> None:
        """Forget every sample seen so far."""
        self.state = {k: self._empty(k) for k in self.state_reductions}

    def reset_samples(self) -> None:
        """Forget the samples but keep the reference distribution (``reference_state``
        fields and precomputed reference statistics) -- for one evaluation per epoch."""
        kept = {k: self.state[k] for k in self.reference_state}
        self.state = {k: self._empty(k) for k in self.state_reductions}
        self.state.update(kept)

    def _merge_options(self, options: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in options.items() if k not in self.merge_ignores}

    def merge(self, other: Metric) -> None:
        """Fold another instance's state into this one (same metric, same options)."""
        if type(other) is not type(self) or \
                self._merge_options(other.options) != self._merge_options(self.options):
            raise MetricError(f"cannot merge {self.spec.name} states with different settings")
        from genmetrics.rows import cat_states

        for key, reduction in self.state_reductions.items():
            if reduction == "sum":
                self.state[key] = self.state[key] + other.state[key]
            else:
                self.state[key] = cat_states([self.state[key], other.state[key]])

    def state_dict(self) -> dict[str, Any]:
        """Options and state as plain Python and numpy objects (``Rows`` fields become
        read-only numpy arrays, shared rather than copied: they never change)."""
        from genmetrics.rows import Rows

        state = {k: v.array() if isinstance(v, Rows) else copy.deepcopy(v)
                 for k, v in self.state.items()}
        return {"options": dict(self.options), "state": state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self._merge_options(state["options"]) != self._merge_options(self.options):
            raise MetricError(f"saved {self.spec.name} state was made with other options")
        from genmetrics.rows import Rows

        loaded = copy.deepcopy(state["state"])
        for key, dtype in self.state_dtypes.items():  # arrays, or lists from older versions
            if key in loaded and not isinstance(loaded[key], Rows):
                loaded[key] = Rows.of(loaded[key], dtype)
        self.state = loaded

    # -- subsets of the samples (slices) -------------------------------------
    def failed_masks(self) -> dict[str, Any]:
        """Each of :attr:`reason_fields` -> one bool per sample fed: True where that
        field lists the sample's reason (its k-th True sample has the k-th reason)."""
        return {}

    @classmethod
    def restrictable(cls) -> bool:
        """Whether the whole state is per-sample rows and reasons (see :meth:`restricted`)."""
        return bool(cls.sample_fields) and set(cls.state_reductions) == {
            *cls.sample_fields, *cls.reason_fields}

    def restricted(self, index: Sequence[int], total: int) -> Metric | None:
        """A copy of this metric whose state holds only the samples at positions
        ``index`` (ascending) of the ``total`` fed: its :meth:`compute` equals a run over
        those samples alone. None when the state is not all per-sample
        (:meth:`restrictable`) or does not hold ``total`` rows. The copy shares the
        models (do not :meth:`close` it).

        >>> from genmetrics.registry import get_metric
        >>> bleu = get_metric("bleu")()
        >>> bleu.update(["the cat sat", "a dog ran", "it rained"],
        ...             [["the cat sat"], ["a dog barked"], ["it rained"]])
        >>> alone = get_metric("bleu")()
        >>> alone.update(["the cat sat", "it rained"], [["the cat sat"], ["it rained"]])
        >>> part = bleu.restricted([0, 2], 3)
        >>> part.compute()["bleu"].value == alone.compute()["bleu"].value
        True
        """
        if not self.restrictable():
            return None
        import numpy as np

        from genmetrics.rows import Rows

        take = np.asarray(list(index), dtype=np.int64)
        state: dict[str, Any] = {}
        for key in self.sample_fields:
            value = self.state[key]
            if len(value) != total:
                return None
            state[key] = Rows.of(value.array()[take], value.dtype) if isinstance(value, Rows) \
                else [value[i] for i in take.tolist()]
        masks = self.failed_masks()
        for key in self.reason_fields:
            mask, reasons = np.asarray(masks[key], dtype=bool), self.state[key]
            if len(mask) != total or int(mask.sum()) != len(reasons):
                return None
            order = np.cumsum(mask) - 1  # sample -> its place in the reasons
            state[key] = [reasons[order[i]] for i in take.tolist() if mask[i]]
        part = copy.copy(self)
        part.__dict__ = {k: copy.copy(v) if isinstance(v, (list, dict, set)) else v
                         for k, v in vars(self).items()}
        part.state = state
        return part

    # -- to implement --------------------------------------------------------
    def update(self, samples: Sequence[Any], references: Sequence[Sequence[Any]] | None = None):
        """Add a batch: ``samples[i]`` is scored against the list ``references[i]``."""
        raise NotImplementedError

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        """Results keyed by result name; per-sample values only when asked for."""
        raise NotImplementedError

    def update_reference(self, references: Sequence[Any]) -> None:
        """Metrics with ``spec.reference_set``: add a batch of the reference distribution."""
        raise NotImplementedError(f"{self.spec.name} takes no reference distribution")

    def use_reference_stats(self, stats: Any) -> None:
        """Metrics with ``spec.reference_set``: compare with precomputed statistics instead
        (see :mod:`genmetrics.reference_stats`); raise ``UsageError`` if they do not fit."""
        raise UsageError(f"{self.spec.name} cannot use reference statistics")

    # -- helpers for subclasses ---------------------------------------------
    def close(self) -> None:
        """Release resources (worker pools, models); the runner calls it after a run."""

    def preflight(self) -> None:
        """Checks that need no input (e.g. a model folder exists); run before reading any.

        Raise :class:`~genmetrics.errors.UsageError` with what to do.
        """

    def default_unavailable(self) -> str | None:
        """Why to leave this metric out of a run that did not ask for it (listed under
        ``unavailable``), or ``None`` to run it: e.g. a model that is not built yet. Asked
        before assets are checked, and only when the metric was neither named nor given
        options; a metric asked for runs (building what it needs) or fails.
        """
        return None

    @classmethod
    def takes_run_option(cls, option: str, given: dict[str, Any]) -> bool:
        """Whether a run-wide setting (``--device``, ``--inception-weights``) is set on this
        metric, given its own options ``given``: by default, when it has the option."""
        return any(o.name == option for o in cls.spec.options)

    def required_assets(self) -> list[str]:
        """Assets (see :mod:`genmetrics.assets`) this instance needs, checked before a run."""
        return list(self.spec.assets)

    def bootstrap_rows(self) -> dict[str, Any] | None:
        """Per-sample sufficient statistics for resampling: result name -> ``n x k`` array.

        Rows are in sample order, one per scored sample. ``None`` (the default): this
        metric cannot be bootstrapped. See :mod:`genmetrics.stats`.
        """
        return None

    def prepare_bootstrap(self, rows: Any = None) -> None:
        """Called by the runner and the :class:`~genmetrics.evaluator.Evaluator` before
        any batch when ``bootstrap > 0``: from now on, keep what
        :meth:`bootstrap_replicates` needs (FID and sFID then keep their feature rows,
        which they do not otherwise). ``rows``: the run's
        :class:`~genmetrics.features.rowstore.RowStore`, where kept feature rows go
        (memory-mapped files beside the feature cache, not RAM); ``None``: keep them in
        memory. The default does nothing.
        """

    def bootstrap_replicates(self, resampling: Any) -> dict[str, Any] | None:
        """Distribution metrics: result name -> :class:`~genmetrics.stats.Replicates`,
        computed from the rows this metric kept (see :meth:`prepare_bootstrap`) with the
        draws of ``resampling`` (a :class:`~genmetrics.stats.Resampling`); called after
        :meth:`compute`. The runner turns each into a rerun interval
        (:func:`~genmetrics.stats.rerun_interval`), records the standard error under the
        result's ``components["interval"]`` and the method in its signature
        (``ci_method``). ``None`` (the default): no interval this way (see
        :meth:`bootstrap_rows`); an exception is a warning, not a failed metric.
        """
        return None

    def result_range(self, result: str) -> tuple[float | None, float | None]:
        """The range the value of ``result`` lies in (intervals are clipped to it): the
        spec's ``value_range`` unless a metric's results differ (density vs coverage)."""
        return self.spec.value_range

    def value_from_totals(self, result: str, totals: Any, n: int) -> Any:
        """The value of ``result`` for each row of ``totals`` (``b x k`` summed rows)."""
        raise NotImplementedError(f"{self.spec.name} does not support resampling")

    def warnings(self) -> list[str]:
        """Notes on the last :meth:`compute` a user should read (e.g. a default adapted to
        a small set); the runner lists them under the scorecard's ``warnings``."""
        return []

    def libraries(self) -> dict[str, str]:
        """Versions of the libraries this metric's numbers depend on (for the signature)."""
        return {}

    def signature(self, **extra: Any) -> dict[str, Any]:
        """The signature dict: metric, versions, options, then ``extra`` fields."""
        from genmetrics import __version__

        sig: dict[str, Any] = {"metric": self.spec.name, "v": self.spec.version}
        sig.update({o.name: self.options[o.name] for o in self.spec.options if o.affects_values})
        sig.update(extra)
        sig["genmetrics"] = __version__
        sig.update(self.libraries())
        return sig

    def result(
        self,
        value: float,
        *,
        n: int,
        name: str | None = None,
        components: dict[str, Any] | None = None,
        per_sample: list[float | None] | None = None,
        **signature_extra: Any,
    ) -> MetricResult:
        """Build a :class:`MetricResult` stamped with this metric's spec and signature."""
        name = name or self.spec.name
        if not math.isfinite(value):
            raise MetricError(f"{name} is not a finite number ({value})")
        return MetricResult(
            name=name,
            value=float(value),
            n=n,
            higher_is_better=self.spec.higher_is_better,
            unit=self.spec.unit,
            signature=self.signature(n=n, **signature_extra),
            components=components or {},
            per_sample=per_sample,
        )

    def require_samples(self, n: int) -> None:
        if n == 0:
            raise MetricError(f"{self.spec.name}: no samples were scored")

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"
