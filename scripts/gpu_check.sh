#!/usr/bin/env bash
# GPU check for the image metrics, on a CUDA machine, in under 5 minutes:
#   1. the image parity and invariance tests with every metric on cuda
#      (GENMETRICS_TEST_DEVICE=cuda; torch-fidelity and scikit-image stay the reference);
#   2. images/s of the shared Inception pass on cuda (model only, and end to end through
#      `genmetrics score` on a folder of PNGs) against torch-fidelity with cuda=True on the
#      same folder and weights, and SSIM pairs/s on cuda.
# Run from the repository root after `make install`:  bash scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

"$PY" - <<'PYEOF'
import torch
assert torch.cuda.is_available(), "no CUDA device: this check needs a GPU"
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
PYEOF

echo "== parity and invariance tests on cuda"
GENMETRICS_TEST_DEVICE=cuda "$PY" -m pytest -q -p no:cacheprovider \
  tests/test_image_fid.py tests/test_image_ssim_psnr.py tests/test_inception.py \
  tests/test_io_image.py tests/test_feature_cache.py

echo "== throughput on cuda"
"$PY" - <<'PYEOF'
import sys, tempfile, time
from pathlib import Path
sys.path.insert(0, ".")
import torch
from genmetrics.features.inception import get_extractor, random_weights_file
from genmetrics.runner import score
from tests.photos import resize_longer_side, save_png, tiles

root = Path(tempfile.mkdtemp(prefix="gpu-check-"))
weights = random_weights_file(root / "w.pth")
small = [resize_longer_side(t, 64) for _, t in tiles()]
for side in ("samples", "refs"):
    (root / side).mkdir()
    for i in range(2000):
        save_png(small[(i * (3 if side == "refs" else 1)) % len(small)], root / side / f"{i:05d}.png")

extractor = get_extractor(str(weights), "cuda")
batch = [torch.from_numpy(small[i % len(small)]).permute(2, 0, 1).contiguous() for i in range(256)]
extractor.extract(batch)
torch.cuda.synchronize()
start = time.perf_counter()
for _ in range(8):
    extractor.extract(batch)
torch.cuda.synchronize()
model = 8 * 256 / (time.perf_counter() - start)
print(f"Inception model only: {model:,.0f} img/s (batch 256)")

def ours():
    return score(root / "samples", root / "refs", modality="image", metrics=["fid"],
                 inception_weights=weights, device="cuda", batch_size=256).metrics["fid"].value

def theirs():
    import torch_fidelity
    return torch_fidelity.calculate_metrics(
        input1=str(root / "samples"), input2=str(root / "refs"), fid=True, cuda=True,
        cache=False, verbose=False, batch_size=256,
        feature_extractor_weights_path=str(weights))["frechet_inception_distance"]

rates = {}
# each side twice (the first run builds the network and warms cuDNN up); best run kept
for name, fn in (("genmetrics", ours), ("torch-fidelity", theirs), ("genmetrics", ours),
                 ("torch-fidelity", theirs)):
    start = time.perf_counter()
    value = fn()
    rates[name] = max(rates.get(name, 0), 4000 / (time.perf_counter() - start))
    print(f"{name}: FID {value:.6f}, {4000 / (time.perf_counter() - start):,.0f} img/s end to end")
print(f"FID end to end: {rates['genmetrics'] / rates['torch-fidelity']:.2f}x torch-fidelity; "
      f"{rates['genmetrics'] / model:.2f}x of model-only")

from genmetrics.io.image_batch import ImageBatch
from genmetrics.metrics.image.ssim import SSIM
pairs = [torch.from_numpy(resize_longer_side(t, 256)[:256, :256].copy()).permute(2, 0, 1).contiguous()
         for _, t in tiles()[:64]]
pairs = [p for p in pairs if p.shape[1:] == (256, 256)]
metric = SSIM(device="cuda")
metric.update(ImageBatch(pairs), [[p.flip(2)] for p in pairs])
torch.cuda.synchronize()
start = time.perf_counter()
for _ in range(5):
    metric.update(ImageBatch(pairs), [[p.flip(2)] for p in pairs])
torch.cuda.synchronize()
print(f"SSIM on cuda: {5 * len(pairs) / (time.perf_counter() - start):,.0f} pairs/s at 256x256x3")
PYEOF
