"""Reference statistics for FID and KID: build once, score against them offline.

A statistics file is an ``.npz`` (written without pickle, read with
``allow_pickle=False``) holding

* ``mu`` (d,) and ``n`` -- float64 mean and image count;
* ``sigma`` (d, d) float64 covariance -- except when ``n <= d`` and every feature row is
  kept: a covariance of n images then has rank < n, and the file stores the rows instead
  (``sigma = Xcᵀ·Xc / (n - 1)`` with ``Xc = features - mu`` in float64, rebuilt exactly
  on load), which is smaller and loses nothing;
* ``features`` (n, d) float32, when kept (KID needs them; ``--keep-features``);
* ``meta`` -- a JSON string: the extractor signature, source description, skipped files.

A folder of statistics has a ``manifest.json``: name -> file, sha256, n, signature,
source. ``--reference-stats NAME`` looks for NAME in ``./reference_stats/``, then in
``$GENMETRICS_HOME/reference_stats/``, then among the statistics shipped with
genmetrics; a path to an ``.npz`` file is used as it is. A file whose sha256 differs
from its manifest entry, or whose extractor signature differs from the run's, is
refused.

    >>> sorted(shipped())
    ['skimage-photos']
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
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


@dataclass
class ReferenceStats:
    """Loaded reference statistics (see the module docstring for the file format)."""

    name: str
    path: Path
    n: int
    mu: np.ndarray
    sigma: np.ndarray
    features: np.ndarray | None
    extractor: dict[str, Any]
    source: str
    sha256: str

    @property
    def short_digest(self) -> str:
        return self.sha256[:8]

    def input_doc(self) -> dict[str, Any]:
        return {"stats": self.name, "path": str(self.path), "count": self.n,
                "digest": "sha256:" + self.sha256}

    def check_extractor(self, current: dict[str, Any], metric: str) -> None:
        """Refuse statistics made with other features than this run's."""
        from genmetrics.signature import differences

        diff = [f"{key}: {old} vs {new} now" for key, (old, new) in
                differences(self.extractor, current).items()]
        if diff:
            raise UsageError(
                f"{metric}: reference statistics {self.name} were built with a different "
                f"feature extractor ({'; '.join(diff)}); rebuild them with `genmetrics stats "
                "build` using this run's weights, or run with the weights they were built with")


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
    """Load and check statistics by name or path (see the module docstring)."""
    name, path, expected = locate(name_or_path)
    actual = sha256_file(path)
    if expected is not None and actual != expected:
        raise InputError(f"{path}: sha256 {actual[:12]}... differs from its manifest entry "
                         f"({expected[:12]}...); the file is damaged or was replaced")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a statistics file genmetrics can read ({exc})") from None
    missing = {"mu", "n", "meta"} - set(arrays)
    if missing or not ({"sigma", "features"} & set(arrays)):
        raise InputError(f"{path}: not a genmetrics statistics file (missing "
                         f"{', '.join(sorted(missing)) or 'sigma'})")
    try:
        meta = json.loads(str(arrays["meta"]))
        extractor = dict(meta["extractor"])
        n = int(np.asarray(arrays["n"]).item())
        mu = np.asarray(arrays["mu"], dtype=np.float64)
        if "sigma" in arrays:
            sigma = np.asarray(arrays["sigma"], dtype=np.float64)
        else:
            sigma = _covariance_from_rows(arrays["features"], mu)
        features = arrays.get("features")
        if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)) or (
                features is not None and features.shape[1:] != mu.shape):
            raise ValueError(f"shapes do not fit: mu {mu.shape}, sigma {sigma.shape}")
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(f"{path}: not a statistics file genmetrics can read ({exc})") from None
    return ReferenceStats(name=name, path=path, n=n, mu=mu, sigma=sigma,
                          features=features, extractor=extractor,
                          source=meta.get("source", ""), sha256=actual)


def _covariance_from_rows(features: np.ndarray, mu: np.ndarray) -> np.ndarray:
    centered = np.asarray(features, np.float64) - mu
    sigma = centered.T @ centered / max(len(centered) - 1, 1)
    return (sigma + sigma.T) / 2


def save_stats(path: Path, *, n: int, mu: np.ndarray, sigma: np.ndarray,
               features: np.ndarray | None, extractor: dict[str, Any], source: str,
               skipped: list[dict[str, str]] | None = None) -> str:
    """Write a statistics file atomically; returns its sha256.

    When all ``n <= d`` feature rows are given they replace ``sigma`` (rebuilt on load).
    """
    meta = json.dumps({"format": 1, "extractor": extractor, "source": source,
                       "skipped": skipped or []}, sort_keys=True)
    arrays: dict[str, Any] = {"mu": np.asarray(mu, np.float64), "n": np.int64(n),
                              "meta": np.array(meta)}
    if features is None or len(features) != n or n > len(mu):
        arrays["sigma"] = np.asarray(sigma, np.float64)
    if features is not None:
        arrays["features"] = np.asarray(features, np.float32)
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
    feature_cache: bool = True,
) -> tuple[Path, dict[str, Any]]:
    """Extract Inception features of every image in ``folder`` and write ``NAME.npz``.

    Features are kept (for KID) when there are at most ``keep_features`` images.
    ``feature_cache``: read and store features in the feature cache ``score`` uses
    (:mod:`genmetrics.features.cache`, the same namespace as FID's), so a rerun over
    unchanged images neither decodes them nor runs the network, and writes the same bytes.
    Returns the file and its manifest entry, plus (not in the manifest) ``feature_cache``:
    ``{"path", "hits", "extracted"}`` when the cache was used. ``progress(total)`` as in
    ``score``.
    """
    from itertools import islice

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
    fid = FID(device=device, weights=weights)
    fid.preflight()
    cache = fid.open_feature_cache() if feature_cache else None
    if cache is not None:  # cached images are not even decoded: only Inception reads them
        images.feature_cache, images.pixels_needed = cache, False
    advance = progress(len(images)) if progress else None
    n, total, outer, hits, extracted = 0, 0, 0, 0, 0
    kept: list[np.ndarray] = []
    skipped: list[dict[str, str]] = []
    items = iter(images)
    while batch := list(islice(items, batch_size)):
        good = [item for item in batch if not isinstance(item, Skipped)]
        skipped += [item.to_dict() for item in batch if isinstance(item, Skipped)]
        if good:
            samples = ImageBatch([item.sample for item in good])
            samples.attach_items(good, cache)
            feats = fid.features(samples)["2048"]
            hits, extracted = hits + samples.cache_hits, extracted + samples.extracted
            n, total, outer = moments_update(n, total, outer, feats)
            if n <= keep_features:
                kept.append(feats)
        if advance:
            advance(len(batch))
    if n < 2:
        raise InputError(f"{folder}: reference statistics need at least 2 readable images; "
                         f"found {n}")
    mu, sigma = mean_and_covariance(n, total, outer)
    features = np.concatenate(kept) if n <= keep_features else None
    extractor = fid.extractor_signature()
    out = Path(out_dir) / f"{name}.npz"
    description = source or f"images under {folder}"
    sha = save_stats(out, n=n, mu=mu, sigma=sigma, features=features, extractor=extractor,
                     source=description, skipped=skipped)
    entry = {"file": out.name, "sha256": sha, "n": n, "dim": int(len(mu)),
             "features_kept": features is not None, "signature": extractor,
             "source": description, "skipped": len(skipped),
             "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    add_to_manifest(Path(out_dir), name, entry)
    if cache is not None:
        entry = {**entry, "feature_cache": {"path": str(cache.folder), "hits": hits,
                                            "extracted": extracted}}
    return out, entry

