"""Speech recognisers for the audio ``wer`` / ``cer``: one loaded model per setting,
shared by both metrics, with the transcripts of recent clips remembered so a run that
asks for both transcribes each clip once.

Backends (option ``asr`` of ``wer`` and ``cer``):

* ``whisper-large-v3`` (the default; what TTS papers report): the Hugging Face model
  ``openai/whisper-large-v3`` through ``transformers``, from the genmetrics asset cache
  (``genmetrics assets fetch whisper-large-v3``, with a network) or the local Hugging Face
  cache. Any local folder holding a Whisper model saved with ``save_pretrained`` is
  accepted too (its path as the ``asr`` value). Greedy decoding (``num_beams`` 1),
  English, task ``transcribe``, in batches of ``batch_size`` clips (each padded to
  Whisper's 30 s window: batching does not change a transcript beyond float rounding),
  float32 unless ``fp16`` (CUDA only).
* ``pocketsphinx``: CMU PocketSphinx 5 with the US English acoustic model, language
  model and dictionary its PyPI wheel ships; offline; a fresh decoder per clip (a reused
  one keeps state between clips). **Weak**: corpus WER 0.65 over six clean espeak-ng
  sentences of English prose (0.40-1.0 per clip), 0.94 at 0 dB SNR (README,
  "Text-to-speech"), far above a Whisper model's, so use it to order systems over many
  clips, never for a headline number.

Clips longer than 30 s are transcribed by Whisper's first 30 s only (the metric names
them as failed rather than scoring a cut transcript).

    >>> asr = load_asr("pocketsphinx")
    >>> asr.signature()["asr"]
    'pocketsphinx'
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from genmetrics.errors import MetricUnavailable, UsageError

RATE = 16000  # both recognisers take 16 kHz mono
WHISPER_DEFAULT = "whisper-large-v3"
WHISPER_MAX_SECONDS = 30.0
#: transcripts kept per recogniser (keyed by the clip's content), so that wer and cer
#: fed the same batch transcribe it once
MEMO_SIZE = 4096


def clip_key(wave: np.ndarray, rate: int) -> bytes:
    return hashlib.sha1(np.ascontiguousarray(wave, dtype="<f8").tobytes()
                        + str(rate).encode()).digest()


class Recogniser:
    """Base: :meth:`transcribe` with a memo of recent transcripts."""

    name = ""

    def __init__(self) -> None:
        self._memo: OrderedDict[bytes, str] = OrderedDict()

    def transcribe(self, waves: Sequence[np.ndarray], rates: Sequence[int]) -> list[str]:
        """Transcripts of the clips (each at its own rate)."""
        keys = [clip_key(w, r) for w, r in zip(waves, rates, strict=True)]
        todo = [i for i, k in enumerate(keys) if k not in self._memo]
        if todo:
            from genmetrics.io.audio import resample

            at16 = [resample(np.asarray(waves[i], np.float64), int(rates[i]), RATE)
                    for i in todo]
            for i, text in zip(todo, self._run(at16), strict=True):
                self._memo[keys[i]] = text
                while len(self._memo) > MEMO_SIZE:
                    self._memo.popitem(last=False)
        return [self._memo[k] for k in keys]

    def _run(self, waves: list[np.ndarray]) -> list[str]:
        raise NotImplementedError

    def signature(self) -> dict[str, Any]:
        raise NotImplementedError


class PocketSphinx(Recogniser):
    """CMU PocketSphinx with the en-us model of its wheel (one utterance per clip)."""

    name = "pocketsphinx"

    def __init__(self) -> None:
        super().__init__()
        try:
            from pocketsphinx import Config, Decoder
        except ImportError as exc:
            raise MetricUnavailable(f"pocketsphinx is not installed ({exc}): pip install "
                                    "'genmetrics[audio]'") from None
        self.config = Config(loglevel="FATAL")
        self.model = {k: Path(self.config[k]).name for k in ("hmm", "lm", "dict")}
        self._decoder = Decoder

    def _run(self, waves: list[np.ndarray]) -> list[str]:
        out = []
        for wave in waves:
            # a fresh decoder per clip: one reused keeps adaptation state (cepstral mean
            # and more) from clip to clip, so a transcript would depend on the clips
            # decoded before it (their order, earlier runs); ~0.3 s per clip to build
            decoder = self._decoder(self.config)
            pcm = (np.clip(wave, -1, 1) * 32767).round().astype("<i2").tobytes()
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            hyp = decoder.hyp()
            out.append("" if hyp is None else hyp.hypstr)
        return out

    def signature(self) -> dict[str, Any]:
        from genmetrics.metric import library_version

        return {"asr": "pocketsphinx", "asr_model": "en-us ({hmm}, {lm}, {dict})".format(
            **self.model), "pocketsphinx": library_version("pocketsphinx"),
            "decoding": "default config, one utterance per clip, a fresh decoder each"}


def whisper_folder(name_or_path: str) -> Path:
    """The folder of a Whisper model: a local folder, the asset cache, or the HF cache;
    :class:`MetricUnavailable` naming the fetch command when there is none."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UsageError(f"{path} is not a model folder (no config.json); pass a Whisper "
                             "model saved with save_pretrained")
        return path.resolve()
    if name_or_path != WHISPER_DEFAULT:
        raise UsageError(f"asr={name_or_path!r}: not a folder; choose {WHISPER_DEFAULT}, "
                         "pocketsphinx, or the folder of a Whisper model")
    from genmetrics import assets

    found = assets.get_asset(WHISPER_DEFAULT).locate(build=False)  # cache, or HF cache
    if found is not None:
        return found.path
    raise MetricUnavailable(
        f"the ASR model {WHISPER_DEFAULT} is not here (genmetrics never downloads during a "
        f"run). Fetch it once with a network: genmetrics assets fetch {WHISPER_DEFAULT}; or "
        "pass a local Whisper folder (--set wer.asr=/path); or, offline, the much weaker "
        "--set wer.asr=pocketsphinx")


class Whisper(Recogniser):
    """A Whisper model through transformers: batched greedy decoding, English."""

    name = "whisper"

    def __init__(self, name_or_path: str, device: str, fp16: bool, batch_size: int,
                 max_new_tokens: int) -> None:
        super().__init__()
        import torch
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        from genmetrics.features.causal_lm import _quiet_transformers, weights_digest

        self.folder = whisper_folder(name_or_path)
        self.label = name_or_path if name_or_path == WHISPER_DEFAULT else self.folder.name
        self.device = device
        if fp16 and not device.startswith("cuda"):
            raise UsageError("fp16 is for CUDA; on the CPU Whisper runs in float32")
        self.dtype = torch.float16 if fp16 else torch.float32
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        with _quiet_transformers():
            self.processor = WhisperProcessor.from_pretrained(self.folder)
            self.model = WhisperForConditionalGeneration.from_pretrained(
                self.folder, dtype=self.dtype).to(device).eval()
        self.digest = weights_digest(self.folder)

    def generate_kwargs(self) -> dict[str, Any]:
        """What decoding does: greedy, English transcription, no timestamps."""
        kwargs: dict[str, Any] = {"num_beams": 1, "do_sample": False,
                                  "max_new_tokens": self.max_new_tokens}
        gen = self.model.generation_config
        if getattr(gen, "lang_to_id", None):  # a multilingual checkpoint: fix the language
            kwargs.update(language="en", task="transcribe")
        return kwargs

    def _run(self, waves: list[np.ndarray]) -> list[str]:
        import torch

        out: list[str] = []
        for start in range(0, len(waves), self.batch_size):
            chunk = [w.astype(np.float32) for w in waves[start: start + self.batch_size]]
            feats = self.processor.feature_extractor(chunk, sampling_rate=RATE,
                                                     return_tensors="pt")
            inputs = feats.input_features.to(self.device, self.dtype)
            with torch.inference_mode():
                ids = self.model.generate(inputs, **self.generate_kwargs())
            out += self.processor.batch_decode(ids, skip_special_tokens=True)
        return [t.strip() for t in out]

    def signature(self) -> dict[str, Any]:
        from genmetrics.metric import library_version

        decoding = ", ".join(f"{k}={v}" for k, v in sorted(self.generate_kwargs().items()))
        return {"asr": self.label, "asr_weights": self.digest[:15],
                "decoding": f"{decoding}, dtype={str(self.dtype).removeprefix('torch.')}",
                "transformers": library_version("transformers")}


@lru_cache(maxsize=4)
def load_asr(name: str, device: str = "cpu", fp16: bool = False, batch_size: int = 8,
             max_new_tokens: int = 440) -> Recogniser:
    """The recogniser ``name`` (``pocketsphinx``, ``whisper-large-v3`` or a Whisper
    folder), loaded once per setting."""
    if name == "pocketsphinx":
        return PocketSphinx()
    return Whisper(name, device, fp16, batch_size, max_new_tokens)
