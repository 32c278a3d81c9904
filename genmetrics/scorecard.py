"""Scorecards: the JSON document every run produces (schema ``genmetrics.scorecard/1``).

The JSON Schema ships inside the package (``genmetrics/schemas/scorecard-v1.json``);
:meth:`Scorecard.save` validates before writing and writes atomically (a temporary
file in the same folder, then ``os.replace``), so a reader never sees half a file.

    >>> import tempfile, pathlib
    >>> card = Scorecard(modality="text", inputs={"samples": {"path": "s/", "count": 0}})
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "card.json"
    >>> card.save(path)
    >>> Scorecard.load(path).modality
    'text'
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genmetrics.errors import InputError, UsageError
from genmetrics.io.common import write_text_atomically
from genmetrics.metric import MetricResult, json_safe

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_ID = "genmetrics.scorecard/1"
SCHEMA_FILE = "scorecard-v1.json"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _version() -> str:
    from genmetrics import __version__

    return __version__


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The shipped JSON Schema of scorecard v1."""
    return json.loads(files("genmetrics.schemas").joinpath(SCHEMA_FILE).read_text("utf-8"))


def _pandas(method: str) -> Any:
    """The pandas module, or a :class:`UsageError` that says how to install it."""
    try:
        import pandas
    except ImportError:
        raise UsageError(f"Scorecard.{method}() needs pandas: pip install pandas "
                         "(or pip install 'genmetrics[report]')") from None
    return pandas


def validate(document: dict[str, Any]) -> None:
    """Raise :class:`InputError` naming the first problem if ``document`` is not a valid v1."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise InputError(f"not a valid genmetrics scorecard v1 at {where}: {error.message}")


def small_sample_note(result: Any) -> str:
    """What a result's ``components.rank_deficient`` says (FID on fewer images than
    features), as one sentence; "" when it has none.

    >>> from genmetrics.metric import MetricResult
    >>> r = MetricResult("fid", 9.0, 12, False, "", {}, components={"rank_deficient": {
    ...     "sides": ["samples"], "note": "n <= 2048 features: the covariance is singular"}})
    >>> small_sample_note(r)
    'in the samples, n <= 2048 features: the covariance is singular'
    """
    flag = (result.components or {}).get("rank_deficient")
    if not flag:
        return ""
    if not isinstance(flag, dict):
        return "rank-deficient covariance"
    sides = " and the ".join(str(s) for s in flag.get("sides", []))
    note = str(flag.get("note", "rank-deficient covariance"))
    return f"in the {sides}, {note}" if sides else note


def _slices_from(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    from genmetrics.slices import slices_from_dict

    return slices_from_dict(doc)


@dataclass
class Scorecard:
    """Results of one run: metrics, inputs, what was skipped, environment and timing."""

    modality: str
    inputs: dict[str, Any]
    metrics: dict[str, MetricResult] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    #: metrics of the default set that cannot run here (e.g. IS without classifier weights)
    unavailable: dict[str, str] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    per_sample: dict[str, Any] | None = None
    #: failure-mode checks of the samples (see :mod:`genmetrics.diagnostics`)
    diagnostics: dict[str, Any] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    created: str = field(default_factory=_now)
    genmetrics_version: str = field(default_factory=_version)
    #: where the feature rows kept for bootstrap intervals are (``--bootstrap N``):
    #: ``{output: {"samples": path, "references": path}}``, e.g. output ``"2048"``
    #: (pool3) or ``"mixed_6/conv"`` (sFID); None when none were kept
    rows: dict[str, dict[str, str]] | None = None
    #: ``--group-by FIELD``: every metric per value of FIELD, with n (see
    #: :mod:`genmetrics.slices`): ``{"by", "source", "unlabelled", "groups": {value:
    #: {"n", "metrics": {name: MetricResult}}}}``; None without slices
    slices: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "schema": SCHEMA_ID,
            "genmetrics_version": self.genmetrics_version,
            "created": self.created,
            "modality": self.modality,
            "inputs": self.inputs,
            "metrics": {name: r.to_dict() for name, r in self.metrics.items()},
        }
        if self.errors:
            doc["errors"] = dict(self.errors)
        if self.unavailable:
            doc["unavailable"] = dict(self.unavailable)
        doc["skipped"] = list(self.skipped)
        if self.warnings:
            doc["warnings"] = list(self.warnings)
        if self.diagnostics is not None:
            doc["diagnostics"] = json_safe(self.diagnostics)
        if self.per_sample is not None:
            doc["per_sample"] = json_safe(self.per_sample)
        if self.rows:
            doc["rows"] = {output: dict(sides) for output, sides in self.rows.items()}
        if self.slices is not None:
            from genmetrics.slices import slices_to_dict

            doc["slices"] = slices_to_dict(self.slices)
        doc["environment"] = dict(self.environment)
        doc["timing"] = dict(self.timing)
        return doc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    def save(self, path: str | os.PathLike[str]) -> None:
        """Validate, then write atomically (temp file in the same folder + rename)."""
        text = self.to_json()
        validate(json.loads(text))
        write_text_atomically(path, text)

    def log_to(self, target: Any, step: int | None = None, prefix: str = "genmetrics/",
               **kwargs: Any) -> None:
        """Send the numbers and signatures to an experiment tracker: a torch
        ``SummaryWriter``, a wandb run, ``"mlflow"`` / the mlflow module, or a name of
        :data:`genmetrics.loggers.LOGGERS` (see :mod:`genmetrics.loggers`)."""
        from genmetrics.loggers import log_to

        log_to(self, target, step=step, prefix=prefix, **kwargs)

    def to_frame(self, signatures: str = "full") -> pd.DataFrame:
        """One row per metric result, as a :class:`pandas.DataFrame` (needs pandas).

        Columns: ``metric`` (the metric, e.g. ``rouge``), ``result`` (its result, e.g.
        ``rouge1``), ``value``, ``ci_low`` / ``ci_high`` (the 95% CI, NaN without one),
        ``n``, ``direction`` (``higher`` or ``lower`` is better) and ``signature``, as
        the summary of ``genmetrics score`` prints it: ``signatures="full"`` (the whole
        string) or ``"short"``. Failed metrics (``errors``) have no row.

            >>> from genmetrics.metric import MetricResult
            >>> sig = {"metric": "bleu", "tokenize": "13a", "n": 3}
            >>> bleu = MetricResult("bleu", 31.5, 3, True, "BLEU", sig, ci95=(28.0, 35.0))
            >>> ppl = MetricResult("perplexity", 46.2, 3, False, "", {"metric": "perplexity"})
            >>> card = Scorecard("text", {}, {"bleu": bleu, "perplexity": ppl})
            >>> frame = card.to_frame()
            >>> print(frame.drop(columns="signature").to_string(index=False))
                metric     result  value  ci_low  ci_high  n direction
                  bleu       bleu   31.5    28.0     35.0  3    higher
            perplexity perplexity   46.2     NaN      NaN  3     lower
            >>> frame["signature"].tolist()
            ['bleu|tok:13a|n:3', 'perplexity']
        """
        pd = _pandas("to_frame")
        from genmetrics.cli import SIGNATURE_FORMS, signature_line

        if signatures not in SIGNATURE_FORMS or signatures == "none":
            raise UsageError(f"signatures={signatures!r}: choose 'full' or 'short'")
        rows = [{
            "metric": str(r.signature.get("metric", name)),
            "result": name,
            "value": float(r.value),
            "ci_low": float(r.ci95[0]) if r.ci95 is not None else math.nan,
            "ci_high": float(r.ci95[1]) if r.ci95 is not None else math.nan,
            "n": int(r.n),
            "direction": "higher" if r.higher_is_better else "lower",
            "signature": signature_line(r, signatures, modality=self.modality),
        } for name, r in self.metrics.items()]
        columns = ["metric", "result", "value", "ci_low", "ci_high", "n", "direction",
                   "signature"]
        frame = pd.DataFrame(rows, columns=columns)
        return frame.astype({"value": "float64", "ci_low": "float64", "ci_high": "float64",
                             "n": "int64"})

    def per_sample_frame(self) -> pd.DataFrame:
        """The per-sample values (``score --per-sample``), one row per sample id, as a
        :class:`pandas.DataFrame` (needs pandas).

        The index is the sample id (``id``); one float column per result with per-sample
        values (e.g. ``bleu``, ``rouge1``; a sample without one is NaN) and, for a
        result that records each sample's nearest reference (density), the columns
        ``{result}.nearest_reference`` (its id, or its row in reference statistics) and
        ``{result}.nearest_distance``. The sufficient statistics behind paired tests
        (``per_sample["stats"]``) are not columns. A card scored without per-sample
        values raises :class:`~genmetrics.errors.UsageError`.

            >>> card = Scorecard("text", {}, per_sample={"ids": ["a.txt", "b.txt"],
            ...     "values": {"bleu": [40.0, None], "chrf": [61.5, 70.25]}})
            >>> print(card.per_sample_frame())  # doctest: +NORMALIZE_WHITESPACE
                   bleu   chrf
            id
            a.txt  40.0  61.50
            b.txt   NaN  70.25
        """
        pd = _pandas("per_sample_frame")
        if not self.per_sample or "ids" not in self.per_sample:
            raise UsageError("this scorecard holds no per-sample values: score with "
                             "--per-sample (genmetrics.score(..., per_sample=True), "
                             "Evaluator(..., per_sample=True))")
        ids = [str(i) for i in self.per_sample["ids"]]
        index = pd.Index(ids, name="id")

        def column(values: list[Any], dtype: str) -> Any:
            return pd.Series(values[:len(ids)], index=index[:len(values)],
                             dtype=dtype).reindex(index)

        columns: dict[str, Any] = {
            name: column([math.nan if v is None else v for v in values], "float64")
            for name, values in (self.per_sample.get("values") or {}).items()}
        for name, nearest in (self.per_sample.get("nearest_reference") or {}).items():
            if "ids" in nearest:
                columns[f"{name}.nearest_reference"] = column(nearest["ids"], "object")
            else:
                columns[f"{name}.nearest_reference"] = column(nearest.get("rows", []), "Int64")
            distance = [math.nan if v is None else v for v in nearest.get("distance", [])]
            columns[f"{name}.nearest_distance"] = column(distance, "float64")
        return pd.DataFrame(columns, index=index)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Scorecard:
        validate(doc)
        metrics = {
            name: MetricResult(
                name=name,
                value=math.nan if m["value"] is None else m["value"],
                reason=m.get("reason"),
                n=m["n"],
                higher_is_better=m["higher_is_better"],
                unit=m.get("unit", ""),
                signature=m["signature"],
                components=m.get("components", {}),
                ci95=tuple(m["ci95"]) if "ci95" in m else None,  # type: ignore[arg-type]
            )
            for name, m in doc["metrics"].items()
        }
        per_sample = doc.get("per_sample")
        if per_sample is not None:
            for name, values in per_sample["values"].items():
                if name in metrics:
                    metrics[name].per_sample = values
        return cls(
            modality=doc["modality"],
            inputs=doc["inputs"],
            metrics=metrics,
            errors=doc.get("errors", {}),
            unavailable=doc.get("unavailable", {}),
            skipped=doc["skipped"],
            warnings=doc.get("warnings", []),
            per_sample=per_sample,
            diagnostics=doc.get("diagnostics"),
            environment=doc["environment"],
            timing=doc["timing"],
            created=doc["created"],
            genmetrics_version=doc["genmetrics_version"],
            rows=doc.get("rows"),
            slices=_slices_from(doc.get("slices")),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Scorecard:
        """Read and validate a scorecard file; a bad file raises :class:`InputError`."""
        path = Path(path)
        try:
            doc = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            raise InputError(f"{path} does not exist") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path} is not a JSON scorecard: {exc}") from None
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            return cls.from_dict(doc)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None
