"""What FID, KID and Inception Score share: the Inception extractor and one pass per batch.

Each metric asks :meth:`InceptionMetric.features` for a batch's features; the first
metric to ask runs the network and the result is memoised on the
:class:`~genmetrics.io.image_batch.ImageBatch`, so one forward pass feeds all three.
The extractor itself is cached per (weights, device) by
:func:`genmetrics.features.inception.get_extractor`: one model per process.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from genmetrics.errors import UsageError
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
        """Inception outputs of ``images`` (uint8 ``3 x H x W`` tensors), shared per batch."""
        extractor = self.extractor
        if isinstance(images, ImageBatch):
            return images.memo(("inception", id(extractor)),
                               lambda: extractor.extract(list(images)))
        return extractor.extract(list(images))

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
