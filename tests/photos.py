"""Real photographs for image tests, demos and reference statistics: ``skimage.data``.

Only images bundled with scikit-image are used (no download). Grayscale photographs
are replicated into 3 channels. :func:`tiles` cuts each photograph, resized with
Pillow's Lanczos filter so that its longer side is ``longer_side`` pixels, into
non-overlapping ``size x size`` tiles, left to right, top to bottom.

    >>> len(photos()) >= 10
    True
"""

from __future__ import annotations

import io

import numpy as np

# colour and grayscale photographs shipped inside scikit-image (no network needed)
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
          "immunohistochemistry", "retina", "camera", "brick", "grass", "gravel", "moon",
          "clock", "coins", "cell")


def as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3]).astype(np.uint8)


def photos() -> dict[str, np.ndarray]:
    import skimage.data

    return {name: as_rgb(getattr(skimage.data, name)()) for name in PHOTOS}


def resize_longer_side(image: np.ndarray, longer_side: int) -> np.ndarray:
    from PIL import Image

    h, w = image.shape[:2]
    scale = longer_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def tiles(size: int = 128, longer_side: int = 384) -> list[tuple[str, np.ndarray]]:
    """Non-overlapping tiles of every photograph, named ``photo-row-col``."""
    out = []
    for name, image in photos().items():
        small = resize_longer_side(image, longer_side)
        for row in range(small.shape[0] // size):
            for col in range(small.shape[1] // size):
                tile = small[row * size:(row + 1) * size, col * size:(col + 1) * size]
                out.append((f"{name}-{row}-{col}", np.ascontiguousarray(tile)))
    return out


# -- degradations -------------------------------------------------------------------
def blur(image: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    out = gaussian_filter(image.astype(np.float64), sigma=(sigma, sigma, 0))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def noise(image: np.ndarray, std: float = 12.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = image.astype(np.float64) + rng.normal(0.0, std, image.shape)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int = 20) -> np.ndarray:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def brighten(image: np.ndarray, delta: int = 25) -> np.ndarray:
    return np.clip(image.astype(np.int16) + delta, 0, 255).astype(np.uint8)


DEGRADATIONS = {"blur": blur, "noise": noise, "jpeg": jpeg, "brighten": brighten}


def save_png(image: np.ndarray, path) -> None:
    from PIL import Image

    Image.fromarray(image).save(path)


def degraded_folders(root) -> dict:
    """``root/samples``: 14 degraded 48-px tiles (the four degradations in turn);
    ``root/refs``: 12 other clean tiles. The small sample/reference pair of the interval
    tests (FID, sFID, KID, Vendi through the runner)."""
    all_tiles = [resize_longer_side(t, 48) for _, t in tiles()]
    kinds = list(DEGRADATIONS.values())
    (root / "samples").mkdir()
    (root / "refs").mkdir()
    for i in range(14):
        save_png(kinds[i % 4](all_tiles[i]), root / "samples" / f"{i:03d}.png")
    for i in range(12):
        save_png(all_tiles[60 + i], root / "refs" / f"{i:03d}.png")
    return {"samples": root / "samples", "refs": root / "refs"}
