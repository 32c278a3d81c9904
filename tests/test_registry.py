"""The registry: lazy built-ins, helpful errors, and a real third-party entry point."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from genmetrics import registry
from genmetrics.errors import UsageError
from genmetrics.metric import Metric
from tests.conftest import cli_env, write_files

PLUGIN_PYPROJECT = """
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "genmetrics-tinyplugin"
version = "0.0.1"

[project.entry-points."genmetrics.metrics"]
wordcount = "tinyplugin:WordCount"
"""

PLUGIN_MODULE = '''
"""A third-party metric: mean number of words per sample."""
from genmetrics import Metric, MetricSpec


class WordCount(Metric):
    spec = MetricSpec(name="wordcount", modality="text", kind="distribution",
                      higher_is_better=True, unit="words per sample")
    state_reductions = {"words": "sum", "n": "sum"}

    def update(self, samples, references=None):
        self.state["words"] += sum(len(s.split()) for s in samples)
        self.state["n"] += len(samples)

    def compute(self, per_sample=False):
        self.require_samples(self.state["n"])
        n = self.state["n"]
        return {"wordcount": self.result(self.state["words"] / n, n=n)}
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """Build and install a tiny plugin package with pip into a private site folder."""
    root = tmp_path_factory.mktemp("plugin")
    src = write_files(root / "src", {
        "pyproject.toml": PLUGIN_PYPROJECT,
        "tinyplugin/__init__.py": PLUGIN_MODULE,
    })
    site = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--disable-pip-version-check", "--target", str(site), str(src)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    assert list(site.glob("genmetrics_tinyplugin-0.0.1.dist-info/entry_points.txt"))
    return site


def test_builtins_are_registered_without_importing_them():
    code = textwrap.dedent("""
        import sys
        from genmetrics import registry
        names = list(registry.targets())
        assert {"bleu", "chrf", "rouge"} <= set(names), names
        loaded = [m for m in sys.modules if m.startswith("genmetrics.metrics")
                  or m in ("sacrebleu", "rouge_score", "rouge_score_rs", "torch")]
        assert not loaded, loaded
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_get_metric_returns_metric_classes():
    for name in ("bleu", "chrf", "rouge"):
        cls = registry.get_metric(name)
        assert issubclass(cls, Metric) and cls.spec.name == name


def test_unknown_metric_suggests_close_names():
    with pytest.raises(UsageError, match="Did you mean bleu"):
        registry.get_metric("bleuu")


def test_list_metrics_filters_by_modality():
    names = {s.name for s in registry.list_metrics("text")}
    assert {"bleu", "chrf", "rouge"} <= names
    assert registry.list_metrics("no-such-modality") == []


def test_entry_point_plugin_in_process(plugin_site, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_site))
    registry.refresh()
    try:
        assert registry.targets()["wordcount"] == "tinyplugin:WordCount"
        metric = registry.get_metric("wordcount")()
        metric.update(["one two three", "four"])
        assert metric.compute()["wordcount"].value == 2.0
    finally:
        monkeypatch.undo()
        registry.refresh()
    assert "wordcount" not in registry.targets()


def test_entry_point_plugin_from_the_command_line(plugin_site, run_cli, text_pair_dirs, tmp_path):
    env = cli_env(PYTHONPATH=str(plugin_site))
    listed = run_cli("list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "wordcount" in listed.stdout and "plugin tinyplugin:WordCount" in listed.stdout
    samples, _ = text_pair_dirs
    out = tmp_path / "card.json"
    done = run_cli("score", samples, "--metrics", "wordcount", "--out", out, env=env)
    assert done.returncode == 0, done.stderr
    from genmetrics.scorecard import Scorecard

    card = Scorecard.load(out)
    assert card.metrics["wordcount"].value == pytest.approx((6 + 11 + 6) / 3)


def test_aliases_select_their_plugin():
    from genmetrics.registry import ALIASES, canonical, get_metric

    for alias, target in ALIASES.items():
        assert alias in get_metric(target).spec.outputs
        assert get_metric(alias) is get_metric(target)
    for name in ("precision_recall", "density_coverage"):  # every output selects it
        assert all(ALIASES[o] == name for o in get_metric(name).spec.outputs)
    assert canonical(["precision", "fid", "recall", "coverage"]) == [
        "precision_recall", "fid", "density_coverage"]
    with pytest.raises(UsageError, match="Did you mean precision"):
        get_metric("precison")


# -- one name, one metric per modality (wer / cer: text outputs and ASR of audio) --------
def test_a_name_can_have_one_metric_per_modality():
    from genmetrics.metrics.audio.asr_error_rate import AudioCER, AudioWER
    from genmetrics.metrics.text.wer import CER, WER

    assert registry.modalities("wer") == ("text", "audio") == registry.modalities("cer")
    assert registry.modalities("bleu") == ()
    assert registry.get_metric("wer", "text") is WER
    assert registry.get_metric("wer", "audio") is AudioWER
    assert registry.get_metric("cer", "text") is CER
    assert registry.get_metric("cer", "audio") is AudioCER
    assert registry.get_metric("bleu", "text") is registry.get_metric("bleu")
    with pytest.raises(UsageError, match=r"several modalities \(text or audio\)"):
        registry.get_metric("wer")
    with pytest.raises(UsageError, match="wer is a text or audio metric, not image"):
        registry.get_metric("wer", "image")
    rows = [(n, m) for n, m, _ in registry.registrations() if n == "wer"]
    assert rows == [("wer", "text"), ("wer", "audio")]


def test_list_metrics_gives_each_modalitys_spec():
    def modalities_of(name, specs):
        return sorted(s.modality for s in specs if s.name == name)

    assert modalities_of("wer", registry.list_metrics()) == ["audio", "text"]
    assert modalities_of("wer", registry.list_metrics("text")) == ["text"]
    assert modalities_of("cer", registry.list_metrics("audio")) == ["audio"]
    assert modalities_of("wer", registry.list_metrics("image")) == []


def test_options_and_defaults_follow_the_runs_modality():
    from genmetrics.runner import build_metrics, default_metrics

    text = build_metrics(["wer"], "text", {"wer": {"normalize": "basic"}}, True)
    assert text["wer"].spec.modality == "text" and text["wer"].options["normalize"] == "basic"
    with pytest.raises(UsageError, match="must be one of none, basic, whisper"):
        build_metrics(["wer"], "text", {"wer": {"normalize": "lower"}}, True)
    with pytest.raises(UsageError, match="wer.*has no option 'asr'"):  # an audio option
        build_metrics(["wer"], "text", {"wer": {"asr": "pocketsphinx"}}, True)
    with pytest.raises(UsageError, match="wer is a text or audio metric, not image"):
        build_metrics(["wer"], "image", {}, True)
    # text wer/cer run when named; a default text run has TER but not them
    assert "ter" in default_metrics("text", True)
    assert not {"wer", "cer"} & set(default_metrics("text", True))


def test_evaluator_and_cli_tell_the_modalities_apart(run_cli):
    from genmetrics.evaluator import Evaluator

    ev = Evaluator(["wer", "cer"], modality="text", sync="none")  # sets device where known
    ev.update(["the cat sat"], ["the cat sat down"])
    card = ev.compute()
    assert card.metrics["wer"].value == 0.25 and card.metrics["cer"].value == 5 / 16
    listed = run_cli("list", "--modality", "text")
    assert listed.returncode == 0, listed.stderr
    lines = [line for line in listed.stdout.splitlines() if line.startswith("│ wer ")]
    assert len(lines) == 1 and "text" in lines[0]
    both = run_cli("list")
    assert sum(line.startswith("│ wer ") for line in both.stdout.splitlines()) == 2
    helped = run_cli("score", "--help")
    assert "wer.normalize=none (text runs)" in " ".join(helped.stdout.split())
