"""Reference statistics for FID, sFID and KID: build once, score against them offline.

Three file formats are read (``.npz``, always with ``allow_pickle=False``); the format
and the file's sha256 go into the signature of every result that uses them:

* **genmetrics** (written by ``genmetrics stats build``):

  * ``mu`` (d,) and ``n`` -- float64 mean of the pool3 features and image count;
  * ``sigma`` (d, d) float64 covariance -- except when ``n <= d`` and every feature row
    is kept: a covariance of n images then has rank < n, and the file stores the rows
    instead (``sigma = Xcᵀ·Xc / (n - 1)`` with ``Xc = features - mu`` in float64, rebuilt
    exactly on load), which is smaller and loses nothing;
  * ``features`` (n, d) float32, when kept (KID and the k-NN metrics need them;
    ``--keep-features``);
  * ``mu_s`` (2023,) and ``sigma_s`` (2023, 2023): the same for the spatial features
    (``mixed_6/conv``, sFID), with the same rule (``features_s`` rows instead of
    ``sigma_s`` when ``n <= 2023`` and the rows are kept); files written before sFID
    existed have none, and sFID is then unavailable against them;
  * ``meta`` -- a JSON string: the extractor signature, source description, skipped files.

* **adm**: a reference batch of the ADM evaluator (openai/guided-diffusion,
  ``evaluations/evaluator.py``): ``arr_0`` uint8 ``N x H x W x 3`` images with ``mu``,
  ``sigma`` (pool3) and ``mu_s``, ``sigma_s`` (spatial). FID and sFID use its
  statistics; the pool3 rows of its images (KID and the k-NN metrics: precision,
  recall, density, coverage) are extracted on demand by the run's network, through the
  feature cache, once per run (:meth:`ReferenceStats.feature_rows`), streaming ``arr_0``
  from the file; a report reads the few rows it shows (:meth:`ImageArray.rows`). ADM
  computed its statistics with the TensorFlow graph of the same network, so they differ
  from this network's by float rounding (about 1e-6 relative).

* **mu-sigma**: ``mu`` and ``sigma`` only, as pytorch-fid (``--save-stats``) and
  clean-fid (``make_custom_stats``) write them (``mu`` float32, ``sigma`` float64): FID
  only; sFID, KID and the k-NN metrics are unavailable against them, with the reason.
  Such files carry no record of how they were made: pytorch-fid's network is the same
  but its resize is not TF1's bilinear, and clean-fid's ``clean`` mode resizes with PIL
  bicubic, so FID against them is comparable only with runs of that tool.

ADM and mu-sigma files carry no extractor signature: they are accepted as they are,
and the signature records the format. A file whose shapes do not fit (``mu`` of other
than 2048 dimensions, ``arr_0`` that is not uint8 ``N x H x W x 3``, ``mu_s`` of other
than 2023) is refused with one line naming the file and the problem.

A folder of statistics has a ``manifest.json``: name -> file, sha256, n, signature,
source. ``--reference-stats NAME`` looks for NAME in ``./reference_stats/``, then in
``$GENMETRICS_HOME/reference_stats/``, then among the statistics shipped with
genmetrics; a path to an ``.npz`` file is used as it is. A file whose sha256 differs
from its manifest entry, or whose extractor signature differs from the run's, is
refused.

    >>> sorted(shipped())
    ['skimage-photos']
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "fid-stats.npz"
    >>> np.savez(path, mu=np.zeros(2048, np.float32), sigma=np.eye(2048))
    >>> stats = load_stats(path)
    >>> stats.format, stats.n, stats.mu_s is None, stats.feature_rows(None) is None
    ('mu-sigma', None, True, True)
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from genmetrics.assets import sha256_file
from genmetrics.errors import InputError, UsageError
from genmetrics.io.common import write_text_atomically

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "genmetrics.reference_stats/1"
SHIPPED_DIR = Path(__file__).parent / "data" / "reference_stats"
LOCAL_DIR = Path("reference_stats")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the zip epoch: statistics files carry no write time
GENMETRICS, ADM, MU_SIGMA = "genmetrics", "adm", "mu-sigma"  # the formats read
POOL3_DIM, SPATIAL_DIM = 2048, 2023  # widths of pool3 and of ADM's spatial features
ROWS_BATCH = 64  # images of an ADM reference batch per forward pass


@dataclass(frozen=True)
class ImageArray:
    """A uint8 ``N x H x W x 3`` array inside an ``.npz`` file (ADM's ``arr_0``), read
    in batches of rows straight from the (possibly compressed) zip member, never whole.
    """

    path: Path
    key: str
    shape: tuple[int, ...]

    @classmethod
    def open(cls, path: Path, key: str) -> ImageArray:
        """Read and check the member's header only."""
        with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as member:
            shape, fortran, dtype = _npy_header(member)
        if dtype != np.uint8 or len(shape) != 4 or shape[-1] != 3 or 0 in shape:
            raise ValueError(f"{key} must hold uint8 N x H x W x 3 images, got {dtype} of "
                             f"shape {shape}")
        if fortran:
            raise ValueError(f"{key} is stored in Fortran order; save it C-contiguous "
                             "(np.ascontiguousarray)")
        return cls(path, key, tuple(int(x) for x in shape))

    @property
    def count(self) -> int:
        return self.shape[0]

    @contextlib.contextmanager
    def _member(self) -> Iterator[Any]:
        """The member's stream, past its header; a file that cannot be read (truncated,
        corrupt, changed since it was opened) is an :class:`InputError` naming it."""
        try:
            with zipfile.ZipFile(self.path) as archive, \
                    archive.open(f"{self.key}.npy") as member:
                _npy_header(member)
                yield member
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile,
                zlib.error) as exc:
            raise InputError(f"{self.path}: cannot read the images of {self.key} "
                             f"({exc})") from None

    def _read(self, member: Any, count: int, first: int) -> np.ndarray:
        """``count`` images from the stream, which is at image ``first``."""
        size = int(np.prod(self.shape[1:]))
        data = member.read(count * size)
        if len(data) != count * size:
            raise InputError(f"{self.path}: {self.key} is truncated (image "
                             f"{first + len(data) // size} of {self.count})")
        return np.frombuffer(data, np.uint8).reshape(count, *self.shape[1:])

    def batches(self, size: int) -> Iterator[np.ndarray]:
        """Consecutive ``size x H x W x 3`` arrays (the last one shorter), in file order."""
        with self._member() as member:
            for first in range(0, self.count, size):
                yield self._read(member, min(size, self.count - first), first)

    def rows(self, indices: list[int]) -> dict[int, np.ndarray]:
        """The images at ``indices`` (``H x W x 3`` each, by index), in one pass over the
        member that stops at the last one (never the whole array in memory); indices
        outside the array are left out.

            >>> import tempfile
            >>> path = Path(tempfile.mkdtemp()) / "batch.npz"
            >>> np.savez(path, arr_0=np.arange(30, dtype=np.uint8).reshape(5, 2, 1, 3))
            >>> found = ImageArray.open(path, "arr_0").rows([3, 1, 9])
            >>> sorted(found), found[3][0, 0].tolist()
            ([1, 3], [18, 19, 20])
        """
        found: dict[int, np.ndarray] = {}
        wanted = sorted({int(i) for i in indices if 0 <= i < self.count})
        if not wanted:
            return found
        size, at = int(np.prod(self.shape[1:])), 0
        with self._member() as member:
            for index in wanted:  # forward only; Python 3.12+ jumps in a stored member
                member.seek((index - at) * size, os.SEEK_CUR)
                found[index] = self._read(member, 1, index)[0].copy()
                at = index + 1
        return found


def _npy_header(member: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) from the header of a ``.npy`` stream."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(member)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(member)
    raise ValueError(f"unsupported .npy format version {version}")


@dataclass
class ReferenceStats:
    """Loaded reference statistics (see the module docstring for the file formats).

    ``n`` is None when the file does not say how many images its statistics describe
    (ADM and mu-sigma files). ``images``: ADM's ``arr_0``, read only when a metric asks
    for :meth:`feature_rows`. ``progress`` (a ``progress(total) -> advance(done)``
    factory, as :func:`genmetrics.runner.score` takes) and ``use_feature_cache`` are set
    by the runner for that extraction.
    """

    name: str
    path: Path
    n: int | None
    mu: np.ndarray
    sigma: np.ndarray
    features: np.ndarray | None
    extractor: dict[str, Any]
    source: str
    sha256: str
    format: str = GENMETRICS
    mu_s: np.ndarray | None = None
    sigma_s: np.ndarray | None = None
    images: ImageArray | None = None
    progress: Callable[[int], Callable[[int], Any]] | None = None
    use_feature_cache: bool = True
    #: pool3 rows of ``images`` by extractor, or the exception their extraction raised
    _rows: dict[str, np.ndarray | Exception] = field(default_factory=dict, repr=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False)

    @property
    def short_digest(self) -> str:
        return self.sha256[:8]

    @property
    def has_rows(self) -> bool:
        """Whether :meth:`feature_rows` can give pool3 rows (stored, or from images)."""
        return self.features is not None or self.images is not None

    def input_doc(self) -> dict[str, Any]:
        """The scorecard's ``inputs.reference_stats``; ``count`` only when the file says."""
        doc: dict[str, Any] = {"stats": self.name, "path": str(self.path)}
        if self.n is not None:
            doc["count"] = self.n
        doc.update(format=self.format, digest="sha256:" + self.sha256)
        if self.images is not None:
            doc["images"] = self.images.count
        return doc

    def signature_fields(self) -> dict[str, Any]:
        """What a result computed against these statistics records about them."""
        return {"ref": f"stats:{self.name}", "refs": self.short_digest,
                "ref_format": self.format}

    @property
    def backbone(self) -> str:
        """The backbone the statistics were built on (``stats build --features``): the
        file's ``backbone`` field; ``inception`` for files without one (Inception
        statistics from before backbones, ADM reference batches, mu-sigma files)."""
        return str(self.extractor.get("backbone") or "inception")

    def check_extractor(self, current: dict[str, Any], metric: str) -> None:
        """Refuse statistics made with other features than this run's: another backbone
        always; other weights or preprocessing for genmetrics files (ADM and mu-sigma
        files record no extractor: Inception's, taken as they are)."""
        from genmetrics.signature import differences

        wanted = str(current.get("backbone") or "inception")
        if wanted != self.backbone:
            raise UsageError(
                f"{metric}: reference statistics {self.name} hold {self.backbone} features, "
                f"and {metric} compares {wanted} features; build statistics on that backbone "
                f"(`genmetrics stats build REFS --name NAME --features {wanted}`) or run "
                f"{metric} on theirs (--set {metric}.features={self.backbone})")
        if self.format != GENMETRICS:
            return
        diff = [f"{key}: {old} vs {new} now" for key, (old, new) in
                differences(self.extractor, current).items()]
        if diff:
            raise UsageError(
                f"{metric}: reference statistics {self.name} were built with a different "
                f"feature extractor ({'; '.join(diff)}); rebuild them with `genmetrics stats "
                "build` using this run's weights, or run with the weights they were built with")

    def feature_rows(self, metric: Any) -> np.ndarray | None:
        """``N x 2048`` float32 pool3 rows of the reference images, or None.

        The stored ``features`` when the file keeps them; for an ADM reference batch, the
        features of its ``arr_0`` images from ``metric``'s extractor (an
        :class:`~genmetrics.metrics.image._inception.InceptionMetric`), read from and
        stored in the feature cache, with a progress bar when the runner has one, and
        kept on this object: KID and the k-NN metrics of one run share one pass. A failed
        extraction (e.g. ``arr_0`` truncated or corrupt: an :class:`InputError` naming the
        file) is kept too: every later metric gets the same error without reading the file
        again. None when the file holds neither (a mu-sigma file, or genmetrics statistics
        built without features).
        """
        if self.features is not None:
            return self.features
        if self.images is None:
            return None
        from genmetrics.metrics.image._inception import feature_provenance

        key = json.dumps(feature_provenance(metric.extractor), sort_keys=True, default=str)
        with self._lock:
            if key not in self._rows:
                try:
                    self._rows[key] = self._extract_rows(metric)
                except Exception as exc:  # noqa: BLE001 - kept, and raised to every metric
                    self._rows[key] = exc
            found = self._rows[key]
        if isinstance(found, Exception):
            raise found
        return found

    def image_rows(self) -> dict[str, str] | None:
        """Where the images behind :meth:`feature_rows`' rows are, for the scorecard's
        ``per_sample.nearest_reference`` (so a report can show a reference row):
        ``{"path": the statistics file, "array": "arr_0"}`` for an ADM reference batch;
        None when the rows have no images (stored features, mu-sigma files)."""
        if self.features is not None or self.images is None:
            return None
        return {"path": str(self.path), "array": self.images.key}

    def _extract_rows(self, metric: Any) -> np.ndarray:
        import torch

        from genmetrics.features.inception import POOL3
        from genmetrics.io.image import array_content_key
        from genmetrics.io.image_batch import ImageBatch

        images = self.images
        assert images is not None
        cache = metric.open_feature_cache() if self.use_feature_cache else None
        advance = self.progress(images.count) if self.progress else None
        rows = np.empty((images.count, POOL3_DIM), np.float32)
        start = 0
        for chunk in images.batches(ROWS_BATCH):
            pixels = torch.from_numpy(np.array(chunk)).permute(0, 3, 1, 2)
            batch = ImageBatch([image.contiguous() for image in pixels])
            if cache is not None:  # the keys a .npz passed as --reference gets
                batch.contents = [array_content_key(image) for image in chunk]
                batch.cached = [cache.get(key) for key in batch.contents]
                batch.feature_cache = cache
            rows[start:start + len(chunk)] = metric.features(batch)[POOL3]
            start += len(chunk)
            if advance:
                advance(len(chunk))
        return rows


def read_manifest(folder: Path) -> dict[str, Any]:
    """The entries (name -> file, sha256, n, signature, source) of ``folder``'s manifest."""
    path = folder / MANIFEST
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the manifest ({exc})") from None
    if not isinstance(doc, dict) or doc.get("schema") != MANIFEST_SCHEMA:
        raise InputError(f"{path}: not a genmetrics reference-statistics manifest "
                         f"(expected \"schema\": \"{MANIFEST_SCHEMA}\")")
    return dict(doc.get("entries", {}))


def search_dirs() -> list[Path]:
    from genmetrics.assets import home

    return [LOCAL_DIR, home() / "reference_stats", SHIPPED_DIR]


def shipped() -> dict[str, Any]:
    """Entries of the statistics that ship with genmetrics."""
    return read_manifest(SHIPPED_DIR)


def locate(name_or_path: str | os.PathLike[str]) -> tuple[str, Path, str | None]:
    """(name, file, expected sha256 or None) for a name or an ``.npz`` path."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if text.endswith(".npz") or path.is_file():
        if not path.is_file():
            raise InputError(f"reference statistics file {path} does not exist")
        entry = read_manifest(path.parent).get(path.stem, {})
        expected = entry.get("sha256") if entry.get("file") == path.name else None
        return path.stem, path, expected
    for folder in search_dirs():
        entry = read_manifest(folder).get(text)
        if entry and "file" not in entry:
            raise InputError(f"{folder / MANIFEST}: entry {text!r} names no file")
        if entry:
            return text, folder / entry["file"], entry.get("sha256")
    known = sorted({n for folder in search_dirs() for n in read_manifest(folder)})
    raise UsageError(f"no reference statistics named {text!r} (looked in "
                     f"{', '.join(str(d) for d in search_dirs())}); known: "
                     f"{', '.join(known) or 'none'}. Build them with `genmetrics stats build "
                     f"REFS/ --name {text}` or pass a path to an .npz file")


def load_stats(name_or_path: str | os.PathLike[str]) -> ReferenceStats:
    """Load and check statistics by name or path, in any of the formats of the module
    docstring; a file that fits none is an :class:`InputError` naming it and why."""
    name, path, expected = locate(name_or_path)
    actual = sha256_file(path)
    if expected is not None and actual != expected:
        raise InputError(f"{path}: sha256 {actual[:12]}... differs from its manifest entry "
                         f"({expected[:12]}...); the file is damaged or was replaced")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: not a statistics file genmetrics can read ({exc})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise InputError(f"{path}: a single array, not reference statistics (an .npz file "
                         "with mu and sigma)")
    try:
        with data:
            keys = set(data.files)
            if "meta" in keys:
                fields = _genmetrics_fields(data, keys)
            elif "arr_0" in keys:
                fields = _adm_fields(data, keys, path)
            elif {"mu", "sigma"} <= keys:
                fields = _mu_sigma_fields(data)
            else:
                raise ValueError(f"it holds {', '.join(sorted(keys)) or 'nothing'}; reference "
                                 "statistics need mu and sigma (genmetrics, ADM reference "
                                 "batch, pytorch-fid or clean-fid)")
    except (ValueError, TypeError, KeyError, OSError, EOFError, zipfile.BadZipFile) as exc:
        reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise InputError(f"{path}: not a statistics file genmetrics can read "
                         f"({reason})") from None
    return ReferenceStats(name=name, path=path, sha256=actual, **fields)


def _floats(data: Any, key: str, shape: tuple[int, ...]) -> np.ndarray:
    """``data[key]`` as float64, checked: a float array of ``shape``, finite."""
    arr = np.asarray(data[key])
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{key} must be a float array, got {arr.dtype}")
    if arr.shape != shape:
        hint = ""
        if key == "mu" and arr.ndim == 1:
            hint = (f"; FID uses the {POOL3_DIM}-d pool3 features of the FID Inception (e.g. "
                    "not pytorch-fid --dims 64/192/768)")
        raise ValueError(f"{key} has shape {arr.shape}, expected {shape}{hint}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{key} holds NaN or infinite values")
    return arr.astype(np.float64)


def _spatial_pair(data: Any, keys: set[str]) -> tuple[Any, Any]:
    """``(mu_s, sigma_s)`` of an ADM file, or ``(None, None)`` when it has neither."""
    if not {"mu_s", "sigma_s"} & keys:
        return None, None
    if not {"mu_s", "sigma_s"} <= keys:
        raise ValueError("it has one of mu_s and sigma_s without the other")
    return (_floats(data, "mu_s", (SPATIAL_DIM,)),
            _floats(data, "sigma_s", (SPATIAL_DIM, SPATIAL_DIM)))


def _adm_fields(data: Any, keys: set[str], path: Path) -> dict[str, Any]:
    """An ADM reference batch: ``arr_0`` images, ``mu``/``sigma``, ``mu_s``/``sigma_s``."""
    if not {"mu", "sigma"} <= keys:
        raise ValueError("it holds images (arr_0) but no statistics (mu, sigma): an ADM "
                         "sample batch rather than a reference batch; pass it as --reference "
                         "FILE.npz instead")
    images = ImageArray.open(path, "arr_0")
    mu_s, sigma_s = _spatial_pair(data, keys)
    return {"format": ADM, "n": None, "mu": _floats(data, "mu", (POOL3_DIM,)),
            "sigma": _floats(data, "sigma", (POOL3_DIM, POOL3_DIM)), "features": None,
            "mu_s": mu_s, "sigma_s": sigma_s, "images": images, "extractor": {},
            "source": f"ADM reference batch ({images.count} images in arr_0)"}


def _mu_sigma_fields(data: Any) -> dict[str, Any]:
    """pytorch-fid / clean-fid statistics: ``mu`` and ``sigma`` only."""
    return {"format": MU_SIGMA, "n": None, "mu": _floats(data, "mu", (POOL3_DIM,)),
            "sigma": _floats(data, "sigma", (POOL3_DIM, POOL3_DIM)), "features": None,
            "extractor": {}, "source": "mu/sigma statistics (pytorch-fid or clean-fid)"}


def _genmetrics_fields(data: Any, keys: set[str]) -> dict[str, Any]:
    """Statistics written by :func:`save_stats`."""
    arrays = {key: data[key] for key in keys}
    missing = {"mu", "n"} - keys
    if missing or not ({"sigma", "features"} & keys):
        raise ValueError(f"a genmetrics statistics file missing "
                         f"{', '.join(sorted(missing)) or 'sigma'}")
    meta = json.loads(str(arrays["meta"]))
    n = int(np.asarray(arrays["n"]).item())
    mu = np.asarray(arrays["mu"], dtype=np.float64)
    features = arrays.get("features")
    sigma = (np.asarray(arrays["sigma"], dtype=np.float64) if "sigma" in arrays
             else _covariance_from_rows(features, mu))
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)) or (
            features is not None and features.shape[1:] != mu.shape):
        raise ValueError(f"shapes do not fit: mu {mu.shape}, sigma {sigma.shape}")
    mu_s = sigma_s = None
    if "mu_s" in keys:
        mu_s = _floats(arrays, "mu_s", (SPATIAL_DIM,))
        if "sigma_s" in keys:
            sigma_s = _floats(arrays, "sigma_s", (SPATIAL_DIM, SPATIAL_DIM))
        elif "features_s" in keys and arrays["features_s"].shape == (n, SPATIAL_DIM):
            sigma_s = _covariance_from_rows(arrays["features_s"], mu_s)
        else:
            raise ValueError("mu_s without sigma_s or n rows of features_s")
    return {"format": GENMETRICS, "n": n, "mu": mu, "sigma": sigma, "features": features,
            "mu_s": mu_s, "sigma_s": sigma_s, "extractor": dict(meta["extractor"]),
            "source": meta.get("source", "")}


def _covariance_from_rows(features: np.ndarray, mu: np.ndarray) -> np.ndarray:
    centered = np.asarray(features, np.float64) - mu
    sigma = centered.T @ centered / max(len(centered) - 1, 1)
    return (sigma + sigma.T) / 2


def save_stats(path: Path, *, n: int, mu: np.ndarray, sigma: np.ndarray,
               features: np.ndarray | None, extractor: dict[str, Any], source: str,
               skipped: list[dict[str, str]] | None = None, mu_s: np.ndarray | None = None,
               sigma_s: np.ndarray | None = None,
               features_s: np.ndarray | None = None) -> str:
    """Write a statistics file atomically; returns its sha256.

    When all ``n <= d`` feature rows are given they replace ``sigma`` (rebuilt on load);
    likewise ``features_s`` (spatial rows) replace ``sigma_s``, stored only then.
    """
    meta = json.dumps({"format": 1, "extractor": extractor, "source": source,
                       "skipped": skipped or []}, sort_keys=True)
    arrays: dict[str, Any] = {"mu": np.asarray(mu, np.float64), "n": np.int64(n),
                              "meta": np.array(meta)}
    if features is None or len(features) != n or n > len(mu):
        arrays["sigma"] = np.asarray(sigma, np.float64)
    if features is not None:
        arrays["features"] = np.asarray(features, np.float32)
    if mu_s is not None:
        arrays["mu_s"] = np.asarray(mu_s, np.float64)
        if features_s is not None and len(features_s) == n and n <= len(mu_s):
            arrays["features_s"] = np.asarray(features_s, np.float32)
        else:
            arrays["sigma_s"] = np.asarray(sigma_s, np.float64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("wb") as fh:
            _write_npz(fh, arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return sha256_file(path)


def _write_npz(fh: Any, arrays: dict[str, Any]) -> None:
    """``np.savez_compressed`` with a fixed member date: the same statistics give the same
    bytes (and sha256) whenever they are written."""
    import zipfile

    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


def add_to_manifest(folder: Path, name: str, entry: dict[str, Any]) -> None:
    entries = read_manifest(folder)
    entries[name] = entry
    doc = {"schema": MANIFEST_SCHEMA, "entries": dict(sorted(entries.items()))}
    write_text_atomically(folder / MANIFEST, json.dumps(doc, indent=2) + "\n")


def build_stats(
    folder: str | os.PathLike[str], name: str, *, out_dir: str | os.PathLike[str] = LOCAL_DIR,
    weights: str | None = None, device: str = "auto", batch_size: int = 64,
    keep_features: int = 10_000, source: str = "", progress: Any = None,
    feature_cache: bool = True, features: str = "inception",
) -> tuple[Path, dict[str, Any]]:
    """Extract Inception features of every image in ``folder`` and write ``NAME.npz``:
    mean and covariance of the pool3 features (FID) and of the spatial features (sFID).

    ``features``: another backbone (``dinov2-vitl14``, ``clip-vitl14-336``...; ``weights``
    is then its model folder): the statistics are of its embedding (no spatial part), the
    file records the backbone, and metrics on any other backbone refuse it.

    Pool3 features are kept (for KID and the k-NN metrics) when there are at most
    ``keep_features`` images; then, with at most 2023 images, the spatial rows replace
    their covariance too.
    ``feature_cache``: read and store features in the feature cache ``score`` uses
    (:mod:`genmetrics.features.cache`, the same namespace as FID's), so a rerun over
    unchanged images neither decodes them nor runs the network, and writes the same bytes.
    Returns the file and its manifest entry, plus (not in the manifest) ``feature_cache``:
    ``{"path", "hits", "extracted"}`` when the cache was used. ``progress(total)`` as in
    ``score``.
    """
    from itertools import islice

    from genmetrics.features.inception import POOL3, SPATIAL
    from genmetrics.io.common import Skipped
    from genmetrics.io.image import ImageSource
    from genmetrics.io.image_batch import ImageBatch
    from genmetrics.metrics.image._distribution_math import mean_and_covariance, moments_update
    from genmetrics.metrics.image.fid import FID

    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise UsageError(f"--name {name!r}: use a plain name such as my-refs")
    images = ImageSource(Path(folder), [])
    fid = FID(device=device, weights=weights, features=features)
    fid.preflight()
    spatial_too = fid.on_inception  # sFID's spatial statistics: Inception only
    from genmetrics.features.backbones import cacheable, refresh_backbones

    refresh_backbones()  # a user's module: the digest of its weights as they are now
    cache = fid.open_feature_cache() if feature_cache and cacheable(fid.extractor) else None
    if cache is not None:  # cached images are not even decoded: only Inception reads them
        images.feature_cache, images.pixels_needed = cache, False
    advance = progress(len(images)) if progress else None
    n, total, outer, hits, extracted = 0, 0, 0, 0, 0
    total_s, outer_s = 0, 0  # spatial moments (their n is n)
    kept: list[np.ndarray] = []
    kept_s: list[np.ndarray] = []  # spatial rows, while n <= SPATIAL_DIM (at most 16 MB)
    skipped: list[dict[str, str]] = []
    items = iter(images)
    while batch := list(islice(items, batch_size)):
        good = [item for item in batch if not isinstance(item, Skipped)]
        skipped += [item.to_dict() for item in batch if isinstance(item, Skipped)]
        if good:
            samples = ImageBatch([item.sample for item in good])
            samples.attach_items(good, cache)
            outputs = fid.features(samples)
            feats = outputs[POOL3 if spatial_too else fid.output]
            hits, extracted = hits + samples.cache_hits, extracted + samples.extracted
            if spatial_too:
                spatial = outputs[SPATIAL]
                _, total_s, outer_s = moments_update(n, total_s, outer_s, spatial)
            n, total, outer = moments_update(n, total, outer, feats)
            if n <= keep_features:
                kept.append(feats)
                if spatial_too and n <= SPATIAL_DIM:
                    kept_s.append(spatial)
        if advance:
            advance(len(batch))
    if n < 2:
        raise InputError(f"{folder}: reference statistics need at least 2 readable images; "
                         f"found {n}")
    mu, sigma = mean_and_covariance(n, total, outer)
    mu_s = sigma_s = None
    if spatial_too:
        mu_s, sigma_s = mean_and_covariance(n, total_s, outer_s)
    rows = np.concatenate(kept) if n <= keep_features else None
    features_s = np.concatenate(kept_s) if rows is not None and kept_s and \
        n <= SPATIAL_DIM else None
    extractor = fid.extractor_signature()
    out = Path(out_dir) / f"{name}.npz"
    description = source or f"images under {folder}"
    sha = save_stats(out, n=n, mu=mu, sigma=sigma, features=rows, extractor=extractor,
                     source=description, skipped=skipped, mu_s=mu_s, sigma_s=sigma_s,
                     features_s=features_s)
    entry = {"file": out.name, "sha256": sha, "n": n, "dim": int(len(mu)),
             **({"spatial_dim": int(len(mu_s))} if mu_s is not None else
                {"backbone": fid.backbone}),
             "features_kept": rows is not None, "signature": extractor,
             "source": description, "skipped": len(skipped),
             "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    add_to_manifest(Path(out_dir), name, entry)
    if cache is not None:
        entry = {**entry, "feature_cache": {"path": str(cache.folder), "hits": hits,
                                            "extracted": extracted}}
    return out, entry

