"""Distribution metrics over any backbone: FID + FD-DINOv2 + CMMD (+ CLIPScore) in one run.

Tiny random DINOv2 and CLIP models (``tests/tiny_models.py``) are saved into folders and
loaded through the real backbone code; the Inception is random torch-fidelity-format
weights. Checked here: each image is decoded once and each backbone runs once per image
however many metrics use it; ``fid`` and ``fd_dinov2`` are distinct results whose
signatures name their backbone; values equal the formulas computed directly on the
backbone's features; each backbone has its own feature-cache namespace (a rerun decodes
nothing); ``--inception-weights`` never reaches a DINOv2/CLIP metric.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.photos import blur, save_png, tiles
from tests.test_cmmd import google_research_mmd

N = 40  # images a side: above the tiny DINOv2's 32 dimensions (full-rank covariances)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from tests.tiny_models import tiny_clip, tiny_dinov2

    root = tmp_path_factory.mktemp("backbone-metrics")
    pieces = tiles(size=64, longer_side=256)
    assert len(pieces) >= 2 * N
    rng = np.random.default_rng(0)
    order = rng.permutation(len(pieces))
    for i, index in enumerate(order[:2 * N]):
        name, tile = pieces[index]
        side = "samples" if i < N else "refs"
        (root / side).mkdir(exist_ok=True)
        save_png(blur(tile, 1.0) if side == "samples" else tile, root / side / f"{name}.png")
    return {"root": root, "samples": root / "samples", "refs": root / "refs",
            "dino": tiny_dinov2(root / "dinov2"),
            "clip336": tiny_clip(root / "clip336", image_size=336, seed=1)}


def _images(folder):
    from genmetrics.io.image import decode_image

    return [decode_image(p.read_bytes()) for p in sorted(folder.glob("*.png"))]


def _frechet(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.linalg import sqrtm

    a, b = a.astype(np.float64), b.astype(np.float64)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float(((a.mean(0) - b.mean(0)) ** 2).sum()
                 + np.trace(s1 + s2 - 2 * sqrtm(s1 @ s2).real))


@pytest.fixture()
def counted(monkeypatch):
    """Counts decoded images and images each backbone extracted."""
    from genmetrics.features import clip, dinov2, inception
    from genmetrics.io import image as image_io

    counts = {"decoded": 0, "inception": 0, "dinov2": 0, "clip": 0}
    real_decode = image_io.decode_image

    def decode(raw, *args, **kwargs):
        counts["decoded"] += 1
        return real_decode(raw, *args, **kwargs)

    monkeypatch.setattr(image_io, "decode_image", decode)
    for key, cls in (("inception", inception.InceptionExtractor),
                     ("dinov2", dinov2.Dinov2Backbone), ("clip", clip.ClipBackbone)):
        real = cls.extract

        def extract(self, items, _real=real, _key=key):
            counts[_key] += len(items)
            return _real(self, items)

        monkeypatch.setattr(cls, "extract", extract)
    return counts


def _score(folders, random_weights, metrics, options=None, **kwargs):
    from genmetrics.runner import score

    opts = {"fd_dinov2": {"weights": str(folders["dino"])},
            "cmmd": {"weights": str(folders["clip336"])}}
    opts = {k: v for k, v in opts.items() if k in metrics}
    for name, more in (options or {}).items():
        opts[name] = {**opts.get(name, {}), **more}
    kwargs.setdefault("feature_cache", False)
    return score(folders["samples"], folders["refs"], modality="image", metrics=metrics,
                 options=opts, inception_weights=random_weights(), device="cpu", workers=0,
                 **kwargs)


def test_fid_fd_dinov2_cmmd_one_decode_one_forward_per_backbone(folders, random_weights,
                                                                counted):
    card = _score(folders, random_weights, ["fid", "fd_dinov2", "cmmd", "kid"],
                  options={"kid": {"subset_size": 20}})
    assert not card.errors and {"fid", "fd_dinov2", "cmmd", "kid"} <= set(card.metrics)
    assert counted["decoded"] == 2 * N  # each sample and reference decoded once
    # one forward per image per backbone, shared by fid + kid (Inception)
    assert counted == {"decoded": 2 * N, "inception": 2 * N, "dinov2": 2 * N, "clip": 2 * N}

    fid, fd = card.metrics["fid"], card.metrics["fd_dinov2"]
    assert "backbone" not in fid.signature  # Inception signatures unchanged
    assert fd.signature["backbone"] == "dinov2-vitl14" and fd.signature["w"].startswith("sha")
    assert card.metrics["cmmd"].signature["backbone"] == "clip-vitl14-336"
    assert "ext:dinov2-vitl14" in fd.signature_str

    from genmetrics.features.backbones import get_backbone

    dino = get_backbone("dinov2-vitl14", "cpu", str(folders["dino"]))
    samples, refs = _images(folders["samples"]), _images(folders["refs"])
    want = _frechet(dino.extract(samples)["embedding"], dino.extract(refs)["embedding"])
    assert fd.value == pytest.approx(want, rel=1e-4)
    clip = get_backbone("clip-vitl14-336", "cpu", str(folders["clip336"]))
    from genmetrics.metrics.image._mmd import l2_normalised

    x = l2_normalised(clip.extract(samples)["embedding"])
    y = l2_normalised(clip.extract(refs)["embedding"])
    assert card.metrics["cmmd"].value == pytest.approx(google_research_mmd(y, x), rel=1e-6)


def test_clipscore_shares_the_decode(folders, random_weights, counted, tmp_path):
    """FID + FD-DINOv2 + CMMD + CLIPScore over prompts: still one decode per image."""
    import json

    pytest.importorskip("genmetrics.metrics.image.clipscore")
    from tests.tiny_models import tiny_clip

    clip224 = tiny_clip(tmp_path / "clip224", image_size=224, seed=2)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": p.stem, "prompt": f"a photo of {p.stem}"})
                               + "\n" for p in sorted(folders["samples"].glob("*.png"))))
    card = _score(folders, random_weights, ["fid", "fd_dinov2", "cmmd", "clipscore"],
                  options={"clipscore": {"weights": str(clip224)}}, prompts=prompts)
    assert not card.errors and {"fid", "fd_dinov2", "cmmd", "clipscore"} <= set(card.metrics)
    assert counted["decoded"] == 2 * N
    # clip-vitl14 (CLIPScore, samples only) and clip-vitl14-336 (CMMD) are two backbones
    assert counted["clip"] == 2 * N + N and counted["dinov2"] == 2 * N


def test_features_option_moves_fid_to_another_backbone(folders, random_weights):
    both = _score(folders, random_weights, ["fid", "fd_dinov2"])
    from genmetrics.errors import UsageError
    from genmetrics.runner import score

    with pytest.raises(UsageError, match="--inception-weights"):  # no Inception metric left
        _score(folders, random_weights, ["fid"], options={"fid": {"features": "dinov2-vitl14"}})
    moved = score(folders["samples"], folders["refs"], modality="image", metrics=["fid"],
                  options={"fid": {"features": "dinov2-vitl14", "weights": str(folders["dino"])}},
                  device="cpu", workers=0, feature_cache=False)
    assert moved.metrics["fid"].value == pytest.approx(both.metrics["fd_dinov2"].value,
                                                        rel=1e-9)
    assert moved.metrics["fid"].signature["backbone"] == "dinov2-vitl14"
    assert both.metrics["fid"].value != pytest.approx(both.metrics["fd_dinov2"].value)


def test_each_backbone_has_its_own_cache_namespace(folders, random_weights, counted,
                                                   isolated_feature_cache):
    # diagnostics read pixels: off, so that cached features spare every decode
    first = _score(folders, random_weights, ["fid", "fd_dinov2", "cmmd"], feature_cache=True,
                   diagnostics=False)
    decoded = counted["decoded"]
    assert decoded == 2 * N
    again = _score(folders, random_weights, ["fid", "fd_dinov2", "cmmd"], feature_cache=True,
                   diagnostics=False)
    assert counted["decoded"] == decoded  # every backbone's rows cached: nothing decoded
    assert counted["dinov2"] == counted["clip"] == counted["inception"] == 2 * N
    for name in ("fid", "fd_dinov2", "cmmd"):
        assert again.metrics[name].value == pytest.approx(first.metrics[name].value, rel=1e-9)
    import json

    backbones = set()
    for marker in isolated_feature_cache.glob("*/provenance.json"):
        prov = json.loads(marker.read_text())["provenance"]
        backbones.add(prov.get("backbone", prov.get("ext", prov.get("extractor"))))
    assert {"dinov2-vitl14", "clip-vitl14-336"} <= backbones and len(backbones) >= 3


def test_missing_backbone_default_unavailable_explicit_exit_2(folders, random_weights,
                                                             monkeypatch):
    from genmetrics.errors import UsageError
    from genmetrics.runner import score

    monkeypatch.delenv("GENMETRICS_DINOV2_VITL14_WEIGHTS", raising=False)
    card = score(folders["samples"], folders["refs"], modality="image",
                 inception_weights=random_weights(), device="cpu", workers=0,
                 feature_cache=False)
    assert "fid" in card.metrics
    for name in ("fd_dinov2", "cmmd"):
        assert "genmetrics assets fetch" in card.unavailable[name]
    with pytest.raises(UsageError, match="genmetrics assets fetch dinov2-vitl14"):
        score(folders["samples"], folders["refs"], modality="image", metrics=["fd_dinov2"],
              device="cpu", workers=0, feature_cache=False)


def test_inception_weights_do_not_reach_other_backbones():
    from genmetrics.registry import get_metric

    assert get_metric("fid").takes_run_option("weights", {})
    assert not get_metric("fd_dinov2").takes_run_option("weights", {})
    assert not get_metric("fid").takes_run_option("weights", {"features": "clip-vitb32"})
    assert not get_metric("cmmd").takes_run_option("weights", {})
    assert get_metric("cmmd").takes_run_option("device", {})


def test_stats_build_features_carry_their_backbone(folders, tmp_path, random_weights):
    from genmetrics.errors import UsageError
    from genmetrics.reference_stats import build_stats, load_stats
    from genmetrics.runner import score

    path, entry = build_stats(folders["refs"], "dino-refs", out_dir=tmp_path,
                              features="dinov2-vitl14", weights=str(folders["dino"]),
                              device="cpu", feature_cache=False)
    assert entry["backbone"] == "dinov2-vitl14" and entry["dim"] == 32
    assert load_stats(path).backbone == "dinov2-vitl14"
    opts = {"fd_dinov2": {"weights": str(folders["dino"])}}
    with_stats = score(folders["samples"], modality="image", metrics=["fd_dinov2"],
                       options=opts, reference_stats=path, device="cpu", workers=0,
                       feature_cache=False)
    with_folder = score(folders["samples"], folders["refs"], modality="image",
                        metrics=["fd_dinov2"], options=opts, device="cpu", workers=0,
                        feature_cache=False)
    assert with_stats.metrics["fd_dinov2"].value == pytest.approx(
        with_folder.metrics["fd_dinov2"].value, rel=1e-6)
    # refused for another backbone, either way round, with what to do
    with pytest.raises(UsageError, match="hold dinov2-vitl14 features.*--features inception"):
        score(folders["samples"], modality="image", metrics=["fid"], reference_stats=path,
              inception_weights=random_weights(), device="cpu", workers=0,
              feature_cache=False)
    mu_sigma = tmp_path / "inception-mu-sigma.npz"
    np.savez(mu_sigma, mu=np.zeros(2048), sigma=np.eye(2048))
    with pytest.raises(UsageError, match="hold inception features.*dinov2-vitl14"):
        score(folders["samples"], modality="image", metrics=["fd_dinov2"], options=opts,
              reference_stats=mu_sigma, device="cpu", workers=0, feature_cache=False)


def test_kid_knn_and_vendi_over_dinov2_share_its_forward(folders, counted):
    """kid, precision/recall, density/coverage and vendi with features=dinov2-vitl14 run
    beside fd_dinov2 on one DINOv2 pass; values equal the arithmetic on its rows."""
    from genmetrics.features.backbones import get_backbone
    from genmetrics.metrics.image import _distribution_math as dm
    from genmetrics.metrics.image import _knn
    from genmetrics.runner import score

    dino = {"features": "dinov2-vitl14", "weights": str(folders["dino"])}
    names = ["fd_dinov2", "kid", "precision_recall", "density_coverage", "vendi"]
    opts = {name: dict(dino) for name in names}
    opts["fd_dinov2"] = {"weights": str(folders["dino"])}
    opts["kid"]["subset_size"] = 20
    card = score(folders["samples"], folders["refs"], modality="image", metrics=names,
                 options=opts, device="cpu", workers=0, feature_cache=False)
    assert not card.errors, card.errors
    assert counted["dinov2"] == 2 * N and counted["inception"] == 0
    assert counted["decoded"] == 2 * N
    for result in ("kid", "precision", "recall", "density", "coverage", "vendi"):
        assert card.metrics[result].signature["backbone"] == "dinov2-vitl14", result
    backbone = get_backbone("dinov2-vitl14", "cpu", str(folders["dino"]))
    x = backbone.extract(_images(folders["samples"]))["embedding"]
    y = backbone.extract(_images(folders["refs"]))["embedding"]
    kid, _ = dm.kernel_inception_distance(x, y, subsets=dm.KID_SUBSETS, subset_size=20,
                                          degree=dm.KID_DEGREE, coef0=dm.KID_COEF0,
                                          seed=dm.KID_SEED)
    assert card.metrics["kid"].value == pytest.approx(kid, rel=1e-6)
    prdc = _knn.prdc(y, x, 5, device="cpu")
    for name in ("density", "coverage"):
        assert card.metrics[name].value == pytest.approx(prdc[name], rel=1e-9)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    eig = np.clip(np.linalg.eigvalsh(unit.astype(np.float64) @ unit.T.astype(np.float64)
                                     / len(x)), 0, None)
    eig = eig[eig > 0]
    assert card.metrics["vendi"].value == pytest.approx(np.exp(-(eig * np.log(eig)).sum()),
                                                        rel=1e-6)
