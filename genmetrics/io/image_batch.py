"""What image metrics receive from the runner (and, later, from the Evaluator).

``Metric.update(samples, references)`` for an image metric gets

* ``samples``: an :class:`ImageBatch` -- a ``list`` of ``torch.uint8`` tensors, each
  ``3 x H x W`` (RGB, CPU, contiguous); sizes may differ between images;
* ``references``: one list per sample, holding that sample's reference image (a
  ``3 x H x W`` uint8 tensor of the *same size*, paired by relative path) for paired
  metrics (SSIM, PSNR), or an empty list when there is no pair.

Work that several metrics share for one batch (the Inception features of FID, KID
and IS) is computed once and memoised in :attr:`ImageBatch.shared`, keyed by the
extractor's identity.

    >>> import torch
    >>> batch = ImageBatch([torch.zeros(3, 4, 4, dtype=torch.uint8)])
    >>> batch.memo("answer", lambda: 42), batch.memo("answer", lambda: 0)
    (42, 42)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any


class ImageBatch(list):
    """A list of ``3 x H x W`` uint8 tensors plus a per-batch memo for shared features.

    From the runner, a batch also knows each image's content key and the features the
    feature cache already holds for it (:meth:`attach_items`); an image whose features
    are cached may then be ``None`` (not decoded) when no running metric needs pixels.
    """

    def __init__(self, images: Iterable[Any] = ()) -> None:
        super().__init__(images)
        self.shared: dict[Any, Any] = {}
        self.shared_s = 0.0  # seconds spent computing shared results (the model stage)
        self.contents: list[str | None] = [None] * len(self)
        self.cached: list[dict[str, Any] | None] = [None] * len(self)
        self.feature_cache: Any = None
        self.cache_hits = 0
        self.extracted = 0
        #: each image's prompt (``None``: not given; ``Unusable``: given but unusable)
        self.prompts: list[Any] = [None] * len(self)
        #: each image preprocessed by the decode workers (key -> tensor), or None
        self.preprocessed: list[dict[str, Any] | None] = [None] * len(self)

    def attach_items(self, items: Sequence[Any], feature_cache: Any) -> None:
        """Take content keys and cached features from the runner's ``ImageItem`` list."""
        self.contents = [item.content for item in items]
        self.cached = [item.features for item in items]
        self.prompts = [getattr(item, "prompt", None) for item in items]
        self.preprocessed = [getattr(item, "preprocessed", None) for item in items]
        self.feature_cache = feature_cache

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per batch and key; later calls return the stored result."""
        if key not in self.shared:
            started = time.perf_counter()
            self.shared[key] = compute()
            self.shared_s += time.perf_counter() - started
        return self.shared[key]
