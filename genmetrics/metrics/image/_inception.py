"""What the image distribution metrics share: a feature backbone, one pass per batch.

Each metric asks :meth:`InceptionMetric.features` for a batch's features; the first
metric to ask runs the network and the result is memoised on the
:class:`~genmetrics.io.image_batch.ImageBatch` per backbone, so one forward pass per
backbone feeds them all. FID, KID, precision/recall, density/coverage, Vendi and CMMD
take a ``features`` option naming the backbone (:mod:`genmetrics.features.backbones`;
default ``inception``, CMMD's ``clip-vitl14-336``); sFID and the Inception Score stay on
Inception. Inception itself keeps its own path (the extractor cached per (weights,
device) by :func:`genmetrics.features.inception.get_extractor`, its signature and cache
namespace unchanged); any other backbone comes from
:func:`~genmetrics.features.backbones.get_backbone` (one model per process), its
signature goes into every result computed from it (``backbone``, ``w``,
``preprocessing``) and its provenance names its own feature-cache namespace.
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
    "device", "auto", "where the metric's network runs (Inception or its features "
    "backbone): auto (CUDA when present), cpu, cuda or cuda:N", affects_values=False)
WEIGHTS_OPTION = Option(
    "weights", None, "a torch-fidelity-format Inception state dict file (default: the "
    f"inception-fid asset, or ${WEIGHTS_ENV}); for another backbone (features option), "
    "its local model folder; its digest goes into the signature",
    affects_values=False)
#: the backbone a metric's features come from (its signature names it either way, so the
#: option itself stays out of the signature: Inception signatures are unchanged)
INCEPTION = "inception"


def features_option(default: str = INCEPTION) -> Option:
    """The ``features`` option: which backbone's features the metric compares."""
    return Option(
        "features", default, "the backbone whose features are compared: inception, "
        "dinov2-vit{s,b,l,g}14, clip-vitb32, clip-vitl14, clip-vitl14-336 or a registered "
        "one (see the README's backbone table)", affects_values=False)


FEATURES_OPTION = features_option()


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

    #: the output compared when the backbone is Inception (sFID: ``mixed_6/conv``)
    extractor_output: str = "2048"

    @classmethod
    def takes_run_option(cls, option: str, given: dict[str, Any]) -> bool:
        """``--inception-weights`` is not the weights of a metric on another backbone."""
        if option == "weights":
            default = next((o.default for o in cls.spec.options if o.name == "features"),
                           INCEPTION)
            if str(given.get("features") or default) != INCEPTION:
                return False
        return super().takes_run_option(option, given)

    @property
    def backbone(self) -> str:
        """The backbone's name: the ``features`` option (``inception`` without one)."""
        return str(self.options.get("features") or INCEPTION)

    @property
    def on_inception(self) -> bool:
        return self.backbone == INCEPTION

    def weights_path(self) -> str | None:
        """The weights asked for (option, then, for Inception, the environment), or None
        (the asset / the backbone's own offline resolution)."""
        if not self.on_inception:
            return self.options.get("weights") or None
        return self.options.get("weights") or os.environ.get(WEIGHTS_ENV) or None

    def required_assets(self) -> list[str]:
        if not self.on_inception:
            return []  # the backbone resolves its model (BackboneUnavailable in preflight)
        return [] if self.weights_path() else ["inception-fid"]

    def preflight(self) -> None:
        if not self.on_inception:
            self.extractor  # noqa: B018 - loads it: unknown name or missing model fail here
            return
        path = self.weights_path()
        if path and not os.path.isfile(path):
            origin = "the weights option" if self.options.get("weights") else WEIGHTS_ENV
            raise UsageError(f"Inception weights file {path} does not exist (from {origin})")

    def default_unavailable(self) -> str | None:
        """A default metric on another backbone is left out when its model is missing
        (the reason ends with the fetch command)."""
        if self.on_inception:
            return None
        from genmetrics.errors import GenmetricsError

        try:
            self.extractor  # noqa: B018
        except GenmetricsError as exc:  # missing model (with the fetch command), bad folder
            return str(exc)
        except ImportError as exc:
            return (f"the {self.backbone} backbone needs {exc.name or exc}: "
                    "pip install 'genmetrics[image]'")
        return None

    @property
    def extractor(self) -> Any:
        """The Inception extractor, or the :class:`~genmetrics.features.backbones.Backbone`
        named by the ``features`` option."""
        if self._extractor is None:
            if self.on_inception:
                from genmetrics.features.inception import get_extractor

                self._extractor = get_extractor(self.weights_path(), self.options["device"])
            else:
                from genmetrics.features.backbones import get_backbone

                backbone = get_backbone(self.backbone, self.options.get("device", "auto"),
                                        self.weights_path())
                if backbone.modality != "image":
                    raise UsageError(f"{self.spec.name}.features={self.backbone}: a "
                                     f"{backbone.modality} backbone, not an image one")
                self._extractor = backbone
        return self._extractor

    @property
    def output(self) -> str:
        """The extractor output this metric compares: ``extractor_output`` on Inception,
        else the backbone's ``embedding``."""
        return self.extractor_output if self.on_inception else str(self.extractor.embedding)

    @property
    def output_width(self) -> int:
        """Width of :attr:`output`."""
        return int(feature_layout(self.extractor)[self.output])

    @property
    def row_key(self) -> str:
        """The row store's name of this metric's rows: the output on Inception (as before),
        the backbone's name on another (its embedding: two backbones' rows never mix)."""
        return self.output if self.on_inception else self.backbone

    def features(self, images: Sequence[Any]) -> dict[str, np.ndarray]:
        """The backbone's outputs for ``images`` (uint8 ``3 x H x W`` tensors), shared per
        batch and backbone; from the batch's feature cache where it has them."""
        extractor = self.extractor
        if isinstance(images, ImageBatch):
            key = ("inception", id(extractor)) if self.on_inception else \
                ("backbone", self.backbone, id(extractor))
            return images.memo(key, lambda: extract_with_cache(extractor, images))
        return extractor.extract(list(images))

    def image_backbones(self) -> list[Any]:
        """The backbones whose preprocessing the decode workers may run for this metric:
        its backbone, except Inception (its extractor preprocesses in this process)."""
        return [] if self.on_inception else [self.extractor]

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
        """Everything about the features that changes their values (for signatures): on
        another backbone than Inception, its name, weights digest, preprocessing and the
        output compared (not its text tower's policy, ``text``: no image feature uses it)."""
        sig = dict(self.extractor.signature())
        if not self.on_inception:  # ``ext``: what the short signature string shows
            sig = {"ext": self.backbone, **sig, "backbone": self.backbone,
                   "output": self.output}
            sig.pop("text", None)
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


def is_backbone(extractor: Any) -> bool:
    """True for a :class:`~genmetrics.features.backbones.Backbone` (not today's Inception
    extractor)."""
    return hasattr(extractor, "outputs") and hasattr(extractor, "embedding")


def feature_provenance(extractor: Any) -> dict[str, Any]:
    """Everything that changes an extractor's outputs: the cache namespace's identity
    (one namespace per backbone provenance: name, weights digest, preprocessing)."""
    import torch

    common = {"color": f"{COLOR_POLICY}-alpha:{ALPHA_POLICY}",
              "torch": torch.__version__.split("+")[0],
              "device": torch.device(extractor.device).type}
    if is_backbone(extractor):
        return {**extractor.signature(), **common}
    return {**extractor.signature(), **common,
            "exact": bool(extractor.exact), "tf32": bool(extractor.allow_tf32)}


def feature_layout(extractor: Any) -> dict[str, int]:
    """Output name -> width, in the extractor's order (pool3, logits when the weights have
    a classifier, the spatial ``mixed_6/conv``). The layout is part of the feature cache's
    namespace: entries written without one of these outputs are never read as if they
    had it."""
    if is_backbone(extractor):
        return {name: int(width) for name, width in extractor.outputs.items()}
    from genmetrics.features.inception import WIDTHS

    return {name: WIDTHS[name] for name in extractor.features}


def _extract(extractor: Any, batch: ImageBatch, indices: list[int]) -> dict[str, np.ndarray]:
    """The extractor's outputs for ``batch[i]``, ``i`` in ``indices``: from the tensors the
    decode workers preprocessed for it when every image has one, else from the images."""
    from genmetrics.features.backbones import preprocessing_key

    key = preprocessing_key(extractor)
    ready = getattr(batch, "preprocessed", None)
    if key is not None and ready is not None:
        tensors = [None if ready[i] is None else ready[i].get(key) for i in indices]
        if all(t is not None for t in tensors):
            return extractor.extract_preprocessed(tensors)
    return extractor.extract([batch[i] for i in indices])


def extract_with_cache(extractor: Any, batch: ImageBatch) -> dict[str, np.ndarray]:
    """The batch's outputs: cached rows where the batch has them, the network for the rest
    (whose rows are then stored in the cache, one entry per image, as soon as computed)."""
    cache = batch.feature_cache
    cached = batch.cached
    if cache is not None and hasattr(cache, "namespace_of"):  # a CacheSet: several backbones
        cache = cache.namespace_of(feature_provenance(extractor))
        cached = [None if rows is None or cache is None else rows.get(cache.folder.name)
                  for rows in batch.cached]
    elif cache is not None and cache.provenance != feature_provenance(extractor):
        cache = None  # another extractor than the one the cache was opened for
    if cache is None:
        cached = [None] * len(batch)
    missing = [i for i, rows in enumerate(cached) if rows is None]
    if any(batch[i] is None for i in missing):
        raise RuntimeError("an image was not decoded but its features are not cached")
    fresh = _extract(extractor, batch, missing) if missing else {}
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
