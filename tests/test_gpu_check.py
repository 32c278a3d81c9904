"""scripts/gpu_check.sh: without CUDA it skips cleanly; its CPU dry run runs every row."""

from __future__ import annotations

import doctest
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

torch = pytest.importorskip("torch")

SCRIPT = REPO / "scripts" / "gpu_check.py"
ROWS = ("image: Inception pool3 features", "image: FID end to end (score)", "image: SSIM",
        "text: perplexity float32", "text: perplexity bfloat16", "audio: SNR", "audio: SI-SNR",
        "audio: MCD (DTW)", "audio: STOI", "Evaluator in a training loop",
        "nvJPEG decode (image source)", "nvJPEG in score (FID on JPEGs)",
        "backbone: dinov2-vitl14", "backbone: clip-vitb32", "backbone: clip-vitl14",
        "backbone: clip-vitl14-336")


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_helpers_doctests():
    failed, attempted = doctest.testmod(_module())
    assert attempted >= 4 and failed == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present: the check would run")
def test_without_cuda_the_check_says_so_and_exits_0():
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh")], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PY": sys.executable})
    assert done.returncode == 0, done.stderr
    assert "no CUDA device" in done.stdout and "skipped" in done.stdout
    assert "--cpu-dry-run" in done.stdout


def test_cpu_dry_run_exercises_every_row(tmp_path, random_weights):
    from tests.test_perplexity import _save_tiny_model

    lm = _save_tiny_model(tmp_path / "tiny-lm")
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--cpu-dry-run", "--lm", str(lm),
         "--inception-weights", str(random_weights()), "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("CPU dry run")
    header = lines[1].split()
    assert header[:2] == ["check", "throughput"] and header[-1] == "pass"
    table = lines[2:2 + len(ROWS)]
    assert all(line.startswith(label) for label, line in zip(ROWS, table, strict=True))
    rows = {r["check"]: r for r in json.loads(out.read_text())["rows"]}
    assert list(rows) == list(ROWS)
    for label, row in rows.items():
        if label == "audio: STOI":  # no device path: a CPU rate, nothing compared
            assert row["passed"] is None and "(CPU)" in row["throughput"]
            continue
        assert row["passed"] is True, row
        assert row["difference"] is not None and row["difference"] <= row["tolerance"]
        assert row["throughput"] != "-", row
    # cpu against cpu: identical values except bfloat16 (against float32)
    assert all(row["difference"] == 0 for label, row in rows.items()
               if row["difference"] is not None and "bfloat16" not in label)
    assert 0 < rows["text: perplexity bfloat16"]["difference"] < 0.05
