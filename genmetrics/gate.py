"""The CI regression gate: compare a new scorecard with a baseline, metric by metric.

A metric **regresses** when the new value is worse than the baseline's -- in the
direction given by ``higher_is_better`` -- by more than it is allowed to:

* with a rule ``max_drop = X``: by more than ``X`` in the metric's own units;
* with a rule ``max_drop_relative = F``: by more than ``F * |baseline|``;
* by default (no rule for it), with ``score --bootstrap N``:

  - a distribution metric (FID, sFID, KID, IS, precision, recall, density, coverage,
    Vendi) has a 95% *rerun interval*, ``value ± 1.96·√2·SE`` (SE: its bootstrap
    standard error across reruns; see :mod:`genmetrics.stats`). When both scorecards are
    against the same reference set and their feature rows are still on disk, the gate
    bootstraps the difference itself (:mod:`genmetrics.difference`: the references held
    fixed, since both runs were scored against them) and the metric fails when worse
    by more than ``1.96·SE_diff`` -- rule ``bootstrap difference, same references``.
    Otherwise (other references, rows deleted, a metric without a difference, such as
    the reference-free Vendi) it fails when worse by more than the baseline interval's
    half-width, ``1.96·√2·SE`` (before clipping to the metric's range), and the output
    says why there was no difference. What that half-width means: two runs of the same
    model differ by noise with standard deviation ``√2·SE``, so a same-model rerun comes
    out worse by more than the half-width with probability about 2.5% per metric
    (one-sided, under normality) -- and the bootstrap difference holds the same 2.5%.
    Gating ``k`` metrics, the chance that *some* metric alarms on a same-model rerun is
    at most ``k`` times that (less: they are correlated);
  - a paired metric (BLEU, ROUGE, SSIM...) has a percentile CI: by more than its
    half-width;

  without intervals, by more than 0.5% of the baseline value. Every verdict names the
  rule it applied (the ``note``: ``allowed X: RULE``).

A change never exceeds an allowance of its own size, so identical scorecards always
pass. With ``require_significance = true`` a regression must also be significant: a
paired bootstrap over the per-sample statistics of both scorecards (``score
--per-sample``, same samples) must find the new value worse in at least
``1 - alpha`` of the resamples (``alpha`` defaults to 0.05); a distribution metric has
no per-sample statistics, so its p-value is the normal approximation from the
bootstrap difference's SE (else ``√2·SE`` of the baseline).

Rules live in a TOML file::

    [default]                 # applies to every metric without its own table
    max_drop_relative = 0.01
    require_significance = true

    [metrics.bleu]
    max_drop = 0.5            # BLEU points

    [metrics.perplexity]
    ignore = true

Metrics are compared only when their signatures agree (fields ``n``, ``bootstrap``
and ``bootstrap_seed`` excepted; ``refs`` of a reference-free metric such as perplexity, too);
otherwise the gate refuses, naming each differing field once with the metrics it
concerns, unless ``allow_signature_mismatch`` -- then the results compared anyway are
marked ``≠sig``. A metric of the baseline missing from the new scorecard (or failed
there) is a regression: nothing is lost silently. A metric that failed in the baseline
has nothing to hold the new value to: it is ``skipped`` (not compared), with the reason.
A scorecard whose values or CIs do not follow from its own per-sample statistics (edited
by hand; see :mod:`genmetrics.recompute`) is refused.

Exit codes of ``genmetrics gate``: 0 pass, 1 regression, 2 usage or invalid input
(refusals included).
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
PASS, REGRESSION, MISSING, SKIPPED = "pass", "regression", "missing", "skipped"
SIG_MARK = "≠sig"  # as in ``genmetrics compare``


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
    baseline: float | None  # None: no finite value in the baseline (status skipped)
    new: float | None
    allowed: float | None = None
    allowance: str = ""
    p_value: float | None = None
    higher_is_better: bool = True
    message: str = ""
    #: signature fields that differ, (baseline, new), compared under
    #: ``allow_signature_mismatch``
    signature_differences: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    #: the standard error of new - baseline when the rule was the bootstrap difference
    difference_se: float | None = None

    @property
    def delta(self) -> float | None:
        return None if self.new is None or self.baseline is None else self.new - self.baseline

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
        return not self.regressions

    @property
    def regressions(self) -> list[Check]:
        return [c for c in self.checks if c.status in (REGRESSION, MISSING)]

    @property
    def skipped(self) -> list[Check]:
        """Metrics not compared: they failed (or have no finite value) in the baseline."""
        return [c for c in self.checks if c.status == SKIPPED]


def _reference_free(metric: Any, modality: str | None = None) -> bool:
    """True for a registered metric whose value reads no references (perplexity)."""
    from genmetrics.registry import get_metric
    from genmetrics.runner import reads_references

    try:
        return not reads_references(get_metric(str(metric), modality).spec)
    except Exception:  # noqa: BLE001 - a plugin not installed here: compare every field
        return False


def signature_mismatches(new: Scorecard, base: Scorecard) -> dict[str, dict[str, tuple]]:
    """Per metric in both cards, the signature fields that differ, (baseline, new);
    ``n``, ``bootstrap``, ``bootstrap_seed`` and ``ci_method`` are not compared, nor
    ``refs`` of a reference-free metric (older scorecards recorded one for perplexity)."""
    out = {}
    for name, b in base.metrics.items():
        if name in new.metrics:
            diff = {k: v for k, v in differences(b.signature, new.metrics[name].signature).items()
                    if k not in UNCOMPARED_FIELDS}
            if "refs" in diff and _reference_free(b.signature.get("metric", name), base.modality):
                del diff["refs"]
            if diff:
                out[name] = diff
    return out


def _show(value: Any, limit: int = 40) -> str:
    """A signature value for one line: digests as their first 8 hex digits, long text cut."""
    if isinstance(value, str) and value.startswith("sha256:"):
        value = value[7:15]
    text = repr(value) if value is not None else "-"
    return text if len(text) <= limit else text[:limit - 1] + "…"


def describe_mismatches(mismatches: dict[str, dict[str, tuple]], most: int = 6) -> str:
    """Each differing field once, baseline -> new, with the metrics it concerns.

    >>> describe_mismatches({"bleu": {"refs": ("sha256:" + "1" * 64, "sha256:" + "2" * 64)},
    ...                      "chrf": {"refs": ("sha256:" + "1" * 64, "sha256:" + "2" * 64)}})
    "refs '11111111' -> '22222222' (bleu, chrf)"
    """
    concerns: dict[str, list[str]] = {}  # one change -> the metrics it concerns
    for metric, diff in mismatches.items():
        for key, (a, b) in diff.items():
            concerns.setdefault(f"{key} {_show(a)} -> {_show(b)}", []).append(metric)
    groups: dict[tuple[str, ...], list[str]] = {}  # the same metrics -> their changes
    for change, metrics in concerns.items():
        groups.setdefault(tuple(metrics), []).append(change)
    parts = []
    for metrics, changes in groups.items():
        shown = ", ".join(metrics[:most])
        more = f" and {len(metrics) - most} more" if len(metrics) > most else ""
        parts.append(f"{', '.join(changes)} ({shown}{more})")
    return "; ".join(parts)


def _explicit(rule: Rule) -> bool:
    return rule.max_drop is not None or rule.max_drop_relative is not None


def _rerun_se(base: Any) -> float | None:
    """The standard error behind a distribution metric's rerun interval (its
    ``components["interval"]["se"]``), or None for any other result."""
    from genmetrics.recompute import is_rerun_interval

    interval = (base.components or {}).get("interval")
    se = interval.get("se") if isinstance(interval, dict) else None
    if not is_rerun_interval(base) or not isinstance(se, (int, float)) or isinstance(se, bool) \
            or not math.isfinite(se) or se < 0:
        return None
    return float(se)


def _allowance(rule: Rule, base: Any, difference: Any = None,
               why_not: str = "") -> tuple[float, str]:
    """How much worse ``base``'s metric may get, and the rule that says so, in words."""
    if rule.max_drop is not None:
        return float(rule.max_drop), f"max_drop {rule.max_drop:g}"
    if rule.max_drop_relative is not None:
        return abs(base.value) * rule.max_drop_relative, \
            f"max_drop_relative {rule.max_drop_relative:g}"
    if difference is not None:
        from genmetrics.difference import DIFFERENCE_Z, RULE

        return difference.allowance(), (f"{RULE}, {DIFFERENCE_Z:.2f}·SE of new − baseline, "
                                        f"SE {difference.se:.4g} over {difference.replicates} "
                                        "replicates")
    se = _rerun_se(base)
    if se is not None:  # z·√2·SE: the interval's half-width before clipping to the range
        from genmetrics.stats import RERUN_Z

        text = "baseline 95% rerun-interval half-width"
        return RERUN_Z * math.sqrt(2.0) * se, text + (f" (no bootstrap difference: {why_not})"
                                                      if why_not else "")
    if base.ci95 is not None:
        half = (base.ci95[1] - base.ci95[0]) / 2
        return half, "baseline 95% CI half-width"
    return abs(base.value) * DEFAULT_RELATIVE, "0.5% of baseline"


def _normal_p(worse: float, se: float) -> float:
    """One-sided p of a change ``worse`` with standard error ``se`` (normal approximation):
    how often noise alone would make it at least this much worse."""
    if se <= 0:
        return 0.0 if worse > 0 else 1.0
    return 0.5 * math.erfc(worse / (se * math.sqrt(2.0)))


def _paired_p_value(name: str, new: Scorecard, base: Scorecard, rule: Rule) -> float:
    from genmetrics.recompute import paired_p

    try:
        return paired_p(new, base, name, replicates=rule.replicates)
    except ValueError as exc:
        raise InputError(f"require_significance for {name}: {exc}") from None


def check_consistency(new: Scorecard, base: Scorecard) -> None:
    """Refuse (:class:`InputError`) a card whose values do not follow from its own
    per-sample statistics (see :func:`genmetrics.recompute.check_values`; the CIs'
    bootstraps are re-run by ``genmetrics validate``, not on every gate)."""
    from genmetrics.recompute import check_values

    for card, label in ((new, "new"), (base, "baseline")):
        problems = check_values(card, intervals=False)
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            raise InputError(f"the {label} scorecard is inconsistent: "
                             f"{'; '.join(problems[:3])}{more}. Re-score it; the gate does "
                             "not compare numbers its own statistics contradict")


def gate(new: Scorecard, base: Scorecard, rules: Rules | None = None,
         allow_signature_mismatch: bool = False) -> GateReport:
    """Check every metric of ``base`` in ``new`` (see the module docstring)."""
    rules = rules or Rules()
    known = set(base.metrics) | {r.signature.get("metric") for r in base.metrics.values()} \
        | set(base.errors)  # a rule may name (e.g. ignore) a metric that failed there
    unknown = sorted(set(rules.metrics) - known)
    if unknown:
        raise UsageError(f"rules name metric(s) not in the baseline: {', '.join(unknown)} "
                         f"(baseline has {', '.join(base.metrics) or 'none'})")
    check_consistency(new, base)
    mismatches = signature_mismatches(new, base)
    if mismatches and not allow_signature_mismatch:
        raise InputError("signatures differ (baseline -> new), so the numbers are not "
                         f"comparable: {describe_mismatches(mismatches)}. Re-score with the "
                         "baseline's settings, or pass --allow-signature-mismatch")
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
            checks.append(Check(name, SKIPPED, None, n.value, higher_is_better=b.higher_is_better,
                                message="not compared: no finite value in the baseline "
                                f"({b.reason or b.value})"))
            continue
        if not math.isfinite(n.value):
            checks.append(Check(name, MISSING, b.value, None, higher_is_better=b.higher_is_better,
                                message=f"no finite value in the new scorecard: "
                                f"{n.reason or n.value}"))
            continue
        rerun_se = _rerun_se(b)  # a distribution metric with a rerun interval
        difference, why_not = None, ""
        if rerun_se is not None and (not _explicit(rule) or rule.require_significance):
            from genmetrics.difference import NotPaired, bootstrap_difference

            try:
                difference = bootstrap_difference(new, base, name)
            except NotPaired as exc:
                why_not = str(exc)
        allowed, allowance = _allowance(rule, b, difference, why_not)
        check = Check(name, PASS, b.value, n.value, allowed, allowance,
                      higher_is_better=b.higher_is_better,
                      signature_differences=mismatches.get(name, {}),
                      difference_se=None if difference is None else difference.se)
        worse = check.worse_by or 0.0
        change = (f"worse by {worse:.4g}" if worse > 0 else
                  f"better by {-worse:.4g}" if worse < 0 else "unchanged")
        check.message = f"{change} (allowed {allowed:.4g}: {allowance})"
        if worse > allowed and not math.isclose(worse, allowed, rel_tol=1e-12, abs_tol=0.0):
            check.status = REGRESSION
            if rule.require_significance:
                if rerun_se is not None:  # no per-sample statistics: the bootstrap's SE
                    se = difference.se if difference is not None else math.sqrt(2.0) * rerun_se
                    check.p_value = _normal_p(worse, se)
                else:
                    check.p_value = _paired_p_value(name, new, base, rule)
                if check.p_value >= rule.alpha:
                    check.status = PASS
                    check.message += f"; not significant (p = {check.p_value:.3g})"
                else:
                    check.message += f"; significant (p = {check.p_value:.3g})"
        checks.append(check)
    for name, reason in base.errors.items():  # failed in the baseline: nothing to hold
        if rules.for_metric(name).ignore:
            continue
        result = new.metrics.get(name)
        checks.append(Check(name, SKIPPED, None, None if result is None else result.value,
                            message=f"not compared: failed in the baseline ({reason})"))
    new_only = [m for m in new.metrics if m not in base.metrics]
    slice_checks, slice_new_only = _slice_checks(new, base, rules, allow_signature_mismatch)
    return GateReport(checks + slice_checks, new_only + slice_new_only)


def slice_card(card: Scorecard, value: str) -> Scorecard:
    """The results of one slice (``--group-by``) of ``card`` as a scorecard of their own
    (no per-sample values, no feature rows: a slice is gated on its value and rule)."""
    group = (card.slices or {}).get("groups", {})[value]
    return Scorecard(modality=card.modality, inputs=card.inputs, metrics=group["metrics"],
                     environment=card.environment, timing=card.timing)


def slice_name(metric: str, by: str, value: str) -> str:
    """How a slice's result is named in reports: ``fid [category=cat]``."""
    return f"{metric} [{by}={value}]"


def _slice_checks(new: Scorecard, base: Scorecard, rules: Rules,
                  allow_signature_mismatch: bool) -> tuple[list[Check], list[str]]:
    """Every slice of the baseline checked as the overall values are, in the new card's
    slice of the same value: a regression in one slice fails the gate, named
    ``metric [field=value]``; a slice missing from the new card fails it too."""
    if not base.slices:
        return [], ([f"slices by {new.slices['by']}"] if new.slices else [])
    by, checks = base.slices["by"], []
    new_groups = (new.slices or {}).get("groups", {}) if (new.slices or {}).get("by") == by \
        else {}
    for value, group in base.slices["groups"].items():
        if value not in new_groups:
            why = (f"slice {by}={value} is missing from the new scorecard" if new.slices and
                   new.slices.get("by") == by else
                   f"the new scorecard has no slices by {by} (score it with --group-by {by})")
            checks += [Check(slice_name(name, by, value), MISSING, r.value, None,
                             higher_is_better=r.higher_is_better, message=why)
                       for name, r in group["metrics"].items()
                       if not rules.for_metric(name, r.signature.get("metric")).ignore]
            continue
        part = slice_card(base, value)
        known = set(part.metrics) | {r.signature.get("metric") for r in part.metrics.values()}
        report = gate(slice_card(new, value), part, Rules(rules.default, {
            k: v for k, v in rules.metrics.items() if k in known}), allow_signature_mismatch)
        for check in report.checks:
            check.metric = slice_name(check.metric, by, value)
            checks.append(check)
    new_only = [f"slice {by}={v}" for v in new_groups if v not in base.slices["groups"]]
    return checks, new_only


# -- output ---------------------------------------------------------------------------
HEADERS = ["metric", "baseline", "new", "delta", "allowed", "p", "status", "note"]


def report_rows(report: GateReport) -> list[list[str]]:
    """One row of :data:`HEADERS` per check; a result compared although its signature
    differs is named ``metric ≠sig`` (see :func:`notes`)."""
    def num(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    return [[f"{c.metric} {SIG_MARK}" if c.signature_differences else c.metric,
             num(c.baseline), num(c.new),
             "-" if c.delta is None else f"{c.delta:+.4f}", num(c.allowed),
             "-" if c.p_value is None else f"{c.p_value:.3g}", c.status.upper(), c.message]
            for c in report.checks]


def notes(report: GateReport) -> list[str]:
    """Lines below the table: signature differences compared anyway, new metrics."""
    out = []
    differing = {c.metric: c.signature_differences for c in report.checks
                 if c.signature_differences}
    if differing:
        out.append(f"{SIG_MARK}: compared although the signatures differ "
                   f"(--allow-signature-mismatch), baseline -> new: "
                   f"{describe_mismatches(differing)}")
    if report.new_only:
        out.append(f"new metrics, not gated: {', '.join(report.new_only)}")
    return out


def verdict(report: GateReport) -> str:
    """``PASS`` or ``FAIL (n regression(s))``, with the number of metrics not compared."""
    text = "PASS" if report.passed else f"FAIL ({len(report.regressions)} regression(s))"
    return text + (f", {len(report.skipped)} not compared" if report.skipped else "")


def markdown(report: GateReport) -> str:
    from genmetrics.tables import markdown as markdown_table

    text = f"### genmetrics gate: {verdict(report)}\n\n" + markdown_table(HEADERS,
                                                                        report_rows(report))
    return text + "\n\n" + "".join(f"- {note}\n" for note in notes(report))


def refusal_markdown(message: str) -> str:
    """The markdown summary of a gate that refused to compare (exit 2)."""
    return (f"### genmetrics gate: REFUSED\n\nNothing was compared (exit 2):\n\n"
            f"> {message}\n")


def _suite(**counts: int) -> Any:
    import xml.etree.ElementTree as ET

    values = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, **counts}
    return ET.Element("testsuite", name="genmetrics gate",
                      **{k: str(v) for k, v in values.items()})


def _xml(suite: Any) -> str:
    import xml.etree.ElementTree as ET

    suites = ET.Element("testsuites")
    suites.append(suite)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, "unicode") + "\n"


def junit_xml(report: GateReport) -> str:
    """JUnit XML: one test case per metric; regressions are failures, metrics that
    failed in the baseline are skipped (with the reason)."""
    import xml.etree.ElementTree as ET

    suite = _suite(tests=len(report.checks), failures=len(report.regressions),
                   skipped=len(report.skipped))
    for c in report.checks:
        case = ET.SubElement(suite, "testcase", classname="genmetrics.gate", name=c.metric)
        out = c.message or "within the allowance"
        if c.signature_differences:
            out += (f"; {SIG_MARK}: compared although the signatures differ: "
                    f"{describe_mismatches({c.metric: c.signature_differences})}")
        if c.status == SKIPPED:
            ET.SubElement(case, "skipped", message=c.message)
        elif c.status != PASS:
            failure = ET.SubElement(case, "failure", message=c.message or c.status,
                                    type=c.status)
            failure.text = (f"baseline {c.baseline!r}, new {c.new!r}, allowed {c.allowed!r} "
                            f"({c.allowance})")
            if c.signature_differences:
                ET.SubElement(case, "system-out").text = out
        else:
            ET.SubElement(case, "system-out").text = out
    return _xml(suite)


def refusal_junit(message: str) -> str:
    """JUnit XML of a gate that refused to compare: one test case in error."""
    import xml.etree.ElementTree as ET

    suite = _suite(tests=1, errors=1)
    case = ET.SubElement(suite, "testcase", classname="genmetrics.gate", name="comparable")
    ET.SubElement(case, "error", message=message, type="refused").text = (
        "genmetrics gate refused to compare the scorecards (exit 2); nothing was gated")
    return _xml(suite)
