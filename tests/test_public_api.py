"""The public API is small, explicit and lazy; these tests pin it."""

import subprocess
import sys

import genmetrics

PUBLIC = {"__version__", "score", "Evaluator", "Scorecard", "get_metric", "list_metrics", "Metric",
          "MetricSpec", "MetricResult", "Option", "GenmetricsError"}


def test_public_names_are_exactly_these():
    assert set(genmetrics.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(genmetrics, name) is not None


def test_import_is_lazy():
    code = (
        "import sys, genmetrics\n"
        "heavy = [m for m in ('torch', 'numpy', 'sacrebleu', 'rouge_score_rs', 'typer', "
        "'genmetrics.metrics', 'genmetrics.runner') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_unknown_attribute_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError):
        genmetrics.Trainer  # noqa: B018  (no such name)
