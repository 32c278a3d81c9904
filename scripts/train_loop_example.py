"""genmetrics inside a training loop: one Evaluator, reset at every evaluation.

A toy generator (``scripts/_toy_generator.py``: per-image canvases that start as noise,
through a small conv decoder) is trained on CPU, full batch, with mean squared error
toward real photo tiles from scikit-image. Every step logs what ``genmetrics logs``
reads: the training loss, the learning rate (Adam with a linear warmup then cosine decay,
torch's ``LinearLR`` + ``CosineAnnealingLR``) and the gradient norm (the value
``clip_grad_norm_`` returns). Every ``--val-every`` steps it logs a validation loss: the
error on pixels held out of training (10% of each tile), which the generator can only
guess from their neighbours. Every ``--eval-every`` steps one :class:`genmetrics.Evaluator`,
created once before training, scores the generated images:

* ``fid`` against the ``skimage-photos`` reference statistics shipped with genmetrics
  (222 tiles of the same photographs; with this few images FID is "rank deficient":
  fine for watching a trend, not a number to publish);
* ``ssim`` and ``psnr`` of each generated image against its target tile.

Each scorecard goes to TensorBoard with ``card.log_to(writer, step=...)``, next to the
training curves, and the Evaluator is ``reset()`` for the next evaluation (the Inception
network stays loaded). FID falls and SSIM / PSNR rise as the images leave the noise.

    python scripts/train_loop_example.py                       # 60 steps, eval every 20
    python scripts/train_loop_example.py --steps 200 --eval-every 50 --logdir runs/toy
    genmetrics logs runs/toy                                   # read the curves
    tensorboard --logdir runs/toy
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent))

if TYPE_CHECKING:
    import torch

DESCRIPTION = __doc__.split("\n\n")[0] + """

Trains a toy generator on CPU toward real photo tiles, logging the training loss, learning
rate and gradient norm every step and a validation loss (held-out pixels) every
--val-every steps, and evaluates it every --eval-every steps with one genmetrics Evaluator
(by default FID against the shipped skimage-photos statistics, SSIM and PSNR against the
target tiles). Everything is logged to TensorBoard under --logdir, for `genmetrics logs`
and TensorBoard; one line is printed per evaluation."""

METRICS = ("fid", "ssim", "psnr")
VAL_FRACTION = 0.1  # share of each tile's pixels held out of training: the validation set
MAX_GRAD_NORM = 1.0  # gradients are clipped to this norm (the toy's stay well below it)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="train_loop_example.py", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60,
                        help="training steps (full-batch Adam updates; default 60)")
    parser.add_argument("--eval-every", type=int, default=20,
                        help="evaluate every N steps, and after the last step (default 20)")
    parser.add_argument("--val-every", type=int, default=5,
                        help="log the validation loss every N steps, at each evaluation and "
                        "after the last step (default 5)")
    parser.add_argument("--logdir", default=None,
                        help="TensorBoard log folder (default: a new temporary folder, "
                        "printed at the start)")
    parser.add_argument("--images", type=int, default=32,
                        help="target photo tiles = images generated per evaluation (default 32; "
                        "FID on CPU runs at roughly 20 images/s)")
    parser.add_argument("--size", type=int, default=32, choices=(32, 64),
                        help="image side in pixels (default 32)")
    parser.add_argument("--width", type=int, default=16,
                        help="generator channel width (default 16)")
    parser.add_argument("--lr", type=float, default=0.05,
                        help="peak Adam learning rate, after the warmup (default 0.05)")
    parser.add_argument("--metrics", default=",".join(METRICS),
                        help="comma-separated metrics to evaluate, of fid, ssim, psnr "
                        "(default all three; FID is the slow one)")
    parser.add_argument("--batch", type=int, default=16,
                        help="images per Evaluator.update call (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default="cpu",
                        help="where genmetrics runs the Inception network: cpu, auto, cuda "
                        "(default cpu)")
    args = parser.parse_args(argv)
    for name in ("steps", "eval_every", "val_every", "images", "width", "batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.images < 2:
        parser.error("--images must be at least 2 (FID needs two images)")
    args.metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    if not args.metrics or set(args.metrics) - set(METRICS):
        parser.error(f"--metrics: choose one or more of {', '.join(METRICS)}")
    return args


def held_out_pixels(targets: torch.Tensor, fraction: float = VAL_FRACTION,
                    seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean masks shaped like ``targets``: (training pixels, validation pixels). The
    same ``fraction`` of the pixels of each tile, all channels, is held out."""
    import torch

    n, _, height, width = targets.shape
    generator = torch.Generator().manual_seed(seed)
    val = (torch.rand(n, 1, height, width, generator=generator) < fraction).expand_as(targets)
    return ~val, val


def warmup_cosine(optimizer: torch.optim.Optimizer, steps: int
                  ) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warmup from 10% of the learning rate over the first 10% of ``steps``, then
    cosine decay towards 0; call ``.step()`` after each ``optimizer.step()``."""
    from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

    warmup = max(1, steps // 10)
    return SequentialLR(optimizer, [LinearLR(optimizer, start_factor=0.1, total_iters=warmup),
                                    CosineAnnealingLR(optimizer, T_max=max(1, steps - warmup))],
                        milestones=[warmup])


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler, targets: torch.Tensor,
               train_px: torch.Tensor) -> tuple[float, float, float]:
    """One full-batch update on the training pixels; returns (loss, gradient norm before
    clipping, learning rate used)."""
    import torch
    from _toy_generator import single_thread

    with single_thread():  # the toy's tensors are tiny: one thread is fastest
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model()[train_px], targets[train_px])
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
    return float(loss.detach()), float(grad_norm), lr


def validation_loss(model: torch.nn.Module, targets: torch.Tensor,
                    val_px: torch.Tensor) -> float:
    """Mean squared error on the held-out pixels (no gradient)."""
    import torch
    from _toy_generator import single_thread

    model.eval()
    with torch.no_grad(), single_thread():
        return float(torch.nn.functional.mse_loss(model()[val_px], targets[val_px]))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("error: this example logs to TensorBoard; install it with "
              "`pip install tensorboard`", file=sys.stderr)
        return 2
    import torch
    from _toy_generator import ToyGenerator, seed_everything, target_tiles, tile_count, to_uint8

    from genmetrics import Evaluator

    if args.images > tile_count():
        print(f"error: --images can be at most {tile_count()} (the number of photo tiles)",
              file=sys.stderr)
        return 2
    logdir = Path(args.logdir) if args.logdir else Path(
        tempfile.mkdtemp(prefix="genmetrics-train-loop-"))
    print(f"TensorBoard logs: {logdir}  (view: tensorboard --logdir {logdir})", flush=True)

    seed_everything(args.seed)
    targets = target_tiles(args.images, args.size)          # N x 3 x S x S, float in [0, 1]
    target_u8 = to_uint8(targets)
    train_px, val_px = held_out_pixels(targets, seed=args.seed)
    model = ToyGenerator(args.images, size=args.size, width=args.width)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = warmup_cosine(optimizer, args.steps)

    # Created once: the Inception network loads on the first update and stays loaded.
    evaluator = Evaluator(args.metrics, modality="image", device=args.device,
                          reference_stats="skimage-photos" if "fid" in args.metrics else None)

    started = time.perf_counter()
    with SummaryWriter(log_dir=str(logdir)) as writer:
        for step in range(1, args.steps + 1):
            loss, grad_norm, lr = train_step(model, optimizer, scheduler, targets, train_px)
            writer.add_scalar("train/loss", loss, global_step=step)
            writer.add_scalar("train/lr", lr, global_step=step)
            writer.add_scalar("train/grad_norm", grad_norm, global_step=step)
            evaluate = step % args.eval_every == 0 or step == args.steps
            if evaluate or step % args.val_every == 0:
                val_loss = validation_loss(model, targets, val_px)
                writer.add_scalar("val/loss", val_loss, global_step=step)
            if not evaluate:
                continue

            # -- evaluation: batches in, one scorecard out, then reset -------------------
            model.eval()
            with torch.no_grad():
                fakes = model()
            for i in range(0, len(fakes), args.batch):
                evaluator.update(fakes[i:i + args.batch], target_u8[i:i + args.batch])
            card = evaluator.compute()
            evaluator.reset()
            card.log_to(writer, step=step)

            scores = "  ".join(f"{name} {result.value:.4g}"
                               for name, result in card.metrics.items())
            failed = "".join(f"  [{name} failed: {why}]" for name, why in card.errors.items())
            print(f"step {step:4d}  loss {loss:.4f}  val {val_loss:.4f}  {scores}{failed}  "
                  f"({time.perf_counter() - started:.1f} s)", flush=True)
    evaluator.close()
    print(f"done: {args.steps} steps logged in {logdir}; read the curves with "
          f"`genmetrics logs {logdir}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
