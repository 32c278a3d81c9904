"""Backbone preprocessing in the decode workers gives the main process's values, bit for bit.

With ``workers > 0`` each DataLoader worker decodes an image and runs every active
backbone's preprocessing on it (``Backbone.worker_preprocessing``: Pillow resizes for
DINOv2, CLIP-FID and CMMD, the model folder's processor for CLIPScore); the backbone then
runs its network on those tensors. With ``workers = 0`` the backbones preprocess their
batches themselves. Both must give exactly the same values and signatures. Tiny random
DINOv2 and CLIP folders (``tests/tiny_models.py``), PNG tiles of real photographs of
mixed sizes (square and not).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.photos import save_png, tiles

N = 40  # images a side: above the tiny DINOv2's 32 dimensions (full-rank covariances)
METRICS = ["fd_dinov2", "cmmd", "clip_fid", "clipscore"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from tests.tiny_models import tiny_clip, tiny_dinov2

    root = tmp_path_factory.mktemp("preprocess-workers")
    pieces = tiles(size=64, longer_side=256)
    assert len(pieces) >= 2 * N
    rows = []
    for i, (name, tile) in enumerate(pieces[:2 * N]):
        side = "samples" if i < N else "refs"
        (root / side).mkdir(exist_ok=True)
        if i % 3 == 1:  # not square: the crops differ between the preprocessings
            tile = tile[:, : tile.shape[1] * 2 // 3]
        elif i % 3 == 2:
            tile = tile[: tile.shape[0] // 2]
        save_png(tile, root / side / f"{name}.png")
        if side == "samples":
            rows.append({"id": name, "prompt": f"a photo of {name.replace('_', ' ')}"})
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"samples": root / "samples", "refs": root / "refs", "prompts": prompts,
            "dino": tiny_dinov2(root / "dinov2"),
            "clip": tiny_clip(root / "clip224", seed=1),
            "clip336": tiny_clip(root / "clip336", image_size=336, seed=2)}


def _score(inputs, workers):
    from genmetrics.features.backbones import clear_cache
    from genmetrics.runner import score

    clear_cache()  # each run loads its models afresh
    options = {"fd_dinov2": {"weights": str(inputs["dino"])},
               "cmmd": {"weights": str(inputs["clip336"])},
               "clip_fid": {"weights": str(inputs["clip"])},
               "clipscore": {"weights": str(inputs["clip"])}}
    return score(inputs["samples"], inputs["refs"], modality="image", metrics=METRICS,
                 options=options, prompts=inputs["prompts"], device="cpu", workers=workers,
                 batch_size=16, feature_cache=False, per_sample=True)


@pytest.fixture()
def preprocessed_calls(monkeypatch):
    """Counts the images backbones received already preprocessed; decode workers start
    from 2 images (not 64), so these small folders go through DataLoader workers."""
    from genmetrics.features import backbones
    from genmetrics.io import image as image_io

    monkeypatch.setattr(image_io, "WORKERS_FROM", 2)
    calls = {"images": 0}
    real = backbones.Backbone.extract_preprocessed

    def counted(self, tensors):
        calls["images"] += len(tensors)
        return real(self, tensors)

    monkeypatch.setattr(backbones.Backbone, "extract_preprocessed", counted)
    return calls


def test_workers_preprocess_with_the_same_values_and_signatures(inputs, preprocessed_calls):
    alone = _score(inputs, workers=0)
    assert preprocessed_calls["images"] == 0  # no workers: the backbones preprocess
    both = _score(inputs, workers=2)
    # every image of every backbone came preprocessed: samples for dinov2, clip336, clip
    # (clip_fid and clipscore: two preprocessings of one model), references for the
    # first three
    assert preprocessed_calls["images"] == 4 * N + 3 * N
    assert not alone.errors and not both.errors
    for name in METRICS:
        a, b = alone.metrics[name], both.metrics[name]
        assert a.value == b.value, name  # exactly
        assert a.signature == b.signature and a.signature_str == b.signature_str, name
        assert a.n == b.n == N
    np.testing.assert_array_equal(alone.metrics["clipscore"].per_sample,
                                  both.metrics["clipscore"].per_sample)
    assert both.metrics["clipscore"].signature["preprocessing"].startswith("processor:")


def test_one_image_at_a_time_equals_the_batch(inputs):
    """What a worker runs on one image is what the backbone's own batch preprocessing
    gives that image (the processor, and Pillow resizes with each crop)."""
    from genmetrics.features.backbones import get_backbone, preprocessing_key
    from genmetrics.io.image import decode_image

    images = [decode_image(p.read_bytes()) for p in sorted(inputs["samples"].glob("*.png"))]
    assert len({tuple(im.shape) for im in images}) > 2
    for name, folder in (("clip-vitl14", "clip"), ("clip-vitb32", "clip"),
                         ("clip-vitl14-336", "clip336"), ("dinov2-vitl14", "dino")):
        backbone = get_backbone(name, "cpu", str(inputs[folder]))
        prep = backbone.worker_preprocessing()
        assert preprocessing_key(backbone) == backbone.signature()["preprocessing"]
        one = torch.stack([prep.apply(image) for image in images])
        assert torch.equal(one, backbone.preprocess(images)), name
        assert one.dtype == torch.float32
        many = getattr(prep, "apply_many", None)
        if many is not None:  # a decode worker's chunk (mixed sizes): one processor call
            chunked = [v for s in range(0, len(images), 3) for v in many(images[s:s + 3])]
            assert torch.equal(torch.stack(chunked), one), name


def test_backbones_that_preprocess_themselves_get_no_worker_preprocessing():
    from genmetrics.features.backbones import (
        Backbone,
        Preprocessing,
        backbone_from_module,
        preprocessing_key,
    )

    prep = Preprocessing(8, "torch-bilinear-antialias", "none", (0.5,) * 3, (0.5,) * 3)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    module = backbone_from_module("toy", net, prep, device="cpu")
    assert preprocessing_key(module) == prep.signature()  # a user's module: workers do it

    class OwnPreprocess(type(module)):
        def preprocess(self, images):
            return super().preprocess(images) * 2

    own = OwnPreprocess("toy2", net, prep, device="cpu")
    assert preprocessing_key(own) is None  # its own preprocess: only it can run it
    assert preprocessing_key(Backbone()) is None  # no preprocessing at all
