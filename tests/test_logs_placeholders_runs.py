"""`genmetrics logs` on CSV logs whose train and validation rows share the file (a
placeholder, empty or ``nan``, is not a value; a loss that turns non-finite still
diverges), and on folders holding several runs (each analysed on its own)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from genmetrics.errors import InputError
from genmetrics.logs import analyze_logs, cli_run, read_logs, read_runs
from tests.conftest import assert_one_line_error
from tests.test_logs import (
    TB_RAW_NAMES,
    TB_TORCH_NAMES,
    by_check,
    curves,
    write_tb_raw,
    write_tb_torch,
)

HEADER = "epoch,lr-SGD,step,train_loss,val_loss"


def lightning_rows(epochs: int = 8, every: int = 2, per_epoch: int = 8,
                   diverge_at: int | None = None) -> list[dict[str, float | None]]:
    """The rows Lightning 2.x's CSVLogger writes for a Trainer with a LearningRateMonitor:
    per epoch an ``lr-SGD`` row, a ``train_loss`` row every ``every`` steps and a
    ``val_loss`` row at the step of the epoch's last train row; a cell a row does not log
    is ``None``. From step ``diverge_at`` the losses are nan (as a real run writes them)."""
    rows: list[dict[str, float | None]] = []
    for epoch in range(epochs):
        first = epoch * per_epoch
        rows.append({"epoch": None, "lr-SGD": 0.05, "step": first, "train_loss": None,
                     "val_loss": None})
        for step in range(first + every - 1, first + per_epoch, every):
            loss = 2.0 * math.exp(-step / 20) + 0.3
            if diverge_at is not None and step >= diverge_at:
                loss = math.nan
            rows.append({"epoch": epoch, "lr-SGD": None, "step": step, "train_loss": loss,
                         "val_loss": None})
        val = 2.0 * math.exp(-step / 20) + 0.4
        if diverge_at is not None and step >= diverge_at:
            val = math.nan
        rows.append({"epoch": epoch, "lr-SGD": None, "step": step, "train_loss": None,
                     "val_loss": val})
    return rows


def write_rows(path: Path, rows: list[dict[str, float | None]], placeholder: str,
               val_steps_apart: bool = False) -> Path:
    """Rows as CSV, ``placeholder`` ('' or 'nan') in the cells a row does not log;
    ``val_steps_apart``: the validation rows moved to a step of their own (+0.5)."""
    lines = [HEADER]
    for row in rows:
        step = row["step"] + (0.5 if val_steps_apart and row["val_loss"] is not None else 0)
        cells = [placeholder if row[k] is None else repr(row[k])
                 for k in ("epoch", "lr-SGD")] + [f"{step:g}"]
        cells += [placeholder if row[k] is None else repr(row[k])
                  for k in ("train_loss", "val_loss")]
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


def nan_style(src: Path, dst: Path) -> Path:
    """The same CSV with every empty cell written as ``nan`` (step cells are never empty)."""
    with src.open(newline="") as f:
        rows = list(csv.reader(f))
    dst.write_text("\n".join(",".join(c or "nan" for c in row) for row in rows) + "\n")
    return dst


def logged(path: Path, column: str) -> tuple[list[float], list[float]]:
    """(steps, values) of the rows of a Lightning CSV that log ``column``: its rows of
    that kind, read with the csv module."""
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r[column].strip()]
    return [float(r["step"]) for r in rows], [float(r[column]) for r in rows]


def verdicts(summary: dict) -> dict[str, str]:
    return {f["check"]: f["verdict"] for f in summary["findings"]}


# ---- placeholders are not values


@pytest.mark.parametrize("apart", [False, True], ids=["val-at-train-step", "val-own-step"])
@pytest.mark.parametrize("placeholder", ["", "nan"], ids=["empty", "nan"])
def test_healthy_lightning_csv_is_not_diverged(tmp_path: Path, placeholder: str,
                                               apart: bool) -> None:
    """Lightning's CSVLogger layout (written by hand here; the real one is below): lr,
    train and validation rows share the file; no verdict is 'diverged' and the series
    hold exactly the values of the rows that log them."""
    rows = lightning_rows()
    path = write_rows(tmp_path / "metrics.csv", rows, placeholder, apart)
    summary = analyze_logs(path)
    assert "diverged" not in verdicts(summary).values(), summary["findings"]
    assert verdicts(summary)["loss trend"] == "falling"
    assert verdicts(summary)["validation loss trend"] == "falling"
    assert summary["series"]["train_loss"]["non_finite"] == 0
    logs = read_logs(path)
    train = [(float(r["step"]), r["train_loss"]) for r in rows if r["train_loss"] is not None]
    assert logs.series["train_loss"][0].tolist() == [s for s, _ in train]
    assert logs.series["train_loss"][1].tolist() == [v for _, v in train]
    val = [r["val_loss"] for r in rows if r["val_loss"] is not None]
    assert logs.series["val_loss"][1].tolist() == val
    assert logs.series["lr-SGD"][1].tolist() == [0.05] * 8
    assert ("nan placeholders" in " ".join(logs.notes)) == (placeholder == "nan")
    assert cli_run(path, out_dir=tmp_path / "out", window=None, json_out=None,
                   fail_on="diverged", roles={}) == 0


@pytest.mark.parametrize("placeholder", ["", "nan"], ids=["empty", "nan"])
def test_lightning_csv_of_a_diverged_run_is_diverged(tmp_path: Path, placeholder: str) -> None:
    """The same layout with the losses nan from step 41: diverged, from the first nan."""
    rows = lightning_rows(diverge_at=41)
    path = write_rows(tmp_path / "metrics.csv", rows, placeholder)
    found = by_check(analyze_logs(path))
    assert found["loss trend"]["verdict"] == "diverged"
    assert found["loss trend"]["steps"] == [float(r["step"]) for r in rows
                                            if r["train_loss"] is not None
                                            and math.isnan(r["train_loss"])]
    assert found["validation loss trend"]["verdict"] == "diverged"
    assert cli_run(path, out_dir=tmp_path / "out", window=None, json_out=None,
                   fail_on="diverged", roles={}) == 1


def steps_text(n: int) -> list[str]:
    return [f"{i},{2.0 * math.exp(-i / 20) + 0.3!r}" for i in range(n)]


@pytest.mark.parametrize("case", ["nan", "inf", "nan-beside-lr", "sparse-val-diverges"])
def test_a_loss_that_really_turns_non_finite_still_diverges(tmp_path: Path, case: str) -> None:
    """A train loss finite then nan/inf for its last 3 rows, alone or beside a learning
    rate that stays finite, is diverged; so is a validation column written every 5 rows
    (nan in between) whose last 3 evaluations are nan."""
    path = tmp_path / "log.csv"
    if case in ("nan", "inf"):
        lines = ["step,train_loss"] + steps_text(37) + [f"{i},{case}" for i in range(37, 40)]
        path.write_text("\n".join(lines) + "\n")
        series, expected = "train_loss", [37.0, 38.0, 39.0]
    elif case == "nan-beside-lr":
        lines = ["step,lr,train_loss"] + [f"{i},0.1,{t.split(',')[1]}"
                                          for i, t in enumerate(steps_text(37))]
        lines += [f"{i},0.1,nan" for i in range(37, 40)]
        path.write_text("\n".join(lines) + "\n")
        series, expected = "train_loss", [37.0, 38.0, 39.0]
    else:
        lines = ["step,train_loss,lr,val_loss"]
        for i, row in enumerate(steps_text(50)):
            val = repr(1.0 - i / 100) if i % 5 == 4 and i < 35 else "nan"
            lines.append(f"{row},0.1,{val}")
        path.write_text("\n".join(lines) + "\n")
        series, expected = "val_loss", None
    summary = analyze_logs(path)
    found = next(f for f in summary["findings"] if f["series"] == series and "trend" in
                 f["check"])
    assert found["verdict"] == "diverged", found["message"]
    if expected is not None:
        assert found["steps"] == expected
    else:  # the evaluations at 39, 44, 49 were nan: non-finite from after the last number
        assert found["steps"][0] > 34 and found["steps"][-1] == 49.0
    assert "diverged" in summary["flags"]


def test_sparse_nan_column_and_isolated_nan_norm(tmp_path: Path) -> None:
    """One row kind, validation every 5 rows and nan in between: the nan between (and
    after) the evaluations are placeholders; an isolated nan in the dense gradient-norm
    column is the run's own value (a skipped step), reported as a spike."""
    lines = ["step,train_loss,lr,grad_norm,val_loss"]
    for i, row in enumerate(steps_text(52)):
        norm = "nan" if i == 30 else repr(1.0 + 0.01 * (i % 3))
        val = repr(2.0 * math.exp(-i / 20) + 0.4) if i % 5 == 4 else "nan"
        lines.append(f"{row},0.1,{norm},{val}")
    path = tmp_path / "log.csv"
    path.write_text("\n".join(lines) + "\n")
    summary = analyze_logs(path)
    assert verdicts(summary)["validation loss trend"] == "falling"
    assert read_logs(path).series["val_loss"][0].tolist() == [float(i) for i in range(4, 52, 5)]
    spikes = by_check(summary)["gradient spikes"]
    assert spikes["verdict"] == "spikes" and spikes["steps"] == [30.0]
    assert summary["flags"] == ["spikes"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_placeholder_never_overwrites_a_value_at_the_same_step(tmp_path: Path,
                                                                 fmt: str) -> None:
    """A train row then a validation row at step 5 (nan in each other's column): both
    values stay; a value logged twice for a step still keeps the last."""
    if fmt == "csv":
        path = tmp_path / "log.csv"
        path.write_text("step,loss,val_loss\n5,1.5,nan\n5,nan,2.5\n6,1.25,nan\n6,1.0,nan\n")
    else:
        path = tmp_path / "log.jsonl"
        path.write_text('{"step": 5, "loss": 1.5, "val_loss": NaN}\n'
                        '{"step": 5, "loss": NaN, "val_loss": 2.5}\n'
                        '{"step": 6, "loss": 1.25}\n{"step": 6, "loss": 1.0}\n')
    series = read_logs(path).series
    assert series["loss"][0].tolist() == [5.0, 6.0]
    assert series["loss"][1].tolist() == [1.5, 1.0]
    assert series["val_loss"][0].tolist() == [5.0] and series["val_loss"][1].tolist() == [2.5]


# ---- a real Lightning CSVLogger file


def lightning_fit(root: Path, lr: float, epochs: int) -> Path:
    """Train a linear model on CPU with Lightning's Trainer, CSVLogger and
    LearningRateMonitor; returns its metrics.csv."""
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import CSVLogger

    class Tiny(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 1)

        def training_step(self, batch, _):
            loss = torch.nn.functional.mse_loss(self.lin(batch[0]), batch[1])
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, _):
            self.log("val_loss", torch.nn.functional.mse_loss(self.lin(batch[0]), batch[1]))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=lr)

    torch.manual_seed(0)
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
    logger = CSVLogger(str(root), name="lightning_logs")
    L.Trainer(max_epochs=epochs, logger=logger, log_every_n_steps=2, accelerator="cpu",
              devices=1, enable_progress_bar=False, enable_model_summary=False,
              enable_checkpointing=False, callbacks=[LearningRateMonitor()]).fit(
        Tiny(), data, data)
    return Path(logger.log_dir) / "metrics.csv"


@pytest.mark.slow  # importing lightning takes a few seconds
def test_real_lightning_csv_logger_output(tmp_path: Path) -> None:
    """Files written by Lightning's CSVLogger during real fits, as written (empty cells)
    and with every empty cell as nan: a healthy fit gets no 'diverged'; a fit with a
    learning rate far too high (its loss goes inf, then nan) does."""
    pytest.importorskip("lightning")
    healthy = lightning_fit(tmp_path / "ok", lr=0.05, epochs=6)
    blown = lightning_fit(tmp_path / "blown", lr=3.0, epochs=8)
    train_steps, train = logged(healthy, "train_loss")
    val_steps, _ = logged(healthy, "val_loss")
    assert set(val_steps) <= set(train_steps)  # each validation row shares a train step
    for path in (healthy, nan_style(healthy, tmp_path / "ok_nan.csv")):
        summary = analyze_logs(path)
        assert "diverged" not in verdicts(summary).values(), (path, summary["findings"])
        assert summary["roles"]["val_loss"]["series"] == "val_loss"
        series = read_logs(path).series
        assert series["train_loss"][0].tolist() == train_steps
        assert series["train_loss"][1].tolist() == train
        assert series["val_loss"][0].tolist() == val_steps
    blown_steps, blown_loss = logged(blown, "train_loss")
    assert not math.isfinite(blown_loss[-1])
    for path in (blown, nan_style(blown, tmp_path / "blown_nan.csv")):
        found = by_check(analyze_logs(path))["loss trend"]
        assert found["verdict"] == "diverged", (path, found["message"])
        assert found["steps"] == [s for s, v in zip(blown_steps, blown_loss, strict=True)
                                  if not math.isfinite(v)]


# ---- several runs in one folder


def test_two_tensorboard_runs_are_analysed_each(tmp_path: Path, capsys, monkeypatch) -> None:
    """tb/exp1 (Keras-style train/ and validation/ folders, healthy) and tb/exp2 (gradient
    spikes): one analysis each, named by the run's folder; plots in a folder per run."""
    monkeypatch.setenv("COLUMNS", "200")
    from torch.utils.tensorboard import SummaryWriter

    write_tb_torch(tmp_path / "tb" / "exp1", curves())
    write_tb_raw(tmp_path / "tb" / "exp2", curves("spikes"))
    with SummaryWriter(str(tmp_path / "tb" / "exp2")) as writer:  # a sub-folder <time>/
        writer.add_hparams({"lr": 1e-3}, {"hp/accuracy": 0.9})
    runs, notes = read_runs(tmp_path / "tb")
    assert list(runs) == ["exp1", "exp2"] and notes == []
    assert [n for n in runs["exp2"].series if n.endswith("/hp/accuracy")] != []
    summary = analyze_logs(tmp_path / "tb")
    parts = {p["run"]: p for p in summary["runs"]}
    assert {r: v["series"] for r, v in parts["exp1"]["roles"].items()} == TB_TORCH_NAMES
    assert {r: v["series"] for r, v in parts["exp2"]["roles"].items()} == TB_RAW_NAMES
    assert parts["exp1"]["flags"] == [] and parts["exp2"]["flags"] == ["spikes"]
    assert summary["flags"] == ["spikes"]
    assert [f["run"] for f in summary["findings"]] == ["exp1"] * 7 + ["exp2"] * 7
    out = tmp_path / "out"
    assert cli_run(tmp_path / "tb", out_dir=out, window=None, json_out=None,
                   fail_on="spikes", roles={}) == 1
    shown = capsys.readouterr()
    lines = [line.rstrip() for line in shown.out.splitlines()]
    assert lines[0] == "run 1/2: exp1" and "run 2/2: exp2" in lines
    assert f"genmetrics logs: {tmp_path / 'tb' / 'exp1'}" in lines
    assert "2 runs: exp1, exp2" in shown.out
    assert "--fail-on: exp2: gradient spikes: spikes" in shown.err
    assert sorted(p.name for p in (out / "exp2").glob("*.png")
                  if not p.name.endswith("_hp_accuracy.png")) == sorted(
        ["Loss_train.png", "Loss_val.png", "lr-AdamW.png", "grad_2.0_norm_total.png"])
    assert len(list((out / "exp1").glob("*.png"))) == 4
    doc = json.loads((out / "summary.json").read_text())
    assert doc["runs"][1]["series"]["Loss/train"]["plot"] == "exp2/Loss_train.png"
    assert cli_run(tmp_path / "tb", out_dir=out, window=None, json_out=Path("-"),
                   fail_on=None, roles={}) == 0
    assert [p["run"] for p in json.loads(capsys.readouterr().out)["runs"]] == ["exp1", "exp2"]


def test_two_csv_runs_are_analysed_each(run_cli, tmp_path: Path) -> None:
    """Two Lightning CSV runs (version_0 healthy, version_1 diverged, nan placeholders):
    each gets its own verdicts; --fail-on diverged names the run that diverged."""
    root = tmp_path / "csv_logs"
    (root / "version_0").mkdir(parents=True)
    (root / "version_1").mkdir()
    write_rows(root / "version_0" / "metrics.csv", lightning_rows(), "nan")
    write_rows(root / "version_1" / "metrics.csv", lightning_rows(diverge_at=41), "nan")
    summary = analyze_logs(root)
    parts = {p["run"]: p for p in summary["runs"]}
    assert list(parts) == ["version_0/metrics", "version_1/metrics"]
    assert "diverged" not in verdicts(parts["version_0/metrics"]).values()
    assert verdicts(parts["version_1/metrics"])["loss trend"] == "diverged"
    assert parts["version_0/metrics"]["source"] == str(root / "version_0" / "metrics.csv")
    done = run_cli("logs", root, "--out-dir", tmp_path / "out", "--fail-on", "diverged")
    assert done.returncode == 1, done.stderr
    assert "--fail-on: version_1/metrics: loss trend: diverged; version_1/metrics: " \
           "validation loss trend: diverged" in " ".join(done.stderr.split())
    assert "version_0/metrics: loss trend" not in done.stderr
    assert len(list((tmp_path / "out" / "version_1" / "metrics").glob("*.png"))) == 3


def test_what_is_left_out_of_a_runs_folder_is_named(tmp_path: Path) -> None:
    """A run folder whose event files hold no scalar, and CSVs beside event files, are
    named in the notes; split folders (train/, validation/) stay inside their run."""
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    write_tb_torch(tmp_path / "tb" / "exp1", curves())
    EventFileWriter(str(tmp_path / "tb" / "images_only")).close()
    (tmp_path / "tb" / "exp1" / "extra.csv").write_text("step,loss\n0,1\n")
    summary = analyze_logs(tmp_path / "tb")
    assert "runs" not in summary  # one run left: analysed as before, names unchanged
    assert summary["roles"]["train_loss"]["series"] == "exp1/train/epoch_loss"
    assert summary["notes"] == [
        "images_only: no scalar series in its event files, left out",
        "1 .csv/.jsonl file(s) beside the event files not read: exp1/extra.csv"]


def test_a_bad_file_among_runs_is_left_out_with_a_note(run_cli, tmp_path: Path) -> None:
    """One run's CSV holding text in a metric column, among several: that run is left
    out, the note names its file, line and reason, the other run is analysed; when no run
    can be read, exit 2 with one line naming each file."""
    write_rows(tmp_path / "a.csv", lightning_rows(), "")
    (tmp_path / "b.csv").write_text("step,loss\n0,1.5\n1,oops\n")
    done = run_cli("logs", tmp_path, "--out-dir", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    note = ("b.csv:3: loss = 'oops' is not a number (a metric holds numbers, nan or inf "
            "only), left out")
    assert note in " ".join(done.stdout.split())
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert "runs" not in summary and summary["notes"] == [note]  # one run left
    assert summary["roles"]["train_loss"]["series"] == "a/train_loss"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.csv").write_text("step,loss\n")
    (bad / "b.csv").write_text("step,loss\n0,1.5\n1,oops\n")
    done = run_cli("logs", bad, "--out-dir", tmp_path / "out2")
    assert_one_line_error(done, "no run could be read", "a.csv: a header but no data rows",
                          "b.csv:3: loss = 'oops' is not a number")


@pytest.mark.parametrize("kind", ["empty", "header-only", "not-utf8"])
def test_an_unreadable_run_among_several_is_left_out(tmp_path: Path, kind: str) -> None:
    """csv_logs/version_0..2, version_1 empty, header-only or not UTF-8: versions 0 and 2
    are analysed each, and a note names version_1's file and why it was left out."""
    root = tmp_path / "csv_logs"
    for v in (0, 1, 2):
        (root / f"version_{v}").mkdir(parents=True)
        write_rows(root / f"version_{v}" / "metrics.csv", lightning_rows(), "")
    broken = root / "version_1" / "metrics.csv"
    content = {"empty": b"", "header-only": (HEADER + "\n").encode(),
               "not-utf8": b"step,loss\n0,\xff\xfe\n"}[kind]
    broken.write_bytes(content)
    reason = {"empty": "the file is empty", "header-only": "a header but no data rows",
              "not-utf8": "not UTF-8 text"}[kind]
    runs, notes = read_runs(root)
    assert list(runs) == ["version_0/metrics", "version_2/metrics"]
    assert len(notes) == 1 and notes[0].startswith(f"version_1/metrics.csv: {reason}")
    assert notes[0].endswith(", left out")
    summary = analyze_logs(root)
    assert [p["run"] for p in summary["runs"]] == ["version_0/metrics", "version_2/metrics"]
    assert summary["notes"] == notes
    assert all(verdicts(p)["loss trend"] == "falling" for p in summary["runs"])


def test_an_unreadable_tensorboard_run_among_several_is_left_out(tmp_path: Path,
                                                                  monkeypatch) -> None:
    """tb/exp1 and tb/exp2, exp2's event file unreadable: exp1 is analysed, a note names
    exp2's folder; with exp1 gone as well, one error naming each."""
    from tensorboard.backend.event_processing import event_accumulator

    write_tb_torch(tmp_path / "tb" / "exp1", curves())
    write_tb_raw(tmp_path / "tb" / "exp2", curves())
    real = event_accumulator.EventAccumulator.Reload

    def reload(self):
        if "exp2" in str(self.path):
            raise RuntimeError("truncated record")
        return real(self)

    monkeypatch.setattr(event_accumulator.EventAccumulator, "Reload", reload)
    runs, notes = read_runs(tmp_path / "tb")
    assert list(runs) == ["exp1"]
    assert notes == ["exp2: unreadable TensorBoard event file (truncated record), left out"]
    monkeypatch.setattr(event_accumulator.EventAccumulator, "Reload",
                        lambda self: (_ for _ in ()).throw(RuntimeError("bad")))
    with pytest.raises(InputError, match="no run could be read.*exp1.*exp2"):
        read_runs(tmp_path / "tb")


# ---- --loss and friends with several runs


def test_role_names_with_several_runs(tmp_path: Path, run_cli) -> None:
    """Two TensorBoard runs (exp1: torch names, exp2: Keras-style raw names): a name
    prefixed by its run (``exp2/Loss/train``, as the merged view showed) applies to that
    run, the other detects; an unprefixed name missing in one run is detected there with
    a note; a name no run has is a one-line usage error."""
    write_tb_torch(tmp_path / "tb" / "exp1", curves())
    write_tb_raw(tmp_path / "tb" / "exp2", curves())
    summary = analyze_logs(tmp_path / "tb", roles={"val_loss": "exp2/Loss/train"})
    assert summary["schema"] == "genmetrics-logs/2"
    parts = {p["run"]: p for p in summary["runs"]}
    assert all(p["schema"] == "genmetrics-logs/1" for p in parts.values())
    assert parts["exp2"]["roles"]["val_loss"] == {"series": "Loss/train", "how": "given"}
    assert parts["exp1"]["roles"]["val_loss"] == {"series": TB_TORCH_NAMES["val_loss"],
                                                  "how": "detected"}
    summary = analyze_logs(tmp_path / "tb", roles={"train_loss": "Loss/train"})
    parts = {p["run"]: p for p in summary["runs"]}
    assert parts["exp2"]["roles"]["train_loss"] == {"series": "Loss/train", "how": "given"}
    assert parts["exp1"]["roles"]["train_loss"] == {"series": TB_TORCH_NAMES["train_loss"],
                                                    "how": "detected"}
    assert parts["exp1"]["notes"] == ["--loss 'Loss/train': no such series in this run; "
                                      "detected instead"]
    assert parts["exp2"]["notes"] == []
    done = run_cli("logs", tmp_path / "tb", "--out-dir", tmp_path / "out", "--loss",
                   "Loss/trian")
    assert_one_line_error(done, "--loss 'Loss/trian': no such series in any of the 2 runs",
                          "did you mean Loss/train")


def test_role_names_when_one_run_is_left(tmp_path: Path) -> None:
    """One run left in a folder: its series carry the run's path; a name given without
    it is taken as that run's."""
    (tmp_path / "logs" / "exp1").mkdir(parents=True)
    lines = ["step,nll"] + [f"{i},{2.0 * math.exp(-i / 20) + 0.3!r}" for i in range(60)]
    (tmp_path / "logs" / "exp1" / "metrics.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "logs" / "exp2.csv").write_text("")
    summary = analyze_logs(tmp_path / "logs", roles={"train_loss": "nll"})
    assert summary["roles"]["train_loss"] == {"series": "exp1/metrics/nll", "how": "given"}
    assert summary["notes"] == ["exp2.csv: the file is empty, left out"]


def test_a_sparse_nan_alone_in_its_row_is_the_runs_own(tmp_path: Path) -> None:
    """``step,loss`` with the loss nan in 2 of every 3 rows, the last included: nothing
    else is logged in those rows, so the nan are the loss's own values (diverged), not a
    sparse column's placeholders; beside a learning rate logged in every row, the same
    nan are still the loss's own (lr is logged with it)."""
    lines = ["step,loss"] + [f"{i},{2.0 * math.exp(-i / 20) + 0.3!r}" if i % 3 == 0
                             else f"{i},nan" for i in range(60)]
    path = tmp_path / "log.csv"
    path.write_text("\n".join(lines) + "\n")
    assert int(np.isnan(read_logs(path).series["loss"][1]).sum()) == 40
    found = by_check(analyze_logs(path))["loss trend"]
    assert found["verdict"] == "diverged", found["message"]
    # the same column with a validation loss in the other rows: placeholders there
    lines = ["step,loss,val_loss"] + [
        f"{i},{2.0 * math.exp(-i / 20) + 0.3!r},nan" if i % 3 == 0
        else f"{i},nan,{2.0 * math.exp(-i / 20) + 0.4!r}" for i in range(60)]
    path.write_text("\n".join(lines) + "\n")
    assert verdicts(analyze_logs(path))["loss trend"] == "falling"


@pytest.mark.parametrize("placeholder", ["", "nan"], ids=["empty", "nan"])
def test_a_column_that_never_holds_a_number_has_no_values(tmp_path: Path,
                                                          placeholder: str) -> None:
    """A healthy run whose ``val_loss`` column is nan (or empty) in every row (validation
    never ran): no values, noted; not 'validation loss trend: diverged'."""
    lines = ["step,train_loss,val_loss"] + [f"{t},{placeholder}" for t in steps_text(60)]
    path = tmp_path / "log.csv"
    path.write_text("\n".join(lines) + "\n")
    logs = read_logs(path)
    assert "val_loss" not in logs.series
    how = "nan in all 60 rows that hold it" if placeholder else "every cell empty"
    assert logs.notes == [f"val_loss: no values ({how}), left out"]
    summary = analyze_logs(path)
    assert "diverged" not in verdicts(summary).values(), summary["findings"]
    assert verdicts(summary)["loss trend"] == "falling"
    assert summary["roles"]["val_loss"]["series"] is None
    path.write_text("step,loss\n0,nan\n1,nan\n")
    with pytest.raises(InputError, match="no metric holds a number"):
        read_logs(path)


def test_detection_prefers_a_series_that_holds_numbers() -> None:
    """Two validation-loss names, the better one never finite (TensorBoard keeps such
    a tag): the one with finite values is taken."""
    from genmetrics.logs.analysis import detect_roles

    x = np.arange(20.0)
    series = {"loss": (x, np.linspace(2, 1, 20)), "val_loss": (x, np.full(20, np.nan)),
              "eval/loss": (x, np.linspace(2.1, 1.1, 20))}
    assert detect_roles(series)["val_loss"]["series"] == "eval/loss"
    series["eval/loss"] = (x, np.full(20, np.inf))
    assert detect_roles(series)["val_loss"]["series"] == "val_loss"  # neither: by name


def test_placeholder_rule_on_a_table_of_rows() -> None:
    """The rule itself: a row of another kind, a sparse column's rhythm, a dense column."""
    from genmetrics.logs.readers import placeholders

    nan = math.nan
    # columns: train, val, lr (own rows), dense (all rows but one nan)
    v = np.array([[1.0, nan, nan, 1.0], [nan, 2.0, nan, 1.0], [nan, nan, 0.1, nan],
                  [0.9, nan, nan, 1.0], [nan, 1.9, nan, 1.0], [nan, nan, nan, 1.0]])
    got = placeholders(v, np.ones(v.shape, bool))
    # row 5 logs only `dense`, which train and val are logged beside: their nan there are
    # their own values; every other nan sits in a row of another kind (row 2 logs only lr,
    # which nothing else is logged beside)
    assert got[:, 0].tolist() == [False, True, True, False, True, False]
    assert got[:, 1].tolist() == [True, False, True, True, False, False]
    assert got[:, 2].tolist() == [True, True, False, True, True, True]
    assert got[:, 3].tolist() == [False, False, True, False, False, False]
