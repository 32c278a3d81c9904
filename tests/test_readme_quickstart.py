"""The README's CI-gate quickstart works exactly as written."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys

from tests.conftest import REPO, cli_env


def quickstart_commands() -> list[list[str]]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### 3. As a CI regression gate"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            commands.append(shlex.split(line))
    return commands


def test_ci_gate_quickstart_runs_as_written(tmp_path):
    shutil.copytree(REPO / "demo", tmp_path / "demo")
    commands = quickstart_commands()
    assert [c[:2] for c in commands] == [["genmetrics", "score"]] * 2 + [["genmetrics", "gate"]]
    for command in commands:
        done = subprocess.run([sys.executable, "-m", "genmetrics", *command[1:]], cwd=tmp_path,
                              env=cli_env(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    assert "gate passed" in done.stdout
    assert (tmp_path / "gate.xml").is_file() and "PASS" in (tmp_path / "gate.md").read_text()


_LOOP_HARNESS = '''
import torch
from tests.photos import resize_longer_side, tiles

class Generator(torch.nn.Module):
    def forward(self, noise):
        return noise.clamp(0, 1)

model = Generator()
epochs = 2
targets = torch.stack([torch.tensor(resize_longer_side(t, 32)).permute(2, 0, 1)
                       for _, t in tiles()[:4]]).float() / 255
eval_loader = [((targets + 0.05 * torch.randn_like(targets)), targets)]

def train_one_epoch(model):
    pass
'''


def test_training_loop_quickstart_runs_as_written(tmp_path, monkeypatch):
    """The first Python block of "Inside a training loop", with a toy model and loader."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### 2. Inside a training loop"):]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(REPO))
    namespace: dict = {}
    exec(compile(_LOOP_HARNESS + block, "README.md", "exec"), namespace)  # noqa: S102
    cards = sorted((tmp_path / "runs" / "exp1").glob("card-*.json"))
    assert [c.name for c in cards] == ["card-0.json", "card-1.json"]
    assert list((tmp_path / "runs" / "exp1").glob("events.out.tfevents.*"))
    card = namespace["card"]
    assert {"fid", "ssim", "psnr"} <= set(card.metrics) and not card.errors
