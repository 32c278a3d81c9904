"""Send a scorecard to an experiment tracker: TensorBoard, MLflow or Weights & Biases.

Every logger sends the same flat numbers, :func:`scalars`, plus the metrics'
signatures so that a tracked run records how each number was computed, at every
logged step (not only the last). The tracker
libraries are imported only when a logger is called; ``import genmetrics`` loads none.

    >>> from genmetrics.metric import MetricResult
    >>> from genmetrics.scorecard import Scorecard
    >>> kid = MetricResult(name="kid", value=0.25, n=50, higher_is_better=False, unit="",
    ...                    signature={"metric": "kid", "n": 50}, components={"std": 0.5},
    ...                    ci95=(0.125, 0.375))
    >>> card = Scorecard(modality="image", inputs={}, metrics={"kid": kid})
    >>> for name, value in scalars(card).items():
    ...     print(name, value)
    genmetrics/kid 0.25
    genmetrics/kid/ci95_low 0.125
    genmetrics/kid/ci95_high 0.375
    genmetrics/kid/std 0.5
    genmetrics/skipped 0.0
    genmetrics/errors 0.0

From a scorecard, :meth:`Scorecard.log_to <genmetrics.scorecard.Scorecard.log_to>`
picks the logger from the target: ``card.log_to(SummaryWriter(...))``,
``card.log_to(wandb.run)``, ``card.log_to("mlflow")``.
"""

from __future__ import annotations

import inspect
import math
import numbers
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from genmetrics.errors import UsageError
from genmetrics.signature import UNCOMPARED_FIELDS, comparable_digest

if TYPE_CHECKING:
    from genmetrics.scorecard import Scorecard

DEFAULT_PREFIX = "genmetrics/"
#: the MLflow artifact folder: ``step-000003/scorecard.json`` per step (signatures
#: included) and ``scorecard.json``, the last card logged
MLFLOW_ARTIFACT_DIR = "genmetrics"
MLFLOW_ARTIFACT = f"{MLFLOW_ARTIFACT_DIR}/scorecard.json"


def _finite(value: Any) -> float | None:
    """``value`` as a float if it is a finite real number (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


#: components that are the result's value itself under another name, per metric (the
#: signature's ``metric``): kept in the scorecard for code that reads them, not sent to a
#: tracker a second time (ROUGE's value is its mean F-measure)
SAME_AS_VALUE: dict[str, frozenset[str]] = {"rouge": frozenset({"fmeasure"})}


def _same_as_value(result: Any, component: str, value: Any) -> bool:
    """Is ``component`` of ``result`` its value again (:data:`SAME_AS_VALUE`, and equal)?"""
    metric = str(result.signature.get("metric", ""))
    return component in SAME_AS_VALUE.get(metric, ()) and value == result.value


def scalars(card: Scorecard, prefix: str = DEFAULT_PREFIX, *, sep: str = "/") -> dict[str, float]:
    """The card's numbers as a flat ``{name: float}`` dict (see the module docstring).

    ``{prefix}{metric}`` is the value, ``{prefix}{metric}{sep}ci95_low`` / ``ci95_high``
    the confidence interval when there is one, ``{prefix}{metric}{sep}{component}`` each
    numeric component (e.g. KID's ``std``) but one that is the value again
    (:data:`SAME_AS_VALUE`: ROUGE's ``fmeasure``); ``{prefix}skipped`` and
    ``{prefix}errors`` count skipped inputs and failed metrics. Non-finite numbers are
    left out.

        >>> from genmetrics.scorecard import Scorecard
        >>> scalars(Scorecard(modality="text", inputs={}, errors={"bleu": "no refs"}))
        {'genmetrics/skipped': 0.0, 'genmetrics/errors': 1.0}
    """
    out: dict[str, float] = {}

    def put(name: str, value: Any) -> None:
        number = _finite(value)
        if number is not None:
            out[name] = number

    for name, result in card.metrics.items():
        key = f"{prefix}{name}"
        put(key, result.value)
        if result.ci95 is not None:
            put(f"{key}{sep}ci95_low", result.ci95[0])
            put(f"{key}{sep}ci95_high", result.ci95[1])
        for component, value in result.components.items():
            if not _same_as_value(result, component, value):
                put(f"{key}{sep}{component}", value)
    out[f"{prefix}skipped"] = float(len(card.skipped))
    out[f"{prefix}errors"] = float(len(card.errors))
    return out


def _cell(text: str) -> str:
    """A markdown table cell: a code span (TensorBoard's markdown splits no column there)."""
    return "`" + text.replace("`", "'") + "`"


def signature_table(card: Scorecard) -> str:
    """The metrics and their signatures as a markdown table (what TensorBoard shows).

        >>> from genmetrics.scorecard import Scorecard
        >>> print(signature_table(Scorecard(modality="text", inputs={})))
        | metric | value | n | signature |
        |---|---|---|---|
    """
    rows = ["| metric | value | n | signature |", "|---|---|---|---|"]
    for name, result in card.metrics.items():
        rows.append(f"| {_cell(name)} | {result.value:.6g} | {result.n} | "
                    f"{_cell(result.signature_str)} |")
    return "\n".join(rows)


def signatures(card: Scorecard) -> dict[str, dict[str, Any]]:
    """``{metric: {"signature": dict, "signature_str": str}}`` for every metric of ``card``."""
    return {name: {"signature": r.signature, "signature_str": r.signature_str}
            for name, r in card.metrics.items()}


# -- TensorBoard --------------------------------------------------------------------------


def log_tensorboard(card: Scorecard, writer: Any, step: int | None = None,
                    prefix: str = DEFAULT_PREFIX) -> None:
    """Write :func:`scalars` with ``writer.add_scalar`` and the signatures as one text.

    ``writer`` is a ``torch.utils.tensorboard.SummaryWriter`` (or anything with its
    ``add_scalar`` / ``add_text``); the text, a markdown table, is tagged
    ``{prefix}signatures``. The writer is flushed so the numbers are on disk afterwards.
    """
    for name, value in scalars(card, prefix).items():
        writer.add_scalar(name, value, global_step=step)
    writer.add_text(f"{prefix}signatures", signature_table(card), global_step=step)
    flush = getattr(writer, "flush", None)
    if callable(flush):
        flush()


# -- MLflow -------------------------------------------------------------------------------

_MLFLOW_BAD = re.compile(r"[^/\w.\- ]")


def mlflow_key(name: str) -> str:
    """``name`` made valid as an MLflow metric or tag key (other characters become ``_``).

        >>> mlflow_key("genmetrics/chrF++")
        'genmetrics/chrF__'
    """
    parts = [_MLFLOW_BAD.sub("_", part) for part in name.split("/") if part]
    return "/".join("_" if part in (".", "..") else part for part in parts) or "_"


def mlflow_step_artifact(step: int, artifact_dir: str = MLFLOW_ARTIFACT_DIR) -> str:
    """Where :func:`log_mlflow` puts the scorecard logged at ``step``.

        >>> mlflow_step_artifact(3)
        'genmetrics/step-000003/scorecard.json'
    """
    return f"{artifact_dir}/step-{step:06d}/scorecard.json"


def _fields(signature_str: str) -> dict[str, str]:
    """``{key: value}`` of a rendered signature (the metric under ``metric``)."""
    metric, *parts = signature_str.split("|")
    return {"metric": metric, **dict(part.partition(":")[::2] for part in parts)}


def signature_change(before: str, after: str) -> str:
    """The comparable fields that differ between two signature strings, for a change tag.

        >>> signature_change("bleu|tok:13a|n:8|refs:03afdb3e", "bleu|tok:intl|n:9|refs:03afdb3e")
        'tok: 13a -> intl'
    """
    old, new = _fields(before), _fields(after)
    keys = [k for k in dict.fromkeys([*old, *new]) if k not in UNCOMPARED_FIELDS]
    changed = [f"{k}: {old.get(k, '-')} -> {new.get(k, '-')}" for k in keys
               if old.get(k) != new.get(k)]
    return "; ".join(changed) or f"{before} -> {after}"


def log_mlflow(card: Scorecard, step: int | None = None, prefix: str = DEFAULT_PREFIX,
               client: Any = None, run_id: str | None = None, *,
               artifact_dir: str = MLFLOW_ARTIFACT_DIR,
               artifact_file: str | None = None) -> None:
    """Log :func:`scalars` as MLflow metrics, signatures as tags, the card as artifacts.

    Sub-values use ``.`` rather than ``/`` (``genmetrics/kid.ci95_low``): MLflow's file
    store keeps each metric in a file, so ``a/b`` and ``a/b/c`` cannot both exist.

    Every step keeps its own record: the whole scorecard (signatures included) goes to
    ``{artifact_dir}/step-{step:06d}/scorecard.json`` (:func:`mlflow_step_artifact`),
    and a copy of the last one logged to ``{artifact_dir}/scorecard.json``. The tags
    hold the latest state: ``{prefix}{metric}.signature`` (the ``signature_str``) and
    ``{prefix}{metric}.signature_digest`` (the ``#`` digest of the CLI's short form:
    every field but ``n``, ``bootstrap`` and ``seed``). When that digest differs from
    the one already on the run, the values before and after are not comparable, and the
    tag ``{prefix}{metric}.signature_changed.step-{step:06d}`` says which fields changed
    (:func:`signature_change`). Tags rather than params, because a param cannot change
    once set in a run. The run is ``run_id`` or else the active run; ``client`` defaults
    to ``mlflow.MlflowClient()``. ``step`` defaults to 0; a second card logged at the
    same step replaces that step's artifact.

    ``artifact_file`` (deprecated, a ``DeprecationWarning``): where the last card logged
    goes instead of ``{artifact_dir}/scorecard.json``, as in genmetrics 0.2.0; the
    per-step cards still go under ``artifact_dir``.
    """
    if artifact_file is not None:
        import warnings

        warnings.warn("log_mlflow(artifact_file=...) is deprecated: the last card goes to "
                      "{artifact_dir}/scorecard.json and each step's to "
                      "{artifact_dir}/step-NNNNNN/scorecard.json; pass artifact_dir=...",
                      DeprecationWarning, stacklevel=2)
    latest = artifact_file if artifact_file is not None else f"{artifact_dir}/scorecard.json"
    import mlflow
    from mlflow.entities import Metric, RunTag

    if run_id is None:
        active = mlflow.active_run()
        if active is None:
            raise UsageError("no active MLflow run: call mlflow.start_run() first, "
                             "or pass run_id=...")
        run_id = active.info.run_id
    if client is None:
        client = mlflow.MlflowClient()
    step = step or 0
    stamp = int(time.time() * 1000)
    metrics = [Metric(mlflow_key(name), value, stamp, step)
               for name, value in scalars(card, prefix, sep=".").items()]
    previous = client.get_run(run_id).data.tags
    tags = []
    for name, result in card.metrics.items():
        key = mlflow_key(f"{prefix}{name}.signature")
        digest = comparable_digest(result.signature)
        before = previous.get(f"{key}_digest")
        if before is not None and before != digest:
            change = signature_change(previous.get(key, ""), result.signature_str)
            tags.append(RunTag(f"{key}_changed.step-{step:06d}", change))
        tags += [RunTag(key, result.signature_str), RunTag(f"{key}_digest", digest)]
    client.log_batch(run_id, metrics=metrics, tags=tags)
    document = card.to_dict()
    client.log_dict(run_id, document, mlflow_step_artifact(step, artifact_dir))
    client.log_dict(run_id, document, latest)


# -- Weights & Biases ---------------------------------------------------------------------


def log_wandb(card: Scorecard, run: Any = None, step: int | None = None,
              prefix: str = DEFAULT_PREFIX) -> None:
    """One W&B history row: :func:`scalars`, each metric's signature, and ``step``.

    ``step`` is genmetrics' own axis, the number ``{prefix}step`` (``genmetrics/step``):
    ``run.define_metric`` makes it the x axis of every ``{prefix}*`` chart, and the row
    is logged at W&B's own step (the next one), never at ``step=``. W&B ignores a
    ``log(step=...)`` lower than a step the run has already logged, so an epoch number
    passed as W&B's step would be dropped once the run has logged more steps than
    epochs; on its own axis ``step`` may be anything, even go back. ``step=None`` uses
    the run's W&B step. Each row also holds each metric's ``signature_str`` under
    ``{prefix}{metric}/signature``, so every step keeps the signatures its numbers were
    computed with. The latest signatures (see :func:`signatures`) also go under the
    config key ``prefix`` without its slashes (``"genmetrics"`` by default).

    Each call adds one W&B step. Log your own numbers with ``run.log`` without
    ``step=``, or with steps above every step logged so far: W&B drops a row whose
    ``step=`` is lower than the run's current step.

    ``run`` defaults to ``wandb.run``.
    """
    if run is None:
        import wandb

        run = wandb.run
        if run is None:
            raise UsageError("no active W&B run: call wandb.init(...) first, or pass run=...")
    axis = f"{prefix}step"
    run.define_metric(axis)
    run.define_metric(f"{prefix}*", step_metric=axis)
    row: dict[str, Any] = dict(scalars(card, prefix))
    row.update({f"{prefix}{name}/signature": result.signature_str
                for name, result in card.metrics.items()})
    if step is None:
        try:
            step = run.step  # the W&B step this row goes to
        except Exception:  # noqa: BLE001 - mode="shared" runs: W&B repeats the last step
            step = None
    if step is not None:
        row[axis] = step
    run.log(row)
    key = prefix.strip("/") or DEFAULT_PREFIX.strip("/")
    run.config.update({key: signatures(card)}, allow_val_change=True)


LOGGERS: dict[str, Callable[..., None]] = {
    "tensorboard": log_tensorboard,
    "mlflow": log_mlflow,
    "wandb": log_wandb,
}


def _kind(target: Any) -> str | None:
    """Which logger takes ``target``, judged by module and class names (nothing imported)."""
    if inspect.ismodule(target):
        root = target.__name__.split(".")[0]
        return root if root in ("mlflow", "wandb") else None
    for cls in type(target).__mro__:
        root = cls.__module__.split(".")[0]
        if cls.__name__ == "SummaryWriter" and root in ("torch", "tensorboardX"):
            return "tensorboard"
        if root == "wandb" and cls.__name__ == "Run":
            return "wandb"
        if root == "mlflow" and cls.__name__ in ("MlflowClient", "ActiveRun", "Run"):
            return "mlflow"
    return None


def log_to(card: Scorecard, target: Any, step: int | None = None,
           prefix: str = DEFAULT_PREFIX, **kwargs: Any) -> None:
    """Send ``card`` to ``target``: a SummaryWriter, a wandb run, an MLflow client, active
    run or the ``mlflow`` module, or a name of :data:`LOGGERS` (``kwargs`` go to the logger).

        >>> from genmetrics.scorecard import Scorecard
        >>> log_to(Scorecard(modality="text", inputs={}), "csv")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        genmetrics.errors.UsageError: cannot log to 'csv': pass a torch SummaryWriter, ...
    """
    name = target if isinstance(target, str) else _kind(target)
    if name not in LOGGERS:
        shown = repr(target) if isinstance(target, str) else f"a {type(target).__name__}"
        raise UsageError(
            f"cannot log to {shown}: pass a torch SummaryWriter, a wandb run, the mlflow "
            f"module, an MlflowClient or active MLflow run, or one of the names "
            f"{', '.join(map(repr, LOGGERS))}")
    if name == "tensorboard":
        writer = target if not isinstance(target, str) else kwargs.pop("writer", None)
        if writer is None:
            raise UsageError("log_to('tensorboard') needs writer=SummaryWriter(...)")
        log_tensorboard(card, writer, step=step, prefix=prefix, **kwargs)
    elif name == "wandb":
        if not isinstance(target, str) and not inspect.ismodule(target):
            kwargs["run"] = target
        log_wandb(card, step=step, prefix=prefix, **kwargs)
    else:
        if not isinstance(target, str) and not inspect.ismodule(target):
            if type(target).__name__ == "MlflowClient":
                kwargs["client"] = target
            else:  # an ActiveRun or Run: log to that run
                kwargs.setdefault("run_id", target.info.run_id)
        log_mlflow(card, step=step, prefix=prefix, **kwargs)
