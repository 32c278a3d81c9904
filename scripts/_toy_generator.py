"""A toy image generator shared by the training-loop and Optuna examples.

Nothing here is a serious model: each image starts as Gaussian noise (a learned
per-image canvas of logits) decoded by a two-layer convolutional net, and a few dozen
full-batch Adam steps of mean squared error pull it toward real photo tiles. It exists
so the examples have images that measurably improve as training goes on, on CPU, in
a second or two of training.

The targets are the photographs bundled with scikit-image (``tests/photos.py``): the
same photographs the shipped ``skimage-photos`` FID reference statistics were built
from, so FID against those statistics falls as the generator learns.

    >>> import torch
    >>> g = ToyGenerator(n_images=2, size=32, width=8)
    >>> g().shape, g().dtype
    (torch.Size([2, 3, 32, 32]), torch.float32)
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.photos import resize_longer_side, tiles  # noqa: E402

__all__ = ["ToyGenerator", "target_tiles", "to_uint8", "train_steps", "seed_everything",
           "single_thread", "tile_count"]


def seed_everything(seed: int) -> None:
    """Seed torch and numpy; CPU training is then deterministic run to run."""
    torch.manual_seed(seed)
    np.random.seed(seed)


@lru_cache(maxsize=1)
def _photo_tiles() -> tuple[tuple[str, np.ndarray], ...]:
    return tuple(tiles())


def tile_count() -> int:
    """How many photo tiles :func:`target_tiles` can give (111 with scikit-image 0.26)."""
    return len(_photo_tiles())


def target_tiles(n_images: int = 32, size: int = 64) -> torch.Tensor:
    """``n_images`` real photo tiles as a float tensor ``N x 3 x size x size`` in [0, 1].

    The 128x128 tiles of ``tests.photos.tiles()`` are taken round-robin over the
    photographs (so every photograph appears before any repeats) and resized with
    Lanczos to ``size``.
    """
    by_photo: dict[str, list[np.ndarray]] = {}
    for name, tile in _photo_tiles():
        by_photo.setdefault(name.split("-")[0], []).append(tile)
    order: list[np.ndarray] = []
    depth = 0
    while len(order) < n_images and any(depth < len(v) for v in by_photo.values()):
        order.extend(v[depth] for v in by_photo.values() if depth < len(v))
        depth += 1
    if len(order) < n_images:
        raise ValueError(f"only {len(order)} photo tiles exist; asked for {n_images}")
    chosen = [resize_longer_side(t, size) if t.shape[0] != size else t
              for t in order[:n_images]]
    array = np.stack(chosen).transpose(0, 3, 1, 2)  # N x 3 x H x W, uint8
    return torch.from_numpy(array.astype(np.float32) / 255.0)


class ToyGenerator(nn.Module):
    """Noise -> ``N x 3 x size x size`` images in [0, 1], one per target.

    Each image has a learned "canvas" of logits, initialised from Gaussian noise, which
    a small convolutional decoder (``3 -> width -> 3`` channels, added as a residual)
    turns into an image through a sigmoid. At step 0 the output is noise; Adam on mean
    squared error pulls it toward the targets, so FID falls and SSIM / PSNR rise
    within a few dozen steps.
    """

    def __init__(self, n_images: int, size: int = 32, width: int = 16,
                 noise_std: float = 0.5) -> None:
        super().__init__()
        self.canvas = nn.Parameter(torch.randn(n_images, 3, size, size) * noise_std)
        self.decoder = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.LeakyReLU(0.2),
                                     nn.Conv2d(width, 3, 3, padding=1))

    def forward(self) -> torch.Tensor:
        return torch.sigmoid(self.canvas + self.decoder(self.canvas))


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] -> uint8 (round to nearest), detached, on the CPU."""
    return (images.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu()


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch CPU ops on one thread inside the block (the previous count comes back).

    The toy model's tensors are tiny: torch's thread pool costs more than it gives, and
    on a busy 2-core machine 30 steps took 7.5 s on 2 threads against 0.25 s on one.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def train_steps(model: ToyGenerator, optimizer: torch.optim.Optimizer,
                targets: torch.Tensor, steps: int) -> float:
    """Run ``steps`` full-batch Adam/MSE steps toward ``targets``; return the last loss."""
    model.train()
    loss = torch.tensor(float("nan"))
    with single_thread():
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.mse_loss(model(), targets)
            loss.backward()
            optimizer.step()
    return float(loss.detach())
