"""CLIPScore and prompts as input for images.

Parity: against torchmetrics' definition computed directly with transformers'
``CLIPModel`` + ``CLIPProcessor`` (the processor on the list of uint8 CHW tensors,
``get_image_features`` / ``get_text_features``, 100 x cosine per image, ``max(mean, 0)``)
on real photographs (``skimage.data``) and a tiny random CLIP saved with
``save_pretrained`` (no real CLIP can be downloaded here). torchmetrics 1.9's own
``CLIPScore`` fails on transformers 5 as it is (``get_image_features`` now returns an
output object, not a tensor); :func:`test_clipscore_equals_torchmetrics_clipscore`
therefore runs torchmetrics' ``CLIPScore`` class unchanged, loading the same folder,
with a thin adapter on its model that returns ``pooler_output`` (the projected
embedding the old API returned).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import assert_one_line_error
from tests.photos import tiles
from tests.tiny_models import tiny_clip

PROMPTS = ["a photo of an astronaut", "a cat", "a cup of coffee on a table", "a rocket",
           "stars in the night sky", "a microscope image of cells", "a retina",
           "a man with a camera", "a brick wall", "grass"]


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory) -> Path:
    # seed 1: on these photographs and prompts the cosines take both signs, mean > 0
    # (torchmetrics' CLIPScore loads only paths that contain "openai")
    return tiny_clip(tmp_path_factory.mktemp("clip") / "openai-tiny-clip", seed=1)


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """PNG tiles of real photographs (varied sizes) and a prompt per file."""
    from PIL import Image

    root = tmp_path_factory.mktemp("t2i") / "samples"
    root.mkdir()
    prompts = {}
    picked = tiles(size=96, longer_side=300)[::3][:10]
    for i, (name, tile) in enumerate(picked):
        if i % 3 == 1:  # a non-square one: the processor's resize and crop matter
            tile = tile[:, : 64]
        Image.fromarray(tile).save(root / f"{i:02d}.png")
        prompts[f"{i:02d}"] = PROMPTS[i % len(PROMPTS)] + f" ({name})"
    return root, prompts


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def direct_scores(folder: Path, images: list[np.ndarray], prompts: list[str]) -> np.ndarray:
    """torchmetrics' definition with transformers' CLIPModel and CLIPProcessor, per image
    (100 x cosine, float64 at the end)."""
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(folder).eval()
    processor = CLIPProcessor.from_pretrained(folder)
    tensors = [torch.from_numpy(im).permute(2, 0, 1).contiguous() for im in images]
    with torch.inference_mode():
        pixels = processor(images=tensors, return_tensors="pt")["pixel_values"]
        img = model.get_image_features(pixel_values=pixels).pooler_output
        tok = processor(text=prompts, return_tensors="pt", padding=True)
        txt = model.get_text_features(input_ids=tok["input_ids"],
                                      attention_mask=tok["attention_mask"]).pooler_output
    img = img.double() / img.double().norm(dim=-1, keepdim=True)
    txt = txt.double() / txt.double().norm(dim=-1, keepdim=True)
    return (100 * (img * txt).sum(-1)).numpy()


def read_png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.array(Image.open(path).convert("RGB"))


def score_clip(samples, clip_folder, **kw):
    from genmetrics.runner import score

    options = {"clipscore": {"weights": str(clip_folder), "device": "cpu"}}
    return score(samples, metrics=["clipscore"], options=options, per_sample=True, **kw)


def test_clipscore_equals_the_definition_computed_directly(photo_folder, clip_folder,
                                                           tmp_path):
    root, prompts = photo_folder
    jsonl = write_jsonl(tmp_path / "prompts.jsonl",
                        [{"id": k, "prompt": v, "category": "x"} for k, v in prompts.items()])
    card = score_clip(root, clip_folder, prompts=jsonl, batch_size=4, workers=0)
    result = card.metrics["clipscore"]
    keys = sorted(prompts)
    expected = direct_scores(clip_folder, [read_png(root / f"{k}.png") for k in keys],
                             [prompts[k] for k in keys])
    assert result.n == len(keys)
    # float32 towers, batched differently (4 here, all 10 at once there)
    np.testing.assert_allclose(result.per_sample, expected, rtol=0, atol=2e-4)
    assert result.value == pytest.approx(max(expected.mean(), 0.0), abs=2e-4)
    assert expected.min() < 0 < expected.mean()  # a random CLIP: both signs are exercised
    sig = result.signature
    assert sig["backbone"] == "clip-vitl14" and sig["text"] == "truncate-77"
    assert sig["w"].startswith("sha256:") and sig["clamp"] == "mean"
    assert card.inputs["prompts"]["digest"] == sig["refs"]
    # clamp="pair": each image floored at 0 (Hessel et al.'s CLIP-S without the 2.5)
    from genmetrics.runner import score

    pair = score(root, metrics=["clipscore"], prompts=jsonl, workers=0, options={
        "clipscore": {"weights": str(clip_folder), "device": "cpu", "clamp": "pair"}})
    assert pair.metrics["clipscore"].value == pytest.approx(
        np.maximum(expected, 0).mean(), abs=2e-4)
    assert pair.metrics["clipscore"].signature["clamp"] == "pair"


def test_clipscore_equals_torchmetrics_clipscore(photo_folder, clip_folder):
    """torchmetrics' CLIPScore class, unchanged but for a thin adapter on its model
    (transformers 5 returns an output object from get_image_features)."""
    from torchmetrics.multimodal.clip_score import CLIPScore as TMCLIPScore

    root, prompts = photo_folder
    keys = sorted(prompts)
    images = [torch.from_numpy(read_png(root / f"{k}.png")).permute(2, 0, 1) for k in keys]
    texts = [prompts[k] for k in keys]
    reference = TMCLIPScore(model_name_or_path=str(clip_folder))
    with pytest.raises(AttributeError):  # torchmetrics 1.9 + transformers 5, as it is
        reference.update(images[:2], texts[:2])
    reference.reset()
    reference.model = PooledOutputs(reference.model)
    for start in range(0, len(keys), 3):
        reference.update(images[start:start + 3], texts[start:start + 3])
    theirs = float(reference.compute())
    card = score_clip(root, clip_folder, prompts=write_jsonl(
        root.parent / "p.jsonl", [{"id": k, "prompt": prompts[k]} for k in keys]), workers=0)
    assert card.metrics["clipscore"].value == pytest.approx(theirs, abs=2e-4)


class PooledOutputs(torch.nn.Module):
    """transformers 5's CLIPModel with the transformers 4 feature API torchmetrics calls
    (``get_*_features`` returning the projected embedding tensor)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.config = model.config

    def get_image_features(self, *args, **kwargs):
        return self.model.get_image_features(*args, **kwargs).pooler_output

    def get_text_features(self, *args, **kwargs):
        return self.model.get_text_features(*args, **kwargs).pooler_output


def test_long_prompts_are_truncated_counted_and_the_end_token_kept(clip_folder, tmp_path):
    from PIL import Image

    root = tmp_path / "s"
    root.mkdir()
    for i in range(3):
        Image.fromarray(np.full((40, 40, 3), 60 * (i % 2), np.uint8)).save(root / f"{i}.png")
    long = "a very long prompt " * 20  # 380 characters: far beyond 77 tokens
    (root / "0.txt").write_text(long)
    (root / "1.txt").write_text("short")
    (root / "2.txt").write_text(long + " with another ending")
    card = score_clip(root, clip_folder, workers=0)
    result = card.metrics["clipscore"]
    assert result.components["truncated_prompts"] == 2
    assert any("2 of 3 prompts were longer" in w["message"] for w in card.warnings)
    # the tokenizer's truncation keeps <|endoftext|>, where CLIP reads its pooled output
    from transformers import CLIPProcessor

    tokenizer = CLIPProcessor.from_pretrained(clip_folder).tokenizer
    tokens = tokenizer([long], truncation=True, max_length=77)["input_ids"][0]
    assert len(tokens) == 77 and tokens[-1] == tokenizer.eos_token_id
    # same image, same first 76 tokens + end token: the same score
    assert result.per_sample[0] == pytest.approx(result.per_sample[2], abs=1e-9)
    assert result.per_sample[0] != pytest.approx(result.per_sample[1], abs=1e-6)


def test_prompts_beside_images_and_bad_prompts(photo_folder, clip_folder, tmp_path):
    """A .txt beside each image; a missing, an empty and an unreadable prompt are named
    as failed by clipscore while the image still counts for the rest of the run."""
    import shutil

    src, prompts = photo_folder
    root = tmp_path / "s"
    shutil.copytree(src, root)
    keys = sorted(prompts)
    for k in keys[:-3]:
        (root / f"{k}.txt").write_text(prompts[k] + "\n", encoding="utf-8")
    (root / f"{keys[-3]}.txt").write_text("   \n")  # empty
    (root / f"{keys[-2]}.txt").write_bytes(b"\xff\xfe\xfa")  # not UTF-8
    # keys[-1] has none
    card = score_clip(root, clip_folder, workers=0)
    result = card.metrics["clipscore"]
    assert result.n == len(keys) - 3
    reasons = {f["index"]: f["reason"] for f in result.components["failed"]}
    assert len(reasons) == 3
    assert "empty prompt" in reasons[len(keys) - 3]
    assert "cannot read" in reasons[len(keys) - 2]
    assert f"no {keys[-1]}.txt beside" in reasons[len(keys) - 1]
    assert not card.skipped
    assert any("3 sample(s) have no usable prompt" in w["message"] for w in card.warnings)
    # the .txt files are prompts, not "files without an image extension"
    assert not any("without an input extension" in w["message"] for w in card.warnings)
    expected = direct_scores(clip_folder, [read_png(root / f"{k}.png") for k in keys[:-3]],
                             [prompts[k] for k in keys[:-3]])
    assert result.value == pytest.approx(max(expected.mean(), 0), abs=2e-4)


def test_prompt_file_problems(photo_folder, clip_folder, tmp_path, run_cli):
    root, prompts = photo_folder
    keys = sorted(prompts)
    rows = [{"id": k, "prompt": prompts[k]} for k in keys[1:]] + [{"id": "nope", "prompt": "x"}]
    card = score_clip(root, clip_folder, prompts=write_jsonl(tmp_path / "p.jsonl", rows),
                      workers=0)
    result = card.metrics["clipscore"]
    assert result.components["failed"] == [{"index": 0, "id": keys[0], "reason": (
        f"no prompt: no id '{keys[0]}' in {tmp_path / 'p.jsonl'}")}]
    assert any("1 prompt(s) match no sample: nope" in w["message"] for w in card.warnings)
    # malformed lines, prompts by line for a folder, no id matching: exit 2, one line
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "00", "prompt": "a"}\n{"id": "01"}\n')
    done = run_cli("score", root, "--prompts", bad, "--metrics", "clipscore", "--set",
                   f"clipscore.weights={clip_folder}", "-o", tmp_path / "c.json")
    assert_one_line_error(done, "bad.jsonl line 2", '"prompt"')
    by_line = tmp_path / "lines.txt"
    by_line.write_text("a cat\na dog\n")
    done = run_cli("score", root, "--prompts", by_line, "--metrics", "clipscore", "--set",
                   f"clipscore.weights={clip_folder}", "-o", tmp_path / "c.json")
    assert_one_line_error(done, "prompts by line", ".npz")
    done = run_cli("score", root, "--prompts", write_jsonl(tmp_path / "other.jsonl", [
        {"id": "zz", "prompt": "a"}]), "--metrics", "clipscore", "-o", tmp_path / "c.json")
    assert_one_line_error(done, "no id is the name of a sample")


def test_npz_input_with_prompts_by_line(clip_folder, tmp_path):
    images = np.stack([t for _, t in tiles(size=64, longer_side=200)[:5]])
    np.savez(tmp_path / "samples.npz", images)
    lines = tmp_path / "prompts.txt"
    lines.write_text("\n".join(PROMPTS[:4]) + "\n")  # one short: the 5th has none
    card = score_clip(tmp_path / "samples.npz", clip_folder, prompts=lines, workers=0)
    result = card.metrics["clipscore"]
    expected = direct_scores(clip_folder, list(images[:4]), PROMPTS[:4])
    np.testing.assert_allclose(result.per_sample[:4], expected, atol=2e-4)
    assert result.per_sample[4] is None
    assert "has no line 5" in result.components["failed"][0]["reason"]
    # JSON Lines by id (the index) gives the same numbers
    jsonl = write_jsonl(tmp_path / "p.jsonl", [{"id": i, "prompt": p}
                                               for i, p in enumerate(PROMPTS[:5])])
    by_id = score_clip(tmp_path / "samples.npz", clip_folder, prompts=jsonl, workers=0)
    assert by_id.metrics["clipscore"].per_sample[:4] == pytest.approx(result.per_sample[:4])


def test_evaluator_prompts_match_the_runner(photo_folder, clip_folder, tmp_path):
    from genmetrics import Evaluator
    from genmetrics.errors import UsageError

    root, prompts = photo_folder
    keys = sorted(prompts)
    ev = Evaluator(["clipscore"], "image", device="cpu",
                   options={"clipscore": {"weights": str(clip_folder)}})
    images = [torch.from_numpy(read_png(root / f"{k}.png")).permute(2, 0, 1) for k in keys]
    with pytest.raises(UsageError, match="10 samples but 9 prompts"):
        ev.update(images, prompts=[prompts[k] for k in keys[:-1]])
    ev.update(images[:6], prompts=[prompts[k] for k in keys[:6]])
    ev.update(images[6:], prompts=[prompts[k] for k in keys[6:-1]] + [""])
    result = ev.compute().metrics["clipscore"]
    expected = direct_scores(clip_folder, [read_png(root / f"{k}.png") for k in keys[:-1]],
                             [prompts[k] for k in keys[:-1]])
    assert result.n == len(keys) - 1
    assert result.value == pytest.approx(max(expected.mean(), 0), abs=2e-4)
    [failed] = result.components["failed"]
    assert failed["index"] == len(keys) - 1 and failed["reason"] == "empty prompt"


def test_default_run_without_clip_names_it_unavailable(photo_folder, tmp_path, run_cli):
    """Offline, no CLIP anywhere: a default run with prompts exits 0 and the scorecard
    says clipscore is unavailable and how to fetch it; asked for by name, exit 2."""
    root, prompts = photo_folder
    jsonl = write_jsonl(tmp_path / "p.jsonl", [{"id": k, "prompt": v}
                                               for k, v in prompts.items()])
    out = tmp_path / "card.json"
    done = run_cli("score", root, "--prompts", jsonl, "-o", out)
    assert done.returncode == 0, done.stderr
    card = json.loads(out.read_text())
    assert card["unavailable"]["clipscore"].endswith("genmetrics assets fetch clip-vitl14")
    done = run_cli("score", root, "--prompts", jsonl, "--metrics", "clipscore", "-o", out)
    assert_one_line_error(done, "clipscore is unavailable", "assets fetch clip-vitl14")
    from genmetrics.registry import get_metric
    from genmetrics.runner import default_metrics

    assert "clipscore" in default_metrics("image", False, provides=frozenset({"prompt"}))
    assert "clipscore" not in default_metrics("image", False)
    metric = get_metric("clipscore")(device="cpu")
    reason = metric.default_unavailable()
    assert reason is not None and reason.endswith("genmetrics assets fetch clip-vitl14")


def test_slices_encode_each_prompt_once_and_equal_a_run_alone(photo_folder, clip_folder,
                                                              tmp_path, monkeypatch, run_cli):
    """--group-by a field of the --prompts JSONL: each slice is scored from the overall
    run's per-image rows (each prompt through the text tower once), equals a run over that
    slice's images alone, and counts its own truncated prompts."""
    import shutil

    from genmetrics.features.clip import ClipBackbone

    root, prompts = photo_folder
    keys = sorted(prompts)
    kinds = {k: "a" if i < 6 else "b" for i, k in enumerate(keys)}
    texts = dict(prompts, **{keys[-1]: "a very long prompt " + "x " * 100})
    jsonl = write_jsonl(tmp_path / "prompts.jsonl", [
        {"id": k, "prompt": texts[k], "kind": kinds[k]} for k in keys])
    encoded: list[str] = []
    real = ClipBackbone.encode_text
    monkeypatch.setattr(ClipBackbone, "encode_text",
                        lambda self, t: (encoded.extend(t), real(self, t))[1])
    card = score_clip(root, clip_folder, prompts=jsonl, group_by="kind", batch_size=4,
                      workers=0)
    assert sorted(encoded) == sorted(t.strip() for t in texts.values())  # each once
    groups = card.slices["groups"]
    assert {v: g["n"] for v, g in groups.items()} == {"a": 6, "b": 4}
    assert "truncated_prompts" not in groups["a"]["metrics"]["clipscore"].components
    assert groups["b"]["metrics"]["clipscore"].components["truncated_prompts"] == 1
    assert card.metrics["clipscore"].components["truncated_prompts"] == 1
    alone_dir = tmp_path / "alone"
    alone_dir.mkdir()
    for k in keys[6:]:
        shutil.copy(root / f"{k}.png", alone_dir)
    alone = score_clip(alone_dir, clip_folder, prompts=jsonl, workers=0)
    assert groups["b"]["metrics"]["clipscore"].value == pytest.approx(
        alone.metrics["clipscore"].value, abs=2e-4)  # float32 towers, other batching
    # the same through the CLI: the slices' field read from the --prompts file
    out = tmp_path / "card.json"
    done = run_cli("score", root, "--metrics", "clipscore", "--prompts", jsonl, "--group-by",
                   "kind", "--set", f"clipscore.weights={clip_folder}", "--set",
                   "clipscore.device=cpu", "--out", out, "-q")
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert doc["slices"]["by"] == "kind" and doc["slices"]["source"] == str(jsonl)
    assert {v: g["n"] for v, g in doc["slices"]["groups"].items()} == {"a": 6, "b": 4}
    assert doc["slices"]["groups"]["a"]["metrics"]["clipscore"]["value"] == pytest.approx(
        groups["a"]["metrics"]["clipscore"].value, abs=2e-4)
