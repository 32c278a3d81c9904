"""The regression gate: every rule on hand-built scorecards, outputs, and end to end."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from genmetrics.errors import InputError, UsageError
from genmetrics.gate import Rule, Rules, gate, junit_xml, load_rules, markdown
from genmetrics.metric import MetricResult
from genmetrics.scorecard import Scorecard
from tests.conftest import cli_env
from tests.textcorpus import make_pairs, write_folder_pairs


def result(name, value, higher=True, ci=None, **sig):
    signature = {"metric": name, "v": "1", "n": 100, "genmetrics": "0.1.0", **sig}
    return MetricResult(name, value, 100, higher, "u", signature, ci95=ci)


def card(*results, errors=None):
    return Scorecard(modality="text", inputs={"samples": {"path": "s", "count": 100}},
                     metrics={r.name: r for r in results}, errors=errors or {})


def statuses(report):
    return {c.metric: c.status for c in report.checks}


def write_rules(tmp_path, text):
    path = tmp_path / "gate.toml"
    path.write_text(text)
    return load_rules(path)


def test_identical_scorecards_always_pass():
    base = card(result("bleu", 30.0, ci=(29.0, 31.0)), result("ppl", 12.0, higher=False))
    for rules in (Rules(), Rules(Rule(max_drop=0.0)), Rules(Rule(max_drop_relative=0.0))):
        assert gate(base, base, rules).passed


def test_default_uses_the_baseline_ci_half_width():
    base = card(result("bleu", 30.0, ci=(29.0, 31.0)))  # half-width 1.0
    assert gate(card(result("bleu", 29.1)), base).passed
    report = gate(card(result("bleu", 28.9)), base)
    assert statuses(report) == {"bleu": "regression"}
    assert "CI half-width" in report.checks[0].message
    assert gate(card(result("bleu", 35.0)), base).passed  # better is fine


def test_default_without_ci_is_half_a_percent():
    base = card(result("bleu", 40.0))  # allowed 0.2
    assert gate(card(result("bleu", 39.85)), base).passed
    assert not gate(card(result("bleu", 39.75)), base).passed


def test_direction_follows_higher_is_better():
    base = card(result("ppl", 20.0, higher=False))
    assert not gate(card(result("ppl", 20.5, higher=False)), base).passed
    assert gate(card(result("ppl", 15.0, higher=False)), base).passed


def test_absolute_relative_per_metric_and_ignore(tmp_path):
    rules = write_rules(tmp_path, """
[default]
max_drop_relative = 0.10
[metrics.bleu]
max_drop = 0.5
[metrics.chrf]
ignore = true
""")
    base = card(result("bleu", 30.0), result("rouge1", 0.50), result("chrf", 50.0))
    new = card(result("bleu", 29.4), result("rouge1", 0.46), result("chrf", 10.0))
    report = gate(new, base, rules)
    assert statuses(report) == {"bleu": "regression", "rouge1": "pass"}  # chrf ignored
    assert report.checks[0].allowance == "max_drop 0.5"
    new = card(result("bleu", 29.6), result("rouge1", 0.44), result("chrf", 50.0))
    assert statuses(gate(new, base, rules)) == {"bleu": "pass", "rouge1": "regression"}


@pytest.mark.parametrize("text, message", [
    ("[default]\nmax_drop = -1", "max_drop must be a number >= 0"),
    ("[default]\nmaxdrop = 1", "unknown key(s) maxdrop"),
    ("[thresholds]\nx = 1", "unknown table(s) thresholds"),
    ("[default\n", "not valid TOML"),
    ("[default]\nalpha = 2", "alpha must be between 0 and 1"),
    ("[default]\nalpha = \"0.05\"", "alpha must be a number"),
    ("[default]\nrequire_significance = \"no\"", "require_significance must be true or false"),
    ("[default]\nreplicates = 1000.5", "replicates must be a whole number"),
])
def test_bad_rules_are_usage_errors(tmp_path, text, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        write_rules(tmp_path, text)


def test_rules_for_unknown_metrics_are_refused():
    with pytest.raises(UsageError, match="not in the baseline: meteor"):
        gate(card(result("bleu", 1.0)), card(result("bleu", 1.0)),
             Rules(metrics={"meteor": Rule(max_drop=1)}))


def test_missing_or_failed_metrics_are_regressions():
    base = card(result("bleu", 30.0), result("rouge1", 0.5, metric="rouge"))
    new = card(result("bleu", 30.0), errors={"rouge": "rouge: no samples were scored"})
    report = gate(new, base)
    assert statuses(report) == {"bleu": "pass", "rouge1": "missing"}
    assert "no samples were scored" in report.checks[1].message


def test_signature_mismatch_is_refused_naming_the_fields():
    base = card(result("bleu", 30.0, tokenize="13a", bootstrap=1000, bootstrap_seed=1))
    new = card(result("bleu", 30.0, tokenize="intl", bootstrap=200, bootstrap_seed=2))
    with pytest.raises(InputError, match=r"tokenize '13a' -> 'intl' \(bleu\)"):
        gate(new, base)
    assert gate(new, base, allow_signature_mismatch=True).passed


def test_significance_needs_per_sample_statistics():
    base = card(result("bleu", 30.0))
    with pytest.raises(InputError, match="score both with --per-sample"):
        gate(card(result("bleu", 20.0)), base, Rules(Rule(require_significance=True)))


def test_junit_and_markdown_outputs(tmp_path):
    from junitparser import Failure, JUnitXml

    base = card(result("bleu", 30.0), result("rouge1", 0.5))
    report = gate(card(result("bleu", 20.0), result("rouge1", 0.5)), base)
    path = tmp_path / "gate.xml"
    path.write_text(junit_xml(report))
    suites = list(JUnitXml.fromfile(str(path)))
    cases = {case.name: case for suite in suites for case in suite}
    assert set(cases) == {"bleu", "rouge1"}
    assert any(isinstance(r, Failure) for r in cases["bleu"].result)
    assert cases["rouge1"].is_passed
    text = markdown(report)
    assert text.startswith("### genmetrics gate: FAIL (1 regression(s))")
    assert "| bleu | 30.0000 | 20.0000 | -10.0000 |" in text


# -- end to end -------------------------------------------------------------------------
def drop_words(text: str, rng: random.Random, fraction: float) -> str:
    lines = []
    for line in text.split("\n"):
        words = line.split(" ")
        kept = [w for w in words if rng.random() >= fraction] or words[:1]
        lines.append(" ".join(kept))
    return "\n".join(lines)


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate")
    pairs = make_pairs(200, seed=3)
    write_folder_pairs(pairs, root / "base", root / "refs")
    rng = random.Random(0)
    write_folder_pairs([(drop_words(h, rng, 0.2), r) for h, r in pairs], root / "degraded",
                       root / "refs_copy")
    tiny = [(h.replace(" the ", " a ", 1) if i % 50 == 0 else h, r)
            for i, (h, r) in enumerate(pairs)]
    write_folder_pairs(tiny, root / "tiny", root / "refs_copy2")
    return root


def score_cli(run_cli, root: Path, name: str) -> Path:
    out = root / f"{name}.json"
    done = run_cli("score", root / name, "-r", root / "refs", "--metrics", "bleu,rouge,meteor",
                   "--per-sample", "--bootstrap", "1000", "-q", "-o", out)
    assert done.returncode == 0, done.stderr
    return out


def test_gate_end_to_end(run_cli, e2e):
    base = score_cli(run_cli, e2e, "base")
    degraded = score_cli(run_cli, e2e, "degraded")
    junit = e2e / "junit.xml"
    done = run_cli("gate", degraded, "--baseline", base, "--junit", junit,
                   "--markdown", e2e / "summary.md", env=cli_env(COLUMNS="250"))
    assert done.returncode == 1, done.stdout + done.stderr
    failed_line = [ln for ln in done.stdout.splitlines() if "gate failed" in ln][0]
    for name in ("bleu", "rouge1", "rouge2", "rougeL", "rougeLsum", "meteor"):
        assert name in failed_line
    assert "FAIL" in (e2e / "summary.md").read_text()

    tiny = score_cli(run_cli, e2e, "tiny")
    rules = e2e / "significance.toml"
    rules.write_text("[default]\nrequire_significance = true\n")
    done = run_cli("gate", tiny, "--baseline", base, "--rules", rules)
    assert done.returncode == 0, done.stdout + done.stderr  # within the CI: passes
    # the same tiny change with a zero allowance and no significance test fails
    rules.write_text("[default]\nmax_drop = 0.0\n")
    assert run_cli("gate", tiny, "--baseline", base, "--rules", rules).returncode == 1
    # and the degraded run is a significant regression
    rules.write_text("[default]\nrequire_significance = true\n")
    done = run_cli("gate", degraded, "--baseline", base, "--rules", rules)
    assert done.returncode == 1 and "significant (p = " in done.stdout


def paired_cards(shift: float, seed: int = 0, noise: float = 0.05,
                 ci_half: float | None = None):
    """Two ROUGE-1 scorecards (NEW, BASE) over the same 300 samples; NEW = BASE + a normal
    of mean ``shift`` and std ``noise``; with ``ci_half``, each holds a CI of value ±
    ``ci_half``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    base_f = rng.uniform(0.3, 0.9, 300)
    new_f = np.clip(base_f + rng.normal(shift, noise, 300), 0, 1)
    cards = []
    for f in (new_f, base_f):
        mean = float(f.mean())
        ci = None if ci_half is None else (mean - ci_half, mean + ci_half)
        c = card(result("rouge1", mean, ci=ci, metric="rouge", use_stemmer=False,
                        rouge_type="rouge1"))
        c.per_sample = {"ids": [str(i) for i in range(300)], "values": {},
                        "stats": {"rouge1": [[x] for x in f]}}
        cards.append(c)
    return cards


def test_paired_bootstrap_separates_noise_from_a_real_drop():
    rules = Rules(Rule(max_drop=0.0, require_significance=True))
    new, base = paired_cards(shift=-0.001)
    check = gate(new, base, rules).checks[0]
    assert check.status == "pass" and check.p_value > 0.05 and "not significant" in check.message
    new, base = paired_cards(shift=-0.02)
    check = gate(new, base, rules).checks[0]
    assert check.status == "regression" and check.p_value < 0.01


def test_paired_test_needs_the_same_samples():
    new, base = paired_cards(shift=-0.02)
    new.per_sample["ids"][0] = "other"
    with pytest.raises(InputError, match="different samples"):
        gate(new, base, Rules(Rule(max_drop=0.0, require_significance=True)))


def test_paired_test_lines_samples_up_by_id_whatever_their_order():
    """The same samples in another order (e.g. another file order) pair by id: the same
    p-value as in the original order, not a refusal."""
    import numpy as np

    rules = Rules(Rule(max_drop=0.0, require_significance=True))
    new, base = paired_cards(shift=-0.02)
    expected = gate(new, base, rules).checks[0].p_value
    order = np.random.default_rng(3).permutation(300)
    base.per_sample["ids"] = [base.per_sample["ids"][i] for i in order]
    base.per_sample["stats"]["rouge1"] = [base.per_sample["stats"]["rouge1"][i] for i in order]
    check = gate(new, base, rules).checks[0]
    assert check.p_value == expected and check.status == "regression"


def test_gate_usage_errors_exit_2(run_cli, e2e, tmp_path):
    base = e2e / "base.json"
    if not base.exists():
        score_cli(run_cli, e2e, "base")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "nope"}))
    for args in (("gate", bad, "--baseline", base), ("gate", base),
                 ("gate", base, "--baseline", base, "--rules", tmp_path / "none.toml")):
        done = run_cli(*args)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
