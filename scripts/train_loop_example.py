"""genmetrics inside a training loop: one Evaluator, reset at every evaluation.

A toy generator (``scripts/_toy_generator.py``: per-image canvases that start as noise,
through a small conv decoder) is trained on CPU, full batch, with mean squared error
toward real photo tiles from scikit-image. Every ``--eval-every`` steps one
:class:`genmetrics.Evaluator`, created once before training, scores the generated images:

* ``fid`` against the ``skimage-photos`` reference statistics shipped with genmetrics
  (222 tiles of the same photographs; with this few images FID is "rank deficient":
  fine for watching a trend, not a number to publish);
* ``ssim`` and ``psnr`` of each generated image against its target tile.

Each scorecard goes to TensorBoard with ``card.log_to(writer, step=...)``, next to the
training loss, and the Evaluator is ``reset()`` for the next evaluation (the Inception
network stays loaded). FID falls and SSIM / PSNR rise as the images leave the noise.

    python scripts/train_loop_example.py                       # 60 steps, eval every 20
    python scripts/train_loop_example.py --steps 200 --eval-every 50 --logdir runs/toy
    tensorboard --logdir runs/toy
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

DESCRIPTION = __doc__.split("\n\n")[0] + """

Trains a toy generator on CPU toward real photo tiles and evaluates it every
--eval-every steps with one genmetrics Evaluator (FID against the shipped
skimage-photos statistics, SSIM and PSNR against the target tiles). Scorecards and the
training loss are logged to TensorBoard under --logdir; one line is printed per
evaluation."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="train_loop_example.py", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60,
                        help="training steps (full-batch Adam updates; default 60)")
    parser.add_argument("--eval-every", type=int, default=20,
                        help="evaluate every N steps, and after the last step (default 20)")
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
    parser.add_argument("--lr", type=float, default=0.05, help="Adam learning rate (default 0.05)")
    parser.add_argument("--batch", type=int, default=16,
                        help="images per Evaluator.update call (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default="cpu",
                        help="where genmetrics runs the Inception network: cpu, auto, cuda "
                        "(default cpu)")
    args = parser.parse_args(argv)
    for name in ("steps", "eval_every", "images", "width", "batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.images < 2:
        parser.error("--images must be at least 2 (FID needs two images)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("error: this example logs to TensorBoard; install it with "
              "`pip install tensorboard`", file=sys.stderr)
        return 2
    import torch
    from _toy_generator import (
        ToyGenerator,
        seed_everything,
        target_tiles,
        tile_count,
        to_uint8,
        train_steps,
    )

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
    model = ToyGenerator(args.images, size=args.size, width=args.width)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    # Created once: the Inception network loads on the first update and stays loaded.
    evaluator = Evaluator(["fid", "ssim", "psnr"], modality="image", device=args.device,
                          reference_stats="skimage-photos")

    started = time.perf_counter()
    with SummaryWriter(log_dir=str(logdir)) as writer:
        step = 0
        while step < args.steps:
            chunk = min(args.eval_every, args.steps - step)
            loss = train_steps(model, optimizer, targets, chunk)
            step += chunk
            writer.add_scalar("train/loss", loss, global_step=step)

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
            print(f"step {step:4d}  loss {loss:.4f}  {scores}{failed}  "
                  f"({time.perf_counter() - started:.1f} s)", flush=True)
    evaluator.close()
    print(f"done: {step} steps; scalars under 'genmetrics/' and 'train/loss' in {logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
