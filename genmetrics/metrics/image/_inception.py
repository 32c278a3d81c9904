"""What FID, sFID, KID and Inception Score share: the Inception extractor, one pass per batch.

Each metric asks :meth:`InceptionMetric.features` for a batch's features; the first
metric to ask runs the network and the result is memoised on the
:class:`~genmetrics.io.image_batch.ImageBatch`, so one forward pass feeds them all.
The extractor itself is cached per (weights, device) by
:func:`genmetrics.features.inception.get_extractor`: one model per process.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from genmetrics.errors import UsageError
from genmetrics.features.cache import PILLOW_DECODER
from genmetrics.io.image import ALPHA_POLICY, COLOR_POLICY
from genmetrics.io.image_batch import ImageBatch
from genmetrics.metric import Metric, Option, library_version

WEIGHTS_ENV = "GENMETRICS_INCEPTION_WEIGHTS"  # the same name as features.inception.ENV_WEIGHTS

DEVICE_OPTION = Option(
    "device", "auto", "where the Inception network runs: auto (CUDA when present), cpu, "
    "cuda or cuda:N", affects_values=False)
WEIGHTS_OPTION = Option(
    "weights", None, "a torch-fidelity-format Inception state dict file (default: the "
    f"inception-fid asset, or ${WEIGHTS_ENV}); its digest goes into the signature",
    affects_values=False)


class InceptionMetric(Metric):
    """Base class of the metrics computed from Inception-v3 (FID network) features."""

    _extractor: Any = None
    #: precomputed reference statistics in use (metrics with ``spec.reference_set``)
    reference_stats: Any = None
    uses_feature_cache = True  # needs only Inception outputs, which the cache can hold
    #: set by :meth:`prepare_bootstrap`: feature rows are kept for bootstrap intervals
    #: (FID and sFID keep none otherwise; KID and the k-NN metrics always keep them)
    keep_rows: bool = False
    #: where kept rows go (a :class:`~genmetrics.features.rowstore.RowStore`), or None:
    #: in memory
    row_store: Any = None

    def weights_path(self) -> str | None:
        """The weights file asked for (option, then environment), or None for the asset."""
        return self.options.get("weights") or os.environ.get(WEIGHTS_ENV) or None

    def required_assets(self) -> list[str]:
        return [] if self.weights_path() else ["inception-fid"]

    def preflight(self) -> None:
        path = self.weights_path()
        if path and not os.path.isfile(path):
            origin = "the weights option" if self.options.get("weights") else WEIGHTS_ENV
            raise UsageError(f"Inception weights file {path} does not exist (from {origin})")

    @property
    def extractor(self) -> Any:
        if self._extractor is None:
            from genmetrics.features.inception import get_extractor

            self._extractor = get_extractor(self.weights_path(), self.options["device"])
        return self._extractor

    def features(self, images: Sequence[Any]) -> dict[str, np.ndarray]:
        """Inception outputs of ``images`` (uint8 ``3 x H x W`` tensors), shared per batch;
        from the batch's feature cache where it has them."""
        extractor = self.extractor
        if isinstance(images, ImageBatch):
            return images.memo(("inception", id(extractor)),
                               lambda: extract_with_cache(extractor, images))
        return extractor.extract(list(images))

    def prepare_bootstrap(self, rows: Any = None) -> None:
        """Keep feature rows from now on, in ``rows`` (a run's
        :class:`~genmetrics.features.rowstore.RowStore`: memory-mapped files) or, when
        None, in memory."""
        self.keep_rows = True
        self.row_store = rows

    def kept(self, chunk: np.ndarray, output: str, side: str) -> np.ndarray:
        """A batch's rows as this metric keeps them: the row store's mapped view (written
        once per batch, however many metrics keep it), or ``chunk`` itself."""
        if self.row_store is not None:
            return self.row_store.add(output, side, chunk)
        return chunk

    def stacked(self, chunks: list[np.ndarray], output: str, side: str,
                dim: int) -> np.ndarray:
        """Kept chunks as one ``N x dim`` array: mapped from the row store's file when they
        are its views (no copy), else concatenated (see :func:`stack_rows`)."""
        if self.row_store is not None and chunks:
            return self.row_store.stack(chunks, output, side)
        return stack_rows(chunks, dim)

    def feature_provenance(self) -> dict[str, Any]:
        """What the feature cache's namespace records (see :mod:`genmetrics.features.cache`)."""
        return feature_provenance(self.extractor)

    def open_feature_cache(self, decoder: str = PILLOW_DECODER) -> Any:
        """The feature cache namespace of this metric's extractor and ``decoder`` (the
        one ``score`` and ``stats build`` share)."""
        from genmetrics.features.cache import FeatureCache, cache_root

        return FeatureCache(cache_root(), self.feature_provenance(),
                            feature_layout(self.extractor), decoder=decoder)

    def reference_signature(self) -> dict[str, Any]:
        """Signature fields naming the reference side: ``ref: folder``, or the statistics
        file's fields (``ref``, ``refs``, ``ref_format``) when ``reference_stats`` is set."""
        if self.reference_stats is None:
            return {"ref": "folder"}
        return dict(self.reference_stats.signature_fields())

    def extractor_signature(self) -> dict[str, Any]:
        """Everything about the features that changes their values (for signatures)."""
        sig = dict(self.extractor.signature())
        sig["color"] = f"{COLOR_POLICY}-alpha:{ALPHA_POLICY}"
        return sig

    def libraries(self) -> dict[str, str]:
        return {"torch": library_version("torch")}

    def close(self) -> None:
        self._extractor = None


def stack_rows(chunks: list[np.ndarray], dim: int) -> np.ndarray:
    """Concatenate per-batch feature arrays (an empty ``0 x dim`` array when there are none)."""
    if not chunks:
        return np.zeros((0, dim), dtype=np.float32)
    return np.concatenate([np.asarray(c) for c in chunks], axis=0)


def feature_provenance(extractor: Any) -> dict[str, Any]:
    """Everything that changes an extractor's outputs: the cache namespace's identity."""
    import torch

    return {**extractor.signature(), "color": f"{COLOR_POLICY}-alpha:{ALPHA_POLICY}",
            "torch": torch.__version__.split("+")[0],
            "device": torch.device(extractor.device).type,
            "exact": bool(extractor.exact), "tf32": bool(extractor.allow_tf32)}


def feature_layout(extractor: Any) -> dict[str, int]:
    """Output name -> width, in the extractor's order (pool3, logits when the weights have
    a classifier, the spatial ``mixed_6/conv``). The layout is part of the feature cache's
    namespace: entries written without one of these outputs are never read as if they
    had it."""
    from genmetrics.features.inception import WIDTHS

    return {name: WIDTHS[name] for name in extractor.features}


def extract_with_cache(extractor: Any, batch: ImageBatch) -> dict[str, np.ndarray]:
    """The batch's outputs: cached rows where the batch has them, the network for the rest
    (whose rows are then stored in the cache, one entry per image, as soon as computed)."""
    cache = batch.feature_cache
    if cache is not None and cache.provenance != feature_provenance(extractor):
        cache = None  # another extractor than the one the cache was opened for
    cached = batch.cached if cache is not None else [None] * len(batch)
    missing = [i for i, rows in enumerate(cached) if rows is None]
    if any(batch[i] is None for i in missing):
        raise RuntimeError("an image was not decoded but its features are not cached")
    fresh = extractor.extract([batch[i] for i in missing]) if missing else {}
    layout = feature_layout(extractor)
    out = {name: np.empty((len(batch), width), np.float32) for name, width in layout.items()}
    for name in layout:
        if missing:
            out[name][missing] = fresh[name]
        for i, rows in enumerate(cached):
            if rows is not None:
                out[name][i] = rows[name]
    if cache is not None:
        for j, i in enumerate(missing):
            if batch.contents[i] is not None:
                cache.put(batch.contents[i], {name: fresh[name][j] for name in layout})
    batch.cache_hits += len(batch) - len(missing)
    batch.extracted += len(missing)
    return out
