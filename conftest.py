"""Root conftest: what the doctests of ``genmetrics/`` need as well as ``tests/``.

Doctest examples make scratch folders with ``tempfile.mkdtemp()`` (the shortest
runnable example); here those folders land in the test's own ``tmp_path``, which is
deleted when the test passes, so a green run leaves nothing in the system temp folder.
"""

from __future__ import annotations

import tempfile
from importlib.util import find_spec

import pytest
from _pytest.doctest import DoctestItem

# modules that import an optional framework at the top (doctests import every module)
collect_ignore = [path for path, needs in (
    ("genmetrics/integrations/lightning.py", "lightning"),
    ("tests/lightning_toy.py", "lightning"),
    ("genmetrics/integrations/hf.py", "transformers"),
) if find_spec(needs) is None]


@pytest.fixture(autouse=True)
def _doctest_scratch_in_tmp_path(request: pytest.FixtureRequest) -> None:
    if isinstance(request.node, DoctestItem):
        scratch = request.getfixturevalue("tmp_path")
        patch = request.getfixturevalue("monkeypatch")
        patch.setattr(tempfile, "tempdir", str(scratch))
