"""Slices: every metric per value of one field (``--group-by category``) beside the
overall value.

The field is read from a JSON Lines file of ``{"id", FIELD, ...}`` (``--metadata``, or
the ``--prompts`` file); ids are the samples' (file names without the extension); the
Evaluator takes ``groups=`` with each batch instead. A metric that keeps per-sample
statistics (BLEU, WER, DNSMOS, BERTScore, SSIM, CLIPScore, CLAP score, ...) is scored
per slice from the overall instance's statistics of that slice's samples: its per-sample
work (ASR, a model, a text or audio tower) runs once per sample. A distribution metric
gets its own instance per slice, fed from the same decoded batch as the overall one: an
image batch's slice is a view whose shared features come from the whole batch's memo (no
second forward pass, no second read of the files); its reference side is the overall
instance's reference state, shared when the slices are computed (the reference pass
runs once). A metric too small in a slice (FID on one image) is ``null`` there, with the
metric's reason: its own minimum, as in a run over the slice's samples alone.

    >>> import json, tempfile, pathlib
    >>> meta = pathlib.Path(tempfile.mkdtemp()) / "meta.jsonl"
    >>> _ = meta.write_text('{"id": "a", "category": "cat"}\\n{"id": "b", "category": 2}\\n')
    >>> read_labels(meta, "category")
    {'a': 'cat', 'b': '2'}

In the scorecard (``Scorecard.slices``)::

    {"by": "category", "source": "meta.jsonl", "unlabelled": 0,
     "groups": {"cat": {"n": 40, "metrics": {"bleu": {...a metric result...}}}}}
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from genmetrics.errors import GenmetricsError, UsageError


def _label(value: Any) -> str | None:
    """A field's value as a slice name (``None``, ``""``, lists and objects: no slice)."""
    if value is None or isinstance(value, (list, dict)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip()
    return text or None


def read_labels(path: Path, field: str) -> dict[str, str]:
    """``{id: value of field}`` from a JSON Lines file; a line that is not an object
    with an ``id`` is a :class:`UsageError` naming the file and line. Samples whose
    line lacks the field (or holds null, "", a list) belong to no slice."""
    labels: dict[str, str] = {}
    try:
        lines = Path(path).read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path} for --group-by {field}: {exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{number}: not JSON ({exc.msg}); each line is "
                             f'{{"id": ..., "{field}": ...}}') from None
        if not isinstance(row, dict) or "id" not in row:
            raise UsageError(f'{path}:{number}: a line needs an "id" (the sample\'s name '
                             "without its extension)")
        label = _label(row.get(field))
        if label is not None:
            labels[str(row["id"])] = label
    if not labels:
        raise UsageError(f"--group-by {field}: no line of {path} has a {field!r} field")
    return labels


def _take(value: Any, index: list[int], size: int) -> Any:
    """``value`` restricted to the rows ``index`` where it has one row per batch item
    (arrays, tensors, lists of that length; inside dicts and tuples)."""
    if isinstance(value, dict):
        return {k: _take(v, index, size) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_take(v, index, size) for v in value)
    shape = getattr(value, "shape", None)
    if shape is not None and len(shape) and shape[0] == size:
        return value[index]
    if isinstance(value, list) and len(value) == size:
        return [value[i] for i in index]
    return value


def sub_batch(batch: Any, index: list[int]) -> Any:
    """The items ``index`` of a batch, of the same type; an image batch's view reads
    shared results (features) already computed for the whole batch from its memo."""
    if not hasattr(batch, "memo"):
        return [batch[i] for i in index]
    parent, size = batch, len(batch)
    part = type(batch)([batch[i] for i in index])
    for name, value in vars(batch).items():  # per-item lists (contents, cached features,
        if name in ("shared", "shared_s", "cache_hits", "extracted"):  # prompts): the
            continue                                                    # items' own rows
        if isinstance(value, list) and len(value) == size:
            setattr(part, name, [value[i] for i in index])
        else:  # the feature cache and the like, shared
            setattr(part, name, value)

    def memo(key: Any, compute: Any) -> Any:
        if key in parent.shared:
            return _take(parent.shared[key], index, size)
        return type(parent).memo(part, key, compute)

    part.memo = memo
    return part


class Slices:
    """The slices of one run: which samples each holds, and what scores them.

    A metric whose state is per-sample rows (BLEU, WER, DNSMOS, BERTScore, SSIM...: see
    :meth:`~genmetrics.metric.Metric.restricted`) is scored per slice from the overall
    instance's rows of that slice's samples, so its per-sample work (a recogniser, a
    model) runs once per sample. The others (distribution metrics) get an instance per
    slice, fed that slice's items of each batch (an image batch's view shares the whole
    batch's memoised features) and, at :meth:`compute`, the overall instances' reference
    state (:meth:`share_reference`). ``labels`` may grow as batches come
    (:meth:`add_labels`, the Evaluator's ``groups=``).
    """

    def __init__(self, field: str, labels: dict[str, str], source: Path | None,
                 active: dict[str, Any], build: Any) -> None:
        """``build(names)``: fresh ``{name: Metric}`` for those of ``active`` (same
        options)."""
        self.field, self.labels, self.source = field, dict(labels), source
        self.active, self.build = active, build
        #: metrics scored with an instance per slice (their state is not per-sample)
        self.separate = [n for n, m in active.items() if not m.restrictable()]
        self.groups: dict[str, dict[str, Any]] = {}  # slice -> its separate instances
        self.ids: dict[str, list[str]] = {}
        self.positions: dict[str, list[int]] = {}  # slice -> its samples' places in the run
        self.errors: dict[str, dict[str, str]] = {}
        self.unlabelled: list[str] = []
        self.total = 0  # samples fed so far
        self.stats: Any = None  # reference statistics every slice compares with
        for value in sorted(set(self.labels.values())):
            self._group(value)

    def _group(self, value: str) -> dict[str, Any]:
        if value not in self.groups:
            self.groups[value] = self.build(self.separate) if self.separate else {}
            if self.stats is not None:
                for metric in self.groups[value].values():
                    if metric.spec.reference_set:
                        metric.use_reference_stats(self.stats)
            self.ids[value], self.positions[value], self.errors[value] = [], [], {}
        return self.groups[value]

    def add_labels(self, labels: dict[str, str]) -> None:
        """More ``{sample id: slice}`` (a new slice starts empty)."""
        self.labels.update(labels)
        for value in sorted(set(labels.values())):
            self._group(value)

    def label(self, sample_id: str) -> str | None:
        """The slice of a sample: its id as the file names it (``a/1.png``) or without
        the extension (``a/1``)."""
        found = self.labels.get(sample_id)
        if found is None:
            found = self.labels.get(PurePosixPath(sample_id).with_suffix("").as_posix())
        return found

    def _update(self, value: str, names: Sequence[str], call: Any) -> None:
        metrics = self.groups[value]
        for name in names:
            if name not in metrics:
                continue
            try:
                call(metrics[name])
            except Exception as exc:  # noqa: BLE001 - that slice's metric, not the run
                self.errors[value][name] = _describe(exc)
                metrics.pop(name).close()

    def feed(self, ids: Sequence[str], samples: Any, references: list[Any],
             active: dict[str, Any]) -> None:
        """Note each sample's slice and give each slice's own metric instances its items
        of a batch (the overall metrics got the whole batch first, so shared features
        are in its memo)."""
        where: dict[str, list[int]] = {}
        for i, sample_id in enumerate(ids):
            value = self.label(sample_id)
            if value is None:
                self.unlabelled.append(sample_id)
            else:
                where.setdefault(value, []).append(i)
        for value, index in where.items():
            self._group(value)
            self.ids[value] += [ids[i] for i in index]
            self.positions[value] += [self.total + i for i in index]
            wanted = [n for n in active if n in self.groups[value]]
            if wanted:
                part, refs = sub_batch(samples, index), [references[i] for i in index]
                self._update(value, wanted, lambda m, p=part, r=refs: m.update(p, r))
        self.total += len(ids)

    def use_reference_stats(self, stats: Any) -> None:
        """Compare every slice with reference statistics (slices made later too)."""
        self.stats = stats
        for metrics in self.groups.values():
            for metric in metrics.values():
                if metric.spec.reference_set:
                    metric.use_reference_stats(stats)

    def share_reference(self, metrics: dict[str, Any]) -> None:
        """Give each slice's instances the reference distribution the run's ``metrics``
        were fed (their ``reference_state``, the same objects: not copied, and never fed
        to a slice itself), so the reference pass runs once whatever the slices:
        :meth:`compute` calls it."""
        for group in self.groups.values():
            for name, metric in group.items():
                overall = metrics.get(name)
                if overall is not None and metric.spec.reference_set and self.stats is None:
                    for key in metric.reference_state:
                        metric.state[key] = overall.state[key]

    def _scorer(self, value: str, name: str, metrics: dict[str, Any]) -> tuple[Any, str | None]:
        """What scores metric ``name`` on slice ``value`` (or why nothing does)."""
        if name in self.errors[value]:
            return None, self.errors[value][name]
        if name in self.separate:
            found = self.groups[value].get(name)
            return found, None if found is not None else "not fed"
        overall = metrics.get(name)
        part = None if overall is None else overall.restricted(self.positions[value],
                                                               self.total)
        return part, None if part is not None else (
            "its per-sample state does not cover every sample of the run")

    def compute(self, by_metric: dict[str, list[str]], overall: dict[str, Any],
                signature: Any, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
        """The scorecard's ``slices`` document. ``by_metric``: the names of the results
        each metric of the run gave (a metric failing in a slice has them ``null`` there,
        with its reason); ``overall``: those results; ``signature(metric, result)``:
        fills a slice result's signature as the run's; ``metrics``: the run's metric
        instances (default: those given at the start), whose per-sample states give the
        slices of the metrics that have one."""
        from genmetrics.metric import MetricResult
        from genmetrics.runner import _name_failed

        metrics = self.active if metrics is None else metrics
        self.share_reference(metrics)
        groups: dict[str, Any] = {}
        for value in self.groups:
            n = len(self.ids[value])
            results: dict[str, Any] = {}
            for name in by_metric:
                metric, reason = self._scorer(value, name, metrics)
                if reason is None and metric is not None:
                    try:
                        computed = metric.compute(per_sample=False)
                        for result in computed.values():
                            _name_failed(result.components, self.ids[value])
                            signature(metric, result)
                        results.update(computed)
                        continue
                    except Exception as exc:  # noqa: BLE001 - too small a slice, most often
                        reason = _describe(exc)
                for result_name in by_metric[name]:
                    ref = overall.get(result_name)
                    results[result_name] = MetricResult(
                        result_name, math.nan, n, bool(ref.higher_is_better) if ref else True,
                        ref.unit if ref else "",
                        {**(ref.signature if ref else {"metric": name}), "n": n},
                        reason=f"not computed on this slice (n={n}): {reason}")
            groups[value] = {"n": n, "metrics": results}
        return {"by": self.field, "source": None if self.source is None else str(self.source),
                "unlabelled": len(self.unlabelled), "groups": groups}

    def state_dict(self) -> dict[str, Any]:
        """Plain objects (the Evaluator's checkpoints): which samples each slice holds,
        and the states of the per-slice instances."""
        return {"labels": dict(self.labels), "ids": {v: list(i) for v, i in self.ids.items()},
                "positions": {v: list(p) for v, p in self.positions.items()},
                "errors": {v: dict(e) for v, e in self.errors.items()},
                "unlabelled": list(self.unlabelled), "total": self.total,
                "groups": {v: {n: m.state_dict() for n, m in g.items()}
                           for v, g in self.groups.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.close()
        self.groups, self.ids, self.positions, self.errors = {}, {}, {}, {}
        self.labels = dict(state["labels"])
        for value, saved in state["groups"].items():
            metrics = self._group(value)
            for name in list(metrics):
                if name in saved:
                    metrics[name].load_state_dict(saved[name])
                else:  # it failed in that slice before the checkpoint
                    metrics.pop(name).close()
            self.ids[value] = list(state["ids"][value])
            self.positions[value] = list(state["positions"][value])
            self.errors[value] = dict(state["errors"][value])
        self.unlabelled, self.total = list(state["unlabelled"]), int(state["total"])

    def close(self) -> None:
        for metrics in self.groups.values():
            for metric in metrics.values():
                metric.close()


def _describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, GenmetricsError) else f"{type(exc).__name__}: {exc}"


def slices_to_dict(slices: dict[str, Any] | None) -> dict[str, Any] | None:
    """The JSON form of ``Scorecard.slices`` (results as dicts)."""
    if slices is None:
        return None
    return {**slices, "groups": {
        v: {"n": g["n"], "metrics": {k: r.to_dict() if hasattr(r, "to_dict") else r
                                     for k, r in g["metrics"].items()}}
        for v, g in slices["groups"].items()}}


def slices_from_dict(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    """``Scorecard.slices`` from its JSON form (results as MetricResult)."""
    if doc is None:
        return None
    from genmetrics.metric import MetricResult

    def result(name: str, m: dict[str, Any]) -> MetricResult:
        return MetricResult(name=name, value=math.nan if m["value"] is None else m["value"],
                            reason=m.get("reason"), n=m["n"],
                            higher_is_better=m["higher_is_better"], unit=m.get("unit", ""),
                            signature=m["signature"], components=m.get("components", {}),
                            ci95=tuple(m["ci95"]) if "ci95" in m else None)  # type: ignore[arg-type]

    return {**doc, "groups": {
        v: {"n": g["n"], "metrics": {k: result(k, r) for k, r in g["metrics"].items()}}
        for v, g in doc["groups"].items()}}


__all__ = ["read_labels", "sub_batch", "Slices", "slices_to_dict", "slices_from_dict"]
