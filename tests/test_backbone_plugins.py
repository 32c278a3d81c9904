"""A user's backbone, in Python or from an entry point: device, signature and feature cache.

* ``Evaluator(device=...)`` reaches every backbone (not only Inception): with CUDA
  reported present, a backbone asked for with ``device=auto`` is built on the
  Evaluator's device, slices included.
* ``Evaluator(backbones={"mine": (module, Preprocessing)})``: FID over it equals the
  Fréchet distance computed directly on the module's outputs; its signature's ``w`` is the
  digest of the module's weights as they are at each pass.
* ``score()`` with the feature cache on, a registered module and an entry-point backbone:
  weights changed in place between two runs give another ``w``, another cache
  namespace and the new value (not the stale cached rows); unchanged weights hit the
  cache. A third-party backbone with no weights digest is computed every run, never
  cached, with a warning.
"""

from __future__ import annotations

import functools
import sys
import types

import numpy as np
import pytest
import torch

from genmetrics.features import backbones
from genmetrics.features.backbones import (
    Backbone,
    Preprocessing,
    backbone_from_module,
    register_backbone,
    unregister_backbone,
)

N = 16  # images a side (above the module's 4 output dimensions)
PREP = Preprocessing(16, "pil-bilinear", "center", (0.5,) * 3, (0.5,) * 3)


def net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
                               torch.nn.Linear(12, 4))


def random_images(count: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (1, 3, 1, 1))
    return torch.from_numpy(np.clip(base + rng.normal(0, 60, (count, 3, 24, 20)), 0, 255)
                            .astype(np.uint8))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from tests.photos import save_png

    root = tmp_path_factory.mktemp("user-backbone")
    for side, seed in (("samples", 1), ("refs", 2)):
        (root / side).mkdir()
        for i, image in enumerate(random_images(N, seed)):
            save_png(image.permute(1, 2, 0).numpy(), root / side / f"{i:02d}.png")
    return root / "samples", root / "refs"


@pytest.fixture(autouse=True)
def _fresh():
    backbones.clear_cache()
    yield
    backbones.clear_cache()


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.linalg import sqrtm

    a, b = a.astype(np.float64), b.astype(np.float64)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float(((a.mean(0) - b.mean(0)) ** 2).sum()
                 + np.trace(s1 + s2 - 2 * sqrtm(s1 @ s2).real))


def direct_fid(module: torch.nn.Module, samples, refs) -> float:
    def rows(images):
        with torch.no_grad():
            return module(torch.stack([PREP.apply(im) for im in images])).numpy()

    return frechet(rows(samples), rows(refs))


def triple(module: torch.nn.Module) -> None:
    """Weights changed in place, as a training step does."""
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(3)


# -- Evaluator ------------------------------------------------------------------------------
def test_evaluator_device_reaches_every_backbone(monkeypatch):
    """With CUDA reported present, Evaluator(device="cpu") builds every backbone asked for
    with device=auto on the CPU: at construction and for each slice's metrics."""
    from genmetrics import Evaluator

    resolved = []

    def factory(device: str) -> Backbone:
        resolved.append(device)
        return backbone_from_module("recorded", net(), PREP, device="cpu")

    register_backbone("recorded", factory)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    try:
        from genmetrics.features.causal_lm import resolve_device

        assert resolve_device("auto") == "cuda:0"  # outside an Evaluator: the "GPU"
        ev = Evaluator(["fid"], "image", device="cpu", group_by="category",
                       options={"fid": {"features": "recorded"}})
        ev.update(random_images(4, 3), groups=["a", "a", "b", "b"])
    finally:
        unregister_backbone("recorded")
    assert resolved and set(resolved) == {"cpu"}, resolved


def test_evaluator_backbones_module_and_weights_digest():
    from genmetrics import Evaluator

    module = net()
    samples, refs = random_images(N, 1), random_images(N, 2)
    ev = Evaluator(["fid"], "image", device="cpu", backbones={"mine": (module, PREP)},
                   options={"fid": {"features": "mine"}})
    ev.update_reference(refs)
    ev.update(samples)
    first = ev.compute().metrics["fid"]
    assert first.signature["backbone"] == "mine" and first.signature["ext"] == "mine"
    assert first.signature["w"] == backbones.module_digest(module)
    assert first.value == pytest.approx(direct_fid(module, samples, refs), rel=1e-5)
    assert "mine" not in backbones.available_backbones()  # this Evaluator's own

    triple(module)
    again = Evaluator(["fid"], "image", device="cpu", backbones={"mine": (module, PREP)},
                      options={"fid": {"features": "mine"}})
    again.update_reference(refs)
    again.update(samples)
    tripled = again.compute().metrics["fid"]
    assert tripled.signature["w"] == backbones.module_digest(module) != first.signature["w"]
    # the features scale by 3 (weights and bias): the distance by 9
    assert tripled.value == pytest.approx(9 * first.value, rel=1e-4)
    # the same Evaluator after training steps: reset() takes the digest again
    triple(module)
    ev.reset()
    ev.update(samples)
    assert ev.compute().metrics["fid"].signature["w"] == backbones.module_digest(module)


def test_evaluator_backbone_instance_and_bad_values():
    from genmetrics import Evaluator
    from genmetrics.errors import UsageError

    mine = backbone_from_module("mine", net(), PREP, device="cpu")
    ev = Evaluator(["fid"], "image", backbones={"mine": mine},
                   options={"fid": {"features": "mine"}})
    assert ev.backbones["mine"] is mine
    with pytest.raises(UsageError, match="Preprocessing"):
        Evaluator(["fid"], "image", backbones={"mine": net()},
                  options={"fid": {"features": "mine"}})
    with pytest.raises(UsageError, match="inception"):
        Evaluator(["fid"], "image", backbones={"inception": mine})


# -- score() and the feature cache ----------------------------------------------------------
def score_fid(folders, backbone: str):
    from genmetrics.runner import score

    samples, refs = folders
    return score(samples, refs, modality="image", metrics=["fid"], device="cpu", workers=0,
                 options={"fid": {"features": backbone}}, feature_cache=True,
                 diagnostics=False)


def folder_images(folder):
    from genmetrics.io.image import decode_image

    return [decode_image(p.read_bytes()) for p in sorted(folder.glob("*.png"))]


def check_two_runs(folders, name: str, module: torch.nn.Module) -> None:
    """Run, run again (cache hit), triple the weights, run (new namespace, new value)."""
    samples, refs = (folder_images(f) for f in folders)
    first = score_fid(folders, name)
    fid = first.metrics["fid"]
    assert fid.signature["w"] == backbones.module_digest(module)
    assert fid.value == pytest.approx(direct_fid(module, samples, refs), rel=1e-5)
    cache = first.inputs["feature_cache"]
    assert cache["extracted"] == 2 * N and cache["hits"] == 0
    same = score_fid(folders, name)
    assert same.inputs["feature_cache"]["path"] == cache["path"]
    assert same.inputs["feature_cache"]["hits"] == 2 * N  # unchanged weights: cached
    assert same.metrics["fid"].value == pytest.approx(fid.value, rel=1e-9)

    triple(module)
    changed = score_fid(folders, name)
    moved = changed.inputs["feature_cache"]
    assert changed.metrics["fid"].signature["w"] == backbones.module_digest(module)
    assert changed.metrics["fid"].signature["w"] != fid.signature["w"]
    assert moved["path"] != cache["path"]  # another namespace
    assert moved["extracted"] == 2 * N and moved["hits"] == 0  # nothing stale read
    assert changed.metrics["fid"].value == pytest.approx(9 * fid.value, rel=1e-4)


def test_registered_module_cache_follows_its_weights(folders):
    module = net(1)
    register_backbone("mine", backbone_from_module("mine", module, PREP, device="cpu"))
    try:
        check_two_runs(folders, "mine", module)
    finally:
        unregister_backbone("mine")


def test_entry_point_backbone_cache_follows_its_weights(folders, monkeypatch):
    """A third-party package's backbone (entry point ``genmetrics.backbones``), loaded once
    per process: the same cache and signature treatment."""
    module = net(2)
    package = types.ModuleType("thirdparty_backbones")

    def make(name: str, device: str) -> Backbone:
        return backbone_from_module(name, module, PREP, device=device)

    package.make = make
    monkeypatch.setitem(sys.modules, "thirdparty_backbones", package)
    targets = functools.lru_cache(maxsize=1)(lambda: {"third": "thirdparty_backbones:make"})
    monkeypatch.setattr(backbones, "_plugin_targets", targets)
    check_two_runs(folders, "third", module)


class NoDigest(Backbone):
    """A third-party backbone that sets no weights digest."""

    name = "nodigest"
    preprocessing = PREP
    outputs = {"embedding": 4}

    def __init__(self) -> None:
        self.module = net(3)

    def forward(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"embedding": self.module(batch)}


def test_backbone_without_weights_digest_is_not_cached(folders):
    bb = NoDigest()
    register_backbone("nodigest", bb)
    try:
        first = score_fid(folders, "nodigest")
        again = score_fid(folders, "nodigest")
    finally:
        unregister_backbone("nodigest")
    samples, refs = (folder_images(f) for f in folders)
    for card in (first, again):
        assert "feature_cache" not in card.inputs  # no namespace opened
        assert card.metrics["fid"].value == pytest.approx(
            direct_fid(bb.module, samples, refs), rel=1e-5)
        assert any("nodigest has no weights digest" in w["message"] for w in card.warnings)
