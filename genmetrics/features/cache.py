"""Content-addressed feature cache: a backbone's features of each image file, kept on disk.

An entry's key is the sha256 of the file's bytes (or, for an image inside a ``.npy`` /
``.npz`` array, of its pixels and shape); entries live in a *namespace*, the digest of
the extractor's provenance (network, weights digest, resize policy, colour policy,
library versions, device type, exact mode). So:

* re-scoring an unchanged folder reads features instead of decoding and running the
  network;
* a changed file has another hash and is extracted again, alone;
* other weights, another resize or another torch-fidelity version is another namespace;
* each backbone (Inception, DINOv2, CLIP, a user's) has its own namespace, named by its
  provenance; a run using several reads them together (:class:`CacheSet`).

Layout: ``ROOT/<namespace>/provenance.json`` (what made the features, for
``genmetrics cache info``) and ``ROOT/<namespace>/<ab>/<sha256>.npy``: one float32
vector per image, the outputs concatenated in the order of the provenance's
``layout``. Entries are written atomically (a temporary file, then a rename), so a run
killed at any point leaves whole entries or none, and a rerun resumes from them.
Entries are read with ``allow_pickle=False``; a damaged entry counts as a miss and is
rewritten. ``ROOT`` is ``$GENMETRICS_CACHE_DIR``, else ``$GENMETRICS_HOME/features``.

    >>> import tempfile, numpy as np
    >>> cache = FeatureCache(Path(tempfile.mkdtemp()), {"ext": "demo"}, {"2048": 4})
    >>> cache.get("ab" * 32) is None
    True
    >>> cache.put("ab" * 32, {"2048": np.arange(4, dtype=np.float32)})
    >>> cache.get("ab" * 32)["2048"].tolist()
    [0.0, 1.0, 2.0, 3.0]
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genmetrics.errors import InputError

CACHE_ENV = "GENMETRICS_CACHE_DIR"
PROVENANCE = "provenance.json"
#: the CPU decoding policy, in the feature cache's namespace; bump it when decoded pixels
#: change (v2: 16-bit PNGs scaled to 8 bits instead of Pillow's clipping)
PILLOW_DECODER = "pillow-v2"
#: the folder under the cache root holding the feature rows kept for bootstrap intervals
#: (:mod:`genmetrics.features.rowstore`): not a namespace
ROWS_DIR = "rows"


def cache_root() -> Path:
    """Where feature caches live: ``$GENMETRICS_CACHE_DIR``, else ``<home>/features``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    from genmetrics.assets import home

    return home() / "features"


def content_key(data: bytes) -> str:
    """The cache key of a file's bytes (hex sha256).

    >>> content_key(b"")[:12]
    'e3b0c44298fc'
    """
    return hashlib.sha256(data).hexdigest()


def _namespace(provenance: dict[str, Any]) -> str:
    text = json.dumps(provenance, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class FeatureCache:
    """Features of images by content key, in the namespace of one extractor.

    ``provenance``: everything about the extractor that changes the features' values;
    ``layout``: output name -> width, the order of the stored vector; ``decoder``: what
    turned files into pixels (``"pillow"``, or ``"torchvision-cuda"`` for JPEGs decoded
    on the GPU, whose pixels can differ slightly). All three name the namespace.
    """

    def __init__(self, root: Path, provenance: dict[str, Any], layout: dict[str, int],
                 decoder: str = "pillow") -> None:
        self.root = Path(root)
        self.provenance = dict(provenance)
        self.layout = dict(layout)
        self.decoder = decoder
        self.folder = self.root / _namespace({**self.provenance, "layout": self.layout,
                                              "decoder": decoder})
        self.width = sum(self.layout.values())
        self._namespace_written = False

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npy"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The stored outputs for ``key``, or None (absent or damaged)."""
        try:
            vector = np.load(self._path(key), allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError):  # damaged: a miss, rewritten by put
            return None
        if vector.dtype != np.float32 or vector.shape != (self.width,):
            return None
        out, start = {}, 0
        for name, width in self.layout.items():
            out[name] = vector[start:start + width]
            start += width
        return out

    def put(self, key: str, outputs: dict[str, np.ndarray]) -> None:
        """Store one image's outputs (atomically; a failure to write is not an error)."""
        vector = np.concatenate([np.asarray(outputs[name], np.float32).reshape(-1)
                                 for name in self.layout])
        if vector.shape != (self.width,):
            raise ValueError(f"outputs of width {vector.shape} do not match the layout "
                             f"{self.layout}")
        path = self._path(key)
        try:
            self._ensure_namespace()
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{key[:8]}.", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.save(fh, vector, allow_pickle=False)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError:  # a read-only or full disk slows later runs; it loses nothing
            return

    def _ensure_namespace(self) -> None:
        """Write ``provenance.json`` once per instance (not a stat per stored image)."""
        if self._namespace_written:
            return
        marker = self.folder / PROVENANCE
        if marker.exists():
            self._namespace_written = True
            return
        from genmetrics.io.common import write_text_atomically

        self.folder.mkdir(parents=True, exist_ok=True)
        doc = {"provenance": {**self.provenance, "decoder": self.decoder},
               "layout": self.layout}
        try:
            write_text_atomically(marker, json.dumps(doc, indent=2, sort_keys=True) + "\n")
        except InputError as exc:
            raise OSError(str(exc)) from None
        self._namespace_written = True


class CachedRows(dict):
    """One image's cached outputs in several namespaces: namespace folder name -> outputs.
    ``complete``: every namespace had the image (then it need not be decoded)."""

    complete: bool = False


class CacheSet:
    """Several namespaces read together: one per backbone a run uses (FID on Inception,
    FD-DINOv2 and CMMD each on their own), so each backbone keeps its own namespace and
    an image is decoded only when some backbone lacks its features.

        >>> import tempfile, numpy as np
        >>> root = Path(tempfile.mkdtemp())
        >>> a = FeatureCache(root, {"ext": "a"}, {"x": 2})
        >>> b = FeatureCache(root, {"ext": "b"}, {"y": 1})
        >>> both = CacheSet([a, b])
        >>> a.put("cd" * 32, {"x": np.ones(2, np.float32)})
        >>> rows = both.get("cd" * 32)
        >>> rows.complete, sorted(rows) == [a.folder.name]
        (False, True)
        >>> b.put("cd" * 32, {"y": np.zeros(1, np.float32)})
        >>> both.get("cd" * 32).complete, both.namespace_of({"ext": "b"}) is b
        (True, True)
    """

    def __init__(self, caches: list[FeatureCache]) -> None:
        self.caches = list(caches)
        self.root = self.caches[0].root
        self.folder = self.root  # what the scorecard's inputs name
        self.folders = [c.folder for c in self.caches]

    def namespace_of(self, provenance: dict[str, Any]) -> FeatureCache | None:
        """The namespace opened for an extractor's provenance, or None."""
        for cache in self.caches:
            if cache.provenance == provenance:
                return cache
        return None

    def get(self, key: str) -> CachedRows | None:
        """The image's outputs in every namespace holding it, or None when none does."""
        found = CachedRows()
        for cache in self.caches:
            rows = cache.get(key)
            if rows is not None:
                found[cache.folder.name] = rows
        if not found:
            return None
        found.complete = len(found) == len(self.caches)
        return found


@dataclass(frozen=True)
class NamespaceInfo:
    """One namespace of the cache, for ``genmetrics cache info``."""

    name: str
    entries: int
    bytes: int
    provenance: dict[str, Any]


def cache_info(root: Path | None = None) -> list[NamespaceInfo]:
    """Every namespace under ``root`` (default :func:`cache_root`) with its size."""
    root = cache_root() if root is None else Path(root)
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name != ROWS_DIR):
        entries = size = 0
        for entry in folder.glob("*/*.npy"):
            entries += 1
            size += entry.stat().st_size
        try:
            provenance = json.loads((folder / PROVENANCE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            provenance = {}
        found.append(NamespaceInfo(folder.name, entries, size, provenance))
    return found


def clear(root: Path | None = None) -> tuple[int, int]:
    """Delete every namespace under ``root``; return (entries, bytes) removed.

    Only folders that look like cache namespaces (hold ``provenance.json`` or ``*.npy``
    entries) are removed: pointing ``$GENMETRICS_CACHE_DIR`` at another folder by
    mistake deletes nothing else.
    """
    root = cache_root() if root is None else Path(root)
    removed_entries = removed_bytes = 0
    for info in cache_info(root):
        if not info.provenance and not info.entries:
            continue
        shutil.rmtree(root / info.name, ignore_errors=True)
        removed_entries += info.entries
        removed_bytes += info.bytes
    return removed_entries, removed_bytes
