"""The evaluation step of a training loop: in-memory batches in, a Scorecard out.

    >>> from genmetrics import Evaluator
    >>> ev = Evaluator(["bleu", "chrf"], modality="text")
    >>> ev.update(["the cat sat on the mat"], [["the cat sat on a mat"]])
    >>> card = ev.compute()
    >>> round(card.metrics["bleu"].value, 2), card.inputs["samples"]["count"]
    (53.73, 1)
    >>> ev.reset()   # next epoch: states emptied, models stay loaded

* **Inputs** (no disk I/O): images as ``N x 3 x H x W`` tensors, uint8 or float in
  [0, 1] (rounded to uint8, which is what FID's network is defined on); audio as
  ``B x T`` waveforms (tensor or array, float in [-1, 1]) with ``sample_rate=``; text as
  a list of strings, references as one string or a list of strings per sample.
* **Metrics** are built once (models load on first use and stay on their device) and
  updated under ``torch.inference_mode``. ``compute`` gives the same
  :class:`~genmetrics.scorecard.Scorecard` schema as the CLI; ``reset`` empties the
  sample states but keeps the reference distribution (reference statistics, or what
  :meth:`Evaluator.update_reference` added), so references are fed once per run.
* **Checkpoints**: :meth:`Evaluator.state_dict` / :meth:`Evaluator.load_state_dict`
  (plain Python and numpy objects; save with ``torch.save`` and load with
  ``weights_only=False`` only from files you wrote).
* **Distributed** (``sync=``): with ``sync="auto"`` (the default), when
  ``torch.distributed`` is initialised with more than one process,
  :meth:`Evaluator.compute` combines every rank's states (see
  :mod:`genmetrics.distributed`): each rank updates with its own shard and **every rank
  receives the same scorecard**, equal to one process seeing the shards in rank order.
  Call ``compute`` on every rank. Shard the references too (each rank feeds its part to
  ``update_reference``), or use reference statistics: references fed in full on every
  rank would count once per rank. When every rank holds the very same samples (the
  usual sign of inputs gathered already), ``compute`` still combines them (n = world
  size x the samples) but warns once, naming ``sync="none"``.

  With ``sync="none"`` each rank scores only what it was given and makes **no
  collective call** (so ``compute`` may run on rank 0 alone): the setting for inputs
  that every rank already holds in full, such as the predictions Hugging Face
  ``Trainer`` gathers before ``compute_metrics``, or Lightning's ``all_gather``-ed
  outputs. Its scorecard is the one of a single process over those samples (same n,
  values and input digest)::

      ev = Evaluator(["bleu", "chrf"], modality="text", sync="none")  # once

      def compute_metrics(eval_pred):  # Trainer: predictions gathered over the ranks
          ev.reset()
          ev.update(decode(eval_pred.predictions), decode(eval_pred.label_ids))
          return {k: r.value for k, r in ev.compute().metrics.items()}

  The input digests leave out the sample ids the Evaluator makes up (positions, ``r1-3``
  under several processes): the same samples give the same digest whatever the number
  of processes (a paired reference is tied to its sample by the sample's content).
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any, Literal

import numpy as np

from genmetrics.devices import using_device
from genmetrics.errors import UsageError
from genmetrics.metric import MODALITIES
from genmetrics.scorecard import Scorecard
from genmetrics.stats import DEFAULT_SEED

#: the values of ``Evaluator(sync=...)``: combine the ranks of torch.distributed, or not
SYNC_MODES = ("auto", "none")
Sync = Literal["auto", "none"]


class Evaluator:
    """Metrics of one modality over in-memory batches (see the module docstring).

    ``options``: per-metric options as in :func:`genmetrics.score`; ``device`` is where
    every model whose own ``device`` option is ``auto`` runs (:mod:`genmetrics.devices`),
    ``inception_weights`` is set on every Inception-based metric;
    ``backbones``: this Evaluator's own feature backbones, name -> a
    :class:`~genmetrics.features.backbones.Backbone` or a ``(torch.nn.Module,
    Preprocessing)`` pair, which its metrics use by name (``options={"fid": {"features":
    "mine"}}``); a module's weights digest is taken again at each pass (init,
    :meth:`reset`), so a module trained in between gets another signature;
    ``reference_stats`` (name or ``.npz``) is the FID/KID reference distribution.
    ``bootstrap=N`` (with ``seed``) gives 95% intervals as ``genmetrics score
    --bootstrap N`` does; distribution metrics then keep their feature rows in
    memory-mapped files (``Scorecard.rows``), and :meth:`reset` starts the samples' files
    afresh. ``sync``: ``"auto"`` combines the ranks of ``torch.distributed`` when it is initialised
    (call ``compute`` on every rank); ``"none"`` scores this process's samples alone with
    no collective call (inputs every rank holds in full; ``compute`` on rank 0 alone is
    fine). Two ranks that each hold the same 4 samples get n = 4 with ``sync="none"`` (one
    process's scorecard) and n = 8 with ``sync="auto"`` (and a warning naming
    ``sync="none"``). On each rank of a Hugging Face ``Trainer``'s ``compute_metrics``
    (predictions gathered already), or in one process:

        >>> ev = Evaluator(["bleu"], "text", sync="none")
        >>> ev
        Evaluator(['bleu'], modality='text', sync='none')
        >>> preds = ["the cat sat on the mat", "a dog barked", "it rained", "hello world"]
        >>> ev.update(preds, [["the cat sat on a mat"], "a dog barks", "it rained", "hi"])
        >>> card = ev.compute()
        >>> card.metrics["bleu"].n, card.inputs["samples"]["count"]
        (4, 4)
    """

    def __init__(self, metrics: Sequence[str], modality: str, *, device: str | None = "auto",
                 reference_stats: str | None = None,
                 options: dict[str, dict[str, Any]] | None = None,
                 inception_weights: str | None = None, per_sample: bool = False,
                 bootstrap: int = 0, seed: int = DEFAULT_SEED, sync: Sync = "auto",
                 group_by: str | None = None, backbones: dict[str, Any] | None = None) -> None:
        from genmetrics.inputs import Inputs
        from genmetrics.runner import _check_arguments, build_metrics, start_row_store

        if sync not in SYNC_MODES:
            raise UsageError(f"sync={sync!r} is not a choice: sync=\"auto\" combines the "
                             "ranks of torch.distributed (each holds its own shard), "
                             "sync=\"none\" scores each process's samples alone (inputs "
                             "every rank holds in full, e.g. gathered predictions)")
        self.sync: Sync = sync
        self._warned_duplicates = False  # the identical-ranks warning is given once
        if modality not in MODALITIES:
            raise UsageError(f"unknown modality {modality!r}; choose one of "
                             f"{', '.join(MODALITIES)}")
        if not metrics:
            raise UsageError("Evaluator needs a list of metric names (see `genmetrics list`)")
        _check_arguments(1, bootstrap, seed)
        if group_by is not None and not str(group_by).strip():
            raise UsageError("group_by needs a name for the slices' field, e.g. "
                             "group_by=\"category\" (each update then brings groups=[...])")
        #: what this Evaluator reads, as genmetrics.inputs describes a run (no files: the
        #: samples come in batches, and with group_by each batch brings its groups=)
        self.inputs = Inputs.of("(in memory)", reference_stats=reference_stats,
                                group_by=group_by)
        self.modality, self.per_sample, self.bootstrap, self.seed = (
            modality, per_sample, bootstrap, seed)
        options = {k: dict(v) for k, v in (options or {}).items()}
        self._options = options
        if inception_weights is not None:
            _set_where_known(metrics, options, "weights", inception_weights, modality)
        #: the run's device (genmetrics.devices), set around every call that may run a
        #: model: each model whose own ``device`` option is ``auto`` runs there
        self.device = device
        self.unavailable: dict[str, str] = {}
        #: this Evaluator's own backbones (name -> Backbone), found by name by its metrics
        #: only (``options={"fid": {"features": "mine"}}``)
        self.backbones = self._own_backbones(backbones or {})
        with self._models():  # backbones load on the run's device, as the ones above
            self._metrics = build_metrics(list(metrics), modality, options, True,
                                          have_reference_set=True,
                                          unavailable=self.unavailable)
        self.reference_stats = None
        if self.inputs.reference_stats is not None:
            from genmetrics.reference_stats import load_stats

            self.reference_stats = load_stats(self.inputs.reference_stats)
            for metric in self._metrics.values():
                if metric.spec.reference_set:
                    metric.use_reference_stats(self.reference_stats)
        # bootstrap > 0: feature rows kept for intervals go to memory-mapped files
        self._row_store = start_row_store(self._metrics, bootstrap)
        self._started = time.perf_counter()
        self._failed: dict[str, str] = {}  # metrics that failed on reference batches
        self._reference_items: list[bytes] = []  # digest items of update_reference batches
        self._slices: Any = None  # with group_by: a genmetrics.slices.Slices per pass
        self._new_pass()

    def _own_backbones(self, given: dict[str, Any]) -> dict[str, Any]:
        """``backbones=``: a Backbone, or a ``(module, Preprocessing)`` pair, per name."""
        from genmetrics.features.backbones import as_backbone

        if "inception" in given:
            raise UsageError("backbones: 'inception' is the built-in FID network; give "
                             "yours another name")
        with using_device(self.device):
            return {str(name): as_backbone(str(name), value) for name, value in given.items()}

    def _models(self) -> Any:
        """The context every model is built in: the run's device and this Evaluator's own
        backbones (:func:`genmetrics.features.backbones.using_backbones`)."""
        from contextlib import ExitStack

        from genmetrics.features.backbones import using_backbones

        stack = ExitStack()
        stack.enter_context(using_device(self.device))
        stack.enter_context(using_backbones(self.backbones))
        return stack

    # -- state ---------------------------------------------------------------------
    def _new_pass(self) -> None:
        from genmetrics.features.backbones import refresh_backbones
        from genmetrics.runner import _Pass

        with self._models():  # a user's module: the digest of its weights as they are now
            refresh_backbones()
        self._run = _Pass()  # fresh digests, whose item hashes checkpoints save
        self._run.row_store = self._row_store
        if self.reference_stats is not None:  # an ADM batch: its rows are arr_0's images
            self._run.reference_images = self.reference_stats.image_rows()
        for item in self._reference_items:  # the reference distribution outlives reset()
            self._run.reference_set_digest.add_item(item)
        self._run.used_reference_set = bool(self._reference_items)
        self._run.errors = dict(self._failed)
        self._active = {n: m for n, m in self._metrics.items() if n not in self._failed}
        self._count = 0
        self._has_references = bool(self._reference_items)
        self._run.slices = self._slices = self._open_slices()

    def _open_slices(self) -> Any:
        """A fresh :class:`~genmetrics.slices.Slices` (group_by), or None; the slices of
        the last pass are closed."""
        from genmetrics.runner import build_metrics
        from genmetrics.slices import Slices

        if self._slices is not None:
            self._slices.close()
        if self.inputs.group_by is None:
            return None

        def build(names: list[str]) -> dict[str, Any]:
            with self._models():  # on the run's device, with this Evaluator's backbones
                return build_metrics(names, self.modality,
                                     {k: v for k, v in self._options.items() if k in names},
                                     True, have_reference_set=True)

        slices = Slices(self.inputs.group_by, {}, None, self._metrics, build)
        if self.reference_stats is not None:
            slices.use_reference_stats(self.reference_stats)
        return slices

    def reset(self) -> None:
        """Forget the samples (keep models, reference statistics and reference batches)."""
        for metric in self._metrics.values():
            metric.reset_samples()
        if self._row_store is not None:  # the samples' row files start afresh
            self._row_store.reset("samples")
        self._new_pass()
        self._started = time.perf_counter()

    def state_dict(self) -> dict[str, Any]:
        """Everything :meth:`compute` needs, as plain objects (for checkpoints)."""
        run = self._run
        return {
            "format": 2,  # 2: digest items leave out the ids the Evaluator made up
            "metrics": {name: m.state_dict() for name, m in self._metrics.items()},
            "active": list(self._active),
            "count": self._count,
            "has_references": self._has_references,
            "failed": dict(self._failed),
            "reference_items": [h.hex() for h in self._reference_items],
            "run": {"ids": list(run.ids), "skipped": [x.to_dict() for x in run.skipped],
                    "warnings": list(run.warnings), "errors": dict(run.errors),
                    "sample_digest": [h.hex() for h in run.sample_digest.items],
                    "reference_digest": [h.hex() for h in run.reference_digest.items],
                    "need_digests": {k: [h.hex() for h in d.items]
                                     for k, d in run.need_digests.items()}},
            **({"slices": self._slices.state_dict()} if self._slices is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict` (same metrics and options)."""
        if set(state.get("metrics", {})) != set(self._metrics):
            raise UsageError(f"saved Evaluator state has metrics {sorted(state['metrics'])}, "
                             f"this Evaluator has {sorted(self._metrics)}")
        from genmetrics.io.common import Skipped

        if state.get("format", 1) < 2:
            warnings.warn("this Evaluator state was saved by an older genmetrics, whose input "
                          "digests hashed the made-up sample ids: the values resume exactly, "
                          "but the digests of this pass will not match a fresh run's",
                          UserWarning, stacklevel=2)
        for name, metric in self._metrics.items():
            metric.load_state_dict(state["metrics"][name])
        self._failed = dict(state["failed"])
        self._reference_items = [bytes.fromhex(h) for h in state["reference_items"]]
        self._new_pass()
        self._active = {n: self._metrics[n] for n in state["active"]}
        self._count = state["count"]
        self._has_references = state["has_references"]
        saved = state["run"]
        self._run.ids = list(saved["ids"])
        self._run.skipped = [Skipped(**x) for x in saved["skipped"]]
        self._run.warnings = list(saved["warnings"])
        self._run.errors = dict(saved["errors"])
        for key in ("sample_digest", "reference_digest"):
            digest = getattr(self._run, key)
            digest.__init__()
            for item in saved[key]:
                digest.add_item(bytes.fromhex(item))
        for need, items in saved.get("need_digests", {}).items():
            for item in items:
                self._run.need_digests[need].add_item(bytes.fromhex(item))
        if self._slices is not None and "slices" in state:
            self._slices.load_state_dict(state["slices"])

    # -- feeding ------------------------------------------------------------------
    def update(self, samples: Any, references: Any = None, *,
               sample_rate: int | None = None, texts: Sequence[str] | None = None,
               speaker_reference: Any = None, prompts: Sequence[str] | None = None,
               groups: Sequence[Any] | None = None) -> None:
        """Add a batch of samples (and their references, for paired metrics).

        With ``Evaluator(..., group_by="category")``: ``groups``, each sample's slice
        (its ``category``; None: in no slice); :meth:`compute`'s scorecard then holds every
        metric per slice beside the overall value (``Scorecard.slices``).

        Audio from a text-to-speech model: ``texts``, what each clip should say (``wer``,
        ``cer``), and ``speaker_reference``, the prompt speaker's waveform (one for the
        batch, or one per clip; at ``sample_rate``) for ``speaker_sim``.

        Images or audio generated from prompts: ``prompts``, one string per sample
        (``clipscore``, ``clap_score``); an empty one is named as failed by those metrics.

        The whole batch is checked before any metric sees it: a bad batch (a ``None``
        sample, float images outside [0, 1], audio outside [-1, 1], NaN, mismatched
        lengths) raises one :class:`~genmetrics.errors.UsageError` and changes nothing.
        """
        from genmetrics.runner import _batch_type, _feed

        items = self._items(samples, references, sample_rate)
        if texts is not None or speaker_reference is not None:
            self._attach(items, texts, speaker_reference, sample_rate)
        if prompts is not None:
            self._attach_prompts(items, prompts)
        labels = self._labels(items, groups)
        if labels:
            self._slices.add_labels(labels)
        if references is not None:
            self._has_references = True
        with _inference_mode(), using_device(self.device):
            _feed(items, self._active, max(1, len(items)), None, run=self._run,
                  batch_type=_batch_type(self.modality))
        self._count += len(items)

    def update_reference(self, images: Any) -> None:
        """Add images of the FID/KID reference distribution (instead of statistics)."""
        from genmetrics.io.image import ImageItem
        from genmetrics.runner import _batch_type, _feed

        if self.modality != "image":
            raise UsageError("update_reference is for image distribution metrics (FID, KID)")
        wanting = {n: m for n, m in self._active.items() if m.spec.reference_set}
        if not wanting:
            raise UsageError("none of this Evaluator's metrics takes a reference distribution")
        if self.reference_stats is not None:
            raise UsageError("this Evaluator compares with reference statistics already")
        tensors = _images(images)
        start = len(self._reference_items)
        items = [ImageItem(f"ref-{start + i}", t, synthetic_id=True)
                 for i, t in enumerate(tensors)]
        before = len(self._run.reference_set_digest.items)
        with _inference_mode(), using_device(self.device):
            _feed(items, wanting, max(1, len(items)), None, run=self._run,
                  batch_type=_batch_type(self.modality), reference_pass=True)
        self._reference_items += self._run.reference_set_digest.items[before:]
        self._has_references = True
        for name, reason in self._run.errors.items():  # stays out after reset(): its
            if name in wanting:                          # reference distribution is partial
                self._failed[name] = reason
                self._active.pop(name, None)

    def _labels(self, items: list[Any], groups: Sequence[Any] | None) -> dict[str, str]:
        """``{sample id: slice}`` of a batch (checked before anything is added)."""
        from genmetrics.slices import _label

        if groups is None:
            return {}
        if self._slices is None:
            raise UsageError("groups= needs Evaluator(..., group_by=FIELD): the name of what "
                             "the groups are (e.g. group_by=\"category\")")
        if isinstance(groups, str) or len(groups) != len(items):
            raise UsageError(f"{len(items)} samples but groups= is not a list of "
                             f"{len(items)}; give one group per sample (None: in no slice); "
                             "nothing of this batch was added")
        named = {item.id: _label(g) for item, g in zip(items, groups, strict=True)}
        return {k: v for k, v in named.items() if v is not None}

    def _attach_prompts(self, items: list[Any], prompts: Sequence[str]) -> None:
        """Put each sample's prompt on it (images and audio)."""
        from genmetrics.io.prompts import as_prompt

        if self.modality not in ("image", "audio"):
            raise UsageError("prompts= is for images and audio generated from a prompt")
        if isinstance(prompts, str):
            raise UsageError("prompts= is a list of strings, one per sample")
        prompts = list(prompts)
        if len(prompts) != len(items):
            raise UsageError(f"{len(items)} samples but {len(prompts)} prompts; give one "
                             "prompt per sample (nothing of this batch was added)")
        for i, text in enumerate(prompts):
            if not isinstance(text, str):
                raise UsageError(f"prompts[{i}] is {type(text).__name__}, not a string; "
                                 "nothing of this batch was added")
        for item, text in zip(items, prompts, strict=True):
            target = item.sample if self.modality == "audio" else item
            target.prompt = as_prompt(text)

    def _attach(self, items: list[Any], texts: Sequence[str] | None, speaker: Any,
                sample_rate: int | None) -> None:
        """Put each clip's transcript and speaker reference on it (audio only)."""
        from genmetrics.io.audio import AudioClip
        from genmetrics.io.common import Unusable

        if self.modality != "audio":
            raise UsageError("texts= and speaker_reference= are for audio (text-to-speech)")
        if texts is not None:
            if isinstance(texts, str):
                raise UsageError("texts= is a list of strings, one per clip")
            texts = list(texts)
            _same_length(items, texts)
            for i, text in enumerate(texts):
                if not isinstance(text, str):
                    raise UsageError(f"texts[{i}] is not a string")
        speakers: list[Any] = []
        if speaker is not None:
            one = isinstance(speaker, np.ndarray) and speaker.ndim == 1 or (
                hasattr(speaker, "dim") and speaker.dim() == 1)
            waves = _waveforms([speaker] if one else speaker)
            clips = [AudioClip("speaker", w, int(sample_rate)) for w in waves]  # type: ignore[arg-type]
            speakers = clips * len(items) if one else clips
            _same_length(items, speakers)
        for i, item in enumerate(items):
            clip = item.sample
            if texts is not None:
                clip.text = texts[i].strip() or Unusable("empty transcript")
            if speakers:
                clip.speaker = speakers[i]

    def _items(self, samples: Any, references: Any, sample_rate: int | None) -> list[Any]:
        from genmetrics.distributed import world

        rank, size = world() if self.sync == "auto" else (0, 1)
        prefix = f"r{rank}-" if size > 1 else ""  # ids made up here: not in the digests
        if self.modality == "image":
            from genmetrics.io.image import ImageItem

            images = _images(samples)
            refs = _images(references) if references is not None else [None] * len(images)
            _same_length(images, refs)
            return [ImageItem(f"{prefix}{self._count + i}", im, ref, synthetic_id=True)
                    for i, (im, ref) in enumerate(zip(images, refs, strict=True))]
        if self.modality == "audio":
            from genmetrics.io.audio import AudioClip, AudioPair, align

            if sample_rate is None:
                raise UsageError("audio batches need sample_rate=, e.g. update(wave, clean, "
                                 "sample_rate=16000)")
            waves = _waveforms(samples)
            clean = _waveforms(references) if references is not None else [None] * len(waves)
            _same_length(waves, clean)
            items = []
            for i, (wave, ref) in enumerate(zip(waves, clean, strict=True)):
                key = f"{prefix}{self._count + i}"
                clip = AudioClip(key, wave, sample_rate)
                pair = (AudioPair(key, clip, None) if ref is None else
                        align(clip, AudioClip(key, ref, sample_rate)))
                pair.synthetic_id = True
                items.append(pair)
            return items
        from genmetrics.io.text import TextPair

        if isinstance(samples, str):
            raise UsageError("text samples are a list of strings, not one string")
        texts = list(samples)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise UsageError(f"text sample {i} of the batch is {type(text).__name__}, not "
                                 "a string; nothing of this batch was added")
        refs_per = [[] for _ in texts] if references is None else [
            [r] if isinstance(r, str) else list(r) if isinstance(r, (list, tuple)) else [r]
            for r in references]
        for i, refs in enumerate(refs_per):
            if any(not isinstance(r, str) for r in refs):
                raise UsageError(f"the references of text sample {i} are not strings (give "
                                 "one string or a list of strings per sample); nothing of "
                                 "this batch was added")
        _same_length(texts, refs_per)
        return [TextPair(f"{prefix}{self._count + i}", t, r, synthetic_id=True)
                for i, (t, r) in enumerate(zip(texts, refs_per, strict=True))]

    # -- results ----------------------------------------------------------------------
    def compute(self) -> Scorecard:
        """The scorecard of every batch since the last :meth:`reset`: of all ranks together
        under ``sync="auto"`` (call it on every rank), of this process's alone under
        ``sync="none"``."""
        from genmetrics.distributed import world
        from genmetrics.runner import _compute, assemble_scorecard, gather_pass

        run = copy.copy(self._run)  # compute() may run often: it must not change the pass
        run.errors = dict(run.errors)
        run.warnings, run.ids, run.skipped = list(run.warnings), list(run.ids), list(run.skipped)
        active = dict(self._active)
        size = world()[1] if self.sync == "auto" else 1
        distributed = size > 1
        if distributed and self._slices is not None:
            raise UsageError("group_by with several processes is not supported yet: gather "
                             "the batches and use Evaluator(..., sync=\"none\")")
        if distributed:
            self._note_identical_ranks(run, size)
        saved = {n: copy.deepcopy(m.state) for n, m in active.items()} if distributed else {}
        try:
            if distributed:
                gather_pass(run, active)
            with _inference_mode(), using_device(self.device):
                results, sample_stats = _compute(active, run, self._has_references,
                                                 self.per_sample, self.bootstrap, self.seed)
        finally:
            if distributed:  # keep this rank's own state: more batches may come
                for name, state in saved.items():
                    self._metrics[name].state = state
        inputs: dict[str, Any] = {"samples": {"path": "(in memory)", "count": len(run.ids),
                                              "digest": run.sample_digest.hexdigest()}}
        if self._has_references:
            inputs["reference"] = {"path": "(in memory)",
                                   "digest": run.refs_digest()}
        if self.reference_stats is not None:
            inputs["reference_stats"] = self.reference_stats.input_doc()
        if self._slices is not None:  # the reference distribution of every slice is the run's
            self._slices.share_reference(self._metrics)
        with _inference_mode(), using_device(self.device):  # slices may compute here
            card = assemble_scorecard(self.modality, inputs, results, sample_stats, run,
                                      dict(self.unavailable), self.per_sample, self._started)
        if not distributed:  # this process's samples alone, whatever torch.distributed says
            card.environment.pop("processes", None)
        return card

    def _note_identical_ranks(self, run: Any, size: int) -> None:
        """Under ``sync="auto"``: when every rank holds the very same samples (inputs
        gathered already, e.g. by Hugging Face ``Trainer``), say so (one small
        ``all_gather`` of this rank's count and sample digest). The result is left as
        asked for: every rank's samples, n = ``size`` x as many."""
        from genmetrics import distributed

        mine = (self._count, self._run.sample_digest.hexdigest())
        everyone = distributed.all_gather(mine)
        if not self._count or any(other != mine for other in everyone):
            return
        message = (f"all {size} ranks of torch.distributed hold the same {self._count} "
                   f"samples, so the scorecard counts each of them {size} times (n = "
                   f"{size * self._count}): inputs gathered already (Hugging Face Trainer's "
                   "compute_metrics, all_gather-ed outputs) need Evaluator(..., "
                   "sync=\"none\"); shards of a DistributedSampler need sync=\"auto\"")
        run.warnings.append({"path": "(in memory)", "message": message})
        if not self._warned_duplicates and distributed.world()[0] == 0:  # once, not per rank
            self._warned_duplicates = True
            warnings.warn(message, UserWarning, stacklevel=3)

    def close(self) -> None:
        """Release worker pools and models held by the metrics (and finish the files of
        rows kept for bootstrap intervals)."""
        for metric in self._metrics.values():
            metric.close()
        if self._row_store is not None:
            self._row_store.close()

    def __repr__(self) -> str:
        return (f"Evaluator({list(self._metrics)}, modality={self.modality!r}, "
                f"sync={self.sync!r})")


def _set_where_known(names: Sequence[str], options: dict[str, dict[str, Any]], option: str,
                     value: Any, modality: str | None = None) -> None:
    from genmetrics.registry import get_metric

    for name in names:
        if get_metric(name, modality).takes_run_option(option, options.get(name, {})):
            options[name] = {option: value, **options.get(name, {})}


def _same_length(samples: Sequence[Any], references: Sequence[Any]) -> None:
    if len(samples) != len(references):
        raise UsageError(f"{len(samples)} samples but {len(references)} references; give one "
                         "reference per sample")


#: how far a float image may stray outside [0, 1] (audio outside [-1, 1]) by rounding; a
#: value further out is an error, never clipped (0-255 floats would lose most contrast)
FLOAT_TOLERANCE = 1e-3


def _images(batch: Any) -> list[Any]:
    """``N x 3 x H x W`` (tensor or array; uint8, or float in [0, 1]) -> uint8 CPU tensors.

        >>> import torch
        >>> try:
        ...     _images(torch.full((1, 3, 2, 2), 255.0))
        ... except UsageError as exc:
        ...     print(str(exc).split(";")[0])
        float images must be in [0, 1]
    """
    import torch

    if isinstance(batch, (list, tuple)):
        for i, item in enumerate(batch):
            if not hasattr(item, "shape"):
                raise UsageError(f"image {i} of the batch is {type(item).__name__}, not a "
                                 "tensor or array; nothing of this batch was added")
        return [t for item in batch for t in _images(item[None] if _ndim(item) == 3 else item)]
    if not hasattr(batch, "shape"):
        raise UsageError(f"images must be an N x 3 x H x W tensor or array, or a list of them; "
                         f"got {type(batch).__name__}")
    tensor = torch.as_tensor(batch)
    if tensor.dim() != 4 or tensor.shape[1] not in (1, 3):
        raise UsageError(f"images must be N x 3 x H x W (or N x 1 x H x W); got shape "
                         f"{tuple(tensor.shape)}")
    tensor = tensor.detach()
    if tensor.dtype != torch.uint8:
        if not tensor.is_floating_point():
            raise UsageError(f"images must be uint8 or float in [0, 1], not {tensor.dtype}")
        if not torch.isfinite(tensor).all():
            raise UsageError("images contain NaN or Inf")
        low, high = float(tensor.min()), float(tensor.max())
        if low < -FLOAT_TOLERANCE or high > 1 + FLOAT_TOLERANCE:  # never clipped silently
            hint = ("pass uint8, or divide by 255" if high > 1 + FLOAT_TOLERANCE and low >= 0
                    else "images in [-1, 1]: pass (x + 1) / 2" if low >= -1 - FLOAT_TOLERANCE
                    else "pass uint8, or scale them into [0, 1]")
            raise UsageError(f"float images must be in [0, 1]; got min {low:g}, max {high:g} "
                             f"-- {hint}")
        tensor = (tensor.float().clamp(0, 1) * 255).round().to(torch.uint8)
    if tensor.shape[1] == 1:
        tensor = tensor.expand(-1, 3, -1, -1)
    tensor = tensor.cpu()
    return [t.contiguous() for t in tensor]


def _ndim(item: Any) -> int:
    return len(getattr(item, "shape", ()))


def _waveforms(batch: Any) -> list[np.ndarray]:
    """``B x T`` (tensor, array or list of 1-d arrays) -> float64 arrays."""
    if hasattr(batch, "detach"):
        batch = batch.detach().cpu().double().numpy()
    if isinstance(batch, (list, tuple)):
        for i, w in enumerate(batch):
            if w is None or isinstance(w, (str, bytes)):
                raise UsageError(f"waveform {i} of the batch is {type(w).__name__}, not an "
                                 "array; nothing of this batch was added")
    rows = [np.asarray(w, dtype=np.float64).reshape(-1) for w in batch] \
        if isinstance(batch, (list, tuple)) or np.ndim(batch) == 2 else None
    if rows is None:
        raise UsageError(f"waveforms must be B x T; got shape {np.shape(batch)}")
    for i, row in enumerate(rows):
        if not np.isfinite(row).all():
            raise UsageError(f"waveform {i} contains NaN or Inf")
        peak = float(np.abs(row).max()) if row.size else 0.0
        if peak > 1 + FLOAT_TOLERANCE:  # never clipped silently
            raise UsageError(f"waveform {i}: float audio must be in [-1, 1]; got peak {peak:g} "
                             "-- divide integer PCM by its full scale (32768 for int16)")
    return rows


def _inference_mode() -> Any:
    import sys

    torch = sys.modules.get("torch")
    return torch.inference_mode() if torch is not None else nullcontext()
