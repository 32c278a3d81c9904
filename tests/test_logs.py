"""`genmetrics logs`: synthetic training logs with one pathology planted each (and a
healthy one with none), written as real TensorBoard event files, CSV and JSON lines."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genmetrics.errors import InputError, UsageError
from genmetrics.logs import analyze_logs, cli_run, read_logs, write_outputs
from genmetrics.logs.analysis import lr_schedule, slope_test
from tests.conftest import assert_one_line_error, cli_env

ROLES = ("train_loss", "val_loss", "lr", "grad_norm")
SPIKES = (97, 251)  # indices of the planted gradient spikes
OVERFIT = 2.0  # growth of the planted val - train gap per run length, after half-way


def curves(plant: str | None = None, seed: int = 0, n: int = 400, every: int = 10
           ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A training run: noisy decaying train loss, validation every 20 steps a bit above it,
    warmup + cosine learning rate, lognormal gradient norms; ``plant`` one pathology."""
    rng = np.random.default_rng(seed)
    s = np.arange(n, dtype=np.float64) * every
    end = s[-1]
    true = 2.5 * np.exp(-s / (0.6 * end)) + 0.5
    if plant == "plateau":
        true = 2.0 * np.exp(-s / (0.05 * end)) + 0.8
    train = true * np.exp(rng.normal(0, 0.04, n))
    vi = np.arange(0, n, 20)
    val = true[vi] + 0.1 + rng.normal(0, 0.01, len(vi))
    if plant == "overfitting":
        val += OVERFIT * np.maximum(s[vi] - 0.5 * end, 0) / end
    warm = 0.1 * end
    lr = np.where(s < warm, 1e-3 * (s + every) / (warm + every),
                  5e-4 * (1 + np.cos(np.pi * (s - warm) / (end - warm + 10 * every))))
    gn = np.exp(rng.normal(0, 0.15, n)) * (1 + np.exp(-s / (0.2 * end)))
    if plant == "spikes":
        gn[list(SPIKES)] *= 30
    if plant == "exploding":
        gn *= 10 ** (3 * np.maximum(s - 0.8 * end, 0) / (0.2 * end))
    if plant == "exploding_nan":
        gn[-4:] = np.inf
    if plant == "vanishing":
        gn *= 10 ** (-5 * s / end)
    if plant == "diverged":
        train[-3:] = np.nan
    return {"train_loss": (s, train), "val_loss": (s[vi], val), "lr": (s, lr),
            "grad_norm": (s, gn)}


# ---- writers: each format names the series the way its tools do

CSV_NAMES = {"train_loss": "loss", "val_loss": "val_loss", "lr": "lr", "grad_norm": "grad_norm"}
JSONL_NAMES = {"train_loss": "train/loss", "val_loss": "eval/loss", "lr": "train/learning_rate",
               "grad_norm": "train/grad_norm"}
TB_RAW_NAMES = {"train_loss": "Loss/train", "val_loss": "Loss/val", "lr": "lr-AdamW",
                "grad_norm": "grad_2.0_norm_total"}
TB_TORCH_NAMES = {"train_loss": "train/epoch_loss", "val_loss": "validation/epoch_loss",
                  "lr": "train/epoch_learning_rate", "grad_norm": "train/grad_norm"}


def write_csv(path: Path, data) -> Path:
    steps = sorted({float(x) for s, _ in data.values() for x in s})
    cols = {role: dict(zip(s.tolist(), v.tolist(), strict=True)) for role, (s, v) in data.items()}
    lines = ["step," + ",".join(CSV_NAMES[r] for r in data)]
    for step in steps:
        cells = [repr(cols[r][step]) if step in cols[r] else "" for r in data]
        lines.append(f"{step:g}," + ",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_jsonl(path: Path, data) -> Path:
    lines = []
    s = data["train_loss"][0]
    for i, step in enumerate(s.tolist()):
        lines.append(json.dumps({"step": int(step), "train": {
            "loss": data["train_loss"][1][i], "learning_rate": data["lr"][1][i],
            "grad_norm": data["grad_norm"][1][i]}, "mode": "train"}))
    for step, value in zip(*data["val_loss"], strict=True):
        lines.append(json.dumps({"step": int(step), "eval": {"loss": value}}))
    path.write_text("\n".join(lines) + "\n")  # json.dumps writes NaN / Infinity literals
    return path


def write_tb_raw(folder: Path, data) -> Path:
    """tensorboard's own event writer: v1 simple_value scalars, and the gradient norm as a
    v2 tensor summary of the scalars plugin (what tf.summary.scalar writes)."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
    from tensorboard.util import tensor_util

    writer = EventFileWriter(str(folder))
    meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))
    for role, (steps, values) in data.items():
        for step, value in zip(steps.tolist(), values.tolist(), strict=True):
            if role == "grad_norm":
                v = Summary.Value(tag=TB_RAW_NAMES[role], metadata=meta,
                                  tensor=tensor_util.make_tensor_proto(np.float32(value)))
            else:
                v = Summary.Value(tag=TB_RAW_NAMES[role], simple_value=value)
            writer.add_event(Event(step=int(step), wall_time=time.time(), summary=Summary(
                value=[v])))
    writer.close()
    return folder


def write_tb_torch(folder: Path, data) -> Path:
    """torch's SummaryWriter, one sub-folder per run (train/, validation/), as Keras does."""
    from torch.utils.tensorboard import SummaryWriter

    for run in ("train", "validation"):
        writer = SummaryWriter(str(folder / run))
        for role, (steps, values) in data.items():
            name = TB_TORCH_NAMES[role]
            if name.startswith(run + "/"):
                for step, value in zip(steps.tolist(), values.tolist(), strict=True):
                    writer.add_scalar(name.split("/", 1)[1], value, int(step))
        writer.close()
    return folder


WRITERS = {"csv": (lambda d, data: write_csv(d / "log.csv", data), CSV_NAMES),
           "jsonl": (lambda d, data: write_jsonl(d / "log.jsonl", data), JSONL_NAMES),
           "tb_raw": (lambda d, data: write_tb_raw(d / "runs", data), TB_RAW_NAMES)}


def by_check(summary: dict) -> dict[str, dict]:
    return {f["check"]: f for f in summary["findings"]}


# ---- the healthy run


def test_healthy_tensorboard_run_has_no_pathology_and_reads_back_exactly(tmp_path):
    data = curves()
    runs = write_tb_torch(tmp_path / "runs", data)
    logs = read_logs(runs)
    assert logs.format == "tensorboard"
    for role, name in TB_TORCH_NAMES.items():  # float32 in the event file
        np.testing.assert_array_equal(logs.series[name][0], data[role][0])
        np.testing.assert_allclose(logs.series[name][1], data[role][1], rtol=1e-6)
    summary = analyze_logs(runs)
    assert {r: v["series"] for r, v in summary["roles"].items()} == TB_TORCH_NAMES
    assert all(v["how"] == "detected" for v in summary["roles"].values())
    assert summary["flags"] == []
    checks = by_check(summary)
    assert checks["loss trend"]["verdict"] == "falling"
    assert checks["train/val gap"]["verdict"] == "stable"
    assert checks["learning-rate schedule"]["verdict"] == "warmup + cosine decay"
    assert checks["learning-rate schedule"]["statistics"]["warmup_end"] == pytest.approx(400)
    for check in ("gradient spikes", "exploding gradients", "vanishing gradients"):
        assert checks[check]["verdict"] == "none"
    for f in summary["findings"]:
        assert f["message"] and (f["verdict"] == "not available" or f["threshold"]
                                 or f["check"] == "learning-rate schedule")


@pytest.mark.parametrize("seed", range(8))
def test_healthy_runs_raise_no_false_alarm(seed):
    from genmetrics.logs.analysis import analyze_series

    data = curves(seed=seed + 1, n=[200, 400, 1500][seed % 3])
    assert analyze_series(data, roles=dict(zip(ROLES, ROLES, strict=True)))["flags"] == []


# ---- one pathology planted per run, in each format

PLANTED = [
    ("plateau", "csv", "loss trend", "plateau", set()),
    ("overfitting", "jsonl", "train/val gap", "overfitting", {"overfitting", "rising"}),
    ("spikes", "tb_raw", "gradient spikes", "spikes", {"spikes"}),
    ("exploding", "csv", "exploding gradients", "exploding", {"exploding"}),
    ("exploding_nan", "jsonl", "exploding gradients", "exploding", {"exploding"}),
    ("vanishing", "tb_raw", "vanishing gradients", "vanishing", {"vanishing"}),
    ("diverged", "csv", "loss trend", "diverged", {"diverged"}),
]


@pytest.mark.parametrize(("plant", "fmt", "check", "verdict", "flags"), PLANTED,
                         ids=[p[0] for p in PLANTED])
def test_planted_pathology_is_flagged(tmp_path, plant, fmt, check, verdict, flags):
    data = curves(plant)
    writer, names = WRITERS[fmt]
    summary = analyze_logs(writer(tmp_path, data))
    assert {r: v["series"] for r, v in summary["roles"].items()} == names
    found = by_check(summary)[check]
    assert found["verdict"] == verdict, found["message"]
    assert found["series"] == names["train_loss" if "loss" in check else "grad_norm"] \
        or check == "train/val gap"
    assert set(summary["flags"]) == flags
    s = data["grad_norm"][0]
    if plant == "spikes":
        assert found["steps"] == [float(s[i]) for i in SPIKES]
    if plant == "exploding_nan":
        assert found["steps"] == s[-4:].tolist()
    if plant == "diverged":
        assert found["steps"] == data["train_loss"][0][-3:].tolist()


def test_overfitting_needs_the_gap_to_grow(tmp_path):
    """The planted gap is 0.1 throughout in the healthy run; the overfit run's gap grows
    by OVERFIT x (window span / run length) over the last window, as planted."""
    data = curves("overfitting")
    gap = by_check(analyze_logs(write_jsonl(tmp_path / "o.jsonl", data)))["train/val gap"]
    st = gap["statistics"]
    planted = OVERFIT * (st["end"] - st["start"]) / data["train_loss"][0][-1]
    assert st["gap_end"] - st["gap_start"] == pytest.approx(planted, rel=0.15)
    assert st["t"] > 3 and st["train_t"] < -3


# ---- statistics


def test_slope_test_matches_the_textbook_ols_t_test():
    from scipy import stats

    rng = np.random.default_rng(3)
    x = np.arange(50.0) * 7
    y = 2 - 0.001 * x + rng.normal(0, 0.1, 50)
    out = slope_test(x, y)
    xc = x - x.mean()
    slope = (xc @ (y - y.mean())) / (xc @ xc)
    resid = y - y.mean() - slope * xc
    se = math.sqrt(resid @ resid / 48 / (xc @ xc))
    assert out["slope"] == pytest.approx(slope, rel=1e-10)
    assert out["stderr"] == pytest.approx(se, rel=1e-10)
    assert out["p_falling"] == pytest.approx(stats.t.cdf(slope / se, 48), rel=1e-8)
    assert out["change"] == pytest.approx(slope * (x[-1] - x[0]) / np.mean(np.abs(y)))


def test_slope_test_false_alarm_rate_is_about_alpha():
    """On trendless noise the one-sided test calls 'falling' at about its alpha (1%)."""
    rng = np.random.default_rng(0)
    x = np.arange(40.0)
    hits = sum(slope_test(x, 1 + rng.normal(0, 0.3, 40))["p_falling"] < 0.01
               for _ in range(1000))
    assert 2 <= hits <= 25  # binomial(1000, 0.01): mean 10, p(outside) < 1e-4


def test_robust_z_matches_a_point_by_point_computation():
    """The vectorised rolling median / MAD z-score against a plain loop over windows."""
    from genmetrics.logs.analysis import robust_z

    v = np.random.default_rng(1).standard_t(3, size=301)
    z, med = robust_z(v, 31, 0.02)
    padded = np.pad(v, 15, mode="edge")
    want_med = np.array([np.median(padded[i:i + 31]) for i in range(301)])
    dev = np.pad(np.abs(v - want_med), 15, mode="edge")
    mad = np.array([np.median(dev[i:i + 31]) for i in range(301)])
    np.testing.assert_allclose(med, want_med)
    np.testing.assert_allclose(z, (v - want_med) / np.maximum(1.4826 * mad, 0.02))


LR_CASES = {
    "constant": (np.full(1000, 3e-4), "constant"),
    "step": (0.1 * 0.1 ** (np.arange(1000) // 300), "step decay"),
    "linear": (1e-3 * (1 - np.arange(1000) / 1200), "linear decay"),
    "cosine": (5e-4 * (1 + np.cos(np.pi * np.arange(1000) / 1000)), "cosine decay"),
    "exponential": (1e-3 * 0.995 ** np.arange(1000), "exponential decay"),
    "warmup-cosine": (np.where(np.arange(1000) < 100, np.arange(1000) / 100,
                               0.5 * (1 + np.cos(np.pi * (np.arange(1000) - 100) / 900))),
                      "warmup + cosine decay"),
    "warmup-linear": (np.minimum(np.arange(1000) / 50, (1000 - np.arange(1000)) / 950),
                      "warmup + linear decay"),
    "warmup-constant": (np.minimum(np.arange(1000) / 50, 1.0), "warmup + constant"),
    "inverse-sqrt": (1 / np.sqrt(np.arange(1000) + 50), "inverse-sqrt decay"),
    "restarts": (0.5 * (1 + np.cos(np.pi * (np.arange(1000) % 250) / 250)), "cyclic"),
}


@pytest.mark.parametrize("case", LR_CASES)
def test_learning_rate_schedule_is_described(case):
    values, verdict = LR_CASES[case]
    steps = np.arange(1000.0) * 5
    found = lr_schedule("lr", steps, values.astype(np.float32).astype(np.float64))
    assert found.verdict == verdict, found.message
    if case == "step":
        assert found.statistics["drops"] == [1500.0, 3000.0, 4500.0]
        assert found.statistics["factors"] == pytest.approx([0.1] * 3, rel=1e-5)
    if case == "restarts":
        assert found.statistics["restarts"] == [1250.0, 2500.0, 3750.0]


# ---- names, options, outputs


def test_series_named_otherwise_are_given_by_option(tmp_path):
    data = curves("overfitting")
    path = tmp_path / "log.csv"
    write_csv(path, data)
    text = path.read_text().replace("val_loss", "holdout_objective", 1)
    path.write_text(text.replace("step,loss", "step,objective", 1))
    summary = analyze_logs(path)
    assert by_check(summary)["train/val gap"]["verdict"] == "not available"
    assert "--loss" in by_check(summary)["loss trend"]["message"]
    summary = analyze_logs(path, roles={"train_loss": "objective",
                                        "val_loss": "holdout_objective"})
    assert summary["roles"]["train_loss"] == {"series": "objective", "how": "given"}
    assert by_check(summary)["train/val gap"]["verdict"] == "overfitting"
    with pytest.raises(UsageError, match="did you mean objective"):
        analyze_logs(path, roles={"train_loss": "objectiv"})


def test_outputs_one_valid_png_per_series_and_a_json_summary(tmp_path):
    data = curves("spikes")
    runs = write_tb_raw(tmp_path / "runs", data)
    summary = analyze_logs(runs, window=50)
    assert by_check(summary)["loss trend"]["statistics"]["n"] == 50
    out = tmp_path / "report"
    written = write_outputs(summary, out, json_path=tmp_path / "copy.json")
    pngs = sorted(p.name for p in written if p.suffix == ".png")
    assert pngs == sorted(["Loss_train.png", "Loss_val.png", "lr-AdamW.png",
                           "grad_2.0_norm_total.png"])
    for name in pngs:
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size == (700, 360)
            im.verify()
    doc = json.loads((out / "summary.json").read_text())
    assert doc == json.loads((tmp_path / "copy.json").read_text())
    assert doc["series"]["Loss/train"]["plot"] == "Loss_train.png"
    assert doc["flags"] == ["spikes"] and doc["format"] == "tensorboard"
    assert not list(out.glob(".*.tmp"))


def test_fail_on_turns_a_verdict_into_exit_1(tmp_path, capsys):
    path = write_jsonl(tmp_path / "o.jsonl", curves("overfitting"))
    kwargs = {"out_dir": tmp_path / "out", "window": None, "json_out": None, "roles": {}}
    assert cli_run(path, fail_on="overfitting", **kwargs) == 1
    assert cli_run(path, fail_on="exploding,vanishing", **kwargs) == 0
    assert cli_run(path, fail_on="any", **kwargs) == 1
    with pytest.raises(UsageError, match="choose from any"):
        cli_run(path, fail_on="overfit", **kwargs)
    assert "--fail-on: train/val gap: overfitting" in capsys.readouterr().err
    assert cli_run(path, fail_on=None, **{**kwargs, "json_out": Path("-")}) == 0
    assert json.loads(capsys.readouterr().out)["flags"] == ["overfitting", "rising"]


def test_cli_prints_the_findings_and_writes_plots(run_cli, tmp_path):
    path = write_jsonl(tmp_path / "o.jsonl", curves("overfitting"))
    done = run_cli("logs", path, "--out-dir", tmp_path / "out", "--json", tmp_path / "s.json",
                   "--fail-on", "overfitting")
    assert done.returncode == 1, done.stderr
    assert "overfitting" in done.stdout and "warmup + cosine decay" in done.stdout
    assert "train loss = train/loss (detected)" in done.stdout
    assert "--fail-on: train/val gap: overfitting" in done.stderr
    doc = json.loads((tmp_path / "s.json").read_text())
    assert set(doc["series"]) == set(JSONL_NAMES.values())
    assert len(list((tmp_path / "out").glob("*.png"))) == 4


# ---- the table at 80 columns: narrow table, then one line per finding

def finding(check: str, series: str, verdict: str, message: str, statistic: str = "",
            flagged: bool = False) -> dict:
    return {"check": check, "series": series, "verdict": verdict, "flagged": flagged,
            "message": message, "statistic": statistic}


GOLDEN_SUMMARY = {
    "source": "runs/exp1",
    "notes": ["train/loss: step 40 logged twice; the last value kept"],
    "roles": {"train_loss": {"series": "train/loss", "how": "detected"},
              "val_loss": {"series": "val/loss", "how": "detected"},
              "lr": {"series": "train/lr", "how": "given"},
              "grad_norm": {"series": None, "how": None}},
    "findings": [
        finding("loss trend", "train/loss", "falling",
                "still falling: -4.3% over steps 49-60 (12 points); not converged yet",
                "slope -6.88e-06/step, t=-9.29, change -4.3% over 12 pts"),
        finding("train/val gap", "val/loss - train/loss", "overfitting",
                "gap grew 0.102 -> 1.01 (steps 2000-3800); train loss falls, val loss rises",
                "gap 0.102 -> 1.01, t=78.1, +87.3% of val loss over 10 pts", flagged=True),
        finding("learning-rate schedule", "train/lr", "warmup + cosine decay",
                "warmup to 0.05 by step 7, then cosine decay to 4.23e-05 at step 60",
                "fit rms 0.4% of range"),
        finding("gradient norm", "-", "not available",
                "no grad norm series found; name it with --grad-norm"),
    ],
}

GOLDEN_80 = """\
genmetrics logs: runs/exp1
┏━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━┓
┃ # ┃ check                  ┃ series                ┃ verdict               ┃
┡━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━┩
│ 1 │ loss trend             │ train/loss            │ falling               │
│ 2 │ train/val gap          │ val/loss - train/loss │ overfitting           │
│ 3 │ learning-rate schedule │ train/lr              │ warmup + cosine decay │
│ 4 │ gradient norm          │ -                     │ not available         │
└───┴────────────────────────┴───────────────────────┴───────────────────────┘
findings:
1. still falling: -4.3% over steps 49-60 (12 points); not converged yet
   slope -6.88e-06/step, t=-9.29, change -4.3% over 12 pts
2. gap grew 0.102 -> 1.01 (steps 2000-3800); train loss falls, val loss rises
   gap 0.102 -> 1.01, t=78.1, +87.3% of val loss over 10 pts
3. warmup to 0.05 by step 7, then cosine decay to 4.23e-05 at step 60
   fit rms 0.4% of range
4. no grad norm series found; name it with --grad-norm
series used: train loss = train/loss (detected), val loss = val/loss (detected),
lr = train/lr (given)
note: train/loss: step 40 logged twice; the last value kept
"""


def render(summary: dict, monkeypatch, columns: int = 80) -> list[str]:
    """What the terminal shows for ``summary`` at ``COLUMNS=columns`` (no colour)."""
    import io

    from rich.console import Console

    from genmetrics.logs import print_findings

    monkeypatch.setenv("COLUMNS", str(columns))
    out = io.StringIO()
    print_findings(summary, Console(file=out))
    return [line.rstrip() for line in out.getvalue().splitlines()]


def test_findings_at_80_columns_match_the_golden_output(monkeypatch):
    lines = render(GOLDEN_SUMMARY, monkeypatch)
    assert "\n".join(lines) + "\n" == GOLDEN_80
    assert max(len(line) for line in lines) <= 80
    for f in GOLDEN_SUMMARY["findings"]:  # each finding whole, on a line of its own
        assert sum(line.endswith(f". {f['message']}") for line in lines) == 1, f["message"]


def test_a_finding_wider_than_the_terminal_wraps_under_itself(monkeypatch):
    long = "2 spike(s) at steps " + ", ".join(str(1000 * i) for i in range(1, 21))
    summary = {**GOLDEN_SUMMARY, "findings": [finding("gradient spikes", "grad_norm",
                                                      "spikes", long, "max z=27.3", True)]}
    lines = render(summary, monkeypatch)
    assert max(len(line) for line in lines) <= 80
    at = next(i for i, line in enumerate(lines) if line.startswith("1. 2 spike(s)"))
    assert lines[at + 1].startswith("   ") and lines[at + 1].strip()  # indented continuation
    assert " ".join(line.strip() for line in lines[at:at + 3]).startswith("1. " + long)


def test_cli_at_80_columns_prints_each_finding_on_one_line(run_cli, tmp_path):
    path = write_jsonl(tmp_path / "o.jsonl", curves("overfitting"))
    done = run_cli("logs", path, "--out-dir", tmp_path / "out", "--json", tmp_path / "s.json",
                   env=cli_env(COLUMNS="80"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, done.stdout
    doc = json.loads((tmp_path / "s.json").read_text())
    assert len(doc["findings"]) == 7
    for i, f in enumerate(doc["findings"], 1):
        assert f"{i}. {f['message']}" in [line.rstrip() for line in lines], (f, done.stdout)
        assert f"   {f['statistic']}" in [line.rstrip() for line in lines], (f, done.stdout)


# ---- bad input: one line, saying what to do


def test_bad_logs_are_one_line_errors(run_cli, tmp_path):
    assert_one_line_error(run_cli("logs", tmp_path / "nope"), "no such file or folder")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert_one_line_error(run_cli("logs", empty), "empty")
    assert_one_line_error(run_cli("logs", empty, "--window", "2"), "--window")


BAD = {
    "no-step.csv": ("loss,val_loss\n1,2\n", "no step column"),
    "header-only.csv": ("step,loss\n", "no data rows"),
    "text-cell.csv": ("step,loss\n0,1.5\n1,oops\n", "text-cell.csv:3: loss = 'oops' is not a"),
    "text-step.csv": ("step,loss\nfirst,1.5\n", "step 'first' is not a number"),
    "only-step.csv": ("step,note\n0,hello\n", "no numeric metric"),
    "broken.jsonl": ('{"step": 0, "loss": 1}\n{"step": 1, "loss":\n', "broken.jsonl:2: not JSON"),
    "no-step.jsonl": ('{"loss": 1}\n', "no step key"),
    "list.jsonl": ('{"step": 0, "loss": 1}\n{"step": 1, "loss": [1]}\n', "is not a number"),
    "notes.txt": ("loss went down\n", "not a log genmetrics reads"),
    "events.out.tfevents.1.host": ("garbage", "no scalar series in the event files"),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_files_raise_input_errors_naming_the_problem(tmp_path, name):
    text, fragment = BAD[name]
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read_logs(path)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_folders_empty_or_mixed(tmp_path):
    with pytest.raises(InputError, match="no logs inside"):
        read_logs(tmp_path)
    (tmp_path / "a.csv").write_text("step,loss,phase\n0,2,train\n1,1,train\n")
    (tmp_path / "b.jsonl").write_text('{"step": 0, "acc": 0.5}\n{"step": 0, "acc": 0.7}\n')
    logs = read_logs(tmp_path)
    assert logs.format == "mixed" and sorted(logs.series) == ["a/loss", "b/acc"]
    assert logs.series["b/acc"][1].tolist() == [0.7]  # the last value of a step wins
    assert logs.notes == ["a/phase: not numeric, left out"]


def test_keras_csv_logger_and_hugging_face_trainer_state(tmp_path):
    data = curves("overfitting")
    (s, train), (vs, val), (_, lr), (_, gn) = (data[r] for r in ROLES)
    keras = tmp_path / "training.log.csv"
    rows = [f"{int(e)},{float(train[i])!r},{float(val[list(vs).index(e)])!r},{float(lr[i])!r}"
            for i, e in enumerate(s) if e in vs]
    keras.write_text("epoch,loss,val_loss,learning_rate\n" + "\n".join(rows) + "\n")
    summary = analyze_logs(keras)
    assert summary["roles"]["val_loss"]["series"] == "val_loss"
    assert by_check(summary)["train/val gap"]["verdict"] == "overfitting"
    history = [{"epoch": i / 40, "step": int(s[i]), "loss": train[i], "learning_rate": lr[i],
                "grad_norm": gn[i]} for i in range(len(s))]
    history += [{"epoch": 1.0, "step": int(e), "eval_loss": v} for e, v in zip(vs, val,
                                                                             strict=True)]
    history.append({"epoch": 1.0, "step": int(s[-1]), "train_loss": 1.2, "train_runtime": 9.0})
    state = tmp_path / "trainer_state.json"
    state.write_text(json.dumps({"global_step": int(s[-1]), "log_history": history}, indent=2))
    summary = analyze_logs(state)
    assert {r: v["series"] for r, v in summary["roles"].items()} == {
        "train_loss": "loss", "val_loss": "eval_loss", "lr": "learning_rate",
        "grad_norm": "grad_norm"}
    assert "overfitting" in summary["flags"]
