"""The Evaluator: in-memory batches give the CLI's numbers, across resets, checkpoints and
two gloo processes; and its memory stays flat over epochs."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import torch

from genmetrics import Evaluator
from genmetrics.errors import UsageError
from genmetrics.runner import score
from tests.conftest import REPO
from tests.photos import DEGRADATIONS, resize_longer_side, save_png, tiles

IMAGE_METRICS = ["fid", "kid", "inception_score", "ssim", "psnr"]
IMAGE_OPTIONS = {"kid": {"subset_size": 6}, "inception_score": {"splits": 2}}


@pytest.fixture(scope="module")
def image_data(tmp_path_factory, random_weights):
    root = tmp_path_factory.mktemp("evaluator")
    small = [resize_longer_side(t, 48) for _, t in tiles()[:12]]
    kinds = list(DEGRADATIONS.values())
    degraded = [kinds[i % 4](t) for i, t in enumerate(small)]
    for side, images in (("samples", degraded), ("refs", small)):
        (root / side).mkdir()
        for i, image in enumerate(images):
            save_png(image, root / side / f"{i:02d}.png")
    as_tensor = lambda images: torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)  # noqa
    return {"root": root, "samples": as_tensor(degraded), "refs": as_tensor(small),
            "weights": str(random_weights())}


def _image_evaluator(data) -> Evaluator:
    return Evaluator(IMAGE_METRICS, "image", device="cpu", options=IMAGE_OPTIONS,
                     inception_weights=data["weights"])


def _values(card) -> dict[str, float]:
    return {name: r.value for name, r in card.metrics.items()}


def test_image_batches_equal_the_cli_run(image_data):
    cli = score(image_data["root"] / "samples", image_data["root"] / "refs", modality="image",
                metrics=IMAGE_METRICS, options=IMAGE_OPTIONS, workers=0,
                inception_weights=image_data["weights"], device="cpu")
    ev = _image_evaluator(image_data)
    ev.update_reference(image_data["refs"])
    for start in (0, 5):  # two batches of different sizes
        stop = 5 if start == 0 else 12
        ev.update(image_data["samples"][start:stop], image_data["refs"][start:stop])
    card = ev.compute()
    for name, value in _values(cli).items():
        assert card.metrics[name].value == pytest.approx(value, rel=1e-6), name
    assert card.inputs["samples"]["count"] == 12
    assert card.to_dict()["schema"] == cli.to_dict()["schema"]


def _cheap_evaluator(data) -> Evaluator:
    """Inception features without FID's square root (slow for singular covariances)."""
    return Evaluator(["kid", "inception_score", "psnr"], "image", device="cpu",
                     options=IMAGE_OPTIONS, inception_weights=data["weights"])


def test_float_images_reset_and_checkpoint(image_data):
    ev = _cheap_evaluator(image_data)
    ev.update_reference(image_data["refs"])
    ev.update(image_data["samples"].float() / 255, image_data["refs"])
    first_card = ev.compute()
    first = _values(first_card)
    assert _values(ev.compute()) == first  # compute() does not change the pass
    ev.reset()  # the reference distribution stays; samples go
    ev.update(image_data["samples"][:6], image_data["refs"][:6])
    saved = ev.state_dict()
    ev.update(image_data["samples"][6:], image_data["refs"][6:])
    second_card = ev.compute()
    assert _values(second_card) == pytest.approx(first, rel=1e-6)
    for name in first:  # same references, same reference digest, epoch after epoch
        assert second_card.metrics[name].signature.get("refs") == \
            first_card.metrics[name].signature.get("refs")
    assert "refs" not in second_card.metrics["inception_score"].signature  # reference-free
    assert "refs" in second_card.metrics["kid"].signature
    resumed = _cheap_evaluator(image_data)
    resumed.load_state_dict(saved)
    resumed.update(image_data["samples"][6:], image_data["refs"][6:])
    assert _values(resumed.compute()) == pytest.approx(first, rel=1e-6)


def test_bad_batches_are_refused_clearly(image_data):
    ev = _image_evaluator(image_data)
    with pytest.raises(UsageError, match="N x 3 x H x W"):
        ev.update(torch.zeros(4, 4, 3))
    with pytest.raises(UsageError, match="NaN"):
        ev.update(torch.full((1, 3, 8, 8), float("nan")))
    with pytest.raises(UsageError, match="one reference per sample"):
        ev.update(image_data["samples"][:2], image_data["refs"][:3])


def test_text_and_audio_batches_equal_the_cli_run(tmp_path):
    import soundfile as sf

    hyps = ["the cat sat on the mat", "a quick brown fox", "it rained all day in May"]
    refs = ["the cat was on the mat", "the quick brown fox jumps", "it rained in May"]
    for side, texts in (("s", hyps), ("r", refs)):
        (tmp_path / side).mkdir()
        for i, text in enumerate(texts):
            (tmp_path / side / f"{i}.txt").write_text(text)
    cli = score(tmp_path / "s", tmp_path / "r", metrics=["bleu", "rouge", "chrf"])
    ev = Evaluator(["bleu", "rouge", "chrf"], "text")
    ev.update(hyps[:1], refs[:1])
    ev.update(hyps[1:], [[r] for r in refs[1:]])
    assert _values(ev.compute()) == _values(cli)

    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    clean = np.stack([0.3 * np.sin(2 * np.pi * f * t) for f in (220, 330, 440)])
    noisy = clean + 0.05 * rng.standard_normal(clean.shape)
    for side, waves in (("n", noisy), ("c", clean)):
        (tmp_path / side).mkdir()
        for i, wave in enumerate(waves):
            sf.write(tmp_path / side / f"{i}.wav", wave, 16000, subtype="DOUBLE")
    cli = score(tmp_path / "n", tmp_path / "c", modality="audio", metrics=["snr", "si_snr"])
    ev = Evaluator(["snr", "si_snr"], "audio", device="cpu")
    ev.update(torch.from_numpy(noisy), torch.from_numpy(clean), sample_rate=16000)
    assert _values(ev.compute()) == pytest.approx(_values(cli), rel=1e-12)
    with pytest.raises(UsageError, match="sample_rate"):
        ev.update(noisy, clean)


def test_memory_stays_flat_over_50_epochs(image_data):
    import resource

    ev = Evaluator(["kid", "ssim", "psnr"], "image", device="cpu",
                   options={"kid": {"subset_size": 4, "subsets": 5}},
                   inception_weights=image_data["weights"])
    ev.update_reference(image_data["refs"][:4])
    peaks = []
    for _ in range(50):
        ev.update(image_data["samples"][:4], image_data["refs"][:4])
        ev.compute()
        ev.reset()
        peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    growth_mib = (peaks[-1] - peaks[9]) / 1024
    assert growth_mib < 20, f"peak RSS grew {growth_mib:.1f} MiB over epochs 10-50"


# -- two processes (gloo) ---------------------------------------------------------------
_WORKER = r'''
import json, os, sys
import numpy as np, torch, torch.distributed as dist
sys.path.insert(0, os.environ["REPO"])
from genmetrics import Evaluator
rank, world = int(sys.argv[1]), 2
dist.init_process_group("gloo", init_method="file://" + sys.argv[2], rank=rank,
                        world_size=world)
data = torch.load(sys.argv[3], weights_only=True)
half = lambda x: x[:len(x) // 2] if rank == 0 else x[len(x) // 2:]  # contiguous shards
out = {}
ev = Evaluator(["fid", "kid", "inception_score", "ssim", "psnr"], "image", device="cpu",
               options={"kid": {"subset_size": 6}, "inception_score": {"splits": 2}},
               inception_weights=sys.argv[4])
ev.update_reference(half(data["refs"]))
ev.update(half(data["samples"]), half(data["refs"]))
card = ev.compute()
out["image"] = {k: r.value for k, r in card.metrics.items()}
out["image_inputs"] = card.inputs
ev = Evaluator(["bleu", "rouge"], "text")
ev.update(half(data["hyps"]), half(data["texts"]))
out["text"] = {k: r.value for k, r in ev.compute().metrics.items()}
ev = Evaluator(["snr", "si_snr"], "audio", device="cpu")
ev.update(half(data["noisy"]), half(data["clean"]), sample_rate=16000)
card = ev.compute()
out["audio"] = {k: r.value for k, r in card.metrics.items()}
out["ids"] = card.to_dict().get("per_sample", {}).get("ids")
out["count"] = card.inputs["samples"]["count"]
json.dump(out, open(sys.argv[5] + f".{rank}", "w"))
dist.barrier()
dist.destroy_process_group()  # a live group at exit can abort from gloo's threads
'''


def test_two_gloo_processes_equal_one_process(image_data, tmp_path):
    import subprocess

    hyps = [f"sample {i} says the cat sat on mat {i % 3}" for i in range(10)]
    texts = [f"sample {i} said a cat sat on the mat" for i in range(10)]
    rng = np.random.default_rng(1)
    clean = 0.3 * np.sin(np.linspace(0, 300, 8000))[None] * rng.uniform(0.5, 1, (6, 1))
    noisy = clean + 0.05 * rng.standard_normal(clean.shape)
    data = {"samples": image_data["samples"], "refs": image_data["refs"],
            "noisy": torch.from_numpy(noisy), "clean": torch.from_numpy(clean)}
    torch.save(data, tmp_path / "data.pt")
    script = tmp_path / "worker.py"
    script.write_text(_WORKER.replace('data = torch.load(sys.argv[3], weights_only=True)',
                                      'data = torch.load(sys.argv[3], weights_only=True)\n'
                                      f'data["hyps"] = {hyps!r}\ndata["texts"] = {texts!r}'))
    env = dict(os.environ, REPO=str(REPO), OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, str(script), str(rank), str(tmp_path / "init"),
                               str(tmp_path / "data.pt"), image_data["weights"],
                               str(tmp_path / "out.json")], env=env)
             for rank in (0, 1)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    outs = [json.loads((tmp_path / f"out.json.{r}").read_text()) for r in (0, 1)]
    assert outs[0] == outs[1]  # every rank receives the same result

    ev = _image_evaluator(image_data)
    ev.update_reference(image_data["refs"])
    ev.update(image_data["samples"], image_data["refs"])
    card = ev.compute()
    single = _values(card)
    # the input digests (samples; the reference: the update_reference distribution)
    # leave out the made-up ids (r0-0, ref-0, ...): the same as one process's
    assert outs[0]["image_inputs"] == card.inputs
    # float32 convolutions round differently for 6- and 12-image batches, and a singular
    # covariance (12 images, 2048 features) amplifies that in FID: 1e-5 relative, still
    # ten times inside the 1e-4 parity bound
    assert outs[0]["image"] == pytest.approx(single, rel=1e-5)
    ev = Evaluator(["bleu", "rouge"], "text")
    ev.update(hyps, texts)
    assert outs[0]["text"] == _values(ev.compute())
    ev = Evaluator(["snr", "si_snr"], "audio", device="cpu")
    ev.update(noisy, clean, sample_rate=16000)
    assert outs[0]["audio"] == pytest.approx(_values(ev.compute()), rel=1e-12)
    assert outs[0]["count"] == 6
