"""Regenerate the bundled image demo and the shipped reference statistics.

    python scripts/make_demo_images.py            # demo/image/{references,samples}/*.png
    python scripts/make_demo_images.py --stats    # also rebuild skimage-photos statistics

Both come from photographs bundled with scikit-image (``tests/photos.py``): each one
RGB (grayscale replicated), resized with Lanczos so its longer side is 384 px, cut into
non-overlapping 128x128 tiles (111 tiles from 15 photographs).

* Demo: 12 tiles from different photographs are the references; the samples are the
  same tiles degraded in turn by Gaussian blur (sigma 1.5), Gaussian noise (std 12),
  JPEG quality 20 and a brightness shift (+25), saved as PNG.
* ``skimage-photos`` statistics: all 111 tiles plus their horizontal mirror images
  (222 images), through the offline FID Inception weights, written to
  ``genmetrics/data/reference_stats/`` with ``genmetrics stats build``: pool3 and
  spatial statistics (FID, sFID), feature rows kept (KID and the k-NN metrics work
  against them too).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.photos import DEGRADATIONS, save_png, tiles  # noqa: E402

DEMO = REPO / "demo" / "image"
SHIPPED = REPO / "genmetrics" / "data" / "reference_stats"
STATS_NAME = "skimage-photos"
STATS_SOURCE = ("skimage.data photographs (astronaut, chelsea, coffee, rocket, "
                "hubble_deep_field, immunohistochemistry, retina, camera, brick, grass, gravel, "
                "moon, clock, coins, cell): longer side resized to 384 px (Lanczos), "
                "non-overlapping 128x128 tiles, plus horizontal mirrors; 222 images")


def make_demo() -> None:
    all_tiles = tiles()
    chosen, seen = [], set()
    for name, tile in all_tiles:  # one tile per photograph, the first 12 photographs
        photo = name.split("-")[0]
        if photo not in seen and len(chosen) < 12:
            seen.add(photo)
            chosen.append((name, tile))
    for sub in ("references", "samples"):
        shutil.rmtree(DEMO / sub, ignore_errors=True)
        (DEMO / sub).mkdir(parents=True)
    kinds = list(DEGRADATIONS.items())
    for i, (name, tile) in enumerate(chosen):
        kind, degrade = kinds[i % len(kinds)]
        save_png(tile, DEMO / "references" / f"{i:02d}-{name}.png")
        save_png(degrade(tile), DEMO / "samples" / f"{i:02d}-{name}.png")
    print(f"wrote {len(chosen)} reference/sample pairs under {DEMO}")


def make_stats() -> None:
    from genmetrics.reference_stats import build_stats

    with tempfile.TemporaryDirectory() as tmp:
        for name, tile in tiles():
            save_png(tile, Path(tmp) / f"{name}.png")
            save_png(tile[:, ::-1].copy(), Path(tmp) / f"{name}-mirror.png")
        path, entry = build_stats(tmp, STATS_NAME, out_dir=SHIPPED, source=STATS_SOURCE,
                                  device="cpu")
    print(f"{path}: n={entry['n']} sha256={entry['sha256']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stats", action="store_true", help="also rebuild the statistics")
    args = parser.parse_args()
    make_demo()
    if args.stats:
        make_stats()
