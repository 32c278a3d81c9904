"""The training-loop and Optuna examples in scripts/: they run, log, and report true numbers.

Each script runs as a subprocess with small settings. The numbers it reports are checked
against scikit-image on the same images: the toy training is deterministic (seeded,
single-threaded), so the test rebuilds the generator in-process, trains it for the same
steps, and computes PSNR / SSIM of its images with ``skimage.metrics``.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, TEST_DEVICE

torch = pytest.importorskip("torch")
skimage_metrics = pytest.importorskip("skimage.metrics")

SCRIPTS = REPO / "scripts"
sys.path.insert(0, str(SCRIPTS))

# On a busy 2-core machine multi-threaded OpenBLAS spins against the other processes
# (a 2048 x 2048 eigh once took 12 s there with its default threads and 1.2 s with one).
# The subprocesses therefore run BLAS single-threaded, which changes no value beyond
# rounding.
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def run_script(name: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPTS / name), *args], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def skimage_scores(fakes: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Mean PSNR and SSIM of uint8 ``N x 3 x H x W`` images, computed by scikit-image."""
    psnr, ssim = [], []
    for fake, target in zip(fakes, targets, strict=True):
        x, y = fake.permute(1, 2, 0).numpy(), target.permute(1, 2, 0).numpy()
        psnr.append(skimage_metrics.peak_signal_noise_ratio(y, x, data_range=255))
        ssim.append(skimage_metrics.structural_similarity(
            x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
            channel_axis=-1, data_range=255))
    return {"psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim))}


def toy_images(images: int, steps: int, lr: float, width: int,
               seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The uint8 images the examples' toy generator makes after ``steps`` steps, and targets."""
    from _toy_generator import ToyGenerator, seed_everything, target_tiles, to_uint8, train_steps

    seed_everything(seed)
    targets = target_tiles(images, 32)
    model = ToyGenerator(images, size=32, width=width)
    train_steps(model, torch.optim.Adam(model.parameters(), lr=lr), targets, steps)
    with torch.no_grad():
        return to_uint8(model()), to_uint8(targets)


def example_images(images: int, steps: int, at: set[int], lr: float = 0.05,
                   width: int = 16, seed: int = 0) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """The uint8 images train_loop_example.py generates after each step in ``at`` of a run
    of ``steps`` steps (its warmup + cosine schedule, held-out pixels), and the targets."""
    from _toy_generator import ToyGenerator, seed_everything, target_tiles, to_uint8
    from train_loop_example import held_out_pixels, train_step, warmup_cosine

    seed_everything(seed)
    targets = target_tiles(images, 32)
    train_px, _ = held_out_pixels(targets, seed=seed)
    model = ToyGenerator(images, size=32, width=width)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = warmup_cosine(optimizer, steps)
    fakes = {}
    for step in range(1, steps + 1):
        train_step(model, optimizer, scheduler, targets, train_px)
        if step in at:
            with torch.no_grad():
                fakes[step] = to_uint8(model())
    return fakes, to_uint8(targets)


@pytest.mark.slow
def test_train_loop_logs_every_evaluation_to_tensorboard(tmp_path: Path) -> None:
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    logdir = tmp_path / "tb"
    proc = run_script("train_loop_example.py", "--steps", "4", "--eval-every", "2",
                      "--images", "8", "--logdir", str(logdir), "--device", TEST_DEVICE)
    assert proc.returncode == 0, proc.stderr
    assert f"TensorBoard logs: {logdir}" in proc.stdout
    lines = [line for line in proc.stdout.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["2", "4"], proc.stdout
    assert all("failed" not in line for line in lines), proc.stdout

    assert list(logdir.glob("events.out.tfevents.*")), "no TensorBoard event file"
    acc = event_accumulator.EventAccumulator(str(logdir))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    every_step = ("train/loss", "train/lr", "train/grad_norm")
    at_eval = ("val/loss", "genmetrics/fid", "genmetrics/ssim", "genmetrics/psnr")
    assert {*every_step, *at_eval} <= tags
    logged = {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in every_step + at_eval}
    for tag, by_step in logged.items():
        assert sorted(by_step) == ([1, 2, 3, 4] if tag in every_step else [2, 4]), (tag, by_step)
        assert all(math.isfinite(v) for v in by_step.values()), (tag, by_step)
    assert logged["genmetrics/fid"][4] > 0
    assert logged["train/loss"][4] < logged["train/loss"][1]  # it does train
    assert logged["train/lr"][1] < logged["train/lr"][2] > logged["train/lr"][4]  # warmup, decay
    # log_to's signature table (a text summary; TensorBoard appends /text_summary)
    assert any(t.startswith("genmetrics/signatures") for t in acc.Tags()["tensors"])

    # the logged numbers are scikit-image's on the images the script generated
    # (TensorBoard stores float32: up to 6e-8 relative; measured 1e-9 to 3e-8)
    fakes, targets = example_images(8, 4, {2, 4})
    for step in (2, 4):
        expected = skimage_scores(fakes[step], targets)
        for name, value in expected.items():
            assert logged[f"genmetrics/{name}"][step] == pytest.approx(value, rel=1e-6), (
                name, step)


def test_train_loop_logs_get_a_verdict_from_genmetrics_logs(tmp_path: Path, monkeypatch,
                                                             capsys) -> None:
    """The example's own run, read by `genmetrics logs` at 80 columns: a real verdict for
    the loss trend, the train/validation gap, the schedule and the gradient norm."""
    pytest.importorskip("tensorboard")
    from train_loop_example import main

    from genmetrics.logs import cli_run

    logdir = tmp_path / "run"
    assert main(["--steps", "20", "--eval-every", "20", "--val-every", "2", "--images", "4",
                 "--metrics", "psnr", "--logdir", str(logdir)]) == 0
    capsys.readouterr()
    monkeypatch.setenv("COLUMNS", "80")
    assert cli_run(logdir, out_dir=tmp_path / "report", window=None, fail_on=None, roles={},
                   json_out=tmp_path / "summary.json") == 0
    shown = capsys.readouterr().out.splitlines()
    summary = json.loads((tmp_path / "summary.json").read_text())

    assert {role: v["series"] for role, v in summary["roles"].items()} == {
        "train_loss": "train/loss", "val_loss": "val/loss", "lr": "train/lr",
        "grad_norm": "train/grad_norm"}
    verdicts = {f["check"]: f["verdict"] for f in summary["findings"]}
    assert verdicts["loss trend"] == "falling"
    assert verdicts["learning-rate schedule"] == "warmup + cosine decay"
    for check in ("train/val gap", "gradient spikes", "exploding gradients",
                  "vanishing gradients"):
        assert verdicts[check] not in ("too short", "not available"), verdicts
    assert "gradient norm" not in verdicts, verdicts  # the placeholder of a missing series
    # at 80 columns: no line wider, every finding whole on a line of its own
    assert max(len(line) for line in shown) <= 80, shown
    for f in summary["findings"]:
        assert any(line.strip().endswith(f["message"]) for line in shown), (f["message"], shown)


@pytest.mark.slow
def test_optuna_study_reports_the_best_trial() -> None:
    pytest.importorskip("optuna")
    proc = run_script("optuna_example.py", "--trials", "3", "--steps", "5", "--images", "6")
    assert proc.returncode == 0, proc.stderr
    trials = re.findall(r"^trial (\d+): lr \S+\s+width\s+\d+\s+psnr (\S+)", proc.stdout, re.M)
    assert [t for t, _ in trials] == ["0", "1", "2"], proc.stdout
    best = re.search(r"^best trial (\d+): psnr = (\S+) \(maximized\)", proc.stdout, re.M)
    assert best, proc.stdout
    values = {t: float(v) for t, v in trials}
    assert best.group(1) == max(values, key=values.get)
    assert float(best.group(2)) == pytest.approx(values[best.group(1)], rel=1e-3)  # 4 digits


def test_objective_returns_skimage_scores() -> None:
    from optuna_example import evaluator_for, train_and_score

    evaluator = evaluator_for("psnr", device=TEST_DEVICE)
    scores = train_and_score(0.03, 8, evaluator=evaluator, steps=3, images=4)
    expected = skimage_scores(*toy_images(4, 3, lr=0.03, width=8))
    assert scores["psnr"] == pytest.approx(expected["psnr"], rel=1e-9)
    assert scores["ssim"] == pytest.approx(expected["ssim"], rel=1e-6)
    # the same Evaluator again (reset inside): the same numbers, nothing carried over
    assert train_and_score(0.03, 8, evaluator=evaluator, steps=3, images=4) == scores


@pytest.mark.parametrize("script", ["train_loop_example.py", "optuna_example.py"])
def test_help_and_bad_arguments(script: str) -> None:
    help_ = run_script(script, "--help", timeout=60)
    assert help_.returncode == 0 and "--steps" in help_.stdout
    bad = run_script(script, "--steps", "0", timeout=60)
    assert bad.returncode == 2 and "--steps must be at least 1" in bad.stderr
    assert "Traceback" not in bad.stderr
