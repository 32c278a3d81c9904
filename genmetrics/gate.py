"""The CI regression gate: compare a new scorecard with a baseline, metric by metric.

A metric **regresses** when the new value is worse than the baseline's -- in the
direction given by ``higher_is_better`` -- by more than it is allowed to:

* with a rule ``max_drop = X``: by more than ``X`` in the metric's own units;
* with a rule ``max_drop_relative = F``: by more than ``F * |baseline|``;
* by default (no rule for it): by more than the half-width of the baseline's 95%
  confidence interval when the scorecard has one (``score --bootstrap N``), else by
  more than 0.5% of the baseline value.

A change never exceeds an allowance of its own size, so identical scorecards always
pass. With ``require_significance = true`` a regression must also be significant: a
paired bootstrap over the per-sample statistics of both scorecards (``score
--per-sample``, same samples) must find the new value worse in at least
``1 - alpha`` of the resamples (``alpha`` defaults to 0.05).

Rules live in a TOML file::

    [default]                 # applies to every metric without its own table
    max_drop_relative = 0.01
    require_significance = true

    [metrics.bleu]
    max_drop = 0.5            # BLEU points

    [metrics.perplexity]
    ignore = true

Metrics are compared only when their signatures agree (fields ``n``, ``bootstrap``
and ``seed`` excepted); otherwise the gate refuses, naming the fields, unless
``allow_signature_mismatch``. A metric of the baseline missing from the new scorecard
(or failed there) is a regression: nothing is lost silently.

Exit codes of ``genmetrics gate``: 0 pass, 1 regression, 2 usage or invalid input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from genmetrics.errors import InputError, UsageError
from genmetrics.scorecard import Scorecard
from genmetrics.signature import UNCOMPARED_FIELDS, differences

DEFAULT_RELATIVE = 0.005
PASS, REGRESSION, MISSING = "pass", "regression", "missing"


@dataclass(frozen=True)
class Rule:
    """How much worse one metric may get (see the module docstring)."""

    max_drop: float | None = None
    max_drop_relative: float | None = None
    require_significance: bool = False
    alpha: float = 0.05
    replicates: int = 1000
    ignore: bool = False

    def merged(self, table: dict[str, Any], where: str) -> Rule:
        known = {f.name for f in fields(Rule)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        values = {f.name: getattr(self, f.name) for f in fields(Rule)}
        values.update(table)
        rule = Rule(**values)
        rule.check(where)
        return rule

    def check(self, where: str) -> None:
        def is_number(x: Any) -> bool:
            return isinstance(x, (int, float)) and not isinstance(x, bool)

        for name in ("max_drop", "max_drop_relative"):
            value = getattr(self, name)
            if value is not None and (not is_number(value) or value < 0):
                raise UsageError(f"{where}: {name} must be a number >= 0")
        for name in ("require_significance", "ignore"):
            if not isinstance(getattr(self, name), bool):
                raise UsageError(f"{where}: {name} must be true or false")
        if not is_number(self.alpha):
            raise UsageError(f"{where}: alpha must be a number")
        if not isinstance(self.replicates, int) or isinstance(self.replicates, bool):
            raise UsageError(f"{where}: replicates must be a whole number")
        if not 0 < self.alpha < 1:
            raise UsageError(f"{where}: alpha must be between 0 and 1")
        if self.replicates < 100:
            raise UsageError(f"{where}: replicates must be at least 100")


@dataclass
class Rules:
    default: Rule = field(default_factory=Rule)
    metrics: dict[str, Rule] = field(default_factory=dict)

    def for_metric(self, name: str, metric: str | None = None) -> Rule:
        """The rule for result ``name`` (e.g. rouge1), else for its metric (rouge)."""
        return self.metrics.get(name) or self.metrics.get(metric or name) or self.default


def load_rules(path: str | Path | None) -> Rules:
    """Read a rules TOML file (None: the documented defaults)."""
    if path is None:
        return Rules()
    import tomllib

    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - {"default", "metrics"})
    if unknown:
        raise UsageError(f"{path}: unknown table(s) {', '.join(unknown)}; use [default] "
                         "and [metrics.NAME]")
    default = Rule().merged(doc.get("default", {}), f"{path} [default]")
    metrics = {name: default.merged(table, f"{path} [metrics.{name}]")
               for name, table in doc.get("metrics", {}).items()}
    return Rules(default, metrics)


@dataclass
class Check:
    """The verdict on one metric."""

    metric: str
    status: str
    baseline: float
    new: float | None
    allowed: float | None = None
    allowance: str = ""
    p_value: float | None = None
    higher_is_better: bool = True
    message: str = ""

    @property
    def delta(self) -> float | None:
        return None if self.new is None else self.new - self.baseline

    @property
    def worse_by(self) -> float | None:
        if self.delta is None:
            return None
        return -self.delta if self.higher_is_better else self.delta


@dataclass
class GateReport:
    checks: list[Check]
    new_only: list[str]

    @property
    def passed(self) -> bool:
        return all(c.status == PASS for c in self.checks)

    @property
    def regressions(self) -> list[Check]:
        return [c for c in self.checks if c.status != PASS]


def signature_mismatches(new: Scorecard, base: Scorecard) -> dict[str, dict[str, tuple]]:
    """Per metric in both cards, the signature fields that differ (ignoring n/bootstrap/seed)."""
    out = {}
    for name, b in base.metrics.items():
        if name in new.metrics:
            diff = {k: v for k, v in differences(b.signature, new.metrics[name].signature).items()
                    if k not in UNCOMPARED_FIELDS}
            if diff:
                out[name] = diff
    return out


def _allowance(rule: Rule, base: Any) -> tuple[float, str]:
    if rule.max_drop is not None:
        return float(rule.max_drop), f"max_drop {rule.max_drop:g}"
    if rule.max_drop_relative is not None:
        return abs(base.value) * rule.max_drop_relative, \
            f"max_drop_relative {rule.max_drop_relative:g}"
    if base.ci95 is not None:
        half = (base.ci95[1] - base.ci95[0]) / 2
        return half, "baseline 95% CI half-width"
    return abs(base.value) * DEFAULT_RELATIVE, "0.5% of baseline"


def _paired_p_value(name: str, new: Scorecard, base: Scorecard, rule: Rule) -> float:
    import numpy as np

    from genmetrics.registry import get_metric
    from genmetrics.stats import paired_bootstrap_p

    for card, label in ((new, "new"), (base, "baseline")):
        stats = (card.per_sample or {}).get("stats", {})
        if name not in stats:
            raise InputError(f"require_significance for {name}: the {label} scorecard has no "
                             "per-sample statistics; score both with --per-sample")
    if new.per_sample["ids"] != base.per_sample["ids"]:  # type: ignore[index]
        raise InputError(f"require_significance for {name}: the two scorecards hold "
                         "different samples (ids differ), so they cannot be paired")

    def value_fn(card: Scorecard) -> Any:
        sig = card.metrics[name].signature
        cls = get_metric(sig["metric"])
        opts = {o.name: sig[o.name] for o in cls.spec.options if o.name in sig}
        metric = cls(**opts)
        return lambda totals, n: metric.value_from_totals(name, totals, n)

    rows_new = np.asarray(new.per_sample["stats"][name], dtype=np.float64)  # type: ignore[index]
    rows_base = np.asarray(base.per_sample["stats"][name], dtype=np.float64)  # type: ignore[index]
    if rows_new.shape != rows_base.shape:
        raise InputError(f"require_significance for {name}: the per-sample statistics differ "
                         f"in shape ({rows_new.shape} vs {rows_base.shape}); re-score both")
    return paired_bootstrap_p(rows_new, rows_base, value_fn(new), value_fn(base),
                              new.metrics[name].higher_is_better, replicates=rule.replicates)


def gate(new: Scorecard, base: Scorecard, rules: Rules | None = None,
         allow_signature_mismatch: bool = False) -> GateReport:
    """Check every metric of ``base`` in ``new`` (see the module docstring)."""
    rules = rules or Rules()
    known = set(base.metrics) | {r.signature.get("metric") for r in base.metrics.values()}
    unknown = sorted(set(rules.metrics) - known)
    if unknown:
        raise UsageError(f"rules name metric(s) not in the baseline: {', '.join(unknown)} "
                         f"(baseline has {', '.join(base.metrics) or 'none'})")
    mismatches = signature_mismatches(new, base)
    if mismatches and not allow_signature_mismatch:
        detail = "; ".join(
            f"{m}: " + ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in d.items())
            for m, d in mismatches.items())
        raise InputError(f"signatures differ, so the numbers are not comparable ({detail}). "
                         "Re-score with the baseline's settings, or pass "
                         "--allow-signature-mismatch")
    checks = []
    for name, b in base.metrics.items():
        rule = rules.for_metric(name, b.signature.get("metric"))
        if rule.ignore:
            continue
        n = new.metrics.get(name)
        if n is None:
            reason = new.errors.get(name) or new.errors.get(b.signature.get("metric", ""))
            checks.append(Check(name, MISSING, b.value, None, higher_is_better=b.higher_is_better,
                                message=f"failed in the new scorecard: {reason}" if reason
                                else "missing from the new scorecard"))
            continue
        if not math.isfinite(b.value):  # nothing to hold the new value to
            checks.append(Check(name, PASS, b.value, n.value, message="not gated: no finite "
                                f"value in the baseline ({b.reason or b.value})"))
            continue
        if not math.isfinite(n.value):
            checks.append(Check(name, MISSING, b.value, None, higher_is_better=b.higher_is_better,
                                message=f"no finite value in the new scorecard: "
                                f"{n.reason or n.value}"))
            continue
        allowed, allowance = _allowance(rule, b)
        check = Check(name, PASS, b.value, n.value, allowed, allowance,
                      higher_is_better=b.higher_is_better)
        worse = check.worse_by or 0.0
        if worse > allowed and not math.isclose(worse, allowed, rel_tol=1e-12, abs_tol=0.0):
            check.status = REGRESSION
            check.message = f"worse by {worse:.4g} (allowed {allowed:.4g}: {allowance})"
            if rule.require_significance:
                check.p_value = _paired_p_value(name, new, base, rule)
                if check.p_value >= rule.alpha:
                    check.status = PASS
                    check.message += f"; not significant (p = {check.p_value:.3g})"
                else:
                    check.message += f"; significant (p = {check.p_value:.3g})"
        elif worse < 0:
            check.message = f"better by {-worse:.4g}"
        checks.append(check)
    for name, reason in base.errors.items():  # failed in the baseline: nothing to hold
        checks.append(Check(name, PASS, math.nan, None, message=f"not gated: failed in the "
                            f"baseline ({reason})"))
    new_only = [m for m in new.metrics if m not in base.metrics]
    return GateReport(checks, new_only)


# -- output ---------------------------------------------------------------------------
HEADERS = ["metric", "baseline", "new", "delta", "allowed", "p", "status", "note"]


def report_rows(report: GateReport) -> list[list[str]]:
    def num(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    return [[c.metric, num(c.baseline), num(c.new),
             "-" if c.delta is None else f"{c.delta:+.4f}", num(c.allowed),
             "-" if c.p_value is None else f"{c.p_value:.3g}", c.status.upper(), c.message]
            for c in report.checks]


def markdown(report: GateReport) -> str:
    from genmetrics.tables import markdown as markdown_table

    verdict = "PASS" if report.passed else f"FAIL ({len(report.regressions)} regression(s))"
    text = f"### genmetrics gate: {verdict}\n\n" + markdown_table(HEADERS, report_rows(report))
    if report.new_only:
        text += f"\nNew metrics (not gated): {', '.join(report.new_only)}\n"
    return text


def junit_xml(report: GateReport) -> str:
    """JUnit XML: one test case per gated metric; regressions are failures."""
    import xml.etree.ElementTree as ET

    suite = ET.Element("testsuite", name="genmetrics gate", tests=str(len(report.checks)),
                       failures=str(len(report.regressions)), errors="0", skipped="0")
    for c in report.checks:
        case = ET.SubElement(suite, "testcase", classname="genmetrics.gate", name=c.metric)
        if c.status != PASS:
            failure = ET.SubElement(case, "failure", message=c.message or c.status,
                                    type=c.status)
            failure.text = (f"baseline {c.baseline!r}, new {c.new!r}, allowed {c.allowed!r} "
                            f"({c.allowance})")
        else:
            ET.SubElement(case, "system-out").text = c.message or "within the allowance"
    suites = ET.Element("testsuites")
    suites.append(suite)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, "unicode") + "\n"
