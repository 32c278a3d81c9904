#!/usr/bin/env bash
# GPU check for every modality, on a CUDA machine, in under 8 minutes: CUDA against the
# CPU for images (the image parity and invariance tests with every metric on cuda,
# Inception features, FID end to end and against torch-fidelity's CUDA run, SSIM), text
# (perplexity with the offline LM, float32 and bfloat16), audio (SNR, SI-SNR, MCD; STOI
# has no device path), the Evaluator inside a toy training loop, and nvJPEG decoding.
# It prints one table: check, throughput, CPU/GPU difference, tolerance, pass; the exit
# status is 1 when a row fails. See scripts/gpu_check.py for what each row does.
# Without CUDA it says so and exits 0; `--cpu-dry-run` runs the same code cpu against cpu.
# Run from the repository root after `make install`:  bash scripts/gpu_check.sh [--json F]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
exec "$PY" scripts/gpu_check.py "$@"
