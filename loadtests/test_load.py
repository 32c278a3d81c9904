"""Load tests (``make test-slow``; not part of ``make test``): 100,000 text pairs and
20,000 small images, each scored by the CLI in a fresh process, with peak RSS and
throughput printed. Memory must stay bounded: the run over N items may not need much
more memory than the run over N / 10 (streaming; only per-sample numbers grow).
1,000,000 text pairs must score in under 1 GiB peak RSS (the metrics keep their
per-sample statistics as typed numpy rows); the peak RSS each pair adds is printed.

    make test-slow        # or: .venv/bin/python -m pytest -s loadtests
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
# The CLI in this process's interpreter, with its own peak RSS written at exit.
RUNNER = (
    "import atexit, json, resource, sys\n"
    "out = sys.argv.pop(1)\n"
    "def report():\n"
    "    # VmHWM: reset at exec (ru_maxrss would start from the parent's size)\n"
    "    status = open('/proc/self/status').read().split('VmHWM:')[1].split()\n"
    "    peak = int(status[0]) / 1024\n"
    "    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
    "    open(out, 'w').write(json.dumps({'peak_mib': peak, 'worker_peak_mib': workers}))\n"
    "atexit.register(report)\n"
    "sys.argv[0] = 'genmetrics'\n"
    "from genmetrics.cli import main\n"
    "main()\n"
)
#: how much more memory the full run may use than the tenth-size run
GROWTH_ALLOWED_MIB = 150
#: peak RSS allowed for scoring 1,000,000 text pairs with bleu, chrf and rouge
MILLION_PAIRS_PEAK_MIB = 1024


def _run(args: list[str], tmp: Path, label: str) -> dict:
    rss = tmp / f"{label}.rss.json"
    card = tmp / f"{label}.json"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUNNER, str(rss), "score", *args, "-q",
                           "--out", str(card)], capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    doc = json.loads(card.read_text())
    return {**json.loads(rss.read_text()), "seconds": seconds,
            "count": doc["inputs"]["samples"]["count"], "skipped": len(doc["skipped"]),
            "metrics": {k: v["value"] for k, v in doc["metrics"].items()}}


def _report(what: str, small: dict, large: dict) -> None:
    for run in (small, large):
        print(f"\n{what}: {run['count']:>7,} items in {run['seconds']:6.1f} s = "
              f"{run['count'] / run['seconds']:8,.0f} items/s end to end (start-up included); "
              f"peak RSS {run['peak_mib']:.0f} MiB (largest child process "
              f"{run['worker_peak_mib']:.0f} MiB)")


WORDS = ("the a cat dog sat ran on under mat log quickly slowly red blue big small house "
         "tree river model data sample loss value train test metric image sound").split()


def _write_text(folder: Path, n: int, seed: int) -> tuple[Path, Path]:
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    hyps, refs = folder / "hyps.txt", folder / "refs.txt"
    with hyps.open("w") as h, refs.open("w") as r:
        for _ in range(n):
            words = [rng.choice(WORDS) for _ in range(rng.randint(8, 30))]
            h.write(" ".join(words) + "\n")
            kept = [w if rng.random() > 0.3 else rng.choice(WORDS) for w in words]
            r.write(" ".join(kept) + "\n")
    return hyps, refs


def _score_text_pairs(tmp_path: Path, sizes: tuple[int, ...]) -> dict[int, dict]:
    """bleu, chrf and rouge over ``n`` generated pairs for each ``n``, each in a fresh CLI
    process (its text files deleted after it)."""
    runs = {}
    for n in sizes:
        hyps, refs = _write_text(tmp_path / str(n), n, seed=n)
        runs[n] = _run([str(hyps), "-r", str(refs), "--metrics", "bleu,chrf,rouge"], tmp_path,
                       f"text-{n}")
        assert runs[n]["count"] == n and runs[n]["skipped"] == 0
        for path in (hyps, refs):
            path.unlink()
    return runs


def test_100k_text_pairs_with_bounded_memory(tmp_path):
    runs = _score_text_pairs(tmp_path, (10_000, 100_000))
    _report("text (bleu, chrf, rouge)", runs[10_000], runs[100_000])
    assert runs[100_000]["peak_mib"] - runs[10_000]["peak_mib"] < GROWTH_ALLOWED_MIB


def _write_images(folder: Path, n: int, seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (64, 16, 16, 3), dtype=np.uint8)
    for i in range(n):
        sub = folder / f"{i // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        image = base[i % 64].copy()
        image[i % 16, (i // 16) % 16] = i % 256  # every file different
        Image.fromarray(image).save(sub / f"{i:05d}.png", compress_level=1)


@pytest.mark.parametrize("n_large", [20_000])
def test_20k_small_images_with_bounded_memory(tmp_path, n_large):
    runs = {}
    for n in (n_large // 10, n_large):
        samples, refs = tmp_path / f"s{n}", tmp_path / f"r{n}"
        _write_images(samples, n, seed=1)
        _write_images(refs, n, seed=2)
        runs[n] = _run([str(samples), "--modality", "image", "-r", str(refs), "--metrics",
                        "ssim,psnr"], tmp_path, f"images-{n}")
        assert runs[n]["count"] == n and runs[n]["skipped"] == 0
    _report("images 16x16 (ssim, psnr)", runs[n_large // 10], runs[n_large])
    assert runs[n_large]["peak_mib"] - runs[n_large // 10]["peak_mib"] < GROWTH_ALLOWED_MIB


def test_1m_text_pairs_under_1_gib(tmp_path):
    """1,000,000 pairs with bleu, chrf and rouge: peak RSS under 1 GiB; the marginal
    bytes per pair over a 100,000-pair run are printed (several minutes on 2 cores)."""
    runs = _score_text_pairs(tmp_path, (100_000, 1_000_000))
    _report("text (bleu, chrf, rouge)", runs[100_000], runs[1_000_000])
    per_pair = (runs[1_000_000]["peak_mib"] - runs[100_000]["peak_mib"]) * 2**20 / 900_000
    print(f"1,000,000 text pairs: peak RSS {runs[1_000_000]['peak_mib']:.0f} MiB "
          f"(limit {MILLION_PAIRS_PEAK_MIB} MiB); {per_pair:.0f} bytes of peak RSS per pair "
          "between 100,000 and 1,000,000 pairs (the whole run: the metrics' per-sample "
          "statistics, sample ids, diagnostics and transient peaks)")
    assert runs[1_000_000]["peak_mib"] < MILLION_PAIRS_PEAK_MIB
