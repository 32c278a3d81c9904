"""The command line, run as users run it: exit codes, messages, files written."""

from __future__ import annotations

import json

from genmetrics.scorecard import Scorecard
from tests.conftest import assert_one_line_error, cli_env, write_files


def test_score_writes_a_valid_scorecard_and_prints_a_table(run_cli, text_pair_dirs, tmp_path,
                                                           default_lm):
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


def test_every_input_skipped_exits_2_naming_them(run_cli, tmp_path):
    samples = write_files(tmp_path / "s", {"a.txt": b"\xff\xfe"})
    refs = write_files(tmp_path / "r", {"a.txt": "ref"})
    out = tmp_path / "card.json"
    done = run_cli("score", samples, "-r", refs, "--metrics", "bleu", "--out", out)
    assert_one_line_error(done, "every input was skipped (1 unreadable)", "a.txt")
    assert not out.exists()


def test_image_runs_list_what_cannot_run_and_why(run_cli, tmp_path, random_weights):
    """Images without references: Inception Score and Vendi could run, and the offline
    (pool3-only) weights cannot give Inception Score -- listed unavailable with the
    reason, Vendi scores (before Vendi, this run scored nothing and exited 2)."""
    from tests.photos import save_png, tiles

    for i, (_, tile) in enumerate(tiles()[:2]):
        for folder, name in (("s", f"{i}.png"), ("r", f"x{i}.png")):
            (tmp_path / folder).mkdir(exist_ok=True)
            save_png(tile[:32, :32], tmp_path / folder / name)
    out = tmp_path / "card.json"
    pool3_only = random_weights(with_classifier=False)
    done = run_cli("score", tmp_path / "s", "--modality", "image", "--workers", "0",
                   "--inception-weights", pool3_only, "--out", out)
    # Vendi needs no references: it is the one default image metric that still scores
    assert done.returncode == 0, done.stderr
    card = json.loads(out.read_text())
    assert set(card["metrics"]) == {"vendi"}
    assert "classifier" in card["unavailable"]["inception_score"]
    out.unlink()
    # references whose names match none of the samples: SSIM and PSNR are listed as
    # unavailable with the reason (FID and KID still use the folder as a distribution)
    done = run_cli("score", tmp_path / "s", "-r", tmp_path / "r", "--modality", "image",
                   "--workers", "0", "--inception-weights", pool3_only, "--out", out,
                   env=cli_env(COLUMNS="80"))
    assert done.returncode == 0, done.stderr
    card = json.loads(out.read_text())
    # two images a side: the k-NN metrics (k = 3, 5) are listed unavailable, not failed
    assert set(card["metrics"]) == {"fid", "kid", "sfid", "vendi"}
    for name in ("precision_recall", "density_coverage"):
        assert "needs more than" in card["unavailable"][name]
    for name in ("ssim", "psnr"):
        assert "could not be paired" in card["unavailable"][name]
        assert f"unavailable {name}: the references could not be paired" in done.stdout


def test_list_shows_the_registry(run_cli):
    done = run_cli("list", "--options")
    assert done.returncode == 0
    for fragment in ("bleu", "rouge", "chrf", "paired", "higher", "--set bleu.tokenize=13a"):
        assert fragment in done.stdout


def test_help_explains_metric_options(run_cli):
    done = run_cli("score", "--help")
    assert done.returncode == 0
    assert "bleu.tokenize=13a" in done.stdout and "--reference" in done.stdout


def test_every_help_fits_80_columns_with_whole_flag_names(run_cli):
    """At 80 columns no flag name is cut ("--inception-weig…"), no line is wider, and
    every placeholder is in one style (upper case, never typer's <path>/{new} forms)."""
    import re

    commands = [["score"], ["gate"], ["compare"], ["validate"], ["report"], ["logs"],
                ["list"], ["stats", "build"], ["assets", "fetch"], ["cache", "info"]]
    for args in commands:
        done = run_cli(*args, "--help", env=cli_env(COLUMNS="80"))
        assert done.returncode == 0, (args, done.stderr)
        lines = done.stdout.splitlines()
        assert max(len(line) for line in lines) <= 80, args
        assert "…" not in done.stdout, args
        usage = lines[0]
        assert not re.search(r"\{[a-z]|\[[a-z]", usage), usage  # SAMPLES, [CARDS]...
        for flag in re.findall(r"--[a-z][a-z-]+", done.stdout):
            assert len(flag) > 3
        options = done.stdout[done.stdout.index("Options:"):]
        assert not re.search(r"<(path|int|str|float)>", options), (args, options)
    gate = run_cli("gate", "--help", env=cli_env(COLUMNS="80")).stdout
    assert "--inception-weights" in run_cli("score", "--help").stdout
    assert "[default] and [metrics.NAME]" in " ".join(gate.split())  # not eaten as markup


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
