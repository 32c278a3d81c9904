"""The README's Ray Tune snippet, run as written (``make test-slow``; ~80 s on 2 cores).

Needs the ``tune`` extra (``ray[tune]``), which ``make test-slow`` installs; without it
the test is skipped, saying so.

The Python block under "The same objective under Ray Tune" is taken from README.md (so
the README cannot drift from what runs) and run from the repository root in a fresh
process: 6 trials, each in its own Ray worker process. Ray's session folder, Tune's
results (``~/ray_results``) and everything else it writes go to one temporary folder
(``RAY_TMPDIR`` and ``HOME``), deleted afterwards; no Ray process may outlive the run.
The best trial's PSNR must equal ``train_and_score`` called directly on its config.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HEADING = "#### The same objective under Ray Tune"


def readme_snippet() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index(HEADING):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def _processes_mentioning(text: str) -> list[int]:
    """Ids of live processes whose command line contains ``text`` (Ray's session paths)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline:
                pids.append(int(entry.name))
    return pids


@pytest.mark.slow
def test_ray_tune_snippet_runs_as_written() -> None:
    pytest.importorskip("ray.tune", reason="ray[tune] is not installed: it is the 'tune' "
                        "extra (pip install -e '.[tune]'), which make test-slow installs")
    scratch = Path(tempfile.mkdtemp(prefix="gm-ray-"))  # short: Ray's socket paths are long
    (scratch / "home").mkdir()
    (scratch / "tmp").mkdir()
    script = scratch / "snippet.py"
    script.write_text(readme_snippet(), encoding="utf-8")
    env = dict(os.environ, HOME=str(scratch / "home"), RAY_TMPDIR=str(scratch / "tmp"),
               RAY_USAGE_STATS_ENABLED="0", PYTHONWARNINGS="ignore")
    try:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, str(script)], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=900)
        print(f"\nRay Tune snippet: {time.perf_counter() - started:.1f} s")
        assert done.returncode == 0, done.stderr[-4000:]
        assert (scratch / "home" / "ray_results").is_dir()  # Tune wrote where we said
        last = done.stdout.strip().splitlines()[-1]
        config_text, psnr_text = last.rsplit("} ", 1)
        config, psnr = ast.literal_eval(config_text + "}"), float(psnr_text)
        assert set(config) == {"lr", "width"} and config["width"] in (4, 8, 16, 32)
        assert "6 TERMINATED" in done.stdout + done.stderr

        # the same objective, called directly (one torch thread, as in a Ray worker)
        direct = subprocess.run(
            [sys.executable, "-c",
             "import sys, torch; torch.set_num_threads(1); sys.path.insert(0, 'scripts'); "
             "from optuna_example import evaluator_for, train_and_score; "
             f"print(repr(train_and_score({config['lr']!r}, {config['width']!r}, "
             "evaluator=evaluator_for('psnr', device='cpu'), steps=30)['psnr']))"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert direct.returncode == 0, direct.stderr[-3000:]
        assert psnr == pytest.approx(float(direct.stdout.strip()), rel=1e-9)
    finally:
        deadline = time.monotonic() + 30  # Ray's own processes stop shortly after exit
        while (left := _processes_mentioning(str(scratch))) and time.monotonic() < deadline:
            time.sleep(1)
        for pid in left:  # started by this test: stop them before failing
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(scratch, ignore_errors=True)
    assert not left, f"Ray processes outlived the run: {left}"
