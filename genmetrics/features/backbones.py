"""Feature backbones: a name, a preprocessing, outputs, a device and a provenance signature.

Every learned distribution metric is "a backbone's features, then arithmetic". A
:class:`Backbone` turns decoded items (``3 x H x W`` uint8 RGB tensors for images) into
float32 feature arrays, one forward per batch; its :meth:`Backbone.signature` (name,
weights digest, preprocessing) names its feature-cache namespace and goes into every
result computed from it.

Backbones are found by name, first match wins:

0. an Evaluator's own (``Evaluator(backbones={"mine": (module, preprocessing)})``), while
   that Evaluator runs (:func:`using_backbones`);
1. ones registered in Python (:func:`register_backbone`, :func:`backbone_from_module`);
2. the built-ins, :data:`BUILTIN_BACKBONES` (imported lazily: ``module:factory``);
3. third-party packages: the entry-point group ``genmetrics.backbones``
   (``name = "package.module:factory"``).

A factory is called with keyword arguments ``name``, ``device`` and ``weights`` (those it
accepts) and returns a :class:`Backbone`. :func:`get_backbone` keeps one backbone per
``(name, device, weights)`` per process. A backbone whose model is not on this machine
raises :class:`BackboneUnavailable`, whose message ends with the command that fetches it.

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    >>> prep = Preprocessing(8, "torch-bilinear-antialias", "none", (0.5,) * 3, (0.5,) * 3)
    >>> bb = backbone_from_module("toy", net, prep, device="cpu")
    >>> out = bb.extract([torch.zeros(3, 16, 12, dtype=torch.uint8)])
    >>> out["embedding"].shape, out["embedding"].dtype
    ((1, 4), dtype('float32'))
    >>> register_backbone("toy", bb)
    >>> get_backbone("toy") is bb
    True
    >>> get_backbone("toy").signature()["preprocessing"]
    'torch-bilinear-antialias-8|crop:none|mean:0.5,0.5,0.5|std:0.5,0.5,0.5'
    >>> unregister_backbone("toy")
"""

from __future__ import annotations

import hashlib
import inspect
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from genmetrics.errors import MetricUnavailable, UsageError

if TYPE_CHECKING:  # torch is imported when a backbone is used, not when this is
    import torch

ENTRY_POINT_GROUP = "genmetrics.backbones"

#: name -> ``"module:factory"``; nothing is imported until a backbone is asked for
BUILTIN_BACKBONES: dict[str, str] = {
    "inception": "genmetrics.features.backbones:inception_backbone",
    "dinov2-vits14": "genmetrics.features.dinov2:create",
    "dinov2-vitb14": "genmetrics.features.dinov2:create",
    "dinov2-vitl14": "genmetrics.features.dinov2:create",
    "dinov2-vitg14": "genmetrics.features.dinov2:create",
    "clip-vitb32": "genmetrics.features.clip:create",
    "clip-vitl14": "genmetrics.features.clip:create",
    "clip-vitl14-336": "genmetrics.features.clip:create",
    "clap": "genmetrics.features.clap:create",
}

#: Items per forward pass in :meth:`Backbone.extract` (bounds activation memory).
MAX_BATCH = 32

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BackboneUnavailable(MetricUnavailable):
    """A backbone's model is not on this machine; the message ends with the fetch command."""


# -- preprocessing ---------------------------------------------------------------------
_RESIZES = ("pil-bicubic", "pil-bilinear", "torch-bicubic-antialias",
            "torch-bilinear-antialias", "torch-bicubic", "torch-bilinear")
#: ``center``: resize the shorter side to ``size``, then crop the centre (torchvision's
#: ``Resize(size)`` + ``CenterCrop(size)``); ``square``: crop the largest centred square
#: first, then resize it (google-research cmmd); ``none``: squash to ``size x size``.
_CROPS = ("center", "square", "none")


@dataclass(frozen=True)
class Preprocessing:
    """What a backbone does to a ``3 x H x W`` uint8 RGB tensor before its network.

    ``resize``: ``pil-bicubic`` / ``pil-bilinear`` (Pillow on the uint8 image, its own
    antialiasing, rounded back to uint8, as torchvision's ``Resize`` on a PIL image),
    ``torch-{bicubic,bilinear}[-antialias]`` (``F.interpolate`` on floats), or a
    backbone's own name (e.g. ``"processor"`` when a model folder's processor does it:
    :meth:`apply` then refuses). Pixels are scaled to [0, 1], then ``(x - mean) / std``.

        >>> import torch
        >>> prep = Preprocessing(4, "pil-bicubic", "center", (0.5,) * 3, (0.25,) * 3)
        >>> prep.apply(torch.full((3, 6, 8), 255, dtype=torch.uint8))[:, 0, 0].tolist()
        [2.0, 2.0, 2.0]
        >>> prep.signature()
        'pil-bicubic-4|crop:center|mean:0.5,0.5,0.5|std:0.25,0.25,0.25'
    """

    size: int
    resize: str
    crop: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def signature(self) -> str:
        """One string for signatures and cache namespaces."""
        def nums(values: Sequence[float]) -> str:
            return ",".join(f"{v:.8g}" for v in values)

        return (f"{self.resize}-{self.size}|crop:{self.crop}|mean:{nums(self.mean)}"
                f"|std:{nums(self.std)}")

    def resized(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` cropped and resized to ``3 x size x size``: uint8 for ``pil-*``,
        float32 in [0, 255] for ``torch-*``."""
        import torch

        if self.resize not in _RESIZES:
            raise UsageError(f"preprocessing {self.resize!r} is done by its backbone; "
                             f"known resizes: {', '.join(_RESIZES)}")
        if self.crop not in _CROPS:
            raise UsageError(f"unknown crop {self.crop!r}; use one of {', '.join(_CROPS)}")
        _, h, w = image.shape
        box = None  # (top, left, height, width) cut before the resize
        target = (self.size, self.size)
        if self.crop == "square":
            side = min(h, w)
            box = ((h - side) // 2, (w - side) // 2, side, side)
        elif self.crop == "center":  # torchvision: shorter side -> size, other truncated
            if h <= w:
                target = (self.size, int(self.size * w / h))
            else:
                target = (int(self.size * h / w), self.size)
        if box is not None:
            top, left, bh, bw = box
            image = image[:, top:top + bh, left:left + bw]
        if self.resize.startswith("pil-"):
            from PIL import Image

            pil = Image.fromarray(image.permute(1, 2, 0).contiguous().cpu().numpy())
            mode = Image.BICUBIC if self.resize == "pil-bicubic" else Image.BILINEAR
            pil = pil.resize((target[1], target[0]), resample=mode)
            out = torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1)
        else:
            mode = "bicubic" if "bicubic" in self.resize else "bilinear"
            out = torch.nn.functional.interpolate(
                image[None].float(), size=target, mode=mode, align_corners=False,
                antialias=self.resize.endswith("antialias"))[0]
            if mode == "bicubic":
                out = out.clamp(0, 255)
        if self.crop == "center":  # torchvision's CenterCrop offsets
            top = int(round((out.shape[1] - self.size) / 2.0))
            left = int(round((out.shape[2] - self.size) / 2.0))
            out = out[:, top:top + self.size, left:left + self.size]
        return out

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """``(x / 255 - mean) / std`` of a ``N x 3 x S x S`` batch (uint8 or float)."""
        import torch

        mean = torch.tensor(self.mean, dtype=torch.float32, device=batch.device)[:, None, None]
        std = torch.tensor(self.std, dtype=torch.float32, device=batch.device)[:, None, None]
        return (batch.float() / 255.0 - mean) / std

    def apply(self, image: torch.Tensor) -> torch.Tensor:
        """One image, fully preprocessed: float32 ``3 x size x size``."""
        return self.normalize(self.resized(image)[None])[0]


class ImageProcessorPreprocessing:
    """A model folder's image processor (transformers): what decode workers run for a
    backbone that preprocesses with its processor, on each chunk of images they decode
    (:meth:`apply_many`: one call, cheaper per image than one call per image). The
    processor treats each image of a list alone, so any split of the images gives the
    values of one call on the whole list, bit for bit (tests/test_preprocess_workers.py).
    Picklable; ``label`` is its key (the backbone's preprocessing signature)."""

    def __init__(self, processor: Any, label: str) -> None:
        self.processor, self.label = processor, label

    def signature(self) -> str:
        return self.label

    def apply(self, image: torch.Tensor) -> torch.Tensor:
        """One ``3 x H x W`` uint8 tensor -> its float32 ``pixel_values``."""
        return self.processor(images=[image], return_tensors="pt")["pixel_values"][0]

    def apply_many(self, images: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Several ``3 x H x W`` uint8 tensors in one processor call -> their float32
        ``pixel_values``, in order."""
        return list(self.processor(images=list(images), return_tensors="pt")["pixel_values"])


def preprocessing_key(backbone: Any) -> str | None:
    """The key of ``backbone``'s worker preprocessing on decoded items (None: it has none,
    e.g. Inception, whose extractor preprocesses in this process)."""
    hook = getattr(backbone, "worker_preprocessing", None)
    prep = hook() if hook is not None else None
    return None if prep is None else str(prep.signature())


def check_image(image: Any, index: int, who: str, what: str = "backbone") -> None:
    """Refuse anything but a ``3 x H x W`` uint8 tensor, naming the item (``image 1: the
    {who} {what} needs ...``)."""
    import torch

    if not (isinstance(image, torch.Tensor) and image.dtype == torch.uint8
            and image.dim() == 3 and image.shape[0] == 3):
        got = (f"{image.dtype} tensor of shape {tuple(image.shape)}"
               if isinstance(image, torch.Tensor) else type(image).__name__)
        from genmetrics.errors import InputError

        raise InputError(f"image {index}: the {who} {what} needs a 3 x H x W uint8 RGB "
                         f"tensor, got a {got}")


def encode_texts(tokenizer: Any, texts: Sequence[str], context: int, max_batch: int,
                 device: str, width: int,
                 embed: Callable[[dict[str, torch.Tensor]], Any]) -> tuple[np.ndarray, int]:
    """A text tower over ``texts``, ``max_batch`` at a time: ``(float32 N x width, how
    many texts were longer than ``context`` tokens and cut to it)``. ``embed`` maps the
    tokenizer's ``input_ids`` and ``attention_mask`` (on ``device``) to the projected
    embeddings (a tensor, or an output object with ``pooler_output``). CLIP and CLAP share
    it."""
    import torch

    texts = list(texts)
    truncated = 0
    out = np.empty((len(texts), width), np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), max_batch):
            chunk = texts[start:start + max_batch]
            tokens = tokenizer(chunk, padding=True, truncation=True, max_length=context,
                               return_tensors="pt")
            truncated += count_truncated(tokenizer, chunk, tokens, context)
            value = embed({k: v.to(device) for k, v in tokens.items()
                           if k in ("input_ids", "attention_mask")})
            value = getattr(value, "pooler_output", value)
            out[start:start + len(chunk)] = value.float().cpu().numpy()
    return out, truncated


def count_truncated(tokenizer: Any, texts: list[str], tokens: Any, context: int) -> int:
    """How many of ``texts`` the tokenizer cut to ``context`` tokens: read from the fast
    tokenizer's encodings (what it cut off), else by tokenising them again in full."""
    encodings = getattr(tokens, "encodings", None)
    if encodings is not None and len(encodings) == len(texts):
        return sum(bool(encoding.overflowing) for encoding in encodings)
    return sum(len(ids) > context for ids in tokenizer(texts)["input_ids"])


# -- the base class --------------------------------------------------------------------
class Backbone:
    """Base class of every backbone, built in or third party.

    A subclass sets the attributes and implements :meth:`forward` (a preprocessed batch
    on :attr:`device` -> ``{output: N x width}``); images are preprocessed with
    :attr:`preprocessing` (override :meth:`preprocess` for anything else). Or it
    overrides :meth:`extract` as a whole (audio, Inception).
    """

    name: str = ""
    modality: str = "image"
    preprocessing: Preprocessing | None = None
    outputs: dict[str, int] = {}
    embedding: str = "embedding"
    device: str = "cpu"
    has_text: bool = False
    weights_digest: str = ""
    max_batch: int = MAX_BATCH

    def signature(self) -> dict[str, Any]:
        """Name, weights digest and preprocessing: the feature-cache namespace. A backbone
        whose ``w`` is empty gets no feature cache (its features are computed every run,
        with a warning in the scorecard): nothing would tell its weights apart."""
        prep = self.preprocessing.signature() if self.preprocessing is not None else None
        return {"backbone": self.name, "w": self.weights_digest, "preprocessing": prep}

    def refresh(self) -> None:
        """Bring :attr:`weights_digest` up to date with the weights; called once when a run
        starts (``score``, each Evaluator pass), before its feature-cache namespace is
        opened. Nothing to do for a model folder's weights (fixed when loaded)."""

    def preprocess(self, images: Sequence[Any]) -> torch.Tensor:
        """``N x 3 x S x S`` float32 (on the CPU) from decoded images."""
        import torch

        if self.preprocessing is None:
            raise UsageError(f"backbone {self.name!r} has no preprocessing")
        for i, image in enumerate(images):
            check_image(image, i, self.name)
        return self.preprocessing.normalize(
            torch.stack([self.preprocessing.resized(image.cpu()) for image in images]))

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def extract(self, items: Sequence[Any]) -> dict[str, np.ndarray]:
        """Features of ``items`` in input order: ``{output: float32 N x width}``."""
        return self._forward_all(len(items), lambda start, stop: self.preprocess(
            items[start:stop]))

    def worker_preprocessing(self) -> Any | None:
        """What decode workers may run for this backbone ahead of its network: a picklable
        object with ``signature()`` (its key on the items) and ``apply(image)`` (one
        ``3 x H x W`` uint8 tensor -> the float32 tensor :meth:`preprocess` makes of it,
        bit for bit). :attr:`preprocessing` when it is a resize :meth:`Preprocessing.apply`
        does and the subclass keeps :meth:`preprocess` and :meth:`extract`; else None
        (then :meth:`extract` preprocesses in this process)."""
        prep = self.preprocessing
        if prep is None or prep.resize not in _RESIZES or prep.crop not in _CROPS:
            return None
        if type(self).preprocess is not Backbone.preprocess \
                or type(self).extract is not Backbone.extract:
            return None
        return prep

    def extract_preprocessed(self, tensors: Sequence[torch.Tensor]) -> dict[str, np.ndarray]:
        """Features from images already preprocessed by :meth:`worker_preprocessing`'s
        ``apply`` (in decode workers): the values :meth:`extract` gives on the images."""
        import torch

        return self._forward_all(len(tensors), lambda start, stop: torch.stack(
            list(tensors[start:stop])))

    def _forward_all(self, count: int,
                     batches: Callable[[int, int], torch.Tensor]) -> dict[str, np.ndarray]:
        """The network over ``count`` items, ``max_batch`` at a time; ``batches(start,
        stop)`` gives the preprocessed ``stop - start`` items."""
        import torch

        out = {name: np.empty((count, width), np.float32)
               for name, width in self.outputs.items()}
        with torch.inference_mode():
            for start in range(0, count, self.max_batch):
                stop = min(count, start + self.max_batch)
                values = self.forward(batches(start, stop).to(self.device))
                for name in self.outputs:
                    out[name][start:stop] = values[name].float().cpu().numpy()
        return out

    def encode_text(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """``(N x width embeddings, how many texts were truncated)``; text towers only."""
        raise UsageError(f"backbone {self.name!r} has no text tower")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} on {self.device}>"


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda:N`` when there is a GPU, else ``cpu`` (see causal_lm)."""
    from genmetrics.features.causal_lm import resolve_device as resolve

    return resolve(device)


def module_digest(module: torch.nn.Module) -> str:
    """``"sha256:<hex>"`` over a module's state dict (names, dtypes, shapes, bytes)."""
    import torch

    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{key}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + digest.hexdigest()


class ModuleBackbone(Backbone):
    """A user's ``torch.nn.Module`` as a backbone (see :func:`backbone_from_module`)."""

    def __init__(self, name: str, module: torch.nn.Module, preprocessing: Preprocessing,
                 modality: str = "image", device: str = "auto",
                 output: str = "embedding") -> None:
        import torch

        self.name, self.modality, self.preprocessing = name, modality, preprocessing
        self.device = resolve_device(device)
        self.module = module.to(self.device).eval()
        self.weights_digest = module_digest(module)  # again at each run: see refresh()
        self.embedding = output
        with torch.inference_mode():
            probe = torch.zeros(1, 3, preprocessing.size, preprocessing.size,
                                device=self.device)
            width = int(self._call(probe).reshape(1, -1).shape[1])
        self.outputs = {output: width}

    def refresh(self) -> None:
        """The digest of the module's weights as they are now: a module trained (or edited
        in place) since the last run gets another signature and cache namespace. Hashes
        every weight once per run."""
        self.weights_digest = module_digest(self.module)

    def _call(self, batch: torch.Tensor) -> torch.Tensor:
        value = self.module(batch)
        if isinstance(value, (tuple, list)):
            value = value[0]
        return value

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return {self.embedding: self._call(batch).reshape(batch.shape[0], -1)}


def backbone_from_module(name: str, module: torch.nn.Module, preprocessing: Preprocessing,
                         modality: str = "image", device: str = "auto") -> Backbone:
    """Wrap a module whose forward maps a preprocessed ``N x 3 x S x S`` batch to
    ``N x D`` (or anything reshaped to it) as backbone ``name``; output ``"embedding"``.
    Its signature carries a digest of the module's weights, computed again when each run
    starts (:meth:`ModuleBackbone.refresh`): weights changed in place between two runs
    name another feature-cache namespace."""
    if modality != "image":
        raise UsageError("backbone_from_module supports image modules; for audio subclass "
                         "Backbone and override extract()")
    return ModuleBackbone(name, module, preprocessing, modality, device)


# -- the registry ----------------------------------------------------------------------
_LOCK = threading.RLock()
_REGISTERED: dict[str, Backbone | Callable[..., Backbone]] = {}
_CACHE: dict[tuple[str, str, str | None], Backbone] = {}
#: backbones of one Evaluator (``Evaluator(backbones=...)``), seen only inside
#: :func:`using_backbones`: they win over every other name
_SCOPED: ContextVar[dict[str, Backbone] | None] = ContextVar("genmetrics_backbones",
                                                            default=None)


def _scoped() -> dict[str, Backbone]:
    return _SCOPED.get() or {}


@contextmanager
def using_backbones(backbones: dict[str, Backbone] | None) -> Iterator[None]:
    """Make ``backbones`` (name -> instance) found by :func:`get_backbone` inside the
    ``with`` block only (an Evaluator's own backbones), over any other of those names."""
    token = _SCOPED.set({**_scoped(), **(backbones or {})})
    try:
        yield
    finally:
        _SCOPED.reset(token)


def as_backbone(name: str, given: Any, device: str = "auto") -> Backbone:
    """A :class:`Backbone` from what a user gives for ``name``: an instance (kept), or a
    ``(module, Preprocessing)`` pair (wrapped by :func:`backbone_from_module` on
    ``device``)."""
    if isinstance(given, Backbone):
        return given
    if isinstance(given, (tuple, list)) and len(given) == 2 \
            and isinstance(given[1], Preprocessing):
        return backbone_from_module(name, given[0], given[1], device=device)
    raise UsageError(f"backbone {name!r}: give a Backbone or a (torch.nn.Module, "
                     f"Preprocessing) pair, not {type(given).__name__}")


def refresh_backbones() -> None:
    """:meth:`Backbone.refresh` every backbone this process holds (registered, loaded, the
    current Evaluator's): called once when a run starts, so that the weights digest of
    a user's module is the one of its weights now."""
    with _LOCK:
        held = [*_scoped().values(), *_REGISTERED.values(), *_CACHE.values()]
    seen: set[int] = set()
    for backbone in held:
        if isinstance(backbone, Backbone) and id(backbone) not in seen:
            seen.add(id(backbone))
            backbone.refresh()


def cacheable(backbone: Any) -> bool:
    """Whether ``backbone``'s features may go to the feature cache: only when its signature
    has a weights digest (``w``), which tells its weights apart."""
    return bool(backbone.signature().get("w"))


def register_backbone(name: str, backbone: Backbone | Callable[..., Backbone]) -> None:
    """Make ``name`` a backbone for this process: an instance, or a factory called on
    first use (with the keyword arguments ``name``, ``device``, ``weights`` it accepts).
    Registered names win over built-ins."""
    with _LOCK:
        _REGISTERED[name] = backbone
        for key in [k for k in _CACHE if k[0] == name]:
            del _CACHE[key]


def unregister_backbone(name: str) -> None:
    """Forget a backbone registered with :func:`register_backbone`."""
    with _LOCK:
        _REGISTERED.pop(name, None)
        for key in [k for k in _CACHE if k[0] == name]:
            del _CACHE[key]


@lru_cache(maxsize=1)
def _plugin_targets() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_backbones() -> list[str]:
    """Every backbone name known: registered, built in, from entry points."""
    return sorted({*_scoped(), *_REGISTERED, *BUILTIN_BACKBONES, *_plugin_targets()})


def _load_target(target: str) -> Callable[..., Backbone]:
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)


def _call_factory(factory: Callable[..., Backbone], name: str, device: str,
                  weights: str | None) -> Backbone:
    wanted = {"name": name, "device": device, "weights": weights}
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return factory(**wanted)
    return factory(**{k: v for k, v in wanted.items() if k in params})


def get_backbone(name: str, device: str = "auto", weights: str | None = None) -> Backbone:
    """The process-wide backbone ``name`` on ``device`` with ``weights`` (a local model
    folder or file; None resolves it offline). Raises :class:`BackboneUnavailable`
    (model missing, with the fetch command) or ``UsageError`` (unknown name)."""
    scoped = _scoped().get(name)
    if scoped is not None:
        return scoped
    with _LOCK:
        registered = _REGISTERED.get(name)
        if isinstance(registered, Backbone):
            return registered
        resolved = resolve_device(device)
        key = (name, resolved, None if weights is None else str(weights))
        found = _CACHE.get(key)
        if found is not None:
            return found
        if registered is not None:
            factory = registered
        else:
            target = BUILTIN_BACKBONES.get(name) or _plugin_targets().get(name)
            if target is None:
                raise UsageError(f"unknown backbone {name!r}; known: "
                                 f"{', '.join(available_backbones())}")
            factory = _load_target(target)
        found = _call_factory(factory, name, resolved, weights)
        _CACHE[key] = found
        return found


def clear_cache() -> None:
    """Forget every loaded backbone (registrations stay)."""
    with _LOCK:
        _CACHE.clear()
    _plugin_targets.cache_clear()


# -- offline model resolution ------------------------------------------------------------
def weights_env(name: str) -> str:
    """The environment variable naming a local folder for backbone ``name``.

        >>> weights_env("dinov2-vitl14")
        'GENMETRICS_DINOV2_VITL14_WEIGHTS'
    """
    return "GENMETRICS_" + name.upper().replace("-", "_") + "_WEIGHTS"


def fetch_hint(name: str) -> str:
    """How to make backbone ``name`` available; ends with the fetch command."""
    return (f"give a local model folder (--set METRIC.weights=DIR or ${weights_env(name)}), "
            f"put it in the local Hugging Face cache, or with a network run: "
            f"genmetrics assets fetch {name}")


def resolve_model_folder(name: str, weights: str | os.PathLike | None = None) -> Path:
    """The ``save_pretrained`` folder of backbone ``name``, never downloading.

    First match wins: ``weights`` (must exist), ``$GENMETRICS_<NAME>_WEIGHTS``, the
    genmetrics asset cache (``genmetrics assets fetch NAME``), the local Hugging Face
    cache. Missing: :class:`BackboneUnavailable` ending with the fetch command.
    """
    from genmetrics import assets

    for given, source in ((weights, "weights="), (os.environ.get(weights_env(name)),
                                                   f"${weights_env(name)}")):
        if given:
            path = Path(given).expanduser()
            if not (path / "config.json").is_file():
                raise UsageError(f"{source}{path}: not a model folder (no config.json there); "
                                 f"give a folder written by save_pretrained")
            return path
    try:
        asset = assets.get_asset(name)
    except assets.AssetMissingError:
        asset = None
    found = asset.locate(build=False) if asset is not None else None
    if found is None:
        what = getattr(asset, "description", name)
        raise BackboneUnavailable(f"{what} is not available locally; {fetch_hint(name)}")
    return Path(found.path)


def load_pretrained(folder: Path, what: str, device: str, model_class: type,
                    processor_class: type | None = None) -> tuple[Any, Any]:
    """``(processor, model)`` from a ``save_pretrained`` folder, offline (local files only),
    the model on ``device`` in eval mode; ``processor`` is None without ``processor_class``.
    A folder that is not such a model is a :class:`UsageError` naming it and ``what``."""
    from genmetrics.features.causal_lm import _quiet_transformers

    try:
        with _quiet_transformers():
            processor = (None if processor_class is None
                         else processor_class.from_pretrained(folder, local_files_only=True))
            model = model_class.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"cannot load a {what} model from {folder}: {exc}") from None
    return processor, model.to(device).eval()


def folder_digest(folder: Path) -> str:
    """The weights digest of a model folder (weights, config and processor files)."""
    from genmetrics.features.causal_lm import weights_digest

    return weights_digest(folder)


# -- inception -------------------------------------------------------------------------
class InceptionBackbone(Backbone):
    """Today's FID Inception (:class:`~genmetrics.features.inception.InceptionExtractor`)
    as a backbone, numerically unchanged: outputs ``2048``, ``logits_unbiased`` (when the
    weights have the classifier) and ``mixed_6/conv``."""

    name = "inception"
    embedding = "2048"

    def __init__(self, device: str = "auto", weights: str | None = None) -> None:
        from genmetrics.assets import AssetMissingError
        from genmetrics.features import inception

        try:
            self.extractor = inception.get_extractor(weights, device)
        except AssetMissingError as exc:
            raise BackboneUnavailable(
                f"{exc}; with a network run: genmetrics assets fetch inception-fid") from None
        self.device = self.extractor.device
        self.weights_digest = self.extractor.weights_digest
        # torch-fidelity's TF1 bilinear resize to 299 and (x - 128) / 128
        self.preprocessing = Preprocessing(299, "tf1-bilinear", "none", (128 / 255,) * 3,
                                           (128 / 255,) * 3)
        self.outputs = {n: inception.WIDTHS[n] for n in self.extractor.features}

    def signature(self) -> dict[str, Any]:
        """The extractor's own signature (unchanged, so existing caches stay valid)."""
        return self.extractor.signature()

    def extract(self, items: Sequence[Any]) -> dict[str, np.ndarray]:
        return self.extractor.extract(items)


def inception_backbone(device: str = "auto", weights: str | None = None) -> InceptionBackbone:
    """Factory of the ``inception`` backbone."""
    return InceptionBackbone(device, weights)
