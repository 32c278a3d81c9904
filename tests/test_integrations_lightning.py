"""The Lightning recipe: GenmetricsCallback logs what an Evaluator fed directly gives."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

pl = pytest.importorskip("lightning.pytorch")

import torch  # noqa: E402

from genmetrics import Evaluator  # noqa: E402
from genmetrics.errors import UsageError  # noqa: E402
from genmetrics.integrations.lightning import GenmetricsCallback  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.lightning_toy import ToyGenerator, quiet_trainer, toy_data  # noqa: E402

METRICS = ["psnr", "ssim"]


def _loaders(n: int = 8, batch_size: int = 4) -> tuple[torch.utils.data.DataLoader, ...]:
    data = toy_data(n)
    return (torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True),
            torch.utils.data.DataLoader(data, batch_size=batch_size))


def _direct(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """The values of an Evaluator fed ``batches`` directly, in one process."""
    ev = Evaluator(METRICS, modality="image", device="cpu")
    for images, targets in batches:
        ev.update(images, targets)
    return {name: r.value for name, r in ev.compute().metrics.items()}


def _csv_rows(log_dir: str) -> list[dict[str, str]]:
    with open(Path(log_dir) / "metrics.csv", newline="") as f:
        return [row for row in csv.DictReader(f) if row.get("genmetrics/psnr")]


def test_two_epochs_log_the_values_of_a_direct_evaluator(tmp_path: Path) -> None:
    """2 epochs on CPU: each epoch's logged PSNR/SSIM equal an Evaluator fed the same
    batches directly (exactly: float64 through Lightning's logging), and the values move."""
    module = ToyGenerator()
    callback = GenmetricsCallback(Evaluator(METRICS, modality="image", device="cpu"))
    trainer = quiet_trainer(str(tmp_path), callbacks=[callback], num_sanity_val_steps=1)
    train, val = _loaders()
    trainer.fit(module, train, val)

    assert sorted(module.scored) == [0, 1]  # the sanity check was not scored
    expected = {epoch: _direct(batches) for epoch, batches in module.scored.items()}
    card = callback.scorecard
    assert {n: r.value for n, r in card.metrics.items()} == expected[1]
    assert card.inputs["samples"]["count"] == 8 and card.metrics["psnr"].signature_str
    rows = _csv_rows(trainer.logger.log_dir)
    assert [int(row["epoch"]) for row in rows] == [0, 1]
    for row in rows:
        logged = {name: float(row[f"genmetrics/{name}"]) for name in METRICS}
        assert logged == expected[int(row["epoch"])]
        assert float(row["genmetrics/errors"]) == 0.0
    assert expected[0] != expected[1]  # training moved the images: the parity is not vacuous
    assert trainer.callback_metrics["genmetrics/psnr"].item() == expected[1]["psnr"]


def test_extract_function_and_a_clear_error_for_other_outputs(tmp_path: Path) -> None:
    """``extract=`` maps (outputs, batch) for a step that returns the images themselves;
    without it such a step is refused with the contract in the message."""

    class Bare(ToyGenerator):
        def validation_step(self, batch, batch_idx):  # type: ignore[override]
            return self(batch[0])

    train, val = _loaders()
    callback = GenmetricsCallback(Evaluator(["psnr"], modality="image", device="cpu"),
                                  extract=lambda out, batch: (out, batch[1]), prefix="val/")
    module = Bare()
    trainer = quiet_trainer(str(tmp_path), callbacks=[callback], max_epochs=1,
                            num_sanity_val_steps=0)
    trainer.fit(module, train, val)
    module.eval()
    with torch.no_grad():
        batches = [(module(noise), targets) for noise, targets in val]
    direct = Evaluator(["psnr"], modality="image", device="cpu")
    for images, targets in batches:
        direct.update(images, targets)
    assert callback.scorecard.metrics["psnr"].value == direct.compute().metrics["psnr"].value
    assert "val/psnr" in trainer.callback_metrics

    plain = GenmetricsCallback(Evaluator(["psnr"], modality="image", device="cpu"))
    trainer = quiet_trainer(str(tmp_path / "bare"), callbacks=[plain], max_epochs=1,
                            num_sanity_val_steps=0)
    with pytest.raises(UsageError, match="'samples'.*extract="):
        trainer.fit(Bare(), train, val)


def test_readme_snippet_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's Lightning block, run as it stands: PSNR logged for both epochs."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("#### PyTorch Lightning"):]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme_lightning"}
    exec(compile(block, "README.md (PyTorch Lightning)", "exec"), namespace)
    rows = _csv_rows(str(tmp_path / "runs" / "lightning_logs" / "version_0"))
    assert [int(row["epoch"]) for row in rows] == [0, 1]
    card = namespace["callback"].scorecard  # type: ignore[attr-defined]
    assert float(rows[-1]["genmetrics/psnr"]) == card.metrics["psnr"].value


def test_a_missing_lightning_is_an_import_error_with_the_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the `lightning` package, importing the callback says which extra installs
    it (and that the legacy `pytorch_lightning` is not it)."""
    import importlib

    monkeypatch.setitem(sys.modules, "lightning", None)
    monkeypatch.setitem(sys.modules, "lightning.pytorch", None)
    monkeypatch.delitem(sys.modules, "genmetrics.integrations.lightning")
    with pytest.raises(ImportError, match=r"pip install 'genmetrics\[lightning\]'") as err:
        importlib.import_module("genmetrics.integrations.lightning")
    assert "pytorch_lightning" in str(err.value)


def test_warns_when_the_distributed_sampler_repeats_samples() -> None:
    """7 samples on 2 ranks: DistributedSampler pads with 1 repeat, which would be scored."""
    from torch.utils.data.distributed import DistributedSampler

    def trainer(n: int) -> SimpleNamespace:
        data = toy_data(n)
        sampler = DistributedSampler(data, num_replicas=2, rank=0, shuffle=False)
        return SimpleNamespace(sanity_checking=False, val_dataloaders=torch.utils.data.DataLoader(
            data, batch_size=2, sampler=sampler))

    callback = GenmetricsCallback(Evaluator(["psnr"], modality="image", device="cpu"))
    with pytest.warns(UserWarning, match="7 samples.*repeats 1 of them"):
        callback.on_validation_epoch_start(trainer(7), None)  # type: ignore[arg-type]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GenmetricsCallback(Evaluator(["psnr"], modality="image", device="cpu")
                           ).on_validation_epoch_start(trainer(8), None)  # type: ignore[arg-type]


# -- two processes (gloo) -------------------------------------------------------------------
_DDP_SCRIPT = r'''
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import torch
from genmetrics import Evaluator
from genmetrics.integrations.lightning import GenmetricsCallback
from tests.lightning_toy import ToyGenerator, quiet_trainer, toy_data

out = Path(sys.argv[2])
data = toy_data(8)
train = torch.utils.data.DataLoader(data, batch_size=2)
val = torch.utils.data.DataLoader(data, batch_size=2)
callback = GenmetricsCallback(Evaluator(["psnr", "ssim"], modality="image", device="cpu"))
module = ToyGenerator()
trainer = quiet_trainer(str(out), callbacks=[callback], strategy="ddp", devices=2,
                        num_sanity_val_steps=0)
trainer.fit(module, train, val)
rank = trainer.global_rank
torch.save(module.scored, out / f"scored.{rank}.pt")
card = callback.scorecard
json.dump({"values": {n: r.value for n, r in card.metrics.items()},
           "count": card.inputs["samples"]["count"],
           "log_dir": trainer.logger.log_dir if rank == 0 else None},
          open(out / f"card.{rank}.json", "w"))
'''


# The only check of the callback under DDP, hence kept in the fast suite. ~6 s of CPU in
# all, but 43 s wall measured on 2 cores shared with other jobs: Lightning imports
# torchmetrics and torchvision (~10 s per process there) and starts rank 1 only when rank
# 0 reaches fit, so the two imports run one after the other (starting both ranks at once,
# torchrun-style, took 49 s on the same busy cores: the imports then compete). The fit
# itself (2 epochs of 2 steps per rank) takes ~4 s of that; 2 epochs stay, to check that
# each epoch is scored afresh under DDP.
@pytest.mark.slow
def test_two_gloo_processes_log_the_values_of_one_process(tmp_path: Path) -> None:
    """strategy="ddp" on 2 CPU processes (gloo): each rank scores its shard, both ranks
    get the scorecard of all 8 samples, equal to one Evaluator fed both shards."""
    script = tmp_path / "ddp_run.py"
    script.write_text(_DDP_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env.pop("LOCAL_RANK", None)
    done = subprocess.run([sys.executable, str(script), str(REPO), str(tmp_path)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    cards = [json.loads((tmp_path / f"card.{r}.json").read_text()) for r in (0, 1)]
    assert cards[0]["values"] == cards[1]["values"]
    assert cards[0]["count"] == 8  # 4 per rank, combined; nothing repeated
    scored = [torch.load(tmp_path / f"scored.{r}.pt", weights_only=True) for r in (0, 1)]
    rows = _csv_rows(cards[0]["log_dir"])
    assert [int(row["epoch"]) for row in rows] == [0, 1]
    for row in rows:
        epoch = int(row["epoch"])
        single = _direct(scored[0][epoch] + scored[1][epoch])
        logged = {name: float(row[f"genmetrics/{name}"]) for name in METRICS}
        assert logged == pytest.approx(single, rel=1e-12)  # sums in another order
    assert cards[0]["values"] == pytest.approx(single, rel=1e-12)
