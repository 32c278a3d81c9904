"""A toy image generator shared by the training-loop and Optuna examples.

Nothing here is a serious model: a small convolutional decoder maps a fixed, learned
latent code per target image (GLO-style, no discriminator) to a ``size x size`` RGB
image, and a few dozen Adam steps of mean squared error pull it toward real photo
tiles. It exists so the examples have images that get better as training goes on,
on CPU, in seconds.

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
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.photos import resize_longer_side, tiles  # noqa: E402

__all__ = ["ToyGenerator", "target_tiles", "to_uint8", "train_steps", "seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed torch and numpy; CPU training is then deterministic run to run."""
    torch.manual_seed(seed)
    np.random.seed(seed)


def target_tiles(n_images: int = 32, size: int = 64) -> torch.Tensor:
    """``n_images`` real photo tiles as a float tensor ``N x 3 x size x size`` in [0, 1].

    The 128x128 tiles of ``tests.photos.tiles()`` are taken round-robin over the
    photographs (so every photograph appears before any repeats) and resized with
    Lanczos to ``size``.
    """
    by_photo: dict[str, list[np.ndarray]] = {}
    for name, tile in tiles():
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


def _up_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                         nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.2))


class ToyGenerator(nn.Module):
    """Learned latent codes -> ``N x 3 x size x size`` images in [0, 1].

    ``forward()`` with no argument decodes every stored code (one image per target);
    ``forward(codes)`` decodes the given ``B x latent_dim`` codes.
    """

    def __init__(self, n_images: int, size: int = 64, width: int = 32,
                 latent_dim: int = 64) -> None:
        super().__init__()
        if size < 8 or size & (size - 1):
            raise ValueError(f"size must be a power of two >= 8; got {size}")
        self.codes = nn.Parameter(torch.randn(n_images, latent_dim) * 0.1)
        self.width = width
        self.stem = nn.Sequential(nn.Linear(latent_dim, width * 4 * 4 * 2), nn.LeakyReLU(0.2))
        blocks: list[nn.Module] = []
        channels, side = width * 2, 4
        while side < size:
            blocks.append(_up_block(channels, width))
            channels, side = width, side * 2
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, codes: torch.Tensor | None = None) -> torch.Tensor:
        z = self.codes if codes is None else codes
        x = self.stem(z).view(z.shape[0], self.width * 2, 4, 4)
        return torch.sigmoid(self.head(self.blocks(x)))


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] -> uint8 (round to nearest), detached, on the CPU."""
    return (images.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu()


def train_steps(model: ToyGenerator, optimizer: torch.optim.Optimizer,
                targets: torch.Tensor, steps: int) -> float:
    """Run ``steps`` full-batch Adam/MSE steps toward ``targets``; return the last loss."""
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(model(), targets)
        loss.backward()
        optimizer.step()
    return float(loss.detach())
