"""The runner: read inputs in batches, feed every chosen metric, build the scorecard.

    >>> from genmetrics.runner import score
    >>> card = score("demo/text/samples", reference="demo/text/references",
    ...              metrics=["bleu"], options={"bleu": {"tokenize": "intl"}})
    >>> card.metrics["bleu"].signature["tokenize"]
    'intl'

Inputs are streamed: only one batch of samples is in memory at a time; metrics keep
their sufficient statistics (plus per-sample values for paired metrics).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from genmetrics.errors import GenmetricsError, InputError, MetricUnavailable, UsageError
from genmetrics.inputs import PER_ITEM, Inputs
from genmetrics.io.common import Digest, Skipped, first_few
from genmetrics.metric import MODALITIES, Metric
from genmetrics.registry import canonical, get_metric, targets
from genmetrics.scorecard import Scorecard
from genmetrics.stats import DEFAULT_SEED, Resampling

PathLike = str | os.PathLike[str]
ProgressCallback = Callable[[int], None]
DEFAULT_BATCH_SIZE = 256
DEFAULT_IMAGE_BATCH_SIZE = 64

TEXT_SUFFIXES = {".txt", ".jsonl"}


def detect_modality(samples: Path) -> str:
    """Guess the modality from file suffixes; ask for ``--modality`` when unsure.

    In a folder the kind with the most files wins (text first on a tie, then audio).
    A ``.txt`` of the same name as a clip or image beside it (``1.wav`` + ``1.txt``,
    ``1.png`` + ``1.txt``) is that file's transcript or caption, not a text sample, and
    is not counted: such a folder is audio or image.
    """
    from genmetrics.io.image import ARRAY_SUFFIXES, IMAGE_SUFFIXES

    if samples.is_file() and samples.suffix in TEXT_SUFFIXES:
        return "text"
    if samples.is_file() and samples.suffix.lower() in ARRAY_SUFFIXES:
        return "image"
    if samples.is_dir():
        from genmetrics.io.audio import AUDIO_SUFFIXES

        counts = {"text": 0, "audio": 0, "image": 0}  # in this order on a tie
        media: set[Path] = set()  # clips and images, without their suffix
        txt: list[Path] = []
        for path in samples.rglob("*"):
            suffix = path.suffix.lower()
            if suffix == ".txt":
                txt.append(path.with_suffix(""))
            elif suffix in TEXT_SUFFIXES:
                counts["text"] += 1
            elif suffix in AUDIO_SUFFIXES:
                counts["audio"] += 1
                media.add(path.with_suffix(""))
            elif suffix in IMAGE_SUFFIXES:
                counts["image"] += 1
                media.add(path.with_suffix(""))
        # a transcript or caption beside its clip or image is not a text sample
        counts["text"] += sum(stem not in media for stem in txt)
        best = max(counts.values())
        if best:
            return next(m for m, c in counts.items() if c == best)
    raise UsageError(f"cannot tell the modality of {samples}; pass --modality text|image|audio")


def default_metrics(modality: str, have_references: bool,
                    have_reference_set: bool | None = None,
                    provides: frozenset[str] = frozenset()) -> list[str]:
    """Registered metrics of ``modality`` that can run with the given inputs.

    ``have_references``: samples are paired with references (paired metrics can run);
    ``have_reference_set``: a reference distribution exists (a folder or statistics, for
    FID and KID); by default the same as ``have_references``. ``provides``: the per-item
    inputs the samples carry (transcripts, speaker references): a metric that
    ``needs`` them runs when they are all there, references or not. Metrics with
    ``default=False`` run only when named; one with ``default_with_references=False``
    (DNSMOS) is left out when there are references and no ``provides``.

        >>> "dnsmos" in default_metrics("audio", False)
        True
        >>> "dnsmos" in default_metrics("audio", True)
        False
    """
    if have_reference_set is None:
        have_reference_set = have_references
    names = []
    for name in targets():
        try:
            spec = get_metric(name, modality).spec
        except GenmetricsError:
            continue
        if spec.modality != modality or not spec.default:
            continue
        if have_references and not provides and not spec.default_with_references:
            continue
        if spec.needs:
            if set(spec.needs) <= provides:
                names.append(name)
            continue
        if spec.kind == "paired" and not have_references:
            continue
        if spec.reference_set and not have_reference_set:
            continue
        names.append(name)
    return names


def build_metrics(
    names: Sequence[str], modality: str, options: dict[str, dict[str, Any]], have_refs: bool,
    *, have_reference_set: bool | None = None, pairing_problem: str | None = None,
    explicit: bool = True, unavailable: dict[str, str] | None = None,
    provides: frozenset[str] | None = None,
) -> dict[str, Metric]:
    """Instantiate and check the metrics before any input is read.

    A metric whose ``preflight`` raises :class:`MetricUnavailable` is an error when it
    was asked for by name (``explicit``); otherwise it is left out and its reason is
    recorded in ``unavailable``, as is a default metric given no options whose
    ``default_unavailable`` gives a reason (perplexity while its LM is not built).
    ``provides``: per-item inputs the samples carry (``None``: any, as the Evaluator,
    whose batches bring them); a metric that ``needs`` one that is absent is an error.
    Options not given to a metric with ``options_from`` come from that metric's (``cer``
    takes ``--set wer.asr=...``).
    """
    from genmetrics.errors import MetricUnavailable

    if have_reference_set is None:
        have_reference_set = have_refs
    names = canonical(names)  # aliases (``precision``) name their metric, once
    options = merge_alias_options(options, modality)
    shared = {getattr(get_metric(n, modality), "options_from", None) for n in names}
    unknown_opts = sorted(set(options) - set(names) - shared)
    if unknown_opts:
        raise UsageError(f"options given for metric(s) not being run: {', '.join(unknown_opts)}")
    metrics = {}
    for name in names:
        cls = get_metric(name, modality)
        if cls.spec.modality != modality:
            raise UsageError(f"{name} is a {cls.spec.modality} metric, not {modality}")
        if cls.spec.needs:
            absent = [n for n in cls.spec.needs if provides is not None and n not in provides]
            if absent:
                raise UsageError(f"{name} needs each sample's {' and '.join(absent)}: "
                                 f"{'; '.join(NEEDS_HELP[n] for n in absent)}")
        elif cls.spec.kind == "paired" and not have_refs:
            raise UsageError(f"{name} compares each sample with its references; "
                             f"{pairing_problem or 'pass --reference'}")
        if cls.spec.reference_set and not have_reference_set:
            raise UsageError(f"{name} compares with a reference distribution; pass "
                             "--reference refs/ or --reference-stats NAME")
        given = dict(options.get(name, {}))
        source = getattr(cls, "options_from", None)
        if source in options:  # shared settings (cer follows --set wer.asr=...)
            known = {o.name for o in cls.spec.options}
            given = {**{k: v for k, v in options[source].items() if k in known}, **given}
        metrics[name] = cls(**given)
    for name, metric in list(metrics.items()):
        reason = None if explicit or name in options else metric.default_unavailable()
        if reason:
            if unavailable is not None:
                unavailable[name] = reason
            del metrics[name]
    _check_assets(metrics)
    for name, metric in list(metrics.items()):
        try:
            metric.preflight()
        except MetricUnavailable as exc:
            if explicit:
                raise UsageError(f"{name} is unavailable: {exc}") from None
            if unavailable is not None:
                unavailable[name] = str(exc)
            del metrics[name]
    return metrics


#: how to give each per-item input a metric can ``need``
NEEDS_HELP = {
    "transcript": "put a .txt of the same name beside each clip or pass --transcripts "
                  'texts.jsonl (one {"id": ..., "text": ...} per line)',
    "speaker_reference": "pass --speaker-reference prompt.wav (one file for all clips) or "
                         "a folder of recordings paired with the clips by name",
    "prompt": 'pass --prompts prompts.jsonl (one {"id": ..., "prompt": ...} per line) or, '
              "for images, put a .txt of the same name beside each image",
}


def merge_alias_options(options: dict[str, dict[str, Any]],
                        modality: str | None = None) -> dict[str, dict[str, Any]]:
    """Per-metric options with aliases folded into their metric: ``--set precision.mode=x
    --set recall.k=5`` both reach ``precision_recall``; one option set to two values
    under two spellings is a usage error naming both.

    >>> merge_alias_options({"precision": {"mode": "exact"}, "recall": {"k": "5"}})
    {'precision_recall': {'mode': 'exact', 'k': '5'}}
    """
    merged: dict[str, dict[str, Any]] = {}
    spelled: dict[tuple[str, str], str] = {}  # (metric, option) -> the spelling that set it
    for name, opts in options.items():
        target = canonical([name])[0]
        into = merged.setdefault(target, {})
        for key, value in opts.items():
            first = spelled.setdefault((target, key), name)
            if key in into and not _same_option(target, key, into[key], value, modality):
                raise UsageError(f"--set {first}.{key}={into[key]} and --set {name}.{key}="
                                 f"{value} both set {target}.{key}, to different values")
            into[key] = value
    return merged


def _same_option(metric: str, key: str, a: Any, b: Any, modality: str | None = None) -> bool:
    """Whether two values of one option are the same once parsed (``5`` and ``"5"``); as
    given when the metric, the option or a value is unknown or bad (reported later)."""
    try:
        parse = get_metric(metric, modality).spec.option(key).parse
        return bool(parse(a) == parse(b))
    except (GenmetricsError, TypeError, ValueError):
        return bool(a == b)


def _check_assets(metrics: dict[str, Metric]) -> None:
    """Fail fast, before reading any input, listing every missing asset and its command."""
    needed = sorted({a for m in metrics.values() for a in m.required_assets()})
    if not needed:
        return
    from genmetrics.assets import AssetMissingError, missing

    problems = missing(needed)
    if problems:
        raise AssetMissingError("missing assets: " + " | ".join(problems))


def environment() -> dict[str, str]:
    import numpy

    from genmetrics import __version__

    return {
        "genmetrics": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "numpy": numpy.__version__,
        "device": _device_description(),
        **_processes(),
    }


def _processes() -> dict[str, str]:
    from genmetrics.distributed import world

    size = world()[1]
    return {"processes": f"{size} (torch.distributed)"} if size > 1 else {}


def _device_description() -> str:
    """The accelerator torch would use, when torch is loaded (it is not for most text runs)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return f"cuda:0 {torch.cuda.get_device_name(0)}"
    return "cpu"


def _describe(exc: Exception) -> str:
    """An error message for the scorecard: ours as they are, others with their type."""
    return str(exc) if isinstance(exc, GenmetricsError) else f"{type(exc).__name__}: {exc}"


def add_confidence_intervals(
    metric: Metric, results: dict[str, Any], rows: dict[str, Any], replicates: int, seed: int
) -> None:
    """Set ``ci95`` (a 95% percentile interval) on each result of ``metric`` that has
    resampling rows (paired metrics: :meth:`~genmetrics.metric.Metric.bootstrap_rows`)."""
    from genmetrics.stats import bootstrap_values, percentile_interval

    for name, result in results.items():
        if name not in rows or rows[name].shape[0] < 2:
            continue

        def value(totals: Any, n: int, name: str = name) -> Any:
            return metric.value_from_totals(name, totals, n)

        values = bootstrap_values(rows[name], value, replicates, seed)
        values = values[np.isfinite(values)]
        if values.size:
            result.ci95 = percentile_interval(values)
            result.signature["bootstrap"] = replicates
            result.signature["bootstrap_seed"] = seed


def rerun_method(replicates: Any) -> str:
    """The signature's ``ci_method`` of a rerun interval made from ``replicates`` (a
    :class:`~genmetrics.stats.Replicates`).

    >>> from genmetrics.stats import Replicates
    >>> rerun_method(Replicates(np.zeros(2), method="exact (gram)", resampled="samples"))
    'rerun 95%: value ± 1.96·√2·SE; bootstrap over samples; exact (gram)'
    >>> rerun_method(Replicates(np.zeros(2), method="half-sampling: exact (gram)"))
    'rerun 95%: value ± 1.96·√2·SE; half-sampling over samples; exact (gram)'
    """
    scheme, method = "bootstrap", replicates.method
    if method.startswith("half-sampling"):  # FID, sFID: halves drawn without replacement
        scheme, _, method = method.partition(": ")
    text = f"rerun 95%: value ± 1.96·√2·SE; {scheme} over {replicates.resampled}"
    return text if method in ("bootstrap", scheme, "") else f"{text}; {method}"


def add_rerun_intervals(metric: Metric, results: dict[str, Any], resampling: Any) -> list[str]:
    """Distribution metrics: set ``ci95`` from :meth:`~genmetrics.metric.Metric.
    bootstrap_replicates` -- the rerun interval ``value ± 1.96·√2·SE`` clipped to the
    metric's range (see :mod:`genmetrics.stats`) -- with ``bootstrap``,
    ``bootstrap_seed`` and ``ci_method`` in the signature and ``components["interval"]`` = ``{"se",
    "replicates", "resampled", "method"}``. Returns the names of the results given one
    (none when the metric has no replicates)."""
    import math

    from genmetrics.stats import rerun_interval

    found = metric.bootstrap_replicates(resampling) or {}
    done = []
    for name, replicates in found.items():
        result = results.get(name)
        se = replicates.standard_error()
        if result is None or not math.isfinite(se) or not math.isfinite(result.value):
            continue
        result.ci95 = rerun_interval(result.value, se, metric.result_range(name))
        result.signature["bootstrap"] = resampling.replicates
        result.signature["bootstrap_seed"] = resampling.seed
        result.signature["ci_method"] = rerun_method(replicates)
        result.components["interval"] = {"se": se, "replicates": resampling.replicates,
                                         "resampled": replicates.resampled,
                                         "method": replicates.method}
        done.append(name)
    return done


def start_row_store(active: dict[str, Metric], bootstrap: int) -> Any:
    """With ``bootstrap > 0``: a new run's :class:`~genmetrics.features.rowstore.RowStore`,
    after telling every metric to keep what its intervals need
    (:meth:`~genmetrics.metric.Metric.prepare_bootstrap`); None otherwise. Its folder is
    made only when a metric keeps rows."""
    if not bootstrap:
        return None
    from genmetrics.features.rowstore import RowStore

    store = RowStore.create()
    for metric in active.values():
        metric.prepare_bootstrap(store)
    return store


def _open_source(modality: str, inputs: Inputs) -> Any:
    """The reader of ``inputs``' samples; each per-item input given (transcripts, speaker
    references, prompts...) goes to the reader under its field name."""
    inputs.check(modality)
    per_item = inputs.per_item()
    if modality == "text":
        from genmetrics.io.text import open_text

        return open_text(inputs.samples, list(inputs.references))
    if modality == "audio":
        from genmetrics.io.audio import open_audio

        return open_audio(inputs.samples, list(inputs.references), **per_item)
    from genmetrics.io.image import ImageSource

    return ImageSource(inputs.samples, list(inputs.references), workers=inputs.workers,
                       **per_item)


@dataclass
class _Pass:
    """What one pass over the inputs collects besides the metric states."""

    ids: list[str] = field(default_factory=list)
    batches: int = 0  # batches of samples fed so far (not of a reference distribution)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    #: metrics whose compute raised MetricUnavailable (e.g. fewer images than a k-NN
    #: metric's k): errors when asked for by name, else listed as unavailable
    unavailable_now: set[str] = field(default_factory=set)
    sample_digest: Digest = field(default_factory=Digest)
    reference_digest: Digest = field(default_factory=Digest)  # references paired with samples
    #: (input, metrics needing it) -> ids of samples without it (:func:`_skip_for_needs`)
    missing_needs: dict[tuple[str, tuple[str, ...]], list[str]] = field(default_factory=dict)
    #: per-item inputs some metrics need (transcripts, speaker references), each digested
    #: on its own and recorded only in the signatures of the metrics that need it
    need_digests: dict[str, Digest] = field(default_factory=lambda: defaultdict(Digest, {
        need: Digest() for need, _, _ in PER_ITEM.values()}))
    #: the reference distribution (FID/KID's reference folder), fed in its own pass
    reference_set_digest: Digest = field(default_factory=Digest)
    used_reference_set: bool = False
    #: ids of the reference distribution's images in the order the metrics' update_reference
    #: received them (a reference folder's sorted files; every rank's block in rank order);
    #: None when the references have no names (statistics, the Evaluator's batches)
    reference_ids: list[str] | None = None
    #: where the images of unnamed reference rows are (``{"path", "array"}``: an ADM
    #: reference batch's ``arr_0``), for ``per_sample.nearest_reference``; None otherwise
    reference_images: dict[str, str] | None = None
    on_error: str = "skip"  # "fail": the first unusable input stops the run
    feature_cache: Any = None  # a FeatureCache for image runs, None otherwise
    cache_hits: int = 0  # images whose Inception features came from the cache
    extracted: int = 0  # images that went through the network
    discover_s: float = 0.0  # finding and pairing the input files
    read_s: float = 0.0  # waiting for decoded inputs (decode runs in workers)
    model_s: float = 0.0  # feature networks shared between metrics (Inception)
    metric_s: float = 0.0  # the metrics' own work (their update and compute)
    #: a genmetrics.diagnostics collector, given every batch of scored samples; None: off
    diagnostics: Any = None
    diagnostics_s: float = 0.0
    #: where feature rows kept for bootstrap intervals go (a RowStore); None: bootstrap off
    row_store: Any = None
    interval_s: float = 0.0  # bootstrap replicates of the distribution metrics (in metric_s)
    #: ``--group-by``: the per-slice metrics (a :class:`genmetrics.slices.Slices`), fed
    #: the slice's items of every batch; None: no slices
    slices: Any = None
    #: metric -> the names of the results its compute gave
    outputs: dict[str, list[str]] = field(default_factory=dict)

    def refs_digest(self) -> str:
        """What the results' ``refs`` and the scorecard's reference digest record: the
        reference distribution when one was read (it holds the paired files too)."""
        chosen = self.reference_set_digest if self.used_reference_set else self.reference_digest
        return chosen.hexdigest()

    def needs_digest(self, needs: Sequence[str]) -> str:
        """The ``refs`` of a metric that needs per-item inputs: the digest of that input
        (of several, a sha256 of their digests in order)."""
        digests = [self.need_digests[n].hexdigest() for n in needs]
        if len(digests) == 1:
            return digests[0]
        return "sha256:" + hashlib.sha256("\n".join(digests).encode()).hexdigest()


def _check_arguments(batch_size: int, bootstrap: int, seed: int) -> None:
    if batch_size < 1:
        raise UsageError("batch size must be at least 1")
    if bootstrap < 0 or bootstrap == 1:
        raise UsageError("--bootstrap takes the number of replicates (0 = off, else >= 2; "
                         "1000 is usual)")
    if seed < 0:
        raise UsageError("--seed must be a whole number >= 0")


#: a test hook: ``GENMETRICS_TEST_HOLD=batch:N`` pauses a run after its N-th batch of
#: samples (``written``: after the CLI wrote the scorecard), so that a test can interrupt
#: it at a known point instead of racing it
TEST_HOLD_ENV = "GENMETRICS_TEST_HOLD"
TEST_HOLD_S = 120.0


def hold_for_test(point: str, until: Callable[[], bool] = lambda: False) -> None:
    """Sleep at ``point`` while ``GENMETRICS_TEST_HOLD`` names it, until ``until()`` is
    true or :data:`TEST_HOLD_S` passed (a signal's exception ends it at once)."""
    if os.environ.get(TEST_HOLD_ENV) != point:
        return
    deadline = time.monotonic() + TEST_HOLD_S
    while not until() and time.monotonic() < deadline:
        time.sleep(0.02)


def _feed(source: Any, active: dict[str, Metric], batch_size: int,
          advance: ProgressCallback | None, *, run: _Pass | None = None,
          batch_type: Callable[[list[Any]], Sequence[Any]] = list,
          reference_pass: bool = False) -> _Pass:
    """Read ``source`` a batch at a time and update every metric; a metric that raises is
    dropped and recorded under ``errors``, the others go on.

    ``reference_pass``: the items are a reference distribution (FID, KID), given to
    ``update_reference``; they count in the reference digest, not as samples.
    """
    run = run if run is not None else _Pass()
    items = iter(source)
    while True:
        t0 = time.perf_counter()
        batch = list(islice(items, batch_size))
        run.read_s += time.perf_counter() - t0
        if not batch:
            return run
        pairs = [b for b in batch if not isinstance(b, Skipped)]
        for item in batch:
            if isinstance(item, Skipped):
                skipped = (Skipped(item.path, f"reference image: {item.reason}")
                           if reference_pass else item)
                if run.on_error == "fail":
                    raise InputError(f"{skipped.path}: {skipped.reason} (stopped by --on-error "
                                     "fail; the default, skip, scores the rest and lists this "
                                     "file under skipped)")
                run.skipped.append(skipped)
        for pair in pairs:
            sample_parts, reference_parts = pair.digest_parts()
            if pair.warning:
                run.warnings.append({"path": f"reference {pair.id}" if reference_pass
                                     else pair.id, "message": pair.warning})
            if reference_pass:
                run.reference_set_digest.add(*sample_parts)
                run.used_reference_set = True
                if run.reference_ids is not None:
                    run.reference_ids.append(pair.id)
                continue
            run.ids.append(pair.id)
            run.sample_digest.add(*sample_parts)
            run.reference_digest.add(*reference_parts)
            for need, parts in (pair.need_parts() if hasattr(pair, "need_parts")
                                else {}).items():
                run.need_digests[need].add(*parts)
            _skip_for_needs(pair, active, run)
        if run.diagnostics is not None and not reference_pass:
            t0 = time.perf_counter()
            run.diagnostics.feed(pairs)  # an error there stops them, not the run
            run.diagnostics_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        metric_inputs = [p.metric_inputs() for p in pairs]
        batch_samples = batch_type([sample for sample, _ in metric_inputs])
        if hasattr(batch_samples, "attach_items"):  # images: content keys, cached features
            batch_samples.attach_items(pairs, run.feature_cache)
        batch_references = [references for _, references in metric_inputs]
        for name, metric in list(active.items()):
            try:
                if reference_pass:
                    metric.update_reference(batch_samples)
                else:
                    metric.update(batch_samples, batch_references)
            except Exception as exc:  # one metric failing must not lose the others
                run.errors[name] = _describe(exc)
                del active[name]
        if run.slices is not None and not reference_pass:  # the same decoded batch, the
            # same memoised features (the slices share the reference state at the end)
            run.slices.feed([p.id for p in pairs], batch_samples, batch_references, active)
        model_s = getattr(batch_samples, "shared_s", 0.0)
        run.model_s += model_s
        run.metric_s += time.perf_counter() - t0 - model_s
        run.cache_hits += getattr(batch_samples, "cache_hits", 0)
        run.extracted += getattr(batch_samples, "extracted", 0)
        if advance:
            advance(len(batch))
        if not reference_pass:
            run.batches += 1
            hold_for_test(f"batch:{run.batches}")


def _skip_for_needs(pair: Any, active: dict[str, Metric], run: _Pass) -> None:
    """Note a sample without a per-item input some metrics need (a transcript, a speaker
    reference). It is not under ``skipped`` (the other metrics score it): those metrics
    name it with the reason under their ``failed``, and :func:`_needs_notes` adds one
    run-level warning per input counting such samples."""
    missing = pair.missing() if hasattr(pair, "missing") else {}
    for need, _reason in missing.items():
        names = tuple(sorted(n for n, m in active.items() if need in m.spec.needs))
        if names:
            run.missing_needs.setdefault((need, names), []).append(pair.id)


def _needs_notes(run: _Pass) -> None:
    """One warning per missing per-item input (see :func:`_skip_for_needs`), once."""
    for (need, names), ids in run.missing_needs.items():
        note = {"path": need.replace("_", " "), "message": (
            f"{len(ids)} sample(s) have no usable {need.replace('_', ' ')}: not scored by "
            f"{', '.join(names)} (each named with its reason under their failed), scored by "
            f"the other metrics: {first_few(ids)}")}
        if note not in run.warnings:
            run.warnings.append(note)


def _feed_reference_set(source: Any, active: dict[str, Metric], batch_size: int,
                        batch_type: Callable[[list[Any]], Sequence[Any]],
                        advance: ProgressCallback | None, run: _Pass) -> None:
    """Give FID/KID-like metrics their reference distribution in a pass over the reference
    folder (reference statistics are given by :func:`_use_reference_stats` instead)."""
    wanting = {n: m for n, m in active.items() if m.spec.reference_set}
    run.reference_ids = []  # named by their files: the nearest reference of a sample
    _feed(source.reference_items(), wanting, batch_size, advance, run=run,
          batch_type=batch_type, reference_pass=True)
    for name in run.errors:  # a metric that failed on the references is out of the run
        active.pop(name, None)


def reads_references(spec: Any) -> bool:
    """Whether a metric's value depends on references: paired metrics and those with a
    reference distribution (FID, KID). Perplexity and Inception Score do not, so their
    signatures carry no references digest.

    >>> from genmetrics.registry import get_metric
    >>> reads_references(get_metric("bleu").spec), reads_references(get_metric("perplexity").spec)
    (True, False)
    """
    return spec.kind == "paired" or bool(spec.reference_set)


def _compute(active: dict[str, Metric], run: _Pass, have_refs: bool, per_sample: bool,
             bootstrap: int, seed: int) -> tuple[dict[str, Any], dict[str, list[list[float]]]]:
    """Results of every metric (with reference digest and CIs) and per-sample statistics."""
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    sample_stats: dict[str, list[list[float]]] = {}
    _needs_notes(run)
    for name, metric in active.items():
        try:
            computed = metric.compute(per_sample=per_sample)
        except Exception as exc:  # recorded under "errors"; the run exits 1
            run.errors[name] = _describe(exc)
            if isinstance(exc, MetricUnavailable):
                run.unavailable_now.add(name)
            continue
        run.warnings.extend({"path": name, "message": m} for m in metric.warnings())
        run.outputs[name] = list(computed)
        for result in computed.values():
            _name_failed(result.components, run.ids)
            _sign(metric, result, run, have_refs)
        if bootstrap or per_sample:
            rows = metric.bootstrap_rows() or {}
            if bootstrap and rows:
                add_confidence_intervals(metric, computed, rows, bootstrap, seed)
            elif bootstrap:  # distribution metrics: rerun intervals from their replicates
                _rerun_intervals(metric, name, computed, Resampling(bootstrap, seed), run)
            if per_sample:
                sample_stats.update({k: v.tolist() for k, v in rows.items()})
        results.update(computed)
    run.metric_s += time.perf_counter() - t0
    return results, sample_stats


def _sign(metric: Metric, result: Any, run: _Pass, have_refs: bool) -> None:
    """Put what a result was compared with (``refs``) into its signature."""
    if metric.spec.needs:  # wer, cer: the transcripts; speaker_sim: the speakers
        result.signature.setdefault("refs", run.needs_digest(metric.spec.needs))
    elif have_refs and reads_references(metric.spec):  # perplexity, IS: no refs
        result.signature.setdefault("refs", run.refs_digest())


def slices_document(run: _Pass, results: dict[str, Any]) -> Any:
    """The scorecard's ``slices`` (see :mod:`genmetrics.slices`), or None without
    ``--group-by``; a run-level warning counts samples in no slice. A slice's result
    was compared with what the overall one was (its ``refs``)."""
    if run.slices is None:
        return None

    def sign(metric: Metric, result: Any) -> None:
        overall = results.get(result.name)
        if overall is not None and "refs" in overall.signature:
            result.signature.setdefault("refs", overall.signature["refs"])

    t0 = time.perf_counter()
    doc = run.slices.compute(run.outputs, results, sign)
    run.metric_s += time.perf_counter() - t0
    if run.slices.unlabelled:
        run.warnings.append({"path": str(run.slices.source), "message": (
            f"{len(run.slices.unlabelled)} sample(s) have no {run.slices.field!r} there: in "
            f"the overall values only, in no slice: {first_few(run.slices.unlabelled)}")})
    return doc


def _rerun_intervals(metric: Metric, name: str, computed: dict[str, Any],
                     resampling: Any, run: _Pass) -> None:
    """:func:`add_rerun_intervals`, with a warning when the metric gets none (it cannot be
    bootstrapped, or its replicates failed: the value stands, without an interval)."""
    t0 = time.perf_counter()
    try:
        done = add_rerun_intervals(metric, computed, resampling)
    except Exception as exc:  # noqa: BLE001 - an interval lost, not the value
        run.warnings.append({"path": name, "message": (
            f"no confidence interval: the bootstrap of {name} failed: {_describe(exc)}")})
        return
    finally:
        run.interval_s += time.perf_counter() - t0
    if not done:  # said, not silently left out
        run.warnings.append({"path": name, "message": (
            f"no confidence interval: {name} does not support bootstrap resampling of its "
            "sufficient statistics")})


def _name_failed(components: dict[str, Any], ids: list[str]) -> None:
    """Give each ``failed`` entry of a paired metric (``{"index", "reason"}``) the id of
    its sample, which the metric does not know: ``{"index", "id", "reason"}``.

    >>> parts = {"failed": [{"index": 1, "reason": "silent reference: SNR undefined"}]}
    >>> _name_failed(parts, ["a", "b"]); parts["failed"][0]["id"]
    'b'
    """
    for entry in components.get("failed", ()):
        index = entry.get("index") if isinstance(entry, dict) else None
        if isinstance(index, int) and 0 <= index < len(ids) and "id" not in entry:
            rest = {k: entry.pop(k) for k in list(entry) if k != "index"}
            entry.update({"id": ids[index], **rest})  # index, id, reason


def _inputs_doc(samples: Path, references: list[Path], have_refs: bool, run: _Pass,
                reference_stats: Any = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"samples": {"path": str(samples), "count": len(run.ids),
                                       "digest": run.sample_digest.hexdigest()}}
    if have_refs:
        paths = [str(p) for p in references] or [f"{samples} (inline)"]
        doc["reference"] = {"path": paths if len(paths) > 1 else paths[0],
                            "digest": run.refs_digest()}
    if reference_stats is not None:
        doc["reference_stats"] = reference_stats.input_doc()
    if run.feature_cache is not None:
        doc["feature_cache"] = {"path": str(run.feature_cache.folder),
                                "hits": run.cache_hits, "extracted": run.extracted}
    return doc


def _load_reference_stats(reference_stats: PathLike | None, modality: str) -> Any:
    if reference_stats is None:
        return None
    if modality != "image":
        raise UsageError("--reference-stats is for image distribution metrics (FID, KID)")
    from genmetrics.reference_stats import load_stats

    return load_stats(reference_stats)


def _with_run_device(function: Callable[..., Scorecard]) -> Callable[..., Scorecard]:
    """Run ``score`` with its ``device`` as the run's device (:mod:`genmetrics.devices`):
    models read it where their own ``device`` option is ``auto``."""
    from genmetrics.devices import using_device

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Scorecard:
        with using_device(kwargs.get("device")):
            return function(*args, **kwargs)

    return run


def _check_device(device: str) -> None:
    """Refuse a device that cannot be used (``cuda`` with no GPU, a typo) before reading
    anything: a usage error, not every metric failing."""
    if device in ("auto", "cpu"):
        return
    from genmetrics.features.causal_lm import resolve_device

    resolve_device(device)


@_with_run_device
def score(
    samples: PathLike | Inputs,
    reference: PathLike | Sequence[PathLike] | None = None,
    *,
    modality: str | None = None,
    metrics: Sequence[str] | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    per_sample: bool = False,
    bootstrap: int = 0,
    seed: int = DEFAULT_SEED,
    batch_size: int | None = None,
    progress: Callable[[int], ProgressCallback] | None = None,
    reference_stats: PathLike | None = None,
    inception_weights: PathLike | None = None,
    device: str | None = None,
    workers: int | None = None,
    feature_cache: bool = True,
    on_error: str = "skip",
    diagnostics: bool = True,
    transcripts: PathLike | None = None,
    speaker_reference: PathLike | None = None,
    prompts: PathLike | None = None,
    metadata: PathLike | None = None,
    group_by: str | None = None,
) -> Scorecard:
    """Score a folder or file of samples against references; return a :class:`Scorecard`.

    What the run reads is one :class:`~genmetrics.inputs.Inputs`: pass it as
    ``samples`` (``score(Inputs.of("s/", "r/"), metrics=[...])``), or give its fields as
    keywords (``reference``, ``reference_stats``, ``transcripts``, ``speaker_reference``,
    ``prompts``, ``metadata``, ``group_by``, ``workers``, ``on_error``), which build it.

    ``options`` maps a metric name to its options, e.g. ``{"bleu": {"tokenize": "intl"}}``.
    ``progress``, if given, is called once with the number of samples and returns a
    callback that is then called with the number of samples done in each batch.
    Metrics that fail are listed in ``Scorecard.errors``; unreadable samples in
    ``Scorecard.skipped``. ``bootstrap=N`` adds a 95% confidence interval to every
    resamplable result (``N`` replicates, ``seed``; both go into the signature): a
    percentile interval for paired metrics, a rerun interval (``value ± 1.96·√2·SE``,
    the method in the signature's ``ci_method``) for distribution metrics, whose feature
    rows are then kept in memory-mapped files named by ``Scorecard.rows``.
    ``per_sample`` also stores each result's per-sample statistics, which the gate's
    paired significance test uses.

    Images: ``reference`` is a folder that supplies the pairs of SSIM/PSNR and, unless
    ``reference_stats`` (a name or ``.npz`` path, see :mod:`genmetrics.reference_stats`)
    is given, the reference distribution of FID and KID. ``inception_weights`` sets the
    ``weights`` option of every Inception-based metric; ``device`` is the run's device,
    which every model whose own ``device`` option is ``auto`` runs on (see
    :mod:`genmetrics.devices`); ``workers`` decode processes. ``batch_size`` defaults
    to 256 (text, audio) or 64 (images). ``on_error``: ``"skip"`` lists an unreadable
    input under ``skipped`` and scores the rest; ``"fail"`` stops at the first one with an
    :class:`InputError` naming it. ``feature_cache``: read and store Inception
    features by file content (see :mod:`genmetrics.features.cache`); a rerun on unchanged
    images then neither decodes them nor runs the network (it still decodes them when
    ``diagnostics`` is on, which needs their pixels).

    Audio from a text-to-speech model: ``transcripts`` (a JSON Lines file of ``{"id",
    "text"}``; else a ``.txt`` beside each clip) for ``wer``/``cer``, and
    ``speaker_reference`` (one file, or a folder paired by name) for ``speaker_sim``.

    ``diagnostics``: run the cheap failure-mode checks of :mod:`genmetrics.diagnostics`
    on the samples (repetition, blur, near-duplicates, clipping...); stored in
    ``Scorecard.diagnostics`` with their thresholds and the flagged samples' ids.

    ``Scorecard.timing`` records seconds per stage: ``discover_s`` (finding and pairing
    files), ``decode_s`` (waiting for decoded inputs), ``model_s`` (the shared Inception
    network), ``metric_s`` (the metrics' own work), ``write_s`` (set by whoever writes the
    scorecard) and ``total_s``.
    """
    started = time.perf_counter()
    given = {"reference_stats": reference_stats, "transcripts": transcripts,
             "speaker_reference": speaker_reference, "prompts": prompts,
             "metadata": metadata, "group_by": group_by, "workers": workers}
    if isinstance(samples, Inputs):
        both = [k for k, v in {"reference": reference, **given}.items() if v is not None]
        if both or on_error != "skip":
            raise UsageError("score(Inputs, ...): give "
                             f"{', '.join(both or ['on_error'])} in the Inputs, not as keywords")
        inputs = samples
    else:
        inputs = Inputs.of(samples, reference, on_error=on_error,
                           **{k: v for k, v in given.items() if v is not None})
    samples_path, ref_paths = inputs.samples, list(inputs.references)
    reference_stats, transcripts, speaker_reference = (
        inputs.reference_stats, inputs.transcripts, inputs.speaker_reference)
    workers, on_error = inputs.workers, inputs.on_error
    if not samples_path.exists():
        raise UsageError(f"{samples_path} does not exist")
    modality = modality or detect_modality(samples_path)
    if modality not in MODALITIES:
        raise UsageError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    if batch_size is None:
        batch_size = DEFAULT_IMAGE_BATCH_SIZE if modality == "image" else DEFAULT_BATCH_SIZE
    _check_arguments(batch_size, bootstrap, seed)
    inputs.check(modality)
    stats = _load_reference_stats(reference_stats, modality)
    if stats is not None:  # for the rows of an ADM batch's images, extracted on demand
        stats.progress, stats.use_feature_cache = progress, feature_cache
    discover_started = time.perf_counter()
    source = _open_source(modality, inputs)
    discover_s = time.perf_counter() - discover_started
    have_refs = source.has_references  # reference files, or references inline (jsonl)
    have_set = stats is not None or getattr(source, "has_reference_set", have_refs)
    provides = getattr(source, "provides", frozenset())  # transcripts, speaker references
    names = list(metrics) if metrics else default_metrics(modality, have_refs, have_set,
                                                          provides)
    if not names:
        raise UsageError(f"no {modality} metric can run on these inputs (see `genmetrics list`)")
    from genmetrics.distributed import init_from_environment, world

    # before any model is built: under torchrun this also picks the rank's GPU
    several = init_from_environment()
    options = dict(options or {})
    if inception_weights is not None:
        _set_everywhere(names, options, "weights", str(inception_weights), "--inception-weights "
                        "is for FID, KID and Inception Score; none of them is being run",
                        modality)
    if device is not None:  # the run's device (see genmetrics.devices), not copied into
        _set_everywhere(names, {k: dict(v) for k, v in options.items()}, "device", device,
                        "--device: none of the metrics being run has a device option",
                        modality)  # options: each metric's own device wins; here checked
        _check_device(device)
    unavailable: dict[str, str] = {}
    problem = source.pairing_problem() if hasattr(source, "pairing_problem") else None
    if not metrics and ref_paths and not have_refs:  # references given, but no pairs
        for name in default_metrics(modality, True, have_set):
            if name not in names:
                unavailable[name] = ("the references could not be paired with the "
                                     f"samples: {problem or 'give one per sample'}")
    active = build_metrics(names, modality, options, have_refs, have_reference_set=have_set,
                           pairing_problem=problem, explicit=bool(metrics),
                           unavailable=unavailable, provides=provides)
    _refresh_backbones()  # a user's module: the digest of its weights as they are now
    if stats is not None:
        _use_reference_stats(active, stats, explicit=bool(metrics), unavailable=unavailable)
    row_store = start_row_store(active, bootstrap)
    slices = _open_slices(inputs, active, modality, options, have_refs, have_set, provides,
                          stats, several)
    if hasattr(source, "strict_pairs"):  # a pair that cannot be compared stops the run
        source.strict_pairs = on_error == "fail"
    if hasattr(source, "pairs_needed"):  # decode references for pairing only when used
        source.pairs_needed = any(m.spec.kind == "paired" for m in active.values())
    batch_type = _batch_type(modality)
    run = _Pass(discover_s=discover_s, on_error=on_error,
                reference_images=stats.image_rows() if stats is not None else None,
                row_store=row_store, slices=slices)
    if diagnostics:
        from genmetrics.diagnostics import collector

        run.diagnostics = collector(modality)
    if hasattr(source, "feature_cache"):
        _plan_image_reads(source, active, run, feature_cache)
    if hasattr(source, "preprocessings"):
        _plan_preprocessing(source, active)
    if hasattr(source, "warnings"):
        run.warnings.extend(source.warnings())
    if several:  # one of several processes (torchrun): score a shard; its digests'
        source = _sharded(source, *world())  # item hashes are combined over ranks at the end

    needs_pass = stats is None and any(m.spec.reference_set for m in active.values())
    try:
        total = len(source) + (source.reference_count() if needs_pass else 0)
        advance = progress(total) if progress else None
        if needs_pass:
            _feed_reference_set(source, active, batch_size, batch_type, advance, run)
        _feed(source, active, batch_size, advance, run=run, batch_type=batch_type)
        gather_pass(run, active)
        _require_some_input(run)
        results, sample_stats = _compute(active, run, have_refs or needs_pass or bool(provides),
                                         per_sample, bootstrap, seed)
        if not metrics:  # the default set: a metric that cannot run on these inputs is left out
            for name in run.unavailable_now:
                unavailable[name] = run.errors.pop(name)
    finally:
        for metric in active.values():
            metric.close()
        if row_store is not None:
            row_store.close()
        if slices is not None:
            slices.close()

    if not results and not run.errors:
        raise InputError(_nothing_scored(modality, unavailable, bool(ref_paths or stats)))
    doc = _inputs_doc(samples_path, ref_paths, have_refs or needs_pass, run, stats)
    for key, (need, _, _) in PER_ITEM.items():  # the refs of the metrics that need it
        given = getattr(inputs, key)  # (wer/cer, speaker_sim, clipscore)
        if given is not None:
            doc[key] = {"path": str(given), "digest": run.need_digests[need].hexdigest()}
    return assemble_scorecard(modality, doc, results, sample_stats, run, unavailable,
                              per_sample, started)


def _open_slices(inputs: Inputs, active: dict[str, Metric], modality: str,
                 options: dict[str, dict[str, Any]], have_refs: bool, have_set: bool,
                 provides: frozenset[str], stats: Any, several: bool) -> Any:
    """``--group-by``: per-slice instances of the run's metrics (same options), or None."""
    source = inputs.slice_source()
    if source is None or inputs.group_by is None:
        return None
    if several:
        raise UsageError("--group-by runs in one process for now (not under torchrun)")
    from genmetrics.slices import Slices, read_labels

    labels = read_labels(source, inputs.group_by)
    names = list(active)
    opts = {k: v for k, v in merge_alias_options(options, modality).items() if k in names}

    def build(chosen: list[str]) -> dict[str, Metric]:
        return build_metrics(chosen, modality, {k: v for k, v in opts.items() if k in chosen},
                             have_refs, have_reference_set=have_set, provides=provides)

    slices = Slices(inputs.group_by, labels, source, active, build)
    if stats is not None:
        slices.use_reference_stats(stats)
    return slices


def _nothing_scored(modality: str, unavailable: dict[str, str], have_refs: bool) -> str:
    """Why a run produced no metric at all (an input error, exit 2: no empty scorecard)."""
    reasons = [f"{name} is unavailable: {reason}" for name, reason in unavailable.items()]
    if not have_refs:
        free = default_metrics(modality, False, False)
        for more, how in ((default_metrics(modality, False, True), "--reference refs/ or "
                           "--reference-stats NAME"),
                          (default_metrics(modality, True, False), "--reference refs/")):
            needing = [n for n in more if n not in free]
            if needing:
                reasons.append(f"{', '.join(needing)} need {how}")
    return "no metric produced a value, so no scorecard was written: " + "; ".join(
        reasons or ["no metric could run on these inputs"])


def _plan_image_reads(source: Any, active: dict[str, Metric], run: _Pass,
                      use_cache: bool) -> None:
    """Open the feature cache for the run's backbone metrics (one namespace per backbone
    provenance; several are read together as a :class:`~genmetrics.features.cache.CacheSet`)
    and tell the image source what it must decode: an image only the cache's metrics read
    is not decoded when every backbone's features of it are cached."""
    cached = [m for m in active.values() if m.uses_feature_cache]
    if not cached:
        return
    source.jpeg_device = _gpu_jpeg_device(source, active)
    if source.jpeg_device:
        run.warnings.append({"path": str(source.root), "message": (
            "JPEG files are decoded on the GPU (torchvision nvJPEG); their pixels may differ "
            "slightly from Pillow's, so the feature cache keeps them apart")})
    if not use_cache:
        return
    from genmetrics.features.backbones import cacheable
    from genmetrics.features.cache import PILLOW_DECODER, CacheSet

    decoder = "torchvision-cuda" if source.jpeg_device else PILLOW_DECODER
    namespaces: dict[str, Any] = {}  # one per backbone provenance (Inception, DINOv2, ...)
    uncached = []  # a backbone with no weights digest: nothing tells its weights apart
    for metric in cached:
        if not cacheable(metric.extractor):  # type: ignore[attr-defined]
            uncached.append(metric)
            continue
        key = json.dumps(metric.feature_provenance(), sort_keys=True)  # type: ignore[attr-defined]
        if key not in namespaces:
            namespaces[key] = metric.open_feature_cache(decoder)  # type: ignore[attr-defined]
    for name in sorted({m.backbone for m in uncached}):  # type: ignore[attr-defined]
        run.warnings.append({"path": str(source.root), "message": (
            f"backbone {name} has no weights digest (its signature's w is empty), so its "
            "features are not cached: set weights_digest on it to cache them")})
    opened = list(namespaces.values())
    if opened:
        run.feature_cache = source.feature_cache = opened[0] if len(opened) == 1 else \
            CacheSet(opened)
    source.pixels_needed = run.diagnostics is not None or bool(uncached) or any(
        not m.uses_feature_cache for m in active.values())
    source.reference_pixels_needed = any(
        m in uncached or not m.uses_feature_cache for m in active.values()
        if m.spec.reference_set)


def _plan_preprocessing(source: Any, active: dict[str, Metric]) -> None:
    """Have the decode workers preprocess each image for the run's backbones (Inception
    aside), once per preprocessing signature: samples for every metric's backbones,
    references for those of the metrics that read the reference set."""
    from genmetrics.errors import GenmetricsError
    from genmetrics.features.backbones import preprocessing_key

    def wanted(metrics: list[Metric]) -> list[Any]:
        found: dict[str, Any] = {}
        for metric in metrics:
            hook = getattr(metric, "image_backbones", None)
            try:
                backbones = hook() if hook is not None else []
            except (GenmetricsError, ImportError):  # reported by the metric's own pass
                continue
            for backbone in backbones:
                key = preprocessing_key(backbone)
                if key is not None:
                    found.setdefault(key, backbone.worker_preprocessing())
        return list(found.values())

    source.preprocessings = wanted(list(active.values()))
    source.reference_preprocessings = wanted(
        [m for m in active.values() if m.spec.reference_set])


def _refresh_backbones() -> None:
    """Each backbone's weights digest as its weights are now (a user's module may have
    changed in place since the last run), before any feature-cache namespace opens."""
    if "genmetrics.features.backbones" in sys.modules:  # else no backbone is loaded
        from genmetrics.features.backbones import refresh_backbones

        refresh_backbones()


def _gpu_jpeg_device(source: Any, active: dict[str, Metric]) -> str | None:
    """The CUDA device of the run's Inception network when only it reads pixels and there
    are JPEG files (then they are decoded there), else None."""
    if any(not m.uses_feature_cache for m in active.values()):
        return None  # SSIM/PSNR read CPU pixels, decoded by Pillow as scikit-image's are
    if not any(c is not None and c.jpeg_count for c in (source.samples, source.references)):
        return None
    devices = {str(m.extractor.device) for m in active.values()}  # type: ignore[attr-defined]
    device = devices.pop() if len(devices) == 1 else "cpu"
    return device if device.startswith("cuda") else None


def _use_reference_stats(active: dict[str, Metric], stats: Any, explicit: bool,
                         unavailable: dict[str, str]) -> None:
    """Give FID/KID the statistics; a metric they cannot serve (KID, when the file holds no
    feature rows) is an error if asked for by name, else left out as unavailable."""
    for name, metric in list(active.items()):
        if not metric.spec.reference_set:
            continue
        try:
            metric.use_reference_stats(stats)
        except UsageError as exc:
            if explicit:
                raise
            unavailable[name] = str(exc)
            del active[name]


def _require_some_input(run: _Pass) -> None:
    """Every input skipped: an input error (exit 2) naming the first reasons, not a run of
    failed metrics."""
    if run.ids or not run.skipped:
        return
    shown = "; ".join(f"{s.path}: {s.reason}" for s in run.skipped[:3])
    more = f"; and {len(run.skipped) - 3} more" if len(run.skipped) > 3 else ""
    raise InputError(f"every input was skipped ({len(run.skipped)} unreadable): {shown}{more}. "
                     "Fix or remove them and run again")


def gather_pass(run: _Pass, active: dict[str, Metric]) -> None:
    """Under torch.distributed: combine every rank's pass and metric states (in place).

    A metric that failed on any rank is dropped everywhere; ids, skipped files and
    warnings are gathered in rank order; see :mod:`genmetrics.distributed`.
    """
    from genmetrics import distributed

    if distributed.world()[1] == 1:
        return
    errors: dict[str, str] = {}
    for part in distributed.all_gather(run.errors):
        for name, reason in part.items():
            errors.setdefault(name, reason)
    run.errors = errors
    for name in errors:
        active.pop(name, None)
    parts = distributed.all_gather((run.ids, run.skipped, run.warnings, run.cache_hits,
                                    run.extracted, run.reference_ids))
    run.ids = [i for ids, *_ in parts for i in ids]
    if run.reference_ids is not None:  # each rank fed its block of the sorted references
        run.reference_ids = [i for part in parts for i in part[5] or ()]
    run.skipped = [s for _, skipped, *_ in parts for s in skipped]
    run.cache_hits = sum(part[3] for part in parts)
    run.extracted = sum(part[4] for part in parts)
    seen: set[tuple[str, str]] = set()
    warnings = []
    for _, _, ws, *_ in parts:  # run-level notes (e.g. JPEG input) appear on every rank once
        for w in ws:
            if (w["path"], w["message"]) not in seen:
                seen.add((w["path"], w["message"]))
                warnings.append(w)
    run.warnings = warnings
    run.sample_digest = _Fixed(distributed.combine_digests(run.sample_digest))
    run.reference_digest = _Fixed(distributed.combine_digests(run.reference_digest))
    run.reference_set_digest = _Fixed(distributed.combine_digests(run.reference_set_digest))
    run.need_digests = {k: _Fixed(distributed.combine_digests(d))  # type: ignore[misc]
                        for k, d in run.need_digests.items()}
    distributed.reduce_metric_states(active)
    if run.diagnostics is not None:
        from genmetrics.diagnostics import combine

        run.diagnostics = combine(distributed.all_gather(run.diagnostics))


class _Fixed:
    """A digest already computed (the combination of every rank's)."""

    def __init__(self, hexdigest: str) -> None:
        self._hex = hexdigest

    def hexdigest(self) -> str:
        return self._hex


class _Shard:
    """This rank's block of a source that cannot shard itself (read past, not scored)."""

    def __init__(self, source: Any, rank: int, size: int) -> None:
        from genmetrics.distributed import shard_bounds

        self.source, self.rank, self.size = source, rank, size
        start, stop = shard_bounds(len(source), rank, size)
        self.count = stop - start

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Any:
        from genmetrics.distributed import shard

        return shard(iter(self.source), len(self.source), self.rank, self.size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.source, name)


def _sharded(source: Any, rank: int, size: int) -> Any:
    if hasattr(source, "shard"):
        source.shard(rank, size)
        return source
    return _Shard(source, rank, size)


def assemble_scorecard(modality: str, inputs: dict[str, Any], results: dict[str, Any],
                       sample_stats: dict[str, Any], run: _Pass, unavailable: dict[str, str],
                       per_sample: bool, started: float) -> Scorecard:
    """The scorecard of one pass (shared by :func:`score` and the Evaluator)."""
    slices = slices_document(run, results)
    nearest = nearest_references(results, run.reference_ids, run.reference_images)
    per_sample_doc = None
    if per_sample:
        per_sample_doc = {
            "ids": run.ids,
            "values": {k: r.per_sample for k, r in results.items() if r.per_sample is not None},
            "stats": sample_stats,
            **({"nearest_reference": nearest} if nearest else {}),
        }
    diagnostics_doc = None
    if run.diagnostics is not None:
        t0 = time.perf_counter()
        diagnostics_doc = run.diagnostics.report()
        run.diagnostics_s += time.perf_counter() - t0
        run.warnings.extend({"path": "diagnostics", "message": note}
                            for note in run.diagnostics.notes)
    rows = run.row_store.paths() if run.row_store is not None else None
    if run.row_store is not None and run.row_store.problem and not any(
            w["path"] == str(run.row_store.folder) for w in run.warnings):
        run.warnings.append({"path": str(run.row_store.folder), "message": (
            "the feature rows kept for intervals could not be written there, so they were "
            f"held in memory ({run.row_store.problem})")})
    return Scorecard(
        modality=modality,
        inputs=inputs,
        rows=rows or None,
        metrics=results,
        errors=run.errors,
        unavailable=unavailable,
        skipped=[s.to_dict() for s in run.skipped],
        warnings=run.warnings,
        per_sample=per_sample_doc,
        diagnostics=diagnostics_doc,
        slices=slices,
        environment=environment(),
        timing={
            "total_s": round(time.perf_counter() - started, 4),
            "discover_s": round(run.discover_s, 4),
            "decode_s": round(run.read_s, 4),
            "model_s": round(run.model_s, 4),
            "metric_s": round(run.metric_s, 4),
            **({"diagnostics_s": round(run.diagnostics_s, 4)} if diagnostics_doc is not None
               else {}),
            **({"interval_s": round(run.interval_s, 4)} if run.interval_s else {}),
            "write_s": 0.0,
        },
    )


def nearest_references(results: dict[str, Any], reference_ids: list[str] | None,
                       images: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Move each result's ``components["nearest_reference"]`` (``{"index", "distance"}``
    per sample, an index into the references in the order they were fed) out of the
    result, for the scorecard's per-sample document: ``{"ids", "distance"}`` when the
    references have names (``reference_ids``, e.g. a folder's files), else
    ``{"rows", "distance"}`` (rows of reference statistics, or of the Evaluator's
    ``update_reference`` batches, in order), with ``"images": images`` when the rows have
    images (``{"path", "array"}``: rows of an ADM reference batch's ``arr_0``).

    >>> from genmetrics.metric import MetricResult
    >>> r = MetricResult("density", 1.0, 2, True, "", {}, components={
    ...     "nearest_reference": {"index": [1, 0], "distance": [3.5, 2.0]}})
    >>> nearest_references({"density": r}, ["cat", "dog"]), r.components
    ({'density': {'ids': ['dog', 'cat'], 'distance': [3.5, 2.0]}}, {})
    >>> r.components["nearest_reference"] = {"index": [1, None], "distance": [3.5, None]}
    >>> nearest_references({"density": r}, None)
    {'density': {'rows': [1, None], 'distance': [3.5, None]}}
    >>> r.components["nearest_reference"] = {"index": [0], "distance": [1.0]}
    >>> nearest_references({"density": r}, None, {"path": "ref.npz", "array": "arr_0"})
    {'density': {'rows': [0], 'distance': [1.0], 'images': {'path': 'ref.npz', 'array': 'arr_0'}}}
    """
    found = {}
    for name, result in results.items():
        raw = result.components.pop("nearest_reference", None)
        if not isinstance(raw, dict) or "index" not in raw:
            continue
        index = [None if i is None else int(i) for i in raw["index"]]
        distance = [None if d is None else float(d) for d in raw.get("distance", ())]
        named = reference_ids is not None and all(
            i is None or 0 <= i < len(reference_ids) for i in index)
        found[name] = ({"ids": [None if i is None else reference_ids[i] for i in index]}
                       if named else {"rows": index})  # type: ignore[index]
        found[name]["distance"] = distance
        if not named and images:
            found[name]["images"] = dict(images)
    return found


def _batch_type(modality: str) -> Callable[[list[Any]], Sequence[Any]]:
    if modality == "image":
        from genmetrics.io.image_batch import ImageBatch

        return ImageBatch
    return list


def _set_everywhere(names: Sequence[str], options: dict[str, dict[str, Any]], option: str,
                    value: Any, nobody: str, modality: str | None = None) -> None:
    """Set ``option`` on every chosen metric that has it (e.g. ``weights``, ``device``);
    a value given per metric with ``--set`` wins."""
    found = False
    for name in names:
        if get_metric(name, modality).takes_run_option(option, options.get(name, {})):
            options[name] = {option: value, **options.get(name, {})}
            found = True
    if not found:
        raise UsageError(nobody)


__all__ = ["score", "detect_modality", "default_metrics"]
