"""DNSMOS (Reddy et al. 2022, ICASSP): predicted MOS of a clip, with no reference.

Equal, clip by clip, to ``speechmos.dnsmos.run(path, 16000)`` of the ``speechmos`` wheel
(0.0.1.1), which runs Microsoft's DNSMOS ONNX models as the DNS Challenge's
``dnsmos_local.py`` does. Four results, each the mean over the scored clips
(``math.fsum``), higher is better, on the 1-5 MOS scale:

* ``dnsmos``: **OVRL**, the P.835 overall quality (the headline: what papers quote as
  "DNSMOS"; the components below are its own results, with their own per-sample values
  and intervals, as ROUGE's types and ``precision_recall`` are);
* ``dnsmos_sig``: P.835 SIG, the speech signal quality;
* ``dnsmos_bak``: P.835 BAK, the background noise quality;
* ``dnsmos_p808``: the P.808 MOS (model ``model_v8.onnx``).

Per clip, exactly as the reference:

1. **16 kHz.** The clip is taken to float32 (as ``librosa.load`` reads a file) and, when
   not at 16 kHz, resampled with ``librosa.resample(..., res_type="soxr_hq")`` -- what
   ``librosa.load(path, sr=16000)`` does inside ``speechmos``. (A multichannel file is
   mixed down in float64 here, in float32 there: the only difference, in the last bit.)
2. **Windows.** A clip shorter than ``L = int(9.01 * 16000)`` = 144160 samples is
   repeated (``np.append(a, a)``, doubling) until it is at least that long. Then
   ``int(floor(len / 16000) - 9.01) + 1`` windows start 1 s apart,
   ``a[int(i * 16000) : int((i + 9.01) * 16000)]``; a window that comes out shorter than
   ``L`` (float rounding of ``(i + 9.01) * 16000``) is left out, as in the reference.
3. **P.835** (``sig_bak_ovr.onnx``, or ``pdnsmos_models/sig_bak_ovr.onnx`` with
   ``personalized``): the raw float32 window in, raw SIG, BAK, OVRL out, each mapped by
   the reference's cubic (personalized) or quadratic polynomial (``np.polyval``).
4. **P.808** (``model_v8.onnx``): the window without its last 160 samples, as a
   120-band mel spectrogram (``librosa.feature.melspectrogram``, ``n_fft=321``,
   ``hop_length=160``), then ``(power_to_db(S, ref=np.max) + 40) / 40``, frames x bands.
5. The clip's values are the means over its windows (``np.mean``).

**Bad input** (named with the clip's id and the reason in each result's ``failed``
component, as the paired audio metrics name theirs; the run goes on): a silent clip
(all zeros: the model would still give numbers, for nothing); a clip shorter than
``min_seconds`` (default 1 s; the reference would repeat a 0.2 s clip 45 times and
judge the loop; ``--set dnsmos.min_seconds=0`` scores any non-empty clip as
``speechmos`` does); NaN or Inf samples (only possible for in-memory clips). Samples
outside [-1, 1] (a float file) are scored as they are, as ``speechmos`` scores a file
(only its in-memory array path refuses them).

**Models** are read from the installed ``speechmos`` wheel and checked against their
sha256 sums before a run: a missing or changed file makes the metric unavailable with
the command that installs it (``pip install speechmos==0.0.1.1 onnxruntime``); the
signature records the models' digests, the polynomial set and the onnxruntime version.

**Speed.** Windows (of all the clips in a batch) are scored ``workers`` threads at a
time, each window's mel features and model runs in its thread, with one ONNX Runtime
session per model whose runs use one thread each (``intra_op_num_threads=1``, no spin
waiting): runs on one session from several threads proceed in parallel. The reference
runs one window at a time with ONNX Runtime's own intra-op threads. Results do not
depend on ``workers`` or batching (tested), so ``workers`` is not in the signature.
Both sides spend the same CPU per window (about 0.35 s), so the gain is parallelism
alone (``scripts/bench.py --rows dnsmos``).

    >>> import numpy as np
    >>> from genmetrics.io.audio import AudioClip
    >>> m = DNSMOS(workers=1)
    >>> m.update([AudioClip("silent", np.zeros(32000), 16000),
    ...           AudioClip("short", np.full(800, 0.1), 16000)])
    >>> [f["reason"][:18] for f in m.failures()]
    ['silent clip (all z', 'too short: 0.050 s']
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from genmetrics.errors import MetricError, MetricUnavailable, UsageError
from genmetrics.io.audio import AudioClip
from genmetrics.metric import Metric, MetricResult, MetricSpec, Option, library_version
from genmetrics.metrics._per_pair import Failed

__all__ = ["DNSMOS", "MODELS", "SR", "WINDOW", "windows", "p808_features", "polyfit",
           "model_path"]

SR = 16000
INPUT_LENGTH = 9.01
WINDOW = int(INPUT_LENGTH * SR)  # 144160 samples
SPEECHMOS = "speechmos==0.0.1.1"
#: file in the speechmos wheel -> sha256
MODELS = {
    "dnsmos_models/sig_bak_ovr.onnx":
        "269fbebdb513aa23cddfbb593542ecc540284a91849ac50516870e1ac78f6edd",
    "pdnsmos_models/sig_bak_ovr.onnx":
        "9e3a197449ca2177f0997afec3bd6b890117ce2f17b89d6eea7fa0d47272c81c",
    "dnsmos_models/model_v8.onnx":
        "9246480c58567bc6affd4200938e77eef49468c8bc7ed3776d109c07456f6e91",
}
P808 = "dnsmos_models/model_v8.onnx"
#: speechmos's get_polyfit_val: (sig, bak, ovr) coefficients, highest power first
POLYFIT = {
    False: ([-0.08397278, 1.22083953, 0.0052439],
            [-0.13166888, 1.60915514, -0.39604546],
            [-0.06766283, 1.11546468, 0.04602535]),
    True: ([-0.01019296, 0.02751166, 1.19576786, -0.24348726],
           [-0.04976499, 0.44276479, -0.1644611, 0.96883132],
           [-0.00533021, 0.005101, 1.18058466, -0.11236046]),
}
OUTPUTS = ("dnsmos", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808")
_COLUMN = {"dnsmos": 2, "dnsmos_sig": 0, "dnsmos_bak": 1, "dnsmos_p808": 3}


def windows(audio: np.ndarray) -> list[np.ndarray]:
    """The 9.01 s windows of a 16 kHz float32 clip, as speechmos cuts them.

    >>> [len(w) for w in windows(np.ones(16000 * 11, np.float32))]
    [144160, 144160]
    """
    while len(audio) < WINDOW:
        audio = np.append(audio, audio)
    hops = int(np.floor(len(audio) / SR) - INPUT_LENGTH) + 1
    out = []
    for idx in range(hops):
        seg = audio[int(idx * SR): int((idx + INPUT_LENGTH) * SR)]
        if len(seg) >= WINDOW:
            out.append(seg)
    return out


def p808_features(segment: np.ndarray) -> np.ndarray:
    """The P.808 model's input for one window: frames x 120 mel bands, float32."""
    import librosa

    mel = librosa.feature.melspectrogram(y=segment[:-160], sr=SR, n_fft=321, hop_length=160,
                                         n_mels=120)
    return np.asarray(((librosa.power_to_db(mel, ref=np.max) + 40) / 40).T, dtype="float32")


def polyfit(raw: np.ndarray, personalized: bool) -> np.ndarray:
    """Raw P.835 outputs (``n x 3`` float32: SIG, BAK, OVRL) -> MOS (float64), as
    speechmos's ``np.poly1d`` calls compute them."""
    return np.stack([np.polyval(np.array(c), raw[:, k])
                     for k, c in enumerate(POLYFIT[personalized])], axis=1)


def model_path(name: str) -> Path:
    """A model file of the installed speechmos wheel, checked against its sha256."""
    from importlib.util import find_spec

    from genmetrics.assets import sha256_file

    spec = find_spec("speechmos")  # located, not imported (it imports requests, librosa)
    path = None
    if spec is not None and spec.origin:
        path = Path(spec.origin).parent / name
    if path is None or not path.is_file():
        raise MetricUnavailable(f"the DNSMOS model {name} is not installed (it ships in the "
                                f"speechmos wheel): pip install {SPEECHMOS} onnxruntime")
    actual = sha256_file(path)
    if actual != MODELS[name]:
        raise MetricUnavailable(f"{path}: sha256 {actual} differs from the expected "
                                f"{MODELS[name]}; reinstall: pip install --force-reinstall "
                                f"{SPEECHMOS}")
    return path


_SESSIONS: dict[str, Any] = {}
_LOCK = threading.Lock()


def _session(name: str) -> Any:
    """One ONNX Runtime session per model file and process, runs single-threaded."""
    with _LOCK:
        if name not in _SESSIONS:
            try:
                import onnxruntime as ort
            except ImportError as exc:
                raise MetricUnavailable(f"onnxruntime is not installed ({exc}): pip install "
                                        "onnxruntime") from None
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            _SESSIONS[name] = ort.InferenceSession(str(model_path(name)), opts,
                                                   providers=["CPUExecutionProvider"])
        return _SESSIONS[name]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class DNSMOS(Metric):
    """DNSMOS P.835 (SIG, BAK, OVRL) and P.808 of each clip; see the module docstring."""

    spec = MetricSpec(
        name="dnsmos",
        modality="audio",
        kind="distribution",  # no reference: each clip judged alone
        higher_is_better=True,
        unit="MOS, 1-5",
        description="DNSMOS (speechmos's ONNX models, no reference): OVRL as the value, "
        "SIG, BAK and P.808 as dnsmos_sig, dnsmos_bak, dnsmos_p808; mean over clips.",
        options=(
            Option("personalized", False, "the personalized P.835 model and polynomials "
                   "(speechmos model_type='dnsmos_personalized')", type=bool),
            Option("min_seconds", 1.0, "clips shorter than this are skipped (DNSMOS repeats "
                   "a short clip to 9.01 s); 0 scores any non-empty clip", type=float),
            Option("workers", 0, "threads scoring windows in parallel; 0 = one per CPU "
                   "core", type=int, affects_values=False),
        ),
        outputs=OUTPUTS,
        # default in runs without references or with TTS inputs; beside paired
        # references (enhancement, conversion) only when named: --metrics dnsmos
        default_with_references=False,
    )
    # per clip: sig, bak, ovrl, p808 (NaN for a failed clip); per failed clip, in order:
    # its reason
    state_reductions = {"scores": "cat", "reasons": "cat"}
    sample_fields, reason_fields = ("scores",), ("reasons",)  # slices: the model runs once
    state_dtypes = {"scores": "float64"}
    merge_ignores = frozenset({"workers"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.options["min_seconds"] < 0:
            raise UsageError("dnsmos: min_seconds must be 0 or more")
        if self.options["workers"] < 0:
            raise UsageError("dnsmos: workers must be 0 (one per core) or more")
        self._pool: ThreadPoolExecutor | None = None

    @property
    def primary(self) -> str:
        return ("pdnsmos_models/sig_bak_ovr.onnx" if self.options["personalized"]
                else "dnsmos_models/sig_bak_ovr.onnx")

    def preflight(self) -> None:
        for name in (self.primary, P808):
            _session(name)

    # -- scoring -----------------------------------------------------------------
    def _check(self, clip: AudioClip) -> str | None:
        wave = clip.waveform
        if len(wave) == 0:
            return "empty clip (no samples)"
        if not np.isfinite(wave).all():
            return "the waveform has NaN or Inf samples"
        if not wave.any():
            return "silent clip (all zeros): DNSMOS would judge nothing"
        if clip.seconds < self.options["min_seconds"]:
            return (f"too short: {clip.seconds:.3f} s; DNSMOS repeats a clip to 9.01 s, so "
                    f"clips under {self.options['min_seconds']:g} s are skipped (--set "
                    "dnsmos.min_seconds=0 scores them as speechmos does)")
        return None

    def _score_windows(self, segments: list[np.ndarray]) -> np.ndarray:
        """``n x 4`` (SIG, BAK, OVRL after polyfit; P.808) for a list of windows."""
        feats = np.stack([p808_features(s) for s in segments])
        p808 = _session(P808).run(None, {"input_1": feats})[0][:, 0]
        raw = _session(self.primary).run(None, {"input_1": np.stack(segments)})[0]
        out = np.empty((len(segments), 4), dtype=object)
        mos = polyfit(raw, self.options["personalized"])
        for k in range(len(segments)):
            out[k, :3] = list(mos[k])
            out[k, 3] = p808[k]
        return out

    def score(self, clips: Sequence[AudioClip]) -> list[tuple[float, ...] | Failed]:
        """Per clip: ``(sig, bak, ovrl, p808)``, or why it was not scored."""
        import librosa

        results: list[tuple[float, ...] | Failed | None] = [None] * len(clips)
        jobs: list[tuple[int, np.ndarray]] = []  # (clip, window)
        for i, clip in enumerate(clips):
            problem = self._check(clip)
            if problem:
                results[i] = Failed(problem)
                continue
            audio = np.asarray(clip.waveform, dtype=np.float32)
            if clip.sample_rate != SR:
                audio = librosa.resample(audio, orig_sr=clip.sample_rate, target_sr=SR,
                                         res_type="soxr_hq")
            jobs.extend((i, seg) for seg in windows(audio))
        workers = self.options["workers"] or _cores()
        chunks = [[job] for job in jobs]  # one window a run: the least CPU per window
        if workers > 1 and len(chunks) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(workers, thread_name_prefix="dnsmos")
            scored = list(self._pool.map(self._score_windows,
                                         [[seg for _, seg in c] for c in chunks]))
        else:
            scored = [self._score_windows([seg for _, seg in c]) for c in chunks]
        per_clip: dict[int, list[Any]] = {}
        for chunk, values in zip(chunks, scored, strict=True):
            for (i, _), row in zip(chunk, values, strict=True):
                per_clip.setdefault(i, []).append(row)
        for i, rows in per_clip.items():
            sig, bak, ovr, p808 = zip(*rows, strict=True)
            # np.mean over the windows' values, as speechmos (P.808 stays float32 there)
            results[i] = (float(np.mean(sig)), float(np.mean(bak)), float(np.mean(ovr)),
                          float(np.mean(p808)))
        return results  # type: ignore[return-value]

    def update(self, samples: Sequence[AudioClip],
               references: Sequence[Sequence[AudioClip]] | None = None) -> None:
        """Score a batch of clips (references, if any, are not used)."""
        if not samples:
            return
        rows = []
        for out in self.score(samples):
            if isinstance(out, Failed) or not all(math.isfinite(v) for v in out):
                self.state["reasons"].append(out.reason if isinstance(out, Failed)
                                             else f"value is {out}")
                rows.append([math.nan] * 4)
            else:
                rows.append(list(out))
        self.state["scores"].append(rows)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    # -- results -------------------------------------------------------------------
    def failed_masks(self) -> dict[str, Any]:
        return {"reasons": self._scores()[1]}

    def _scores(self) -> tuple[np.ndarray, np.ndarray]:
        scores = self.state["scores"].array().reshape(-1, 4)
        return scores, np.isnan(scores[:, 0])

    def failures(self) -> list[dict[str, Any]]:
        """The clips not scored: ``{"index", "reason"}`` in order."""
        _, failed = self._scores()
        return [{"index": i, "reason": r}
                for i, r in zip(np.flatnonzero(failed).tolist(), self.state["reasons"],
                                strict=True)]

    def compute(self, per_sample: bool = False) -> dict[str, MetricResult]:
        scores, failed = self._scores()
        kept = scores[~failed]
        if not len(kept):
            if len(scores):
                raise MetricError(f"dnsmos: none of the {len(scores)} clips could be scored "
                                  f"(first reason: {self.state['reasons'][0]})")
            self.require_samples(0)
        components: dict[str, Any] = {}
        if failed.any():
            components["failed"] = self.failures()
        results = {}
        for name in OUTPUTS:
            column = scores[:, _COLUMN[name]]
            values: list[float | None] | None = None
            if per_sample:
                values = [None if f else v for v, f in zip(column.tolist(), failed.tolist(),
                                                            strict=True)]
            results[name] = self.result(
                math.fsum(kept[:, _COLUMN[name]].tolist()) / len(kept), n=len(kept),
                name=name, components=dict(components), per_sample=values,
                score=name.removeprefix("dnsmos_") if name != "dnsmos" else "ovrl")
        return results

    def signature(self, **extra: Any) -> dict[str, Any]:
        sig = super().signature(**extra)
        sig["model"] = (f"{self.primary}:{MODELS[self.primary][:8]},"
                        f"{P808}:{MODELS[P808][:8]}")
        sig["rate"] = SR
        return sig

    def libraries(self) -> dict[str, str]:
        return {name: library_version(name) for name in ("speechmos", "onnxruntime",
                                                          "librosa", "soxr")}

    def bootstrap_rows(self) -> dict[str, Any]:
        scores, failed = self._scores()
        return {name: np.column_stack([np.where(failed, 0.0, scores[:, _COLUMN[name]]),
                                       (~failed).astype(np.float64)])
                for name in OUTPUTS}

    def value_from_totals(self, result: str, totals: Any, n: int) -> Any:
        with np.errstate(divide="ignore", invalid="ignore"):
            return totals[:, 0] / totals[:, 1]
