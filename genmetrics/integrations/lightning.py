"""PyTorch Lightning: score what ``validation_step`` generates, every validation epoch.

``pip install "genmetrics[lightning]"`` (Lightning 2.x, the ``lightning`` package, imported
as ``lightning.pytorch``; the legacy ``pytorch_lightning`` package is not supported: its
``Trainer`` does not call a ``lightning.pytorch`` callback), plus the extra of the
metrics' modality (``genmetrics[lightning,image]`` for PSNR/SSIM below).
:class:`GenmetricsCallback` feeds an :class:`~genmetrics.Evaluator` from
``on_validation_batch_end``, computes the scorecard at ``on_validation_epoch_end`` on
**every** rank and logs its numbers through ``pl_module.log_dict`` (so they reach the
trainer's loggers, the progress bar's ``callback_metrics``, ``ModelCheckpoint`` and
``EarlyStopping``: ``monitor="genmetrics/psnr"``), then resets the Evaluator::

    import lightning.pytorch as pl
    from genmetrics import Evaluator
    from genmetrics.integrations.lightning import GenmetricsCallback

    class Module(pl.LightningModule):
        ...
        def validation_step(self, batch, batch_idx):
            noise, targets = batch
            return {"samples": self(noise), "references": targets}  # N x 3 x H x W, [0, 1]

    callback = GenmetricsCallback(Evaluator(["psnr", "ssim"], modality="image"))
    trainer = pl.Trainer(max_epochs=2, callbacks=[callback])
    trainer.fit(Module(), train_loader, val_loader)
    callback.scorecard.metrics["psnr"].value   # also logged as genmetrics/psnr per epoch

**The contract.** ``validation_step`` returns a dict with ``"samples"`` (a batch as
:meth:`Evaluator.update <genmetrics.Evaluator.update>` takes it: images ``N x 3 x H x W``,
waveforms ``B x T``, or a list of strings) and, for paired metrics, ``"references"``.
Or pass ``extract=fn``: ``fn(outputs, batch)`` returns ``(samples, references)`` (or such
a dict), e.g. ``extract=lambda out, batch: (out, batch[1])`` when the step returns the
generated tensor itself. Audio needs ``sample_rate=``.

**Several processes** (``strategy="ddp"``): each rank's ``validation_step`` sees its own
shard, so the Evaluator keeps its default ``sync="auto"`` and combines the ranks in
``compute``; every rank receives and logs the same values (hence no ``sync_dist``).
Lightning's ``DistributedSampler`` repeats samples to even out the shards when the
validation set does not divide by the number of processes; those repeats are scored
too (the callback warns): make the set divisible. If ``validation_step`` already
``all_gather``-s its outputs, give an Evaluator with ``sync="none"`` instead.

The sanity-check batches Lightning runs before training are not scored. Every validation
dataloader feeds the same Evaluator. The last scorecard stays on ``callback.scorecard``
(with its signatures): the module's own ``on_validation_epoch_end``, which Lightning calls
after the callbacks', can save it (``card.save(path)``) or log it elsewhere
(``card.log_to(trainer.logger.experiment)`` for TensorBoard).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

try:
    import lightning.pytorch as pl
except ModuleNotFoundError as exc:  # a hint, not a bare "No module named 'lightning'"
    if not (exc.name or "lightning").startswith("lightning"):
        raise
    raise ModuleNotFoundError(
        "genmetrics.integrations.lightning needs Lightning 2.x, the `lightning` package "
        "(the legacy `pytorch_lightning` package is not supported): pip install "
        "'genmetrics[lightning]'", name=exc.name) from exc

from genmetrics.errors import UsageError
from genmetrics.loggers import DEFAULT_PREFIX, scalars

if TYPE_CHECKING:
    from genmetrics.evaluator import Evaluator
    from genmetrics.scorecard import Scorecard

#: ``extract(outputs, batch)`` -> ``(samples, references)`` or ``{"samples": ..., ...}``
Extract = Callable[[Any, Any], Any]


class GenmetricsCallback(pl.Callback):
    """Score every validation epoch with ``evaluator`` (see the module docstring).

    ``extract``: maps ``(outputs, batch)`` of a validation step to ``(samples,
    references)``; by default ``outputs`` is a dict with ``"samples"`` and optional
    ``"references"``. ``prefix``: of the logged names (``genmetrics/psnr``); ``log``:
    False keeps the scorecard on :attr:`scorecard` without logging. ``sample_rate``:
    for audio.
    """

    def __init__(self, evaluator: Evaluator, *, extract: Extract | None = None,
                 prefix: str = DEFAULT_PREFIX, log: bool = True,
                 sample_rate: int | None = None) -> None:
        super().__init__()
        self.evaluator = evaluator
        self.extract = extract
        self.prefix = prefix
        self.log = log
        self.sample_rate = sample_rate
        #: the scorecard of the last validation epoch (None before the first one)
        self.scorecard: Scorecard | None = None
        self._warned_repeats = False

    # -- hooks --------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Lightning recommends sync_dist=True for epoch-level values under DDP; ours are
        # the same on every rank already (the Evaluator combined them), so its advice,
        # given for each of our names, is silenced here (in every process)
        warnings.filterwarnings(
            "ignore", message=re.escape(f"It is recommended to use `self.log('{self.prefix}"),
            category=UserWarning)

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule
                                  ) -> None:
        self.evaluator.reset()  # an interrupted epoch leaves nothing behind
        if not trainer.sanity_checking:
            self._warn_repeated_samples(trainer)

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                                outputs: Any, batch: Any, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        if trainer.sanity_checking:
            return
        samples, references = self._samples(outputs, batch)
        kwargs = {"sample_rate": self.sample_rate} if self.evaluator.modality == "audio" else {}
        self.evaluator.update(samples, references, **kwargs)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule
                                ) -> None:
        if trainer.sanity_checking:
            self.evaluator.reset()
            return
        card = self.evaluator.compute()  # on every rank: a collective call under DDP
        self.evaluator.reset()
        self.scorecard = card
        if self.log:
            import torch

            # float64 tensors: Lightning logs them as they are (floats become float32);
            # every rank holds the same values, so no sync_dist reduction is needed
            values = {name: torch.tensor(value, dtype=torch.float64)
                      for name, value in scalars(card, self.prefix).items()}
            pl_module.log_dict(values, sync_dist=False)

    # -- helpers --------------------------------------------------------------------------
    def _samples(self, outputs: Any, batch: Any) -> tuple[Any, Any]:
        got = self.extract(outputs, batch) if self.extract is not None else outputs
        if isinstance(got, Mapping) and "samples" in got:
            return got["samples"], got.get("references")
        if self.extract is not None and isinstance(got, tuple) and len(got) == 2:
            return got
        what = "extract(outputs, batch)" if self.extract is not None else "validation_step"
        raise UsageError(
            f"GenmetricsCallback: {what} gave {type(got).__name__}; return a dict with "
            "'samples' (and 'references' for paired metrics) from validation_step, or pass "
            "extract=lambda outputs, batch: (samples, references)")

    def _warn_repeated_samples(self, trainer: pl.Trainer) -> None:
        """Warn once when a DistributedSampler pads the shards with repeated samples."""
        if self._warned_repeats or getattr(self.evaluator, "sync", "auto") == "none":
            return
        loaders = trainer.val_dataloaders
        if loaders is None:
            return
        loaders = list(loaders.values()) if isinstance(loaders, Mapping) else \
            list(loaders) if isinstance(loaders, (list, tuple)) else [loaders]
        for loader in loaders:
            sampler = getattr(loader, "sampler", None)
            total, replicas = getattr(sampler, "total_size", None), getattr(
                sampler, "num_replicas", 1)
            dataset = getattr(sampler, "dataset", None)
            if total is None or replicas <= 1 or not hasattr(dataset, "__len__"):
                continue
            extra = total - len(dataset)
            if extra > 0:
                self._warned_repeats = True
                warnings.warn(
                    f"GenmetricsCallback: the validation set has {len(dataset)} samples, "
                    f"which does not divide by {replicas} processes: DistributedSampler "
                    f"repeats {extra} of them and the scores count them twice; make the "
                    "set divisible", UserWarning, stacklevel=2)
                return
