"""Images for the gate demo: a toy "generator" of real photographs, run with two seeds.

    python scripts/make_gate_demo.py out/gate-demo --n 150

writes four folders of ``n`` PNG images (128x128) under the output folder:

* ``references/``: the generator with seed 0 -- the reference set;
* ``run1/``: seed 1 -- the baseline run;
* ``run2/``: seed 2 -- the same generator rerun with another seed (should pass the gate);
* ``blurred/``: seed 3, each image blurred (Gaussian, sigma 2 px) -- a real regression.

The "generator" is not a model: each image is a random 128x128 crop of one of the 15
photographs bundled with scikit-image (``tests/photos.py``; each resized so its longer
side is 384 px), the photograph chosen uniformly, the crop position uniformly, mirrored
with probability 1/2. Every seed draws from the same distribution, so two seeds differ
only by sampling noise -- what the rerun intervals of ``score --bootstrap`` measure.
Files are named ``img-NNNN.png`` (references ``ref-NNNN.png``), so a sample never pairs
with a reference by name (no SSIM/PSNR).

    >>> a, b = generate(3, seed=1), generate(3, seed=1)
    >>> a.shape, a.dtype, bool((a == b).all()), bool((a != generate(3, seed=2)).any())
    ((3, 128, 128, 3), dtype('uint8'), True, True)
"""

from __future__ import annotations

import argparse
import shutil
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.photos import blur, photos, resize_longer_side, save_png  # noqa: E402

SIZE = 128
LONGER_SIDE = 384
BLUR_SIGMA = 2.0
#: folder -> (generator seed, blur sigma, file prefix)
RUNS = {"references": (0, 0.0, "ref"), "run1": (1, 0.0, "img"), "run2": (2, 0.0, "img"),
        "blurred": (3, BLUR_SIGMA, "img")}


@lru_cache(maxsize=1)
def _sources() -> tuple[np.ndarray, ...]:
    """The photographs, longer side resized to 384 px (Lanczos), in a fixed order."""
    return tuple(resize_longer_side(image, LONGER_SIDE) for image in photos().values())


def generate(n: int, seed: int, blur_sigma: float = 0.0) -> np.ndarray:
    """``n`` images (``n x 128 x 128 x 3`` uint8) of the toy generator with ``seed``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    sources = _sources()
    rng = np.random.default_rng(seed)
    out = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    for i in range(n):
        image = sources[rng.integers(len(sources))]
        top = rng.integers(image.shape[0] - SIZE + 1)
        left = rng.integers(image.shape[1] - SIZE + 1)
        crop = image[top:top + SIZE, left:left + SIZE]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = np.ascontiguousarray(crop)
        out[i] = blur(crop, blur_sigma) if blur_sigma > 0 else crop
    return out


def write(folder: Path, n: int, seed: int, blur_sigma: float = 0.0, prefix: str = "img") -> Path:
    """Write :func:`generate`'s images as ``folder/{prefix}-NNNN.png`` (folder emptied)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i, image in enumerate(generate(n, seed, blur_sigma)):
        save_png(image, folder / f"{prefix}-{i:04d}.png")
    return folder


def write_all(out: Path, n: int) -> dict[str, Path]:
    """Every folder of :data:`RUNS` under ``out``, ``n`` images each."""
    return {name: write(out / name, n, seed, sigma, prefix)
            for name, (seed, sigma, prefix) in RUNS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("--n", type=int, default=150, help="images per folder (default 150)")
    args = parser.parse_args(argv)
    if args.n < 2:
        parser.error(f"--n must be at least 2 (FID needs 2 images a side); got {args.n}")
    folders = write_all(args.out, args.n)
    print(f"wrote {args.n} images each under {args.out}: {', '.join(folders)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
