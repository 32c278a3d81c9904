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

from tests.cmmd_reference import google_research_mmd
from tests.photos import blur, save_png, tiles

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


# -- the "Done when", through the CLI ------------------------------------------------
FETCH = {"fd_dinov2": "dinov2-vitl14", "cmmd": "clip-vitl14-336", "clipscore": "clip-vitl14"}


def _cli(*args):
    """``genmetrics ARGS`` in this process (the counts of the ``counted`` fixture hold)."""
    from typer.testing import CliRunner

    from genmetrics.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def _t2i_samples(folders, root):
    """The samples with each one's prompt in a ``.txt`` beside it: ``(folder, {id: prompt})``."""
    import shutil

    samples = root / "t2i"
    samples.mkdir()
    prompts = {}
    for i, png in enumerate(sorted(folders["samples"].glob("*.png"))):
        shutil.copy(png, samples / png.name)
        prompts[png.stem] = f"a photo number {i} of {png.stem.replace('_', ' ')}"
        (samples / f"{png.stem}.txt").write_text(prompts[png.stem], encoding="utf-8")
    return samples, prompts


def test_t2i_clipscore_cmmd_fd_over_one_clip_in_one_cli_run(folders, counted, tmp_path):
    """A text-to-image folder with prompts (.txt beside each image), scored with a local
    CLIP folder: CLIPScore equals the definition computed directly with transformers'
    CLIPModel, CMMD and FD over that CLIP equal their formulas on the same CLIPModel
    rows, in one run: each image decoded once, the CLIP run once per image."""
    import json

    from genmetrics.metrics.image._mmd import l2_normalised
    from tests.test_clipscore import direct_scores, read_png
    from tests.tiny_models import tiny_clip

    clip = tiny_clip(tmp_path / "clip", seed=1)
    samples, prompts = _t2i_samples(folders, tmp_path)
    out = tmp_path / "card.json"
    weights = [x for m in ("clipscore", "cmmd", "clip_fid")
               for x in ("--set", f"{m}.weights={clip}")]
    done = _cli("score", samples, "-r", folders["refs"], "--metrics", "clipscore,cmmd,clip_fid",
                "--set", "cmmd.features=clip-vitl14", "--set", "clip_fid.features=clip-vitl14",
                *weights, "--device", "cpu", "--workers", "0", "--no-feature-cache",
                "-o", out, "--quiet")
    assert done.exit_code == 0, done.output
    card = json.loads(out.read_text())
    assert not card.get("errors") and {"clipscore", "cmmd", "clip_fid"} <= set(card["metrics"])
    assert counted["decoded"] == 2 * N  # one decode per sample and reference
    assert counted["clip"] == 2 * N  # one CLIP forward per image, shared by the three
    assert counted["inception"] == counted["dinov2"] == 0

    keys = sorted(prompts)
    images = [read_png(samples / f"{k}.png") for k in keys]
    expected = direct_scores(clip, images, [prompts[k] for k in keys])
    clipscore = card["metrics"]["clipscore"]
    assert clipscore["n"] == N
    assert clipscore["value"] == pytest.approx(max(expected.mean(), 0.0), abs=2e-4)

    import torch
    from transformers import CLIPModel, CLIPProcessor

    model, processor = CLIPModel.from_pretrained(clip).eval(), CLIPProcessor.from_pretrained(clip)

    def rows(folder):
        tensors = [torch.from_numpy(read_png(p)).permute(2, 0, 1).contiguous()
                   for p in sorted(folder.glob("*.png"))]
        with torch.inference_mode():
            pixels = processor(images=tensors, return_tensors="pt")["pixel_values"]
            return model.get_image_features(pixel_values=pixels).pooler_output.numpy()

    x, y = rows(samples), rows(folders["refs"])
    assert card["metrics"]["clip_fid"]["value"] == pytest.approx(_frechet(x, y), rel=1e-4)
    assert card["metrics"]["cmmd"]["value"] == pytest.approx(
        google_research_mmd(l2_normalised(y), l2_normalised(x)), rel=1e-4)
    sigs = {name: card["metrics"][name]["signature"] for name in ("clipscore", "cmmd",
                                                                   "clip_fid")}
    assert {s["backbone"] for s in sigs.values()} == {"clip-vitl14"}
    assert len({s["w"] for s in sigs.values()}) == 1
    # the text tower's truncation policy is CLIPScore's, not the image features'
    assert sigs["clipscore"]["text"] == "truncate-77"
    assert "text" not in sigs["cmmd"] and "text" not in sigs["clip_fid"]


def test_local_dinov2_folder_puts_fd_dinov2_beside_fid_cli(folders, random_weights,
                                                           monkeypatch, tmp_path):
    """A default run with a local DINOv2 folder ($GENMETRICS_DINOV2_VITL14_WEIGHTS):
    ``fd_dinov2`` is in the scorecard beside ``fid``, each naming its backbone."""
    import json

    from genmetrics.features.backbones import weights_env

    monkeypatch.setenv(weights_env("dinov2-vitl14"), str(folders["dino"]))
    out = tmp_path / "card.json"
    done = _cli("score", folders["samples"], "-r", folders["refs"], "--inception-weights",
                random_weights(), "--device", "cpu", "--workers", "0", "--no-feature-cache",
                "-o", out, "--quiet")
    assert done.exit_code == 0, done.output
    metrics = json.loads(out.read_text())["metrics"]
    assert {"fid", "fd_dinov2"} <= set(metrics)
    assert metrics["fd_dinov2"]["signature"]["backbone"] == "dinov2-vitl14"
    assert "backbone" not in metrics["fid"]["signature"]  # Inception's, unchanged
    assert metrics["fd_dinov2"]["value"] != pytest.approx(metrics["fid"]["value"])


def test_offline_default_run_without_backbones_cli(folders, random_weights, tmp_path):
    """Offline, no backbone anywhere (empty asset, Hugging Face and torch-hub caches, no
    $GENMETRICS_*_WEIGHTS): the default reference run exits 0 and its scorecard names each
    unavailable metric with the command that fetches its model; asked for by name, exit 2
    with the same line."""
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import REPO, assert_one_line_error

    samples, _ = _t2i_samples(folders, tmp_path)
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("GENMETRICS_") and k.endswith("_WEIGHTS"))}
    env.update(GENMETRICS_HOME=str(tmp_path / "home"), HF_HOME=str(tmp_path / "hf"),
               HF_HUB_CACHE=str(tmp_path / "hf" / "hub"), TORCH_HOME=str(tmp_path / "torch"),
               HF_HUB_OFFLINE="1", GENMETRICS_OFFLINE="1", COLUMNS="200")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "genmetrics", "score", str(samples), "-r",
                               str(folders["refs"]), "--device", "cpu", "--no-feature-cache",
                               *args], capture_output=True, text=True, env=env, cwd=REPO,
                              timeout=600)

    out = tmp_path / "card.json"
    done = run("--inception-weights", str(random_weights()), "-o", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    card = json.loads(out.read_text())
    assert "fid" in card["metrics"]
    for name, backbone in FETCH.items():  # clipscore: the prompts are there
        assert name not in card["metrics"]
        assert card["unavailable"][name].endswith(f"genmetrics assets fetch {backbone}")
    done = run("--metrics", "fd_dinov2", "-o", str(out))
    assert_one_line_error(done, "fd_dinov2 is unavailable")
    assert done.stderr.strip().endswith("genmetrics assets fetch dinov2-vitl14")
