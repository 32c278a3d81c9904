"""Speaker encoders for ``speaker_sim``: an L2-normalised embedding per clip, loaded once
per setting, with a memo of recent embeddings (one speaker reference shared by every
clip is embedded once).

* ``resemblyzer`` (the default, offline): the GE2E encoder whose weights
  (``pretrained.pt``) ship in the ``resemblyzer`` wheel, with resemblyzer's own
  preprocessing (``preprocess_wav``: resampling to 16 kHz with librosa, volume
  normalisation to -30 dBFS, webrtcvad trimming of long silences) and its
  ``embed_utterance`` windowing (1.6 s partial windows at 1.3 per second, a last window
  kept when 75% covered; the mean of the partial embeddings, L2-normalised). What is
  ours: the partial windows of *all* clips of a batch go through the LSTM together
  (``embed_utterance`` runs one clip's windows at a time); the embeddings equal
  ``VoiceEncoder().embed_utterance(preprocess_wav(wave, sr))`` to float32 rounding.
* a folder holding a ``WavLMForXVector`` speaker-verification model and its feature
  extractor (``microsoft/wavlm-base-plus-sv`` saved with ``save_pretrained``, or any
  such model): the x-vector of the clip at 16 kHz, one clip per forward pass (so no
  padding reaches the network), L2-normalised, as in that model's card.

    >>> enc = load_encoder("resemblyzer", "cpu")
    >>> enc.signature()["speaker_model"]
    'resemblyzer-ge2e'
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from genmetrics.errors import MetricUnavailable, UsageError
from genmetrics.features.asr import clip_key

RATE = 16000
MEMO_SIZE = 4096
#: partial windows per LSTM forward (160 frames x 40 mel bands each)
WINDOWS_PER_FORWARD = 256


class SilentClip(ValueError):
    """A clip with no speech left after the encoder's preprocessing."""


class Encoder:
    """Base: :meth:`embed` with a memo by clip content."""

    def __init__(self) -> None:
        self._memo: OrderedDict[bytes, np.ndarray | str] = OrderedDict()

    def embed(self, waves: Sequence[np.ndarray], rates: Sequence[int]) -> list[np.ndarray | str]:
        """One unit-length float64 embedding per clip, or the reason there is none."""
        keys = [clip_key(w, r) for w, r in zip(waves, rates, strict=True)]
        todo = list(dict.fromkeys(k for k in keys if k not in self._memo))
        if todo:
            first = {k: i for i, k in reversed(list(enumerate(keys)))}
            found = self._run([waves[first[k]] for k in todo], [rates[first[k]] for k in todo])
            for k, e in zip(todo, found, strict=True):
                self._memo[k] = e
                while len(self._memo) > MEMO_SIZE:
                    self._memo.popitem(last=False)
        return [self._memo[k] for k in keys]

    def _run(self, waves: list[np.ndarray], rates: list[int]) -> list[np.ndarray | str]:
        raise NotImplementedError

    def signature(self) -> dict[str, Any]:
        raise NotImplementedError


class Resemblyzer(Encoder):
    """resemblyzer's GE2E ``VoiceEncoder`` with its preprocessing; windows batched."""

    def __init__(self, device: str) -> None:
        super().__init__()
        import warnings

        try:
            with warnings.catch_warnings():  # webrtcvad's pkg_resources, scipy.ndimage.morphology
                warnings.simplefilter("ignore")
                from resemblyzer import VoiceEncoder
        except ImportError as exc:
            raise MetricUnavailable(f"resemblyzer is not installed ({exc}): pip install "
                                    "'genmetrics[tts]'") from None
        self.device = device
        self.encoder = VoiceEncoder(device, verbose=False).eval()

    def preprocess(self, wave: np.ndarray, rate: int) -> np.ndarray:
        """resemblyzer's ``preprocess_wav`` on the clip as float32 (as ``librosa.load``
        gives it); :class:`SilentClip` when nothing is left."""
        import warnings

        from resemblyzer import preprocess_wav

        wave = np.asarray(wave, dtype=np.float32)
        if not np.any(wave):
            raise SilentClip("silent clip (all samples 0): no speaker to embed")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = preprocess_wav(wave, source_sr=rate)
        if len(out) == 0 or not np.isfinite(out).all():
            raise SilentClip("no speech found by resemblyzer's voice activity detection")
        return out

    def windows(self, wav: np.ndarray) -> np.ndarray:
        """The partial mel windows of one preprocessed clip, as ``embed_utterance``."""
        from resemblyzer.audio import wav_to_mel_spectrogram

        wav_slices, mel_slices = self.encoder.compute_partial_slices(len(wav), 1.3, 0.75)
        longest = wav_slices[-1].stop
        if longest >= len(wav):
            wav = np.pad(wav, (0, longest - len(wav)), "constant")
        mel = wav_to_mel_spectrogram(wav)
        return np.array([mel[s] for s in mel_slices])

    def _run(self, waves: list[np.ndarray], rates: list[int]) -> list[np.ndarray | str]:
        import torch

        out: list[np.ndarray | str] = [""] * len(waves)
        parts, owner = [], []
        for k, (wave, rate) in enumerate(zip(waves, rates, strict=True)):
            try:
                mels = self.windows(self.preprocess(wave, rate))
            except SilentClip as exc:
                out[k] = str(exc)
                continue
            parts.append(mels)
            owner += [k] * len(mels)
        if not parts:
            return out
        mels = np.concatenate(parts)
        partial = []
        with torch.inference_mode():
            for start in range(0, len(mels), WINDOWS_PER_FORWARD):
                chunk = torch.from_numpy(mels[start: start + WINDOWS_PER_FORWARD])
                partial.append(self.encoder(chunk.to(self.device)).cpu().numpy())
        embeds = np.concatenate(partial)
        owners = np.asarray(owner)
        for k in np.unique(owners).tolist():
            raw = np.mean(embeds[owners == k], axis=0)  # float32, as embed_utterance
            out[k] = (raw / np.linalg.norm(raw, 2)).astype(np.float64)
        return out

    def signature(self) -> dict[str, Any]:
        from genmetrics.metric import library_version

        return {"speaker_model": "resemblyzer-ge2e", "resemblyzer": library_version(
            "resemblyzer"), "preprocess": "resemblyzer preprocess_wav (librosa resample to "
            "16 kHz, -30 dBFS, webrtcvad trim)", "librosa": library_version("librosa"),
            "webrtcvad": library_version("webrtcvad")}


class WavLMXVector(Encoder):
    """A ``WavLMForXVector`` model from a local folder (one clip per forward pass)."""

    def __init__(self, folder: str, device: str) -> None:
        super().__init__()
        from transformers import AutoFeatureExtractor, WavLMForXVector

        from genmetrics.features.causal_lm import _quiet_transformers, weights_digest

        path = Path(folder).expanduser()
        if not (path / "config.json").is_file():
            raise UsageError(f"speaker_sim model {folder!r} is neither resemblyzer nor a "
                             "folder holding a WavLMForXVector model saved with "
                             "save_pretrained (e.g. microsoft/wavlm-base-plus-sv)")
        self.folder, self.device = path.resolve(), device
        with _quiet_transformers():
            self.extractor = AutoFeatureExtractor.from_pretrained(self.folder)
            self.model = WavLMForXVector.from_pretrained(self.folder).to(device).eval()
        self.digest = weights_digest(self.folder)

    def _run(self, waves: list[np.ndarray], rates: list[int]) -> list[np.ndarray | str]:
        import torch

        from genmetrics.io.audio import resample

        out: list[np.ndarray | str] = []
        for wave, rate in zip(waves, rates, strict=True):
            if not np.any(wave):
                out.append("silent clip (all samples 0): no speaker to embed")
                continue
            at16 = resample(np.asarray(wave, np.float64), rate, RATE).astype(np.float32)
            inputs = self.extractor(at16, sampling_rate=RATE, return_tensors="pt")
            with torch.inference_mode():
                emb = self.model(**{k: v.to(self.device) for k, v in inputs.items()}).embeddings
            e = emb[0].double().cpu().numpy()
            out.append(e / np.linalg.norm(e))
        return out

    def signature(self) -> dict[str, Any]:
        from genmetrics.metric import library_version

        return {"speaker_model": f"wavlm-xvector:{self.folder.name}",
                "speaker_weights": self.digest[:15],
                "transformers": library_version("transformers")}


@lru_cache(maxsize=4)
def load_encoder(name: str, device: str = "cpu") -> Encoder:
    """``resemblyzer`` or the folder of a ``WavLMForXVector`` model, loaded once."""
    if name == "resemblyzer":
        return Resemblyzer(device)
    return WavLMXVector(name, device)
