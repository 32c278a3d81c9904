"""Root conftest: what the doctests of ``genmetrics/`` need as well as ``tests/``.

Doctest examples make scratch folders with ``tempfile.mkdtemp()`` (the shortest
runnable example); here those folders land in the test's own ``tmp_path``, which is
deleted when the test passes, so a green run leaves nothing in the system temp folder.
"""

from __future__ import annotations

import tempfile

import pytest
from _pytest.doctest import DoctestItem


@pytest.fixture(autouse=True)
def _doctest_scratch_in_tmp_path(request: pytest.FixtureRequest) -> None:
    if isinstance(request.node, DoctestItem):
        scratch = request.getfixturevalue("tmp_path")
        patch = request.getfixturevalue("monkeypatch")
        patch.setattr(tempfile, "tempdir", str(scratch))
