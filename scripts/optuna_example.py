"""A genmetrics score as an Optuna objective: tune the toy generator's learning rate and width.

Each trial trains the toy generator of ``scripts/_toy_generator.py`` (the one the
training-loop example uses) for ``--steps`` steps toward real photo tiles, with a
learning rate and decoder width suggested by a seeded TPE sampler, and returns a score
computed by one :class:`genmetrics.Evaluator` -- created once for the whole study and
``reset()`` in each trial, so no model is loaded twice:

* ``--metric psnr`` (default) or ``ssim``: maximised, against the target tiles; fast,
  no neural network involved;
* ``--metric fid``: minimised, against the shipped ``skimage-photos`` statistics
  (Inception on CPU runs at roughly 20 images/s: expect ~2 s per trial per 32 images).

The direction of the study comes from the metric's spec (``higher_is_better``); every
metric of the scorecard is stored on the trial as a user attribute.

    python scripts/optuna_example.py                     # 6 trials, PSNR
    python scripts/optuna_example.py --metric fid --trials 4
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

METRICS = ("psnr", "ssim", "fid")


def evaluator_for(metric: str, device: str = "cpu") -> Any:
    """The Evaluator an objective needs: ``metric``, plus SSIM and PSNR (cheap) for context."""
    from genmetrics import Evaluator

    names = list(dict.fromkeys([metric, "psnr", "ssim"]))
    stats = "skimage-photos" if metric == "fid" else None
    return Evaluator(names, modality="image", device=device, reference_stats=stats)


def train_and_score(lr: float, width: int, *, evaluator: Any, steps: int = 30,
                    images: int = 32, size: int = 32, seed: int = 0) -> dict[str, float]:
    """Train a fresh toy generator with ``lr`` and ``width``; return every metric's value.

    The same seed gives every trial the same initial noise and targets, so trials differ
    only by their hyperparameters. ``evaluator`` is reset before use.
    """
    import torch
    from _toy_generator import ToyGenerator, seed_everything, target_tiles, to_uint8, train_steps

    seed_everything(seed)
    targets = target_tiles(images, size)
    model = ToyGenerator(images, size=size, width=width)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    train_steps(model, optimizer, targets, steps)
    model.eval()
    with torch.no_grad():
        fakes = model()
    evaluator.reset()
    evaluator.update(fakes, to_uint8(targets))
    card = evaluator.compute()
    if card.errors:
        from genmetrics.errors import MetricError

        raise MetricError(f"scoring failed: {card.errors}")
    return {name: result.value for name, result in card.metrics.items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="optuna_example.py", description=__doc__.split("\n\n")[0],
        epilog="Each trial trains for --steps steps; the best trial is printed at the end.")
    parser.add_argument("--trials", type=int, default=6, help="number of trials (default 6)")
    parser.add_argument("--steps", type=int, default=30,
                        help="training steps per trial (default 30)")
    parser.add_argument("--metric", choices=METRICS, default="psnr",
                        help="the objective: psnr or ssim (maximised) or fid (minimised); "
                        "default psnr")
    parser.add_argument("--images", type=int, default=32,
                        help="target tiles = images scored per trial (default 32)")
    parser.add_argument("--size", type=int, default=32, choices=(32, 64),
                        help="image side in pixels (default 32)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the TPE sampler and of the training (default 0)")
    parser.add_argument("--device", default="cpu",
                        help="where genmetrics runs the Inception network for fid (default cpu)")
    args = parser.parse_args(argv)
    for name in ("trials", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.images < 2:
        parser.error("--images must be at least 2")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import optuna
    except ImportError:
        print("error: this example needs Optuna; install it with `pip install optuna`",
              file=sys.stderr)
        return 2
    from _toy_generator import tile_count

    from genmetrics import get_metric

    if args.images > tile_count():
        print(f"error: --images can be at most {tile_count()} (the number of photo tiles)",
              file=sys.stderr)
        return 2
    evaluator = evaluator_for(args.metric, args.device)  # once: models stay loaded
    higher = get_metric(args.metric).spec.higher_is_better
    started = time.perf_counter()

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-3, 0.3, log=True)
        width = trial.suggest_categorical("width", [4, 8, 16, 32])
        scores = train_and_score(lr, width, evaluator=evaluator, steps=args.steps,
                                 images=args.images, size=args.size, seed=args.seed)
        for name, value in scores.items():
            trial.set_user_attr(name, value)
        print(f"trial {trial.number}: lr {lr:.4g}  width {width:2d}  "
              + "  ".join(f"{k} {v:.4g}" for k, v in scores.items())
              + f"  ({time.perf_counter() - started:.1f} s)", flush=True)
        return scores[args.metric]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if higher else "minimize",
                                sampler=optuna.samplers.TPESampler(seed=args.seed))
    study.optimize(objective, n_trials=args.trials)
    evaluator.close()

    best = study.best_trial
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in best.params.items())
    print(f"best trial {best.number}: {args.metric} = {best.value:.4f} "
          f"({study.direction.name.lower()}d) with {params}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
