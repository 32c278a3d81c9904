"""The metric registry: a lazy ``name -> "module:Class"`` table.

Nothing is imported until a metric is asked for. Built-in metrics are listed in
``BUILTIN``; third-party packages add theirs through the entry-point group
``genmetrics.metrics``, for example in their ``pyproject.toml``::

    [project.entry-points."genmetrics.metrics"]
    wordcount = "my_package.metrics:WordCount"

Adding a built-in metric means: its module, one line in ``BUILTIN``, its test.

One name may stand for one metric per modality: its ``BUILTIN`` value is then a dict
``{modality: "module:Class"}`` (``wer`` scores text outputs, and ASR transcripts of
audio clips). ``get_metric(name, modality)`` picks one; without a modality such a name
is ambiguous, and the error lists its modalities.

    >>> get_metric("bleu").spec.kind
    'paired'
    >>> get_metric("wer", "text").spec.modality
    'text'
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Iterator
from functools import cache, lru_cache
from importlib.metadata import entry_points

from genmetrics.errors import UsageError
from genmetrics.metric import Metric, MetricSpec

ENTRY_POINT_GROUP = "genmetrics.metrics"

#: where a metric is: ``"module:Class"``, or one such target per modality
Target = str | dict[str, str]

BUILTIN: dict[str, Target] = {
    "bleu": "genmetrics.metrics.text.bleu:BLEU",
    "chrf": "genmetrics.metrics.text.chrf:ChrF",
    "meteor": "genmetrics.metrics.text.meteor:METEOR",
    "perplexity": "genmetrics.metrics.text.perplexity:Perplexity",
    "ter": "genmetrics.metrics.text.ter:TER",
    "bertscore": "genmetrics.metrics.text.bertscore:BERTScore",
    "mauve": "genmetrics.metrics.text.mauve:MAUVE",
    "wer": {"text": "genmetrics.metrics.text.wer:WER",
            "audio": "genmetrics.metrics.audio.asr_error_rate:AudioWER"},
    "cer": {"text": "genmetrics.metrics.text.wer:CER",
            "audio": "genmetrics.metrics.audio.asr_error_rate:AudioCER"},
    "mcd": "genmetrics.metrics.audio.mcd:MCD",
    "dnsmos": "genmetrics.metrics.audio.dnsmos:DNSMOS",
    "f0_rmse": "genmetrics.metrics.audio.f0:F0RMSE",
    "pesq": "genmetrics.metrics.audio.pesq:PESQ",
    "si_snr": "genmetrics.metrics.audio.snr:SISNR",
    "snr": "genmetrics.metrics.audio.snr:SNR",
    "speaker_sim": "genmetrics.metrics.audio.speaker_sim:SpeakerSim",
    "clap_score": "genmetrics.metrics.audio.clap_score:ClapScore",
    "stoi": "genmetrics.metrics.audio.stoi:STOI",
    "rouge": "genmetrics.metrics.text.rouge:ROUGE",
    "fid": "genmetrics.metrics.image.fid:FID",
    "sfid": "genmetrics.metrics.image.sfid:SFID",
    "kid": "genmetrics.metrics.image.kid:KID",
    "inception_score": "genmetrics.metrics.image.inception_score:InceptionScore",
    "ssim": "genmetrics.metrics.image.ssim:SSIM",
    "psnr": "genmetrics.metrics.image.psnr:PSNR",
    "precision_recall": "genmetrics.metrics.image.precision_recall:PrecisionRecall",
    "density_coverage": "genmetrics.metrics.image.density_coverage:DensityCoverage",
    "vendi": "genmetrics.metrics.image.vendi:Vendi",
    "fd_dinov2": "genmetrics.metrics.image.fid:FDDinov2",
    "clip_fid": "genmetrics.metrics.image.fid:ClipFID",
    "cmmd": "genmetrics.metrics.image.cmmd:CMMD",
    "clipscore": "genmetrics.metrics.image.clipscore:CLIPScore",
}

#: result names that select the built-in metric computing them (``--metrics precision``
#: runs ``precision_recall``): each is one of its target's ``spec.outputs``, which
#: ``tests/test_registry.py`` checks.
ALIASES: dict[str, str] = {
    "precision": "precision_recall",
    "recall": "precision_recall",
    "density": "density_coverage",
    "coverage": "density_coverage",
    "dnsmos_sig": "dnsmos",
    "dnsmos_bak": "dnsmos",
    "dnsmos_p808": "dnsmos",
    "vuv_error": "f0_rmse",
}


@lru_cache(maxsize=1)
def _plugin_targets() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def targets() -> dict[str, Target]:
    """Every known metric name with its target (``module:Class``, or a dict of them by
    modality); built-ins win on a clash."""
    table = dict(_plugin_targets())
    table.update(BUILTIN)
    return dict(sorted(table.items()))


def refresh() -> None:
    """Forget the cached entry points (after installing a plugin in a running process)."""
    _plugin_targets.cache_clear()
    get_metric.cache_clear()


def canonical(names: Iterable[str]) -> list[str]:
    """Metric names with each alias replaced by its metric, each metric once, in order.

    >>> canonical(["fid", "precision", "recall"])
    ['fid', 'precision_recall']
    """
    out: list[str] = []
    for name in names:
        name = name if name in targets() else ALIASES.get(name, name)
        if name not in out:
            out.append(name)
    return out


def _unknown(name: str) -> UsageError:
    close = difflib.get_close_matches(name, [*targets(), *ALIASES], n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return UsageError(f"unknown metric {name!r}.{hint} See `genmetrics list`.")


def modalities(name: str) -> tuple[str, ...]:
    """The modalities ``name`` is registered for by modality (``("text", "audio")`` for
    ``wer``); ``()`` for a name with one target, whose modality is its class's.

    >>> "text" in modalities("wer"), modalities("bleu")
    (True, ())
    """
    target = targets().get(name if name in targets() else ALIASES.get(name, name))
    return tuple(target) if isinstance(target, dict) else ()


def registrations() -> Iterator[tuple[str, str | None, str]]:
    """``(name, modality, "module:Class")`` for every registered class, in name order;
    the modality is None for a name with one target (see :func:`modalities`)."""
    for name, target in targets().items():
        if isinstance(target, dict):
            for modality, one in target.items():
                yield name, modality, one
        else:
            yield name, None, target


@cache
def get_metric(name: str, modality: str | None = None) -> type[Metric]:
    """Import and return the metric class registered under ``name`` (or an alias).

    ``modality`` picks among a name's per-modality classes (it is required when there
    are several); a name with one class returns it whatever ``modality`` says, and the
    caller compares ``spec.modality``.
    """
    if name not in targets() and name in ALIASES:
        return get_metric(ALIASES[name], modality)
    target = targets().get(name)
    if target is None:
        raise _unknown(name)
    if isinstance(target, dict):
        kinds = " or ".join(target)
        if modality is None and len(target) > 1:
            raise UsageError(f"metric {name!r} exists for several modalities ({kinds}); say "
                             "which: --modality, or get_metric(name, modality)")
        if modality is not None and modality not in target:
            raise UsageError(f"{name} is a {kinds} metric, not {modality}")
        modality = modality or next(iter(target))
        target = target[modality]
    else:
        modality = None
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise UsageError(
            f"metric {name!r} cannot be loaded from {target} ({exc}). "
            "Is its extra installed? Try: pip install 'genmetrics[all]'"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Metric)):
        raise UsageError(f"metric {name!r} ({target}) is not a genmetrics.Metric subclass")
    if cls.spec.name != name:
        raise UsageError(f"metric {target} is registered as {name!r} but names itself "
                         f"{cls.spec.name!r}")
    if modality is not None and cls.spec.modality != modality:
        raise UsageError(f"metric {target} is registered as the {modality} {name!r} but is "
                         f"a {cls.spec.modality} metric")
    return cls


def list_metrics(modality: str | None = None) -> list[MetricSpec]:
    """Specs of every registered metric, optionally of one modality, sorted by name (a
    name registered for several modalities gives one spec for each)."""
    specs = [get_metric(name, mod).spec for name, mod, _ in registrations()
             if modality is None or mod in (None, modality)]
    return [s for s in specs if modality is None or s.modality == modality]
