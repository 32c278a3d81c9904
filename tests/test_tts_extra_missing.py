"""Without the ``tts`` extra (resemblyzer, pyworld), speaker_sim and f0_rmse are
``unavailable`` naming ``pip install 'genmetrics[tts]'``: listed in a default run,
a one-line usage error when asked for by name; the other audio metrics run."""

from __future__ import annotations

import sys

import pytest

from genmetrics.errors import UsageError
from genmetrics.runner import build_metrics

TTS = frozenset({"transcript", "speaker_reference"})
CASES = [("speaker_sim", "resemblyzer"), ("f0_rmse", "pyworld")]


@pytest.fixture(autouse=True)
def _no_cached_encoder():
    from genmetrics.features.speaker import load_encoder

    load_encoder.cache_clear()  # a resemblyzer encoder loaded earlier would not import
    yield
    load_encoder.cache_clear()


@pytest.mark.parametrize("name, module", CASES)
def test_a_missing_tts_library_makes_the_metric_unavailable(monkeypatch, name, module):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError
    unavailable: dict[str, str] = {}
    metrics = build_metrics([name, "snr"], "audio", {}, True, explicit=False,
                            unavailable=unavailable, provides=TTS)
    assert name not in metrics and "snr" in metrics
    assert unavailable[name].startswith(f"{module} is not installed")
    assert unavailable[name].endswith("pip install 'genmetrics[tts]'")
    with pytest.raises(UsageError, match=rf"{name} is unavailable: .*genmetrics\[tts\]"):
        build_metrics([name], "audio", {}, True, provides=TTS)
