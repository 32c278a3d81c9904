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
