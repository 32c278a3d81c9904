"""Mel-cepstral distortion (MCD) with DTW alignment, as ``mel-cepstral-distance`` computes it.

Per pair, exactly ``mel_cepstral_distance.compare_audio_files(sample, reference)``
(version 0.0.4) with its defaults, except that DTW is exact (``dtw_radius=None``; see
"DTW" below); lower is better, 0 for a clip against itself. The corpus value is the
mean over pairs (``math.fsum``). Step by step, with the defaults at 16 kHz:

1. **Signal.** Each clip is resampled from its own rate ``sr`` to the pair's rate with
   the library's method, ``scipy.signal.resample`` (FFT) to ``int(len * rate / sr)``
   samples (nothing is done to a clip already at that rate). The pair's rate is option
   ``sample_rate`` when set, else the *lower* of the sample's and the reference's rates:
   the library's ``sample_rate=None`` (``min(sr1, sr2)`` in ``compare_audio_files``).
   Then peak-normalised: ``x / max|x|`` (``norm_audio``; a silent clip fails).
2. **Frames.** Lengths in samples are ``int(ms / 1000 * sr)``: window ``win_len`` 32 ms
   = 512, hop ``hop_len`` 8 ms = 128, FFT ``n_fft`` 32 ms = 512. Frames start at
   ``0, hop, 2 hop, ...`` while the start is ``< len - win`` (so a clip of ``K > win``
   samples has ``ceil((K - win) / hop)`` frames, and a frame that would end exactly on
   the last sample is left out). Each frame ``x[k : k + win]`` is cut or zero-padded to
   ``n_fft`` samples and multiplied by a symmetric window of ``n_fft`` points
   (``window``: ``hanning`` = ``np.hanning``, ``0.5 - 0.5 cos(2 pi n / (N - 1))``, or
   ``hamming``). A clip of ``win`` samples or fewer has no frame and fails.
3. **Power spectrum** ``|rfft(frame, n_fft)|^2``: ``n_fft // 2 + 1`` = 257 bins.
4. **Mel bands.** ``n_mels`` = 20 triangular filters of peak 1 (not area-normalised):
   ``n_mels + 2`` points evenly spaced on the HTK mel scale ``2595 log10(1 + f / 700)``
   from ``fmin`` = 0 to ``fmax`` (default ``sr // 2``), put on FFT bins
   ``floor((n_fft + 1) f / sr)``; filter ``n`` rises over bins ``[left, center)`` as
   ``(k - left) / (center - left)`` and falls over ``[center, right)`` as
   ``(right - k) / (right - center)``. Band energy = filter-weighted sum of the power.
5. **Log**: ``log10(energy + eps)``, ``eps = 2.220446049250313e-16`` (float64 machine
   epsilon): base 10, of power (bel, not dB).
6. **Cepstrum**: an unnormalised DCT-II over the ``M = n_mels`` log bands *without its
   0th term*: ``c_i = sum_{n=1..M} cos(i (n - 1/2) pi / M) * logmel_n`` for
   ``i = 1..M``. The library stores ``c_i`` in row ``i - 1`` (row ``M - 1``, ``i = M``,
   is zero up to rounding).
7. **Coefficients used**: rows ``coef_start`` (1) to ``coef_stop - 1`` (15), the
   library's ``s`` and ``D``: that is ``c_2 .. c_16``, 15 coefficients. The energy
   term ``c_0`` is never computed, and ``c_1`` is also left out by default.
8. **Alignment** (``align``; ``align_target`` = ``mel``, the library's default): DTW
   on the log-mel frames of step 5 (Euclidean distance over all ``n_mels`` bands), or
   ``pad``: the shorter log-mel sequence is padded with frames of zeros (log-mel 0,
   not the log floor) to the longer length. ``align_target=spec`` aligns (or pads)
   magnitude spectra ``|rfft|`` instead, ``mfcc`` the used cepstral rows.
9. **Distance**: per aligned frame pair, the Euclidean norm of the difference of the
   used coefficients, *without* the usual ``10 / ln 10 * sqrt(2)`` factor; the pair's
   value is the plain mean over the aligned frames (``L`` = DTW path length, or the
   longer length with ``pad``). So the numbers are on the library's scale, not in dB.

The sample is the library's ``audio_A``, the reference ``audio_B`` (the order only
matters for how DTW breaks exact ties). The library's second return value, the
alignment penalty ``2 - (n + m) / L``, is not reported. Its silence removal
(``remove_silence``) is not offered.

DTW. ``dtw_radius`` unset (the default) is exact DTW, as the library with
``dtw_radius=None`` (which calls ``fastdtw`` with a radius as long as the longer
sequence, and so fastdtw's exact ``dtw``). The library's own default, ``dtw_radius=10``,
is fastdtw's approximation: it searches only near the path found at half resolution,
so it can settle on a costlier alignment and hence a different value, in either
direction. Measured: the first test sentence (espeak-ng, 16 kHz) with white noise at
5 dB SNR, slowed with ``sox tempo 0.7`` (4.44 s), against the clean sentence (3.11 s):
exact DTW 11.5726, the library's default 11.7033 (+1.1%; the figures move a little with
espeak-ng's build); in a sweep of 72 such pairs
(6 sentences; noise at 0 or 5 dB or a 1 kHz lowpass; tempo ratios 1 to 1.56) 15
differed, by -8% to +5%, all with tempo ratios of 1.4 or more. ``dtw_radius=N``
reproduces the library's ``dtw_radius=N`` exactly (same windows, same path). Both use
fastdtw's tie-breaking (up, then left, then diagonal, on the sums) and compute DTW a
whole anti-diagonal at a time for a batch of pairs (:mod:`genmetrics.metrics.audio._dtw`).

Parity with the library: within 1e-9 (in practice about 1e-14), on the same samples.
The library reads WAV files with ``scipy.io.wavfile``: a 16-bit file arrives as
integers and genmetrics gets the same samples divided by 32768; after peak
normalisation both are identical. Two of its quirks are not reproduced: with
``norm_audio=false`` it works on the raw integers (x 32768), which changes values
slightly through the log floor (by about 1e-10 on the test speech; float64 WAVs give
identical values); and in a 16-bit file that holds the sample -32768 it finds the
wrong peak (``np.abs`` wraps around in int16), so that clip gets another gain. The
cepstral rows used ignore a gain (a DCT row without ``c_0`` sums a constant to 0), but
the DTW distances on log-mel do not, so the alignment can change (on the test speech
with one such sample the values were still identical).

Lengths: the two clips of a pair may differ in length (DTW is what makes MCD useful
for a synthesised utterance against a recording of another speed); both are framed
in full.

Rates. The rate a pair is scored at sets the frame sizes in samples and the mel bands
(0 to ``rate / 2`` by default), so MCD values at different rates are on different
scales. The signature records the rate (``rate``). A 44.1 kHz sample against a 16 kHz
reference is scored at 16 kHz, as the library does; a folder whose pairs come out at
*different* rates (say some references at 16 kHz, others at 22.05 kHz) is not averaged
into one value: the metric fails with the rates it met and how many pairs each, and
``--set mcd.sample_rate=N`` (every clip resampled to ``N``) scores them all at one rate.

Computation: STFT, mel filtering, log and DCT batched over all clips in torch
(float64) on option ``device`` (``auto``: CUDA when available); DTW distance matrices
with ``torch.cdist`` (direct differences, so identical frames are exactly 0 apart);
the DTW recursion in numpy (about 9 MB per pair of 5 s clips, growing with the
product of the lengths: 1.4 GB for two 60 s clips). Values do not depend on the device
or the batching beyond float rounding (about 1e-15), so ``device`` is not part of the
signature.

    >>> import numpy as np
    >>> from genmetrics.io.audio import AudioClip
    >>> rng = np.random.default_rng(0)
    >>> a = AudioClip("a", rng.standard_normal(8000), 8000)
    >>> b = AudioClip("b", a.waveform + 0.5 * rng.standard_normal(8000), 8000)
    >>> short = AudioClip("c", a.waveform[:256], 8000)  # 32 ms: no whole frame
    >>> m = MCD(device="cpu")
    >>> m.update([a, b, short], [[a], [a], [a]])
    >>> r = m.compute(per_sample=True)["mcd"]
    >>> [None if v is None else round(v, 4) for v in r.per_sample]
    [0.0, 1.9396, None]
    >>> r.components["failed"][0]["reason"][:30]
    'the sample is too short: 256 s'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from genmetrics.errors import MetricError, UsageError
from genmetrics.io.audio import AudioClip
from genmetrics.metric import MetricResult, MetricSpec, Option, library_version
from genmetrics.metrics.audio._base import Failed, PairedAudioMetric

EPS = float(np.finfo(float).eps)  # the log floor: log10(energy + eps)
FRAMES_PER_CHUNK = 16384  # frames transformed at once (about 200 MB at n_fft = 512)
CDIST_CELLS = 16_000_000  # distance-matrix cells per torch.cdist call (128 MB)


def ms_to_samples(ms: float, rate: int) -> int:
    """The library's ``ms_to_samples``: ``int(ms / 1000 * rate)``."""
    return int(ms / 1000 * rate)


def frame_count(n_samples: int, win: int, hop: int) -> int:
    """Frames of the library's STFT: starts ``0, hop, ...`` strictly below ``n - win``."""
    return len(range(0, n_samples - win, hop))


@lru_cache(maxsize=32)
def mel_filterbank(rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """``n_mels x (n_fft // 2 + 1)`` triangular filters, as the library's ``get_w_n_m``."""
    mel_low = 2595 * np.log10(1 + fmin / 700.0)
    mel_high = 2595 * np.log10(1 + fmax / 700.0)
    mel_points = np.linspace(mel_low, mel_high, n_mels + 2)
    # one point at a time, as the library does (scalar and array pow may round apart)
    hz = np.array([700 * (10 ** (p / 2595) - 1) for p in mel_points])
    bins = np.floor((n_fft + 1) * hz / rate).astype(int)
    w = np.zeros((n_mels, n_fft // 2 + 1))
    for n in range(1, n_mels + 1):
        left, center, right = bins[n - 1], bins[n], bins[n + 1]
        w[n - 1, left:center] = (np.arange(left, center) - left) / (center - left)
        w[n - 1, center:right] = (right - np.arange(center, right)) / (right - center)
    return w


@lru_cache(maxsize=8)
def dct_matrix(n_mels: int) -> np.ndarray:
    """Row ``i - 1``: ``cos(i (n - 1/2) pi / M)``, ``n = 1..M`` (the library's ``get_MC_X_ik``)."""
    n = np.arange(1, n_mels + 1)
    i = n.reshape(-1, 1)
    return np.cos(i * (n - 0.5) * np.pi / n_mels)


def window(kind: str, n: int) -> np.ndarray:
    return np.hamming(n) if kind == "hamming" else np.hanning(n)


@dataclass
class _Clip:
    """One prepared clip: normalised samples and, once computed, its features."""

    wave: np.ndarray
    frames: int
    logmel: Any = None  # frames x n_mels (torch, on the device)
    magnitude: Any = None  # frames x bins, only to align on spectra
    cepstrum: np.ndarray | None = None  # frames x n_mels (numpy)


@dataclass(frozen=True)
class _Setup:
    """The frame sizes and filters at one sample rate."""

    rate: int
    win: int
    hop: int
    n_fft: int
    fmax: float


class MCD(PairedAudioMetric):
    equal_lengths = False  # DTW aligns clips of different lengths
    resamples_itself = True  # each clip from its own rate, with the library's resampler
    spec = MetricSpec(
        name="mcd",
        modality="audio",
        kind="paired",
        higher_is_better=False,
        unit="MCD (mel-cepstral-distance scale, not dB)",
        value_range=(0.0, None),
        description="Mel-cepstral distortion with exact DTW, as mel-cepstral-distance "
        "compare_audio_files (dtw_radius=None).",
        options=(
            Option("align", "dtw", "dtw, or pad (zero-pad the shorter sequence)",
                   choices=("dtw", "pad")),
            Option("dtw_radius", None, "none: exact DTW; N: fastdtw with radius N, as the "
                   "library's dtw_radius=N (its default is 10)", type=int),
            Option("align_target", "mel", "features that are aligned: mel (log-mel), spec "
                   "(magnitude spectrum) or mfcc", choices=("mel", "spec", "mfcc")),
            Option("sample_rate", None, "resample both clips to this rate first (FFT "
                   "resampling, as the library); none: the lower of the pair's two rates, "
                   "as the library", type=int),
            Option("n_fft", 32.0, "FFT length in ms", type=float),
            Option("win_len", 32.0, "window length in ms (frames are cut or padded to "
                   "n_fft)", type=float),
            Option("hop_len", 8.0, "hop length in ms", type=float),
            Option("window", "hanning", "window function", choices=("hanning", "hamming")),
            Option("n_mels", 20, "number of mel bands (the library's M)", type=int),
            Option("fmin", 0.0, "lowest mel frequency in Hz", type=float),
            Option("fmax", None, "highest mel frequency in Hz; none: sample_rate // 2",
                   type=float),
            Option("coef_start", 1, "first cepstral row used (the library's s; row r is "
                   "DCT coefficient r + 1)", type=int),
            Option("coef_stop", 16, "end of the cepstral rows used, exclusive (the "
                   "library's D)", type=int),
            Option("norm_audio", True, "peak-normalise each clip first", type=bool),
            Option("device", "auto", "auto (CUDA when available, else CPU), cpu, cuda, "
                   "cuda:N", affects_values=False),
        ),
    )

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.options
        for name in ("n_fft", "win_len", "hop_len"):
            if not o[name] > 0:
                raise UsageError(f"mcd: {name} must be > 0 ms")
        if o["n_mels"] < 1:
            raise UsageError("mcd: n_mels must be at least 1")
        if not 0 <= o["coef_start"] < o["coef_stop"] <= o["n_mels"]:
            raise UsageError("mcd: need 0 <= coef_start < coef_stop <= n_mels")
        if o["fmin"] < 0 or (o["fmax"] is not None and not o["fmax"] > o["fmin"]):
            raise UsageError("mcd: need 0 <= fmin < fmax")
        if o["dtw_radius"] is not None and o["dtw_radius"] < 1:
            raise UsageError("mcd: dtw_radius must be at least 1 (or none: exact DTW)")
        if o["sample_rate"] is not None and o["sample_rate"] < 1:
            raise UsageError("mcd: sample_rate must be positive (or none)")

    def libraries(self) -> dict[str, str]:
        return {"torch": library_version("torch")}

    def pair_rate(self, sample_rate: int, reference_rate: int) -> int:
        """Option ``sample_rate``, else the lower of the two rates (as the library)."""
        return self.options["sample_rate"] or min(sample_rate, reference_rate)

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        rates = self.scored_rates()
        if len(rates) > 1:
            found = ", ".join(f"{rate} Hz: {n} pair{'s' if n > 1 else ''}"
                              for rate, n in sorted(rates.items()))
            raise MetricError(
                f"mcd: the pairs were scored at {len(rates)} sample rates ({found}): the "
                "library scores a pair at the lower rate of its two clips, and MCD values "
                "at different rates are on different mel scales, so they are not averaged. "
                f"Score every pair at one rate with the option sample_rate={min(rates)} "
                f"(--set mcd.sample_rate={min(rates)}: each clip resampled to it, as the "
                "library's sample_rate=), or split the folder by rate")
        return super().compute(per_sample)

    def signature_extra(self) -> dict[str, Any]:
        """The rate the pairs were scored at."""
        rates = self.scored_rates()
        return {"rate": next(iter(rates))} if len(rates) == 1 else {}

    # -- preparation -------------------------------------------------------------------
    def _setup(self, rate: int) -> _Setup | Failed:
        o = self.options
        win, hop = ms_to_samples(o["win_len"], rate), ms_to_samples(o["hop_len"], rate)
        n_fft = ms_to_samples(o["n_fft"], rate)
        for name, value in (("win_len", win), ("hop_len", hop), ("n_fft", n_fft)):
            if value < 1:
                return Failed(f"{name} {o[name]:g} ms is less than one sample at {rate} Hz")
        fmax = rate // 2 if o["fmax"] is None else o["fmax"]
        if not 0 < fmax <= rate // 2:
            return Failed(f"fmax {fmax:g} Hz is above half the sample rate ({rate} Hz)")
        if not o["fmin"] < fmax:
            return Failed(f"fmin {o['fmin']:g} Hz is not below fmax {fmax:g} Hz")
        return _Setup(rate, win, hop, n_fft, fmax)

    def _prepare(self, clip: AudioClip, setup: _Setup, role: str) -> _Clip | Failed:
        wave = np.asarray(clip.waveform, dtype=np.float64)
        if setup.rate != clip.sample_rate:
            from scipy.signal import resample

            target = int(len(wave) * setup.rate / clip.sample_rate)
            wave = resample(wave, target, axis=0, window=None, domain="time")
        frames = frame_count(len(wave), setup.win, setup.hop)
        if frames < 1:
            return Failed(f"{role} is too short: {len(wave)} samples at {setup.rate} Hz give "
                          f"no frame; MCD needs more than {setup.win} samples (a "
                          f"{self.options['win_len']:g} ms window)")
        if self.options["norm_audio"]:
            peak = np.max(np.abs(wave))
            if peak == 0:
                return Failed(f"{role} is silent (all samples 0): it cannot be "
                              "peak-normalised")
            wave = wave / peak
        return _Clip(wave, frames)

    # -- scoring -----------------------------------------------------------------------
    def score_pairs(self, samples: Sequence[AudioClip],
                    references: Sequence[AudioClip]) -> list[float | Failed]:
        out: list[float | Failed | None] = [None] * len(samples)
        groups, _ = self._groups(samples, references, out)
        for pairs in groups.values():
            for (k, _, _), value in zip(pairs, self._distances(pairs), strict=True):
                out[k] = value
        return out  # type: ignore[return-value]

    def _groups(self, samples: Sequence[AudioClip], references: Sequence[AudioClip],
                out: list[Any]) -> tuple[dict[int, list[tuple[int, _Clip, _Clip]]],
                                         dict[int, _Setup]]:
        """Prepared pairs by rate, with their features; a pair that cannot be scored gets
        its :class:`Failed` in ``out``."""
        groups: dict[int, list[tuple[int, _Clip, _Clip]]] = {}
        setups: dict[int, _Setup] = {}
        for k, (s, r) in enumerate(zip(samples, references, strict=True)):
            rate = self.pair_rate(s.sample_rate, r.sample_rate)
            setup = setups.get(rate) or self._setup(rate)
            if isinstance(setup, Failed):
                out[k] = setup
                continue
            setups[rate] = setup
            a = self._prepare(s, setup, "the sample")
            b = self._prepare(r, setup, "the reference")
            failed = a if isinstance(a, Failed) else b if isinstance(b, Failed) else None
            if failed is not None:
                out[k] = failed
                continue
            groups.setdefault(rate, []).append((k, a, b))  # type: ignore[arg-type]
        for rate, pairs in groups.items():
            self._features([c for _, a, b in pairs for c in (a, b)], setups[rate])
        return groups, setups

    def _features(self, clips: list[_Clip], setup: _Setup) -> None:
        """Log-mel spectra (and cepstra) of all clips, batched on the device."""
        import torch

        o = self.options
        dev = torch.device(self.device())
        keep_mag = o["align"] == "dtw" and o["align_target"] == "spec"
        size = min(setup.win, setup.n_fft)
        win = torch.from_numpy(window(o["window"], setup.n_fft)).to(dev)
        bank = torch.from_numpy(mel_filterbank(setup.rate, setup.n_fft, o["n_mels"],
                                               float(o["fmin"]), float(setup.fmax))).to(dev)
        dct = torch.from_numpy(dct_matrix(o["n_mels"])).to(dev)
        start = 0
        while start < len(clips):  # chunks of whole clips, about FRAMES_PER_CHUNK frames
            stop, total = start, 0
            while stop < len(clips) and (stop == start or total + clips[stop].frames
                                         <= FRAMES_PER_CHUNK):
                total += clips[stop].frames
                stop += 1
            chunk = clips[start:stop]
            # the clips end to end, each starting on a multiple of hop, so that one
            # strided view frames them all; then the frames each clip has are picked
            hop = setup.hop
            starts = np.cumsum([0] + [-(-len(c.wave) // hop) for c in chunk])
            joined = np.zeros(int(starts[-1]) * hop + size)
            ids = []
            for c, first in zip(chunk, starts.tolist(), strict=False):
                joined[first * hop: first * hop + len(c.wave)] = c.wave
                ids.append(np.arange(first, first + c.frames))
            frames = torch.index_select(
                torch.from_numpy(joined).to(dev).unfold(0, size, hop), 0,
                torch.from_numpy(np.concatenate(ids)).to(dev))
            frames *= win[:size]  # rfft zero-pads a frame cut short of n_fft (0 * w = 0)
            spectrum = torch.fft.rfft(frames, n=setup.n_fft)
            power = spectrum.real.square() + spectrum.imag.square()
            logmel = torch.log10(power @ bank.T + EPS)
            cepstrum = (logmel @ dct.T).cpu().numpy()
            magnitude = spectrum.abs() if keep_mag else None
            at = 0
            for c in chunk:
                c.logmel = logmel[at: at + c.frames]
                c.cepstrum = cepstrum[at: at + c.frames]
                if magnitude is not None:
                    c.magnitude = magnitude[at: at + c.frames]
                at += c.frames
            start = stop

    def _distances(self, pairs: list[tuple[int, _Clip, _Clip]]) -> list[float]:
        o = self.options
        lo, hi = o["coef_start"], o["coef_stop"]
        if o["align"] == "pad":
            return [self._padded(a, b) for _, a, b in pairs]
        values = []
        for (_, a, b), path in zip(pairs, self._paths(pairs), strict=True):
            diff = a.cepstrum[path[:, 0], lo:hi] - b.cepstrum[path[:, 1], lo:hi]
            values.append(float(np.mean(np.sqrt(np.einsum("ij,ij->i", diff, diff)))))
        return values

    def alignments(self, samples: Sequence[AudioClip], references: Sequence[AudioClip]
                   ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, _Setup] | Failed]:
        """Per pair, the DTW path MCD scores (``L x 2`` frame indices: sample, reference)
        with both prepared waveforms (at the pair's rate, peak-normalised as set) and the
        frame setup (rate, win, hop in samples); or why the pair cannot be aligned. Used
        by :mod:`~genmetrics.metrics.audio.f0` to align F0 tracks exactly as MCD aligns
        frames; needs ``align="dtw"``."""
        if self.options["align"] != "dtw":
            raise UsageError("alignments need align=dtw")
        out: list[Any] = [None] * len(samples)
        groups, setups = self._groups(samples, references, out)
        for rate, pairs in groups.items():
            for (k, a, b), path in zip(pairs, self._paths(pairs), strict=True):
                out[k] = (path, a.wave, b.wave, setups[rate])
        return out

    def _paths(self, pairs: list[tuple[int, _Clip, _Clip]]) -> list[np.ndarray]:
        """The DTW path of each pair (option ``align_target``'s features, exact DTW or
        fastdtw's with ``dtw_radius``)."""
        o = self.options
        lo, hi = o["coef_start"], o["coef_stop"]
        import torch

        from genmetrics.metrics.audio import _dtw

        target = o["align_target"]

        def feats(c: _Clip) -> Any:
            if target == "spec":
                return c.magnitude
            if target == "mfcc":
                return torch.from_numpy(np.ascontiguousarray(c.cepstrum[:, lo:hi]))
            return c.logmel

        def cost(seqs: Sequence[tuple[Any, Any]],
                 windows: Sequence[_dtw.Window | None]) -> list[np.ndarray]:
            """Distance matrices, several pairs per torch.cdist call (direct differences,
            so identical frames are exactly 0 apart)."""
            from torch.nn.utils.rnn import pad_sequence

            out: list[np.ndarray] = []
            at = 0
            while at < len(seqs):
                stop, n_max, m_max = at, 0, 0
                while stop < len(seqs):
                    n, m = max(n_max, len(seqs[stop][0])), max(m_max, len(seqs[stop][1]))
                    if stop > at and (stop + 1 - at) * n * m > CDIST_CELLS:
                        break
                    n_max, m_max, stop = n, m, stop + 1
                xs = pad_sequence([x for x, _ in seqs[at:stop]], batch_first=True)
                ys = pad_sequence([y for _, y in seqs[at:stop]], batch_first=True)
                d = torch.cdist(xs, ys, compute_mode="donot_use_mm_for_euclid_dist")
                d = d.cpu().numpy()
                for b, ((x, y), win) in enumerate(zip(seqs[at:stop], windows[at:stop],
                                                      strict=True)):
                    full = d[b, : len(x), : len(y)]
                    out.append(full if win is None else full[_dtw.window_cells(win)])
                at = stop
            return out

        def halve(x: Any) -> Any:  # fastdtw's __reduce_by_half
            k = len(x) // 2
            return (x[0: 2 * k: 2] + x[1: 2 * k: 2]) / 2

        xs = [feats(a) for _, a, _ in pairs]
        ys = [feats(b) for _, _, b in pairs]
        if o["dtw_radius"] is None:
            return _dtw.paths(cost(list(zip(xs, ys, strict=True)), [None] * len(xs)))
        return _dtw.fastdtw_paths(xs, ys, o["dtw_radius"], cost, halve)

    def _padded(self, a: _Clip, b: _Clip) -> float:
        """Zero-padding alignment: padded frames are zeros (log-mel 0, or spectrum 0)."""
        o = self.options
        lo, hi = o["coef_start"], o["coef_stop"]
        ca, cb = a.cepstrum[:, lo:hi], b.cepstrum[:, lo:hi]
        n, m = len(ca), len(cb)
        if o["align_target"] == "spec":  # a zero spectrum has log-mel log10(eps) everywhere
            pad = dct_matrix(o["n_mels"])[lo:hi] @ np.full(o["n_mels"], np.log10(EPS))
        else:
            pad = np.zeros(hi - lo)
        longer = ca if n >= m else cb
        k = min(n, m)
        norms = np.concatenate([
            np.linalg.norm(ca[:k] - cb[:k], axis=1),
            np.linalg.norm(longer[k:] - pad, axis=1),
        ])
        return float(np.mean(norms))


__all__ = ["MCD", "mel_filterbank", "dct_matrix", "frame_count", "ms_to_samples"]
