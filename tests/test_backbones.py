"""Feature backbones: registry, offline resolution, preprocessing parity on real photos.

Preprocessing references, on ``skimage.data`` photographs (landscape, portrait, square,
grayscale):

* clean-fid's CLIP-FID (``clip-vitb32``): clean-fid's own code, pip-installed
  (``cleanfid.clip_features.img_preprocess_clip`` through ``cleanfid.utils.ResizeDataset``
  as ``compute_fid(model_name="clip_vit_b_32")`` sets it up, then ``CLIP_fx``'s
  ``/255`` + ``Normalize``, written out here because ``CLIP_fx`` needs OpenAI's ``clip``);
* torchmetrics' CLIPScore (``clip-vitl14``): torchmetrics' own ``_get_features``, with a
  spy model that records the pixel values it is handed;
* dgm-eval's DINOv2 transform (not on the package index): ``DINOv2Encoder.transform`` of
  ``layer6ai-labs/dgm-eval`` ``dgm_eval/models/dinov2.py`` (``clean_resize=False``),
  written out directly below from that source;
* google-research cmmd (not on the package index): ``_center_crop_and_resize`` and the
  ``/ 255`` of ``cmmd/io_util.py``, then ``_clip_preprocess`` of ``cmmd/embedding.py``
  (bicubic resize to 336: with ``jax.image.resize`` there, here torch's bicubic, both the
  identity at an unchanged size, which the test checks) and scenic's CLIP normalisation,
  written out directly below from that source.
"""

from __future__ import annotations

import functools
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from genmetrics.errors import MetricUnavailable, UsageError
from genmetrics.features import backbones
from genmetrics.features.backbones import (
    CLIP_MEAN,
    CLIP_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Backbone,
    BackboneUnavailable,
    Preprocessing,
    backbone_from_module,
    get_backbone,
    register_backbone,
    unregister_backbone,
)
from tests.photos import photos
from tests.tiny_models import tiny_clip, tiny_dinov2

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "retina")


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """HWC uint8 photographs: square, landscape, a portrait (chelsea turned) and gray."""
    found = photos()
    out = [found[name] for name in PHOTOS]
    out.append(np.ascontiguousarray(np.rot90(found["chelsea"])))
    return out


def chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).contiguous()


@pytest.fixture(scope="module")
def clip224(tmp_path_factory) -> Path:
    return tiny_clip(tmp_path_factory.mktemp("clip224"), image_size=224)


@pytest.fixture(scope="module")
def clip336(tmp_path_factory) -> Path:
    return tiny_clip(tmp_path_factory.mktemp("clip336"), image_size=336, seed=1)


@pytest.fixture(scope="module")
def dino(tmp_path_factory) -> Path:
    return tiny_dinov2(tmp_path_factory.mktemp("dinov2"))


@pytest.fixture(autouse=True)
def _fresh(monkeypatch, tmp_path):
    """No model anywhere but where a test puts it: empty asset and HF caches."""
    monkeypatch.setenv("GENMETRICS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in backbones.BUILTIN_BACKBONES:
        monkeypatch.delenv(backbones.weights_env(name), raising=False)
    backbones.clear_cache()
    yield
    backbones.clear_cache()


# -- preprocessing parity -----------------------------------------------------------------
def test_clip_fid_preprocessing_equals_clean_fid(images, clip224, tmp_path, monkeypatch):
    """clean-fid's CLIP-FID pipeline, run from clean-fid's own code on saved PNGs."""
    from PIL import Image

    monkeypatch.setitem(sys.modules, "clip", types.ModuleType("clip"))  # only CLIP_fx uses it
    from cleanfid.clip_features import img_preprocess_clip
    from cleanfid.utils import ResizeDataset

    files = []
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
        files.append(str(tmp_path / f"{i}.png"))
    dataset = ResizeDataset(files, mode="clean")
    dataset.fn_resize = img_preprocess_clip  # what compute_fid sets for clip_vit_b_32
    mean = torch.tensor(CLIP_MEAN)[:, None, None]
    std = torch.tensor(CLIP_STD)[:, None, None]
    reference = torch.stack([(dataset[i] / 255.0 - mean) / std for i in range(len(files))])

    ours = get_backbone("clip-vitb32", "cpu", weights=str(clip224))
    got = ours.preprocess([chw(image) for image in images])
    assert got.shape == reference.shape == (len(images), 3, 224, 224)
    # the same uint8 pixels; float rounding of (x * 255) / 255 only
    torch.testing.assert_close(got, reference, rtol=0, atol=1e-5)


def test_clipscore_preprocessing_equals_torchmetrics(images, clip224):
    """torchmetrics' CLIPScore feature path, handed a spy model recording its input."""
    from torchmetrics.functional.multimodal.clip_score import _get_features

    seen = {}

    class Spy:
        def get_image_features(self, pixel_values):
            seen["pixels"] = pixel_values
            return torch.zeros(len(pixel_values), 1)

    ours = get_backbone("clip-vitl14", "cpu", weights=str(clip224))
    tensors = [chw(image) for image in images]
    _get_features(tensors, "image", torch.device("cpu"), Spy(), ours.processor)
    got = ours.preprocess(tensors)
    assert got.shape == (len(images), 3, 224, 224)
    torch.testing.assert_close(got, seen["pixels"], rtol=0, atol=0)


def test_dinov2_preprocessing_equals_dgm_eval(images, dino):
    """dgm-eval's ``DINOv2Encoder.transform`` (clean_resize=False), written out from
    ``dgm_eval/models/dinov2.py``: TF.Resize((224, 224), BICUBIC) on the PIL image,
    TF.ToTensor(), TF.Normalize(ImageNet mean, std)."""
    import torchvision.transforms as TF
    from PIL import Image

    def dgm_eval(pil):
        image = TF.Compose([TF.Resize((224, 224), TF.InterpolationMode.BICUBIC),
                            TF.ToTensor()])(pil)
        return TF.Normalize(np.array(IMAGENET_MEAN), np.array(IMAGENET_STD))(image)

    reference = torch.stack([dgm_eval(Image.fromarray(image).convert("RGB"))
                             for image in images])
    ours = get_backbone("dinov2-vitl14", "cpu", weights=str(dino))
    got = ours.preprocess([chw(image) for image in images])
    torch.testing.assert_close(got, reference, rtol=0, atol=1e-6)


def test_cmmd_preprocessing_equals_google_research(images, clip336):
    """google-research cmmd, written out from ``cmmd/io_util.py`` (``_read_image`` with
    ``_center_crop_and_resize``, then ``/ 255.0``) and ``cmmd/embedding.py``
    (``_clip_preprocess``: bicubic resize to the input size, then scenic's
    ``normalize_image`` with CLIP's mean and std)."""
    from PIL import Image

    def read_image(image, size):  # _read_image + _center_crop_and_resize
        im = Image.fromarray(image)
        w, h = im.size
        side = min(w, h)
        top, left = (h - side) // 2, (w - side) // 2
        im = im.crop((left, top, left + side, top + side))
        return np.asarray(im.resize((size, size), resample=Image.BICUBIC)).astype(np.float32)

    batch = np.stack([read_image(image, 336) for image in images]) / 255.0
    resized = torch.nn.functional.interpolate(  # _clip_preprocess's resize to 336
        torch.from_numpy(batch).permute(0, 3, 1, 2), size=(336, 336), mode="bicubic",
        align_corners=False)
    np.testing.assert_allclose(resized.permute(0, 2, 3, 1).numpy(), batch, atol=1e-6)
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float64)[:, None, None]
    std = torch.tensor(CLIP_STD, dtype=torch.float64)[:, None, None]
    reference = (resized.double() - mean) / std

    ours = get_backbone("clip-vitl14-336", "cpu", weights=str(clip336))
    got = ours.preprocess([chw(image) for image in images])
    assert got.shape == (len(images), 3, 336, 336)
    torch.testing.assert_close(got.double(), reference, rtol=0, atol=1e-5)


# -- embeddings equal the model computed directly --------------------------------------
def test_clip_embeddings_equal_clipmodel(images, clip224):
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(clip224).eval()
    processor = CLIPProcessor.from_pretrained(clip224)
    tensors = [chw(image) for image in images]
    ours = get_backbone("clip-vitl14", "cpu", weights=str(clip224))
    with torch.no_grad():
        pixels = processor(images=tensors, return_tensors="pt")["pixel_values"]
        expected = model.get_image_features(pixel_values=pixels)
        expected = getattr(expected, "pooler_output", expected)  # transformers 5: an object
        texts = ["a cat on a sofa", "a rocket", "x " * 100]
        tokens = processor.tokenizer(texts, padding=True, truncation=True, max_length=77,
                                     return_tensors="pt")
        text = model.get_text_features(**tokens)
        text = getattr(text, "pooler_output", text)
    got = ours.extract(tensors)["embedding"]
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-5)
    embedded, truncated = ours.encode_text(texts)
    assert truncated == 1
    np.testing.assert_allclose(embedded, text.numpy(), rtol=1e-5, atol=1e-5)
    # batch size does not change the result
    ours.max_batch = 2
    np.testing.assert_allclose(ours.extract(tensors)["embedding"], got, rtol=1e-5, atol=1e-6)


def test_dinov2_embeddings_equal_dinov2model(images, dino):
    from transformers import Dinov2Model

    model = Dinov2Model.from_pretrained(dino).eval()
    ours = get_backbone("dinov2-vits14", "cpu", weights=str(dino))
    tensors = [chw(image) for image in images]
    pixels = ours.preprocess(tensors)
    with torch.no_grad():
        expected = model.layernorm(model(pixel_values=pixels, output_hidden_states=True)
                                   .hidden_states[-1])[:, 0]
    got = ours.extract(tensors)["embedding"]
    assert got.shape == (len(images), 32) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-5)


# -- registry, caching, offline resolution -------------------------------------------------
def test_get_backbone_caches_one_per_name_device_weights(clip224, dino):
    a = get_backbone("clip-vitb32", "cpu", weights=str(clip224))
    assert get_backbone("clip-vitb32", "auto", weights=str(clip224)) is a  # auto -> cpu here
    assert get_backbone("clip-vitl14", "cpu", weights=str(clip224)) is not a
    sig = a.signature()
    assert sig["backbone"] == "clip-vitb32" and sig["w"].startswith("sha256:")
    assert sig["preprocessing"].startswith("pil-bicubic-224|crop:center")
    assert get_backbone("clip-vitl14", "cpu", weights=str(clip224)).signature()[
        "preprocessing"].startswith("processor:CLIPImageProcessor")
    assert get_backbone("dinov2-vitl14", "cpu", weights=str(dino)).signature()["w"] != sig["w"]


def test_missing_model_is_unavailable_with_fetch_command():
    for name in ("dinov2-vitl14", "clip-vitb32", "clip-vitl14", "clip-vitl14-336"):
        with pytest.raises(BackboneUnavailable) as caught:
            get_backbone(name, "cpu")
        assert isinstance(caught.value, MetricUnavailable)
        assert str(caught.value).endswith(f"genmetrics assets fetch {name}")


def test_weights_from_env_and_bad_folder(clip224, monkeypatch, tmp_path):
    monkeypatch.setenv(backbones.weights_env("clip-vitl14"), str(clip224))
    assert get_backbone("clip-vitl14", "cpu").folder == clip224
    with pytest.raises(UsageError, match="no config.json"):
        get_backbone("dinov2-vitb14", "cpu", weights=str(tmp_path))


def test_asset_cache_and_hf_cache_are_found(clip224, tmp_path):
    """A model fetched into the asset cache (manifest written) is found without weights=."""
    import shutil

    from genmetrics import assets

    def copy(target: Path) -> None:
        for path in clip224.iterdir():
            shutil.copy(path, target / path.name)

    assets.build_atomically(assets.get_asset("clip-vitb32").cache_dir, "clip-vitb32",
                            "test copy", copy)
    assert get_backbone("clip-vitb32", "cpu").folder == assets.get_asset("clip-vitb32").cache_dir


def test_unknown_backbone():
    with pytest.raises(UsageError, match="unknown backbone 'nope'"):
        get_backbone("nope")


def test_module_backbone_and_registration():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(),
                              torch.nn.Linear(48, 5))
    prep = Preprocessing(32, "pil-bicubic", "center", IMAGENET_MEAN, IMAGENET_STD)
    bb = backbone_from_module("mine", net, prep, device="cpu")
    image = chw(photos()["coffee"])
    out = bb.extract([image, image])["embedding"]
    with torch.no_grad():
        expected = net(prep.apply(image)[None])
    np.testing.assert_allclose(out[0], expected[0].numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(out[0], out[1])
    other = backbone_from_module("mine", torch.nn.Sequential(
        torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(48, 5)), prep)
    assert other.signature()["w"] != bb.signature()["w"]  # the weights name the namespace
    calls = []

    def factory(device: str) -> Backbone:
        calls.append(device)
        return backbone_from_module("lazy", net, prep, device=device)

    register_backbone("lazy", factory)
    try:
        assert "lazy" in backbones.available_backbones()
        first = get_backbone("lazy", "cpu")
        assert get_backbone("lazy", "cpu") is first and calls == ["cpu"]
    finally:
        unregister_backbone("lazy")
    with pytest.raises(UsageError):
        get_backbone("lazy")


def test_entry_point_backbone(monkeypatch):
    module = types.ModuleType("thirdparty_backbone")

    def make(name: str, device: str, weights: str | None) -> Backbone:
        net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(3))
        net(torch.zeros(1, 3, 8, 8))
        return backbone_from_module(name, net, Preprocessing(
            8, "torch-bilinear-antialias", "none", (0.5,) * 3, (0.5,) * 3), device=device)

    module.make = make
    monkeypatch.setitem(sys.modules, "thirdparty_backbone", module)
    targets = functools.lru_cache(maxsize=1)(lambda: {"third": "thirdparty_backbone:make"})
    monkeypatch.setattr(backbones, "_plugin_targets", targets)
    bb = get_backbone("third", "cpu")
    assert bb.name == "third" and bb.outputs == {"embedding": 3}
    assert "third" in backbones.available_backbones()


def test_bad_item_is_refused_with_its_index(clip224):
    from genmetrics.errors import InputError

    ours = get_backbone("clip-vitb32", "cpu", weights=str(clip224))
    with pytest.raises(InputError, match="image 1"):
        ours.extract([torch.zeros(3, 8, 8, dtype=torch.uint8), torch.zeros(3, 8, 8)])


def test_inception_adapter_is_unchanged(tmp_path):
    from genmetrics.features import inception

    path = inception.random_weights_file(tmp_path / "w.pth", seed=3)
    bb = get_backbone("inception", "cpu", weights=str(path))
    extractor = inception.get_extractor(str(path), "cpu")
    images = [chw(photos()["astronaut"]), torch.zeros(3, 20, 30, dtype=torch.uint8)]
    got, expected = bb.extract(images), extractor.extract(images)
    assert list(got) == list(expected) == list(bb.outputs)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])
    assert bb.signature() == extractor.signature() and bb.embedding == "2048"
    inception.clear_cache()
