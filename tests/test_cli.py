"""The command line, run as users run it: exit codes, messages, files written."""

from __future__ import annotations

import json

from genmetrics.scorecard import Scorecard
from tests.conftest import assert_one_line_error, write_files


def test_score_writes_a_valid_scorecard_and_prints_a_table(run_cli, text_pair_dirs, tmp_path):
    samples, refs = text_pair_dirs
    out = tmp_path / "card.json"
    done = run_cli("score", "--modality", "text", samples, "--reference", refs,
                   "--out", out, "--per-sample", "--set", "bleu.tokenize=intl")
    assert done.returncode == 0, done.stderr
    card = Scorecard.load(out)
    assert card.metrics["bleu"].signature["tokenize"] == "intl"
    assert len(card.per_sample["ids"]) == 3
    for name in ("bleu", "chrf", "rouge1", "rougeLsum", "meteor", "perplexity"):
        assert name in done.stdout
    assert f"scorecard: {out}" in done.stdout.replace("\n", "")


def test_score_to_stdout(run_cli, text_pair_dirs):
    samples, refs = text_pair_dirs
    done = run_cli("score", samples, "-r", refs, "--metrics", "rouge", "--out", "-")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert set(doc["metrics"]) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}


def test_a_missing_reference_is_skipped_or_with_on_error_fail_a_one_line_error(
        run_cli, text_pair_dirs, tmp_path):
    samples, refs = text_pair_dirs
    (refs / "a.txt").unlink()
    out = tmp_path / "card.json"
    done = run_cli("score", samples, "-r", refs, "--out", out, "-q")
    assert done.returncode == 0, done.stderr
    card = json.loads(out.read_text())
    assert card["inputs"]["samples"]["count"] == 2
    assert [s["path"] for s in card["skipped"]] == ["a.txt"]
    assert "no reference" in card["skipped"][0]["reason"]
    assert_one_line_error(run_cli("score", samples, "-r", refs, "--on-error", "fail", "--out",
                                  tmp_path / "never.json"), "a.txt: no reference")
    assert not (tmp_path / "never.json").exists()


def test_bad_option_is_a_one_line_error(run_cli, text_pair_dirs):
    samples, refs = text_pair_dirs
    assert_one_line_error(run_cli("score", samples, "-r", refs, "--set", "bleu.tokenize=moses"),
                          "tokenize", "13a")
    assert_one_line_error(run_cli("score", samples, "-r", refs, "--set", "bleu"),
                          "METRIC.OPTION=VALUE")
    assert_one_line_error(run_cli("score", samples, "-r", refs, "--metrics", "bleux"),
                          "Did you mean bleu")
    assert_one_line_error(run_cli("score", samples, "--metrics", "bleu"), "pass --reference")


def test_metric_failure_exits_1_and_still_writes_the_scorecard(run_cli, tmp_path):
    samples = write_files(tmp_path / "s", {"a.txt": b"\xff\xfe"})
    refs = write_files(tmp_path / "r", {"a.txt": "ref"})
    out = tmp_path / "card.json"
    done = run_cli("score", samples, "-r", refs, "--metrics", "bleu", "--out", out)
    assert done.returncode == 1, done.stderr
    doc = json.loads(out.read_text())
    assert doc["errors"] == {"bleu": "bleu: no samples were scored"}
    assert doc["skipped"][0]["path"] == "a.txt"


def test_list_shows_the_registry(run_cli):
    done = run_cli("list", "--options")
    assert done.returncode == 0
    for fragment in ("bleu", "rouge", "chrf", "paired", "higher", "--set bleu.tokenize=13a"):
        assert fragment in done.stdout


def test_help_explains_metric_options(run_cli):
    done = run_cli("score", "--help")
    assert done.returncode == 0
    assert "bleu.tokenize=13a" in done.stdout and "--reference" in done.stdout


def test_validate(run_cli, tmp_path, text_pair_dirs):
    samples, refs = text_pair_dirs
    out = tmp_path / "card.json"
    assert run_cli("score", samples, "-r", refs, "--metrics", "bleu", "-q", "-o", out
                   ).returncode == 0
    assert run_cli("validate", out).returncode == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "genmetrics.scorecard/1"}))
    assert_one_line_error(run_cli("validate", bad), "bad.json", "not a valid genmetrics scorecard")


def test_usage_errors_from_click_exit_2(run_cli):
    done = run_cli("score")
    assert done.returncode == 2 and "Traceback" not in done.stderr


HEAVY_MODULES = ("torch", "torchvision", "transformers", "scipy", "sklearn", "librosa",
                 "torch_fidelity", "nltk", "sacrebleu", "PIL", "soundfile", "numba")


def test_help_and_list_import_no_heavy_library():
    """`genmetrics --help` and `list` answer fast because they load no ML library (the
    bench times them); a stray top-level `import torch` anywhere they reach fails here."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from genmetrics.cli import app\n"
        "for args in (['--help'], ['list'], ['list', '--options'], ['score', '--help'],\n"
        "             ['cache', '--help'], ['stats', '--help']):\n"
        "    result = CliRunner().invoke(app, args)\n"
        "    assert result.exit_code == 0, (args, result.output)\n"
        f"print(','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"imported at start-up: {done.stdout.strip()}"
