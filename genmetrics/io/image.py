"""Image input: find sample / reference images, pair them, decode to uint8 RGB tensors.

* **Files**: PNG, JPEG, WebP, BMP and GIF, searched recursively (see
  :func:`~genmetrics.io.common.discover`: folder links leading outside the input are
  followed once; loops are not, and are named in a warning), decoded with Pillow (as
  torch-fidelity does) in DataLoader worker processes, to ``3 x H x W`` uint8 RGB.
  Files with other extensions are named in a run-level warning. Animated GIF, PNG and
  WebP files are skipped (which frame would be meant is unknown).
* **Arrays**: a ``.npy`` or ``.npz`` file of uint8 images ``N x H x W x 3`` (or
  ``N x H x W`` grayscale), e.g. the ``arr_0`` diffusion samplers write. ``.npy`` files
  are memory-mapped; an ``.npz`` member is read when the file is opened. Arrays are
  loaded with ``allow_pickle=False``. Sample ids are ``name.npz#000042``.
* **Colour policy**: grayscale and palette images are converted to RGB by Pillow (gray
  is replicated into 3 channels); **alpha is dropped** (RGBA -> RGB keeps the colour
  channels, as torch-fidelity and clean-fid do); CMYK is converted by Pillow. The
  signature records ``alpha:drop``. **16-bit PNGs** get a warning naming the file:
  16-bit grayscale is scaled to 8 bits as ``round(x / 257)`` (Pillow's own conversion,
  which torch-fidelity uses, clips it to 255: a mostly white picture); 16-bit colour
  keeps Pillow's high byte (``x // 256``, within one level of ``round(x / 257)``).
* **Pairs** (SSIM, PSNR) are matched by relative path without the extension
  (``samples/a/1.png`` <-> ``refs/a/1.jpg``). When more than half of the samples have a
  reference the folders are *paired*; otherwise the reference folder is only a
  distribution (FID, KID) and paired metrics refuse to run, naming the unpaired files.
  When a sample's reference is missing, differs in size or cannot be read, the sample
  still counts for FID, KID and IS; its reference becomes
  :class:`~genmetrics.io.common.Unusable`, which SSIM and PSNR record as a failed pair
  with the reason (e.g. both sizes, or ``no reference named X``), and a warning names it.
* **JPEG** and lossy **WebP** input get a warning: lossy compression alone moves FID.
* **Bad files** (unreadable, truncated, empty, not images, decompression bombs,
  animated, two files of one name such as ``a.png`` and ``a.jpg``, broken links,
  sub-folders that cannot be listed) are skipped and named with the reason, relative to
  the input folder, in the scorecard's ``skipped`` list.

    >>> import numpy as np, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> np.save(folder / "imgs.npy", np.zeros((2, 8, 8, 3), np.uint8))
    >>> source = ImageSource(folder / "imgs.npy", [])
    >>> [(item.id, tuple(item.sample.shape)) for item in source]
    [('imgs.npy#000000', (3, 8, 8)), ('imgs.npy#000001', (3, 8, 8))]
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genmetrics.errors import InputError
from genmetrics.features.cache import FeatureCache, content_key
from genmetrics.io.common import (
    PROBLEM_KEY,
    Discovery,
    Skipped,
    Unusable,
    anonymous_parts,
    discover,
    display_path,
    first_few,
    item_hash,
    os_reason,
    printable,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
ARRAY_SUFFIXES = (".npy", ".npz")
JPEG_SUFFIXES = (".jpg", ".jpeg")
COLOR_POLICY = "rgb"  # what goes into signatures: Pillow's convert("RGB")
ALPHA_POLICY = "drop"
# files below this count are decoded in the main process (workers cost more than they save)
WORKERS_FROM = 64
ANIMATED_FORMATS = ("GIF", "PNG", "WEBP")  # not MPO: a camera JPEG's 2nd frame is a preview
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode_image(source: Path | bytes) -> Any:
    """An image file (a path, or its bytes) -> ``3 x H x W`` uint8 tensor; ``ValueError``
    with a short reason."""
    import torch

    return torch.from_numpy(decode_rgb(source)).permute(2, 0, 1).contiguous()


def decode_rgb(source: Path | bytes) -> np.ndarray:
    """An image file (a path, or its bytes) -> ``H x W x 3`` uint8 array under the colour
    policy of the module docstring (what is scored, and what the report shows);
    ``ValueError`` with a short reason."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, bytes):
        if not source:
            raise ValueError("cannot decode image: empty file (0 bytes)")
        source = io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)  # e.g. palette transparency notes
            with Image.open(source) as img:
                if img.format in ANIMATED_FORMATS and getattr(img, "is_animated", False):
                    raise _Animated(img.n_frames)
                img.load()
                if img.mode.startswith("I;16"):  # 16-bit gray: scale, as Pillow would clip
                    gray = np.asarray(img).astype(np.uint32)
                    array = np.repeat(((gray + 128) // 257).astype(np.uint8)[:, :, None], 3, 2)
                else:
                    array = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except _Animated as exc:
        raise ValueError(f"animated image ({exc.frames} frames): save one frame as PNG") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValueError(f"too large to decode safely ({exc})") from None
    except UnidentifiedImageError:
        raise ValueError("cannot decode image: not a recognised image file") from None
    except MemoryError:
        raise ValueError("cannot decode image: not enough memory") from None
    except Exception as exc:  # truncated data, bad headers; Pillow raises many types
        kind = "" if isinstance(exc, (OSError, ValueError)) else f"{type(exc).__name__}: "
        raise ValueError(f"cannot decode image: {kind}{exc}") from None
    if array.size == 0:
        raise ValueError("image has no pixels")
    return array.copy()  # Pillow's buffer is read-only; the caller owns its pixels


class _Animated(Exception):
    def __init__(self, frames: int) -> None:
        self.frames = frames


def sixteen_bit_note(raw: bytes | np.ndarray) -> str | None:
    """What happens to a 16-bit PNG (read from its header, without decoding), else None.

        >>> import io, numpy as np
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.fromarray(np.zeros((2, 2), np.uint16)).save(buf, "PNG")
        >>> sixteen_bit_note(buf.getvalue())
        '16-bit grayscale PNG scaled to 8 bits as round(x / 257)'
    """
    if not isinstance(raw, bytes) or raw[:8] != PNG_SIGNATURE or raw[12:16] != b"IHDR":
        return None
    if len(raw) < 26 or raw[24] != 16:
        return None
    if raw[25] == 0:
        return "16-bit grayscale PNG scaled to 8 bits as round(x / 257)"
    return "16-bit PNG reduced to 8 bits by Pillow, keeping the high byte (x // 256)"


@dataclass(frozen=True)
class PendingJpeg:
    """A baseline RGB/gray JPEG's bytes, left for :func:`decode_jpegs` in the main process
    (on the GPU) instead of Pillow in a worker."""

    data: bytes


def gpu_decodable_jpeg(raw: bytes | np.ndarray) -> bool:
    """True for JPEG bytes whose header says RGB or gray and a safe size (the same
    decompression-bomb bound as Pillow's); anything else goes to Pillow."""
    if not isinstance(raw, bytes) or raw[:3] != b"\xff\xd8\xff":
        return False
    from PIL import Image

    try:
        with Image.open(io.BytesIO(raw)) as img:  # reads the header only
            width, height = img.size
            return img.mode in ("RGB", "L") and width * height <= (Image.MAX_IMAGE_PIXELS or 0)
    except Exception:  # noqa: BLE001 - Pillow will then decode it and name the problem
        return False


def decode_jpegs(raws: Sequence[bytes], device: str) -> list[Any]:
    """JPEG bytes -> ``3 x H x W`` uint8 tensors on ``device`` (torchvision's nvJPEG
    decoder on CUDA; libjpeg-turbo, the same as Pillow's, on the CPU), as a batch.

        >>> import io, numpy as np
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(buf, "JPEG")
        >>> [tuple(t.shape) for t in decode_jpegs([buf.getvalue()], "cpu")]
        [(3, 4, 6)]
    """
    import torch

    with warnings.catch_warnings():  # torchvision 0.29 points to torchcodec; same decoder
        warnings.simplefilter("ignore", DeprecationWarning)
        from torchvision.io import ImageReadMode, decode_jpeg

        tensors = [torch.frombuffer(bytearray(raw), dtype=torch.uint8) for raw in raws]
        return list(decode_jpeg(tensors, device=device, mode=ImageReadMode.RGB))


def array_to_rgb(array: np.ndarray) -> np.ndarray:
    """One image of an array file -> ``H x W x 3`` uint8 (gray replicated, alpha dropped),
    a copy: a memory-mapped slice is read-only, and the caller must own its pixels."""
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.shape[-1] == 4:
        array = array[..., :3]
    return np.array(array, dtype=np.uint8)


def _array_to_tensor(array: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(array_to_rgb(array)).permute(2, 0, 1).contiguous()


def open_array(path: Path) -> np.ndarray:
    """A uint8 image array file, checked: ``N x H x W x 3`` (or ``x 4`` / grayscale)."""
    try:
        if path.suffix.lower() == ".npy":
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as npz:
                names = list(npz.files)
                if not names:
                    raise InputError(f"{path}: the .npz file holds no arrays")
                key = "arr_0" if "arr_0" in names else names[0]
                if len(names) > 1 and "arr_0" not in names:
                    raise InputError(f"{path}: several arrays ({', '.join(names)}) and no "
                                     "arr_0; save the images as arr_0")
                array = npz[key]
    except InputError:
        raise
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the array file ({exc})") from None
    if array.dtype != np.uint8:
        raise InputError(f"{path}: images must be uint8 (0-255), not {array.dtype}; convert "
                         "with (x * 255).round().clip(0, 255).astype('uint8')")
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        raise InputError(f"{path}: shape {array.shape} looks like one H x W x 3 image; save "
                         "images as N x H x W x 3 (e.g. arr[None] for one image)")
    if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[-1] not in (3, 4)):
        raise InputError(f"{path}: expected N x H x W x 3 images, got shape {array.shape}")
    return array


def array_content_key(image: np.ndarray) -> str:
    """The feature-cache key of one image of a uint8 array (``H x W x C``): its shape and
    pixels, so the same image in any ``.npy``/``.npz`` file has the same key.

        >>> image = np.zeros((2, 2, 3), np.uint8)
        >>> key = array_content_key(image)
        >>> key == array_content_key(image.copy()) != array_content_key(image[:1])
        True
    """
    return content_key(f"uint8 {image.shape}|".encode() + np.ascontiguousarray(image).tobytes())


def image_files(folder: Path) -> Discovery:
    """Image files under ``folder`` keyed by relative path without the extension, and
    the problems found (see :func:`~genmetrics.io.common.discover`)."""
    return discover(folder, IMAGE_SUFFIXES)


@dataclass
class ImageItem:
    """A decoded sample (``3 x H x W`` uint8 tensor) and its reference, when paired."""

    id: str
    sample: Any  # None when its features came from the cache and no metric needs pixels
    reference: Any | None = None
    warning: str | None = None
    content: str | None = None  # the sample's content key (sha256 of its file's bytes)
    reference_content: str | None = None
    features: dict[str, np.ndarray] | None = None  # cached Inception outputs, if any
    name: str | None = None  # the file, relative to its folder, for messages
    #: the id is a position the Evaluator made up: the digests leave it out
    #: (:func:`~genmetrics.io.common.anonymous_parts`)
    synthetic_id: bool = False
    #: the text the image was generated from (:mod:`genmetrics.io.prompts`): ``None``
    #: when no prompts were given, :class:`Unusable` (with the reason) when unusable
    prompt: str | Unusable | None = None
    #: the sample preprocessed for the run's backbones by the decode worker, keyed by
    #: preprocessing signature (see ``Backbone.worker_preprocessing``)
    preprocessed: dict[str, Any] | None = None

    def metric_inputs(self) -> tuple[Any, list[Any]]:
        return self.sample, [] if self.reference is None else [self.reference]

    def missing(self) -> dict[str, str]:
        """Per-item inputs given for the run but unusable for this image, with the reason."""
        return {"prompt": self.prompt.reason} if isinstance(self.prompt, Unusable) else {}

    def need_parts(self) -> dict[str, list[str | bytes]]:
        """Digest parts of the prompt (kept apart from the references: only metrics that
        need it carry its digest), tied to the image by id, or by content when the id
        is made up."""
        if not isinstance(self.prompt, str):
            return {}
        tie = item_hash(*self.digest_parts()[0]).hex() if self.synthetic_id else self.id
        return {"prompt": [tie, "prompt", self.prompt]}

    def digest_parts(self) -> tuple[list[str | bytes], list[str | bytes]]:
        """What the input digests hash: each file's content key (pixels when unknown)."""
        def parts(image: Any, content: str | None) -> list[str | bytes]:
            if isinstance(image, Unusable):
                return [self.id, image.reason]
            if content is not None:
                return [self.id, content]
            if image is None:
                return []
            return [self.id, "x".join(map(str, image.shape)), image.numpy().tobytes()]

        return anonymous_parts(parts(self.sample, self.content),
                               parts(self.reference, self.reference_content), self.synthetic_id)


class _Collection:
    """The images of one input (a folder, or one array file), decoded by index."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.array: np.ndarray | None = None
        self.files: dict[str, Path] = {}
        self.found: Discovery | None = None
        self.problems: dict[str, Skipped] = {}  # problem key -> Skipped
        #: names that files have but that cannot be used (as references), with the reason
        self.unusable: dict[str, str] = {}
        if path.is_file():
            if path.suffix.lower() not in ARRAY_SUFFIXES:
                raise InputError(f"{path}: image input must be a folder of images or a "
                                 ".npy/.npz array of uint8 images")
            self.array = open_array(path)
            width = max(6, len(str(len(self.array) - 1)))
            self.keys = [f"{path.name}#{i:0{width}d}" for i in range(len(self.array))]
            self.index = {key: i for i, key in enumerate(self.keys)}
        elif path.is_dir():
            self.found = image_files(path)
            self.files = self.found.files
            self.problems = {k: Skipped(printable(v.path), printable(v.reason))
                             for k, v in self.found.entries.items() if isinstance(v, Skipped)}
            for problem in self.found.problems:  # a file name that cannot be paired with
                stem = Path(problem.path)
                if stem.suffix.lower() in IMAGE_SUFFIXES:
                    self.unusable.setdefault(stem.with_suffix("").as_posix(), printable(
                        f"reference {problem.path}: {problem.reason}"))
            self.unusable.update({k: printable(f"reference: {reason}")
                                  for k, reason in self.found.ambiguous.items()})
            self.keys = list(self.found.entries)
        else:
            raise InputError(f"{path} does not exist")
        if not self.keys:
            others = self.found.others if self.found is not None else []
            held = f" (it holds {len(others)} other file(s): {first_few(others)})" if others else ""
            raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES + ARRAY_SUFFIXES)}) "
                             f"found in {path}{held}")

    @property
    def stems(self) -> list[str]:
        """The keys of the input files (not of the problems), in order."""
        return [k for k in self.keys if not k.startswith(PROBLEM_KEY)]

    def pairing_reason(self, key: str) -> str | None:
        """Why this collection (as references) has no usable file for ``key``, or None."""
        if key in self.unusable:
            return self.unusable[key]
        if key not in self.files and (self.array is None or key not in self.index):
            return printable(f"no reference named {key} in {self.path}")
        return None

    def __len__(self) -> int:
        return len(self.keys)

    def name(self, key: str) -> str:
        if key in self.problems:
            return self.problems[key].path
        if self.array is not None:
            return printable(key)
        return printable(display_path(self.files[key], self.path))

    def read(self, key: str) -> bytes | np.ndarray:
        """The undecoded image: a file's bytes, or one image of the array."""
        if self.array is not None:
            return np.asarray(self.array[self.index[key]])
        return self.files[key].read_bytes()

    @staticmethod
    def content_key(raw: bytes | np.ndarray) -> str:
        """The feature-cache key of what :meth:`read` returned."""
        if isinstance(raw, np.ndarray):
            return array_content_key(raw)
        return content_key(raw)

    @staticmethod
    def to_tensor(raw: bytes | np.ndarray) -> Any:
        return _array_to_tensor(raw) if isinstance(raw, np.ndarray) else decode_image(raw)

    @property
    def jpeg_count(self) -> int:
        return sum(p.suffix.lower() in JPEG_SUFFIXES for p in self.files.values())

    @property
    def lossy_webp_count(self) -> int:
        """WebP files whose bitstream is lossy (a header read of each ``.webp`` file)."""
        return sum(p.suffix.lower() == ".webp" and is_lossy_webp(p) for p in self.files.values())


def _images_phrase(count: int, label: str) -> str:
    """``1 sample image``, ``3 reference images``."""
    return f"{count} {label} image{'' if count == 1 else 's'}"


def is_lossy_webp(path: Path) -> bool:
    """True when a WebP file holds a lossy (VP8) bitstream, from its RIFF chunks: ``VP8 ``
    is lossy, ``VP8L`` lossless; an extended file (``VP8X``) is lossy when a ``VP8 ``
    chunk follows. An unreadable header counts as not lossy (decoding reports it).

        >>> import io, tempfile
        >>> from PIL import Image
        >>> folder = Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (8, 8)).save(folder / "a.webp", lossless=False)
        >>> Image.new("RGB", (8, 8)).save(folder / "b.webp", lossless=True)
        >>> is_lossy_webp(folder / "a.webp"), is_lossy_webp(folder / "b.webp")
        (True, False)
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
                return False
            for _ in range(64):  # chunks: 4-byte tag, little-endian size, padded to even
                chunk = f.read(8)
                if len(chunk) < 8:
                    return False
                tag, size = chunk[:4], int.from_bytes(chunk[4:], "little")
                if tag in (b"VP8 ", b"VP8L"):
                    return tag == b"VP8 "
                f.seek(size + (size & 1), 1)
    except OSError:
        return False
    return False


class _Decoded:
    """A map-style dataset for DataLoader workers: index -> ImageItem or Skipped."""

    def __init__(self, samples: _Collection, references: _Collection | None,
                 keys: Sequence[str], paired: bool, cache: FeatureCache | None = None,
                 pixels_needed: bool = True, defer_jpeg: bool = False,
                 strict_pairs: bool = False, preprocessings: Sequence[Any] = ()) -> None:
        self.samples, self.references, self.keys, self.paired = samples, references, keys, paired
        self.cache, self.pixels_needed = cache, pixels_needed
        #: (key, preprocessing) run on each decoded sample (in workers: see _iterate)
        self.preprocessings = [(str(p.signature()), p) for p in preprocessings]
        self.strict_pairs = strict_pairs  # a pair that cannot be compared: Skipped
        self.defer_jpeg = defer_jpeg and not paired  # JPEGs left for the GPU decoder

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> ImageItem | Skipped:
        return self.item(index)

    def items(self, start: int, stop: int) -> list[ImageItem | Skipped]:
        """Items ``start:stop``, their samples preprocessed together: one call of each
        preprocessing on them all (a processor call costs per call), else one at a time."""
        import torch

        items = [self.item(index, preprocess=False) for index in range(start, stop)]
        decoded = [item for item in items if isinstance(item, ImageItem)
                   and isinstance(item.sample, torch.Tensor)]
        if self.preprocessings and decoded:
            for item, done in zip(decoded, _preprocessed_many(
                    [item.sample for item in decoded], self.preprocessings), strict=True):
                item.preprocessed = done
        return items

    def item(self, index: int, preprocess: bool = True) -> ImageItem | Skipped:
        key = self.keys[index]
        if key in self.samples.problems:
            return self.samples.problems[key]
        name = self.samples.name(key)
        ident = printable(key)  # the sample's id in the scorecard
        try:
            raw = self.samples.read(key)
            content = self.samples.content_key(raw)
            features = self.cache.get(content) if self.cache is not None else None
            if features is not None and getattr(features, "complete", True) \
                    and not self.pixels_needed:  # no decode at all (every backbone cached)
                return ImageItem(ident, None, content=content, features=features,
                                 warning=_note(name, raw), name=name)
            if self.defer_jpeg and gpu_decodable_jpeg(raw):
                return ImageItem(ident, PendingJpeg(raw), content=content, features=features,
                                 name=name)
            sample = self.samples.to_tensor(raw)
        except OSError as exc:
            return Skipped(name, f"cannot read: {os_reason(exc)}")
        except ValueError as exc:
            return Skipped(name, str(exc))
        item = ImageItem(ident, sample, content=content, features=features, name=name)
        item.warning = _note(name, raw)
        if self.preprocessings and preprocess:
            item.preprocessed = _preprocessed(sample, self.preprocessings)
        if not self.paired or self.references is None:
            return item
        problem = self.references.pairing_reason(key)
        if problem is not None:
            return self._unusable(item, problem, name)
        ref_name = self.references.name(key)
        try:
            raw = self.references.read(key)
            item.reference_content = self.references.content_key(raw)
            reference = self.references.to_tensor(raw)
        except OSError as exc:
            return self._unusable(item, f"reference {ref_name}: cannot read: {os_reason(exc)}",
                                  name)
        except ValueError as exc:
            return self._unusable(item, f"reference {ref_name}: {exc}", name)
        item.warning = _join(item.warning, _note(f"reference {ref_name}", raw))
        if reference.shape != sample.shape:
            return self._unusable(item, f"size {_size(sample)} differs from its "
                                  f"reference {ref_name} ({_size(reference)})", name)
        item.reference = reference
        return item

    def _unusable(self, item: ImageItem, reason: str, name: str) -> ImageItem | Skipped:
        """The sample still counts for FID/KID/IS; SSIM/PSNR record the pair as failed.
        With ``strict_pairs`` (``--on-error fail``) the sample is a Skipped instead."""
        if self.strict_pairs:
            return Skipped(name, reason)
        item.reference = Unusable(reason)
        item.warning = _join(item.warning, f"{reason}: not compared by SSIM/PSNR")
        return item


def _note(name: str, raw: bytes | np.ndarray) -> str | None:
    note = sixteen_bit_note(raw)
    return None if note is None else f"{name}: {note}"


def _join(first: str | None, second: str | None) -> str | None:
    return "; ".join(n for n in (first, second) if n) or None


def _size(image: Any) -> str:
    return f"{image.shape[2]}x{image.shape[1]}"


def _identity(item: Any) -> Any:
    return item


def _preprocessed(sample: Any, preprocessings: list[tuple[str, Any]]) -> dict[str, Any]:
    """``sample`` through each backbone preprocessing, by key. One that fails is left out:
    the backbone then preprocesses the image itself and reports the problem there."""
    out = {}
    for key, prep in preprocessings:
        try:
            out[key] = prep.apply(sample)
        except Exception:  # noqa: BLE001 - the backbone reports it in its own pass
            continue
    return out


def _preprocessed_many(samples: list[Any],
                       preprocessings: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """:func:`_preprocessed` of each of ``samples``: one ``apply_many`` call per
    preprocessing that has it (the same values, bit for bit), else one image at a time; a
    call that fails goes image by image, leaving out only the images that fail."""
    out: list[dict[str, Any]] = [{} for _ in samples]
    for key, prep in preprocessings:
        many = getattr(prep, "apply_many", None)
        try:
            values = list(many(samples)) if many is not None else None
        except Exception:  # noqa: BLE001 - retried image by image below
            values = None
        if values is None or len(values) != len(samples):
            values = [_preprocessed(sample, [(key, prep)]).get(key) for sample in samples]
        for done, value in zip(out, values, strict=True):
            if value is not None:
                done[key] = value
    return out


def _iterate(dataset: _Decoded, workers: int) -> Iterator[ImageItem | Skipped]:
    """Items in order, decoded by ``workers`` DataLoader processes (0: in this process)."""
    if workers <= 0 or len(dataset) < WORKERS_FROM:
        dataset.preprocessings = []  # in this process the backbones preprocess in batches
        for index in range(len(dataset)):
            yield dataset[index]
        return
    from torch.utils.data import DataLoader

    loader = DataLoader(_Chunks(dataset), batch_size=None, shuffle=False,
                        num_workers=workers, collate_fn=_identity, prefetch_factor=2,
                        persistent_workers=False)
    for chunk in loader:
        yield from chunk.unpack()


#: items a decode worker sends at a time: their tensors travel packed in one buffer per
#: dtype (a shared-memory file each), not one file per tensor (each costs a socket
#: round trip with an authentication challenge: ~1 ms a tensor on 2 cores)
CHUNK = 8


class _Slot:
    """Where a packed tensor lies in its chunk's buffer of its dtype."""

    __slots__ = ("dtype", "offset", "shape")

    def __init__(self, dtype: str, offset: int, shape: tuple[int, ...]) -> None:
        self.dtype, self.offset, self.shape = dtype, offset, shape


class _Packed:
    """A chunk of decoded items whose tensors (sample, reference, preprocessed) are slices
    of one flat buffer per dtype; :meth:`unpack` gives the items back with views of them
    (the same values, contiguous)."""

    def __init__(self, items: list[ImageItem | Skipped]) -> None:
        import torch

        parts: dict[str, list[Any]] = {}
        sizes: dict[str, int] = {}

        def slot(tensor: Any) -> Any:
            if not isinstance(tensor, torch.Tensor) or tensor.device.type != "cpu":
                return tensor
            dtype = str(tensor.dtype)
            offset = sizes.get(dtype, 0)
            parts.setdefault(dtype, []).append(tensor.reshape(-1))
            sizes[dtype] = offset + tensor.numel()
            return _Slot(dtype, offset, tuple(tensor.shape))

        for item in items:
            if isinstance(item, ImageItem):
                item.sample, item.reference = slot(item.sample), slot(item.reference)
                if item.preprocessed:
                    item.preprocessed = {k: slot(v) for k, v in item.preprocessed.items()}
        self.items = items
        self.buffers = {dtype: torch.cat(chunk) for dtype, chunk in parts.items()}

    def unpack(self) -> list[ImageItem | Skipped]:
        def view(value: Any) -> Any:
            if not isinstance(value, _Slot):
                return value
            size = 1
            for n in value.shape:
                size *= n
            flat = self.buffers[value.dtype]
            return flat[value.offset:value.offset + size].view(value.shape)

        for item in self.items:
            if isinstance(item, ImageItem):
                item.sample, item.reference = view(item.sample), view(item.reference)
                if item.preprocessed:
                    item.preprocessed = {k: view(v) for k, v in item.preprocessed.items()}
        return self.items


class _Chunks:
    """:class:`_Decoded` ``CHUNK`` items at a time, packed (see :class:`_Packed`)."""

    def __init__(self, dataset: _Decoded) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return -(-len(self.dataset) // CHUNK)

    def __getitem__(self, index: int) -> _Packed:
        stop = min(len(self.dataset), (index + 1) * CHUNK)
        return _Packed(self.dataset.items(index * CHUNK, stop))


def _decode_pending(items: Iterator[ImageItem | Skipped], device: str,
                    chunk: int = 64) -> Iterator[ImageItem | Skipped]:
    """Decode the :class:`PendingJpeg` samples of ``items`` on ``device``, ``chunk`` at a
    time, keeping the order; a file the batch decoder rejects is decoded alone, and if that
    fails too it is skipped with the decoder's reason."""
    while True:
        block = [item for _, item in zip(range(chunk), items, strict=False)]
        if not block:
            return
        pending = [i for i, item in enumerate(block)
                   if isinstance(item, ImageItem) and isinstance(item.sample, PendingJpeg)]
        raws = [block[i].sample.data for i in pending]  # type: ignore[union-attr]
        try:
            decoded = decode_jpegs(raws, device) if raws else []
        except RuntimeError:
            decoded = []
            for i, raw in zip(pending, raws, strict=True):
                try:
                    decoded.append(decode_jpegs([raw], device)[0])
                except RuntimeError as exc:
                    decoded.append(None)
                    block[i] = Skipped(block[i].name or block[i].id,  # type: ignore[union-attr]
                                       f"cannot decode image: {exc}")
        for i, tensor in zip(pending, decoded, strict=True):
            if tensor is not None:
                block[i].sample = tensor  # type: ignore[union-attr]
        yield from block


def default_workers() -> int:
    """Decode workers: one per core beyond the first, at most 8."""
    return max(1, min(8, (os.cpu_count() or 1) - 1))


class ImageSource:
    """Sample images (a folder or an array file), optionally with a reference folder.

    Iterating yields the samples (with their references when the two are *paired*);
    :meth:`reference_items` yields every reference image, for distribution metrics.
    """

    def __init__(self, samples: Path, references: Sequence[Path],
                 workers: int | None = None, prompts: Path | None = None) -> None:
        from genmetrics.io.prompts import PromptFile, claim_beside

        if len(references) > 1:
            raise InputError("image metrics take one reference folder (or array file)")
        self.root = samples
        self.samples = _Collection(samples)
        #: prompts (clipscore): from ``--prompts`` or the ``.txt`` beside each image
        self.prompt_file = None if prompts is None else PromptFile.read(Path(prompts))
        if self.prompt_file is not None:
            self.prompt_file.check_keys(self.samples.stems, self.samples.array is not None)
        self.prompts_beside = (self.prompt_file is None and self.samples.found is not None
                               and claim_beside(self.samples.found))
        self.reference_root = references[0] if references else None
        self.references = _Collection(self.reference_root) if self.reference_root else None
        self.workers = default_workers() if workers is None else workers
        self.unpaired: list[str] = []
        self.paired = False
        if self.references is not None:
            known = set(self.references.stems) | set(self.references.unusable)
            stems = self.samples.stems
            self.unpaired = [k for k in stems if k not in known]
            # most samples have a reference of their name: the rest fail in SSIM/PSNR alone
            self.paired = 2 * (len(stems) - len(self.unpaired)) > len(stems)
        #: set False by the runner when no paired metric runs: references are then not
        #: decoded a second time for pairing
        self.pairs_needed = True
        #: set by the runner: Inception features found here are not extracted again, and
        #: images are not even decoded when no running metric needs their pixels
        self.feature_cache: FeatureCache | None = None
        self.pixels_needed = True
        self.reference_pixels_needed = True
        #: set by the runner when only the Inception network reads pixels and it runs on
        #: CUDA: JPEGs are then decoded there (torchvision / nvJPEG), in batches
        self.jpeg_device: str | None = None
        #: set True by the runner under ``--on-error fail``: a pair that cannot be compared
        #: (no reference of its name, another size, an unreadable reference) is then a
        #: Skipped, which stops the run, instead of a failed pair in SSIM/PSNR
        self.strict_pairs = False
        #: set by the runner: backbone preprocessings (``signature()``, ``apply(image)``)
        #: the decode workers run on each sample / reference image, so that the main
        #: process receives the network's input ready (see ImageItem.preprocessed)
        self.preprocessings: list[Any] = []
        self.reference_preprocessings: list[Any] = []
        self.sample_keys = list(self.samples.keys)
        self.reference_keys = list(self.references.keys) if self.references else []

    def shard(self, rank: int, size: int) -> None:
        """Keep only this rank's contiguous block of samples and of references."""
        from genmetrics.distributed import shard_bounds

        start, stop = shard_bounds(len(self.sample_keys), rank, size)
        self.sample_keys = self.sample_keys[start:stop]
        start, stop = shard_bounds(len(self.reference_keys), rank, size)
        self.reference_keys = self.reference_keys[start:stop]

    def __len__(self) -> int:
        return len(self.sample_keys)

    @property
    def has_references(self) -> bool:
        """True when more than half of the samples have a reference of the same name
        (pairs exist; a sample without one is a failed pair for SSIM and PSNR)."""
        return self.paired

    @property
    def provides(self) -> frozenset[str]:
        """Per-item inputs this source carries (:attr:`MetricSpec.needs`)."""
        given = self.prompt_file is not None or self.prompts_beside
        return frozenset({"prompt"}) if given else frozenset()

    def _prompt(self, key: str) -> str | Unusable | None:
        if self.prompt_file is not None:
            return self.prompt_file.lookup(key, self.samples.index.get(key)
                                           if self.samples.array is not None else None)
        if self.prompts_beside and key in self.samples.files:
            from genmetrics.io.prompts import prompt_beside

            return prompt_beside(self.samples.files[key])
        return None

    def _with_prompts(self, items: Iterator[ImageItem | Skipped]
                      ) -> Iterator[ImageItem | Skipped]:
        """Put each sample's prompt on it (items come one per key, in order)."""
        for key, item in zip(self.sample_keys, items, strict=True):
            if isinstance(item, ImageItem):
                item.prompt = self._prompt(key)
            yield item

    @property
    def has_reference_set(self) -> bool:
        """True when a reference folder was given (a distribution for FID and KID)."""
        return self.references is not None

    def pairing_problem(self) -> str:
        """Why paired metrics cannot run on these inputs."""
        if self.references is None:
            return "pass --reference refs/ (a folder with one image per sample, same names)"
        return (f"{len(self.unpaired)} of {len(self.samples.stems)} sample(s) have no "
                f"reference of the same name in {self.reference_root} (pairs need one for "
                f"most samples): {first_few(self.unpaired)}")

    def warnings(self) -> list[dict[str, str]]:
        """Run-level notes for the scorecard (e.g. lossy JPEG input, files that are not
        images, folder links not followed)."""
        notes = []
        for label, collection in (("samples", self.samples), ("reference", self.references)):
            if collection is not None and collection.found is not None:
                notes.extend(collection.found.warnings(label))
            if collection is None:
                continue
            for count, kind in ((collection.jpeg_count, "JPEG"),
                                (collection.lossy_webp_count, "lossy WebP")):
                if count:
                    notes.append({"path": str(collection.path), "message": (
                        f"{_images_phrase(count, 'sample' if label == 'samples' else label)} "
                        f"{'is' if count == 1 else 'are'} {kind}: lossy compression alone "
                        "moves FID; prefer PNG (or lossless WebP)")})
        if self.prompt_file is not None:
            note = self.prompt_file.unmatched_note(self.samples.stems)
            if note is not None:
                notes.append(note)
        return notes

    def __iter__(self) -> Iterator[ImageItem | Skipped]:
        dataset = _Decoded(self.samples, self.references, self.sample_keys,
                           paired=self.has_references and self.pairs_needed,
                           cache=self.feature_cache, pixels_needed=self.pixels_needed,
                           defer_jpeg=self.jpeg_device is not None,
                           strict_pairs=self.strict_pairs, preprocessings=self.preprocessings)
        items = self._finish(dataset)
        return self._with_prompts(items) if self.provides else items

    def _finish(self, dataset: _Decoded) -> Iterator[ImageItem | Skipped]:
        items = _iterate(dataset, self.workers)
        if dataset.defer_jpeg:  # set only when there is a jpeg_device
            return _decode_pending(items, self.jpeg_device)  # type: ignore[arg-type]
        return items

    def reference_items(self) -> Iterator[ImageItem | Skipped]:
        """Every reference image (paired or not), for the reference distribution."""
        if self.references is None:
            return iter(())
        dataset = _Decoded(self.references, None, self.reference_keys, paired=False,
                           cache=self.feature_cache,
                           pixels_needed=self.reference_pixels_needed,
                           defer_jpeg=self.jpeg_device is not None,
                           preprocessings=self.reference_preprocessings)
        return self._finish(dataset)

    def reference_count(self) -> int:
        return len(self.reference_keys)

