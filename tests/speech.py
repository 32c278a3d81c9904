"""Real test speech: sentences synthesised with espeak-ng, resampled with sox, degraded.

Tests that need speech use :func:`require_speech_tools` (a clear skip where espeak-ng or
sox is missing; ``make test`` installs both where apt exists) and :func:`speech`.

    speech("The quick brown fox.", rate=16000)  -> float64 mono waveform in [-1, 1]
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

SENTENCES = [
    "The committee approved the new budget on Tuesday morning.",
    "A small fire broke out in the kitchen of a restaurant downtown.",
    "She opened the window and let the cold air into the room.",
    "Researchers found that the new vaccine is safe for children.",
    "The bridge will be closed for repairs until the end of the month.",
    "Prices at the corner cafe went up again this week.",
]
CACHE = Path(tempfile.gettempdir()) / "genmetrics-test-speech"


def require_speech_tools() -> None:
    missing = [t for t in ("espeak-ng", "sox") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (make test installs them with "
                    "apt-get as root: apt-get install espeak-ng sox)")


@lru_cache(maxsize=64)
def _speech(text: str, rate: int, voice: str | None = None) -> bytes:
    require_speech_tools()
    import soundfile as sf

    CACHE.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(f"{text}|{rate}{'|' + voice if voice else ''}".encode()).hexdigest()[:16]
    out = CACHE / f"{key}.wav"
    if not out.exists():
        raw = CACHE / f"{key}.raw.wav"
        subprocess.run(["espeak-ng", *(["-v", voice] if voice else []), "-w", str(raw), text],
                       check=True, capture_output=True)
        tmp = CACHE / f"{key}.tmp.wav"
        subprocess.run(["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(tmp)],
                       check=True, capture_output=True)
        tmp.replace(out)
        raw.unlink(missing_ok=True)
    data, got = sf.read(str(out), dtype="float64")
    assert got == rate
    return data.tobytes()


def speech(text: str = SENTENCES[0], rate: int = 16000, voice: str | None = None) -> np.ndarray:
    """The sentence spoken by espeak-ng at ``rate`` Hz, mono float64; ``voice``: an
    espeak-ng voice (``-v``, e.g. ``en+f3``; default: espeak-ng's)."""
    return np.frombuffer(_speech(text, rate, voice), dtype=np.float64).copy()


def add_noise(clean: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """White noise at exactly ``snr_db`` dB relative to the signal's power."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(len(clean))
    power = np.mean(clean**2) / (10 ** (snr_db / 10))
    return clean + noise * np.sqrt(power / np.mean(noise**2))


def lowpass(wave: np.ndarray, rate: int, cutoff_hz: float) -> np.ndarray:
    """A zero-phase Butterworth lowpass (order 8)."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(8, cutoff_hz, btype="low", fs=rate, output="sos")
    return sosfiltfilt(sos, wave)


def write_wav(path: Path, wave: np.ndarray, rate: int, subtype: str = "PCM_16") -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(wave, -1, 1), rate, subtype=subtype)
    return path
