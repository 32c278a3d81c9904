"""Regenerate the bundled audio demo: espeak-ng speech (clean) and degraded copies.

    python scripts/make_demo_audio.py        # needs espeak-ng and sox

Writes demo/audio/clean/*.wav and demo/audio/degraded/*.wav (16 kHz, 16-bit): white
noise at 20, 10 and 5 dB SNR, and a 2 kHz lowpass. Deterministic (fixed noise seeds).

And the text-to-speech demo, demo/tts/: ``tts_out/*.wav``, four "generated" utterances
(espeak-ng's default voice, clean and with white noise at 5 dB SNR, and the same for
another voice, ``en+f3``), ``texts.jsonl``, what each should say, and ``prompt.wav``, the
prompt speaker (the default voice reading another sentence). Speaker similarity falls
for the other voice and with noise (0.86, 0.67, 0.72, 0.53); pocketsphinx's WER on four
clips orders nothing (0.89, 0.83, 0.83, 0.90, a fresh decoder per clip): it is weak, and
needs many clips.
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


TTS_CLIPS = [  # (name, sentence index, espeak-ng voice, SNR in dB or None)
    ("00_voice_a", 0, None, None),
    ("01_voice_a_noise5db", 1, None, 5.0),
    ("02_voice_b", 2, "en+f3", None),
    ("03_voice_b_noise5db", 3, "en+f3", 5.0),
]


def tts() -> None:
    import json

    out = REPO / "demo" / "tts"
    rows = []
    for k, (name, index, voice, snr) in enumerate(TTS_CLIPS):
        wave = speech(SENTENCES[index], RATE, voice=voice)
        if snr is not None:
            wave = add_noise(wave, snr, seed=10 + k)
        write_wav(out / "tts_out" / f"{name}.wav", wave, RATE)
        rows.append({"id": name, "text": SENTENCES[index]})
    (out / "texts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_wav(out / "prompt.wav", speech(SENTENCES[5], RATE), RATE)
    print(f"wrote {len(TTS_CLIPS)} text-to-speech clips, texts.jsonl and prompt.wav under {out}")


def main() -> None:
    out = REPO / "demo" / "audio"
    for i, (name, degrade) in enumerate(DEGRADATIONS):
        clean = speech(SENTENCES[i], RATE)
        write_wav(out / "clean" / f"{i:02d}_{name}.wav", clean, RATE)
        write_wav(out / "degraded" / f"{i:02d}_{name}.wav", degrade(clean), RATE)
    print(f"wrote {len(DEGRADATIONS)} pairs under {out}")
    tts()


if __name__ == "__main__":
    main()
