"""Regenerate the bundled audio demo: espeak-ng speech (clean) and degraded copies.

    python scripts/make_demo_audio.py        # needs espeak-ng and sox

Writes demo/audio/clean/*.wav and demo/audio/degraded/*.wav (16 kHz, 16-bit): white
noise at 20, 10 and 5 dB SNR, and a 2 kHz lowpass. Deterministic (fixed noise seeds).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.speech import SENTENCES, add_noise, lowpass, speech, write_wav  # noqa: E402

RATE = 16000
DEGRADATIONS = [
    ("noise20db", lambda w: add_noise(w, 20.0, seed=1)),
    ("noise10db", lambda w: add_noise(w, 10.0, seed=2)),
    ("noise5db", lambda w: add_noise(w, 5.0, seed=3)),
    ("lowpass2k", lambda w: lowpass(w, RATE, 2000.0)),
]


def main() -> None:
    out = REPO / "demo" / "audio"
    for i, (name, degrade) in enumerate(DEGRADATIONS):
        clean = speech(SENTENCES[i], RATE)
        write_wav(out / "clean" / f"{i:02d}_{name}.wav", clean, RATE)
        write_wav(out / "degraded" / f"{i:02d}_{name}.wav", degrade(clean), RATE)
    print(f"wrote {len(DEGRADATIONS)} pairs under {out}")


if __name__ == "__main__":
    main()
