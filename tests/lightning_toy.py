"""A toy Lightning image "generator" for the callback tests (CPU, a second per epoch).

A linear layer maps a noise code to a 3 x 16 x 16 image in [0, 1], trained by mean
squared error toward fixed random targets. ``validation_step`` returns the callback's
contract, ``{"samples": images, "references": targets}``, and keeps a copy of every
batch it scored (not the sanity-check ones) in ``self.scored[epoch]``, so the tests can
feed the very same batches to an Evaluator directly.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

SIZE = 16
CODE = 8


def toy_data(n: int = 8, seed: int = 0) -> torch.utils.data.TensorDataset:
    """``n`` (noise code, target image) pairs; targets are float in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, CODE, generator=gen)
    targets = torch.rand(n, 3, SIZE, SIZE, generator=gen)
    return torch.utils.data.TensorDataset(noise, targets)


class ToyGenerator(pl.LightningModule):
    """noise (N x CODE) -> images (N x 3 x SIZE x SIZE), sigmoid output."""

    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(CODE, 3 * SIZE * SIZE)
        self.lr = lr
        self.scored: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(noise)).view(-1, 3, SIZE, SIZE)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        noise, targets = batch
        return torch.nn.functional.mse_loss(self(noise), targets)

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        noise, targets = batch
        images = self(noise)
        if not self.trainer.sanity_checking:
            self.scored.setdefault(self.current_epoch, []).append(
                (images.detach().clone(), targets.clone()))
        return {"samples": images, "references": targets}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def quiet_trainer(root: str, **kwargs: Any) -> pl.Trainer:
    """A CPU Trainer that writes its CSV logs under ``root`` and nothing anywhere else."""
    from lightning.pytorch.loggers import CSVLogger

    options: dict[str, Any] = dict(
        accelerator="cpu", devices=1, max_epochs=2, logger=CSVLogger(root, name="toy"),
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        log_every_n_steps=1, default_root_dir=root)
    options.update(kwargs)
    return pl.Trainer(**options)
