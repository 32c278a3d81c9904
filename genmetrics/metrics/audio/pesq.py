"""PESQ (ITU-T P.862), identical pair by pair to the ``pesq`` package's ``pesq.pesq``.

For each pair the value is, bit for bit::

    ref, deg = resample(reference, ref_sr, rate), resample(sample, sr, rate)
    n = min(len(ref), len(deg))
    pesq.pesq(rate, ref[:n], deg[:n], mode)

with ``resample`` = :func:`genmetrics.io.audio.resample` (soxr, very high quality; a
no-op when the clip is already at ``rate``) and the float64 waveforms in [-1, 1] that
genmetrics decodes -- exactly the arrays a user of the ``pesq`` package passes it (the
package divides both by their common peak and converts to float32 itself, so the scale
does not matter). Each clip is resampled from its own rate straight to ``rate``, then
the pair is cut to its shorter clip: a sample and a reference at different rates never
pass through each other's rate. So an 8 kHz sample against a 16 kHz reference in ``wb``
is brought *up* to 16 kHz and judged on the whole wide band, 0-8 kHz, where it lacks
4-8 kHz (taking the reference down to 8 kHz instead would remove the very band the
sample lacks and score it as near-perfect). Resampling down to ``rate`` removes only
what the mode does not judge (above 8 kHz in ``wb``, above 4 kHz in ``nb``). Options:

* ``mode``: ``wb`` (default; wide band, P.862.2, at 16 kHz) or ``nb`` (narrow band,
  P.862 with the P.862.1 mapping, at 8 kHz). The value is MOS-LQO, higher is better:
  about 1.04-4.64 in ``wb``, 1.02-4.55 in ``nb``.
* ``workers``: processes scoring pairs in parallel; 0 (default) = one per CPU core,
  1 = no extra process. Values do not depend on it (nor on batching), so it is not part
  of the signature, and states made with different ``workers`` merge.

The signature records the mode, the rate PESQ runs at and the ``pesq`` version. The
corpus value is the mean over the scored pairs (see :mod:`._base`).

**Failures never abort a run.** A pair that PESQ cannot score gets the per-sample value
``None`` and is listed under the component ``failed`` with the reason:

* shorter than 0.25 s at the PESQ rate (checked before calling PESQ, with the same
  test the C code makes: fewer than ``rate // 4`` samples) -- "too short: ...";
* a silent reference (all zeros): ``pesq`` raises ``NoUtterancesError`` -- "No
  utterances detected"; PESQ's voice-activity detector finding no speech in a quiet or
  non-speech reference gives the same reason;
* a silent degraded sample with a non-silent reference: PESQ is undefined (the C code
  computes NaN and ``pesq.pesq`` fails with "cannot convert float NaN to integer") --
  "degraded signal is silent ...";
* NaN or Inf samples (only possible for in-memory clips: files with them are skipped
  when read);
* any other ``PesqError`` or exception: its message (``pesq`` gives bytes; decoded).

**Parallelism.** PESQ costs about 25 ms per second of 16 kHz speech, all in single-threaded
C, so pairs are spread over processes: a ``concurrent.futures.ProcessPoolExecutor`` with
``workers`` processes, started on the first batch that needs it and kept for the life of
the metric instance (:meth:`PESQ.close`, leaving a ``with`` block, or garbage collection
shuts it down). Each worker resamples, checks and scores one pair at a time (longest
pairs first, so the last ones to finish are short; at most two per worker handed out at
once); results are put back in input order. A pair reaches its worker as a file in a
temporary folder (removed when scored), read back bit for bit, rather than through the
pool's pipe, which would cost several milliseconds a pair on a busy machine (see
:class:`_Spool`); where no file can be written it goes through the pipe.
Processes are started with ``forkserver`` (``spawn`` where there is none), never
``fork``: the parent may hold torch's or BLAS's threads, which ``fork`` does not survive.
The fork server (one per process, shared with any other user) is asked to preload this
module, ``pesq`` and ``soxr`` (added to its preload list, before it starts), so that a
new pool's workers start in milliseconds with everything imported.
As with ``spawn``, a script that uses ``workers != 1`` must guard its entry point with
``if __name__ == "__main__":``. Batches of fewer than ``MIN_PARALLEL`` pairs, and every
batch with ``workers=1``, are scored in this process. If the pool cannot be started,
pairs are scored in this process; if a worker dies (a crash inside the C code), each
pair that was in the workers then is retried alone in a fresh pool (the others go on in
parallel), and a pair that kills its worker again fails with that reason; a pair that
might crash is never scored in this process.

``pesq.pesq_batch`` is not used: it needs equal-length 2-D arrays, starts new
processes on every call (``fork``), and with ``on_error=RETURN_VALUES`` reports only an
error code, while with exceptions its 2-D path returns the exception objects in place of
values; scoring one pair per task with ``pesq.pesq`` gives the same values and every
pair's own reason.

    >>> PESQ(mode="nb").signature_extra()
    {'rate': 8000}
"""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
import weakref
from collections import deque
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from genmetrics.errors import UsageError
from genmetrics.io.audio import AudioClip, resample
from genmetrics.metric import Option, library_version
from genmetrics.metrics.audio._base import Failed, MetricSpec, PairedAudioMetric

__all__ = ["PESQ", "RATES", "MIN_PARALLEL", "score_pair", "score_stored"]

RATES = {"wb": 16000, "nb": 8000}
MIN_PARALLEL = 4  # smaller batches are scored in this process
CRASHED = "the PESQ worker process crashed on this pair"
CRASHED_NO_RETRY = ("a PESQ worker process crashed while it held this pair, and no new one "
                    "could be started to retry it")
# imported once by the fork server, so that each worker starts with them loaded
PRELOAD = ("genmetrics.metrics.audio.pesq", "pesq", "soxr")

Outcome = tuple[float | None, str | None]  # (value, None) or (None, reason)
#: reference, degraded, the degraded's rate, mode[, the reference's rate when it differs]
Job = tuple[Any, ...]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _message(exc: BaseException) -> str:
    parts = [a.decode(errors="replace") if isinstance(a, bytes) else str(a) for a in exc.args]
    text = ", ".join(p for p in parts if p) or type(exc).__name__
    return text.strip()


def score_pair(reference: np.ndarray, degraded: np.ndarray, sample_rate: int,
               mode: str, reference_rate: int | None = None) -> Outcome:
    """PESQ of one pair given at its original rates (``sample_rate``; the reference's
    ``reference_rate``, if it differs): ``(value, None)`` or ``(None, why)``. Each clip is
    resampled straight to PESQ's rate, then the pair is cut to the shorter clip.

    Runs in the worker processes (and in this process for small batches); never raises.
    """
    try:
        import pesq

        rate = RATES[mode]
        if not (np.isfinite(reference).all() and np.isfinite(degraded).all()):
            return None, "the waveform has NaN or Inf samples"
        ref = resample(reference, reference_rate or sample_rate, rate)
        deg = resample(degraded, sample_rate, rate)
        shortest = min(len(ref), len(deg))
        if reference_rate not in (None, sample_rate):  # pairs of one rate come cut already
            ref, deg = ref[:shortest], deg[:shortest]
        if shortest < rate // 4:
            return None, (f"too short: {shortest / rate:.3f} s at {rate} Hz; PESQ needs at "
                          "least 0.25 s")
        if ref.any() and not deg.any():
            return None, ("degraded signal is silent (all zeros): PESQ is undefined "
                          "(pesq computes NaN)")
        try:
            # a silent reference makes pesq divide 0 by 0 before reporting no utterances
            with np.errstate(divide="ignore", invalid="ignore"):
                value = pesq.pesq(rate, ref, deg, mode)
        except pesq.PesqError as exc:  # NoUtterancesError, BufferTooShortError, ...
            return None, _message(exc)
        return float(value), None
    except Exception as exc:  # any other failure is this pair's, not the run's
        return None, f"{type(exc).__name__}: {_message(exc)}"


def score_stored(path: str, reference: tuple[str, int], degraded: tuple[str, int],
                 sample_rate: int, mode: str, reference_rate: int | None = None) -> Outcome:
    """:func:`score_pair` of a pair written to ``path``: the reference's bytes, then the
    degraded's, each given as ``(dtype, length)``. Runs in the workers."""
    ref = np.fromfile(path, dtype=reference[0], count=reference[1])
    deg = np.fromfile(path, dtype=degraded[0], count=degraded[1], offset=ref.nbytes)
    if len(ref) != reference[1] or len(deg) != degraded[1]:
        raise OSError(f"{path} is shorter than written")  # the caller scores the pair itself
    return score_pair(ref, deg, sample_rate, mode, reference_rate)


def _shutdown(pool: ProcessPoolExecutor) -> None:
    pool.shutdown(wait=False, cancel_futures=True)  # idle workers exit on their own


def _mp_context() -> Any:
    """``forkserver`` (with this module preloaded, so workers start warm), else ``spawn``."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    try:  # keep what others asked the (process-wide) fork server to preload
        from multiprocessing import forkserver

        current = list(forkserver._forkserver._preload_modules)  # type: ignore[attr-defined]
    except AttributeError:
        current = ["__main__"]
    missing = [m for m in PRELOAD if m not in current]
    if missing:
        ctx.set_forkserver_preload(current + missing)
    return ctx


class _Spool:
    """Pairs handed to the workers through files in a temporary folder.

    Through the pool's pipe a pair of a few seconds (about a megabyte) moves 64 KiB at a
    time, each step waiting for this process, which competes for the cores with the
    workers: about 7 ms lost per pair on 2 cores. Written to a file (the page cache) and
    read back by the worker in one call, the same bytes cost well under 1 ms. Where no
    file can be written the pair goes through the pipe. Files are removed as soon as
    their pair is scored, so at most ``window`` pairs are on disk at once.
    """

    def __init__(self) -> None:
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> _Spool:
        try:
            self._folder = tempfile.TemporaryDirectory(prefix="genmetrics-pesq-",
                                                       ignore_cleanup_errors=True)
        except OSError:
            self._folder = None
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._folder is not None:
            self._folder.cleanup()

    def task(self, index: int, job: Job) -> tuple[tuple[Any, ...], str | None]:
        """The call that scores ``job`` in a worker, and the file it reads (or ``None``)."""
        reference, degraded, sample_rate, mode, *reference_rate = job
        if self._folder is not None and _storable(reference) and _storable(degraded):
            path = os.path.join(self._folder.name, f"{index}.bin")
            try:
                with open(path, "wb") as out:
                    out.write(np.ascontiguousarray(reference).data)
                    out.write(np.ascontiguousarray(degraded).data)
            except OSError:
                self.discard(path)
            else:
                return (score_stored, path, (reference.dtype.str, len(reference)),
                        (degraded.dtype.str, len(degraded)), sample_rate, mode,
                        *reference_rate), path
        return (score_pair, *job), None

    @staticmethod
    def discard(path: str | None) -> None:
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _storable(wave: Any) -> bool:
    return isinstance(wave, np.ndarray) and wave.ndim == 1 and wave.dtype.kind in "fiu"


def _run(pool: ProcessPoolExecutor, spool: _Spool, jobs: list[Job], order: list[int],
         outcomes: list[Outcome | None], window: int) -> tuple[list[int], list[int], bool] | None:
    """Score ``jobs[i]`` for ``i`` in ``order`` in ``pool``, at most ``window`` at a time.

    Returns ``(suspects, rest, broken)``: the pairs that were in a worker when the pool
    broke, the pairs not tried, and whether the pool broke; or ``None`` when not one
    pair could be handed to the pool (no processes can be started here, e.g. inside a
    daemonic process). Pairs whose outcome stays ``None`` are for this process to score.
    """
    queue = deque(order)
    running: dict[Future[Outcome], tuple[int, str | None]] = {}
    suspects: list[int] = []
    submitted, broken = 0, False
    try:
        while running or (queue and not broken):
            while queue and not broken and len(running) < window:
                call, path = spool.task(queue[0], jobs[queue[0]])
                try:
                    future = pool.submit(*call)
                except Exception as exc:  # BrokenProcessPool, or no processes here
                    spool.discard(path)
                    if not submitted and not isinstance(exc, BrokenProcessPool):
                        return None
                    broken = True
                    break
                running[future] = (queue.popleft(), path)
                submitted += 1
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                index, path = running.pop(future)
                spool.discard(path)
                try:
                    outcomes[index] = future.result()
                except BrokenProcessPool:
                    suspects.append(index)
                    broken = True
                except Exception:  # e.g. the pair could not be sent: scored here
                    pass
    finally:
        for future, (_, path) in running.items():  # only on an interrupt
            future.cancel()
            spool.discard(path)
    if not submitted:
        return None
    return sorted(suspects), list(queue), broken


class PESQ(PairedAudioMetric):
    """PESQ (ITU-T P.862 / P.862.2) via the ``pesq`` package; see the module docstring."""

    resamples_itself = True  # in the worker processes, each clip from its own rate
    equal_lengths = False  # cut in score_pairs (one rate) or score_pair (two rates)

    spec = MetricSpec(
        name="pesq",
        modality="audio",
        kind="paired",
        higher_is_better=True,
        unit="MOS-LQO",
        description="Perceptual Evaluation of Speech Quality (ITU-T P.862), pesq package",
        value_range=(1.0, 4.65),
        options=(
            Option("mode", "wb", "wb: wide band at 16 kHz (P.862.2); nb: narrow band at "
                   "8 kHz (P.862.1 mapping)", choices=("wb", "nb")),
            Option("workers", 0, "processes scoring pairs in parallel (0: one per CPU core, "
                   "1: none)", type=int, affects_values=False),
        ),
    )

    merge_ignores = frozenset({"workers"})  # values do not depend on the number of processes

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.options["workers"] < 0:
            raise UsageError(f"option 'workers' must be 0 or more; got {self.options['workers']}")
        try:
            import pesq  # noqa: F401  (imported here too, so a missing package stops the run)
        except ImportError:
            raise UsageError("the pesq metric needs the pesq package: "
                             "pip install 'genmetrics[audio]'") from None
        self._pool: ProcessPoolExecutor | None = None
        self._finalizer: weakref.finalize | None = None

    # -- the pool --------------------------------------------------------------------
    @property
    def workers(self) -> int:
        """The number of processes used for a large batch (``workers``, 0 -> cores)."""
        return self.options["workers"] or _cores()

    def _get_pool(self) -> ProcessPoolExecutor | None:
        if self._pool is None:
            try:
                pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=_mp_context())
            except (OSError, ValueError, ImportError, NotImplementedError):
                return None  # no processes here: score in this process
            self._pool = pool
            self._finalizer = weakref.finalize(self, _shutdown, pool)
        return self._pool

    def close(self) -> None:
        """Stop the worker processes (a later batch starts new ones)."""
        if self._finalizer is not None:
            self._finalizer()  # runs _shutdown once
        self._pool, self._finalizer = None, None

    def __enter__(self) -> PESQ:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:  # copies and pickles carry no pool
        state = self.__dict__.copy()
        state["_pool"], state["_finalizer"] = None, None
        return state

    def __deepcopy__(self, memo: dict[int, Any]) -> PESQ:
        new = type(self).__new__(type(self))
        new.__dict__.update(copy.deepcopy(self.__getstate__(), memo))
        return new

    # -- scoring ---------------------------------------------------------------------
    def pair_rate(self, sample_rate: int, reference_rate: int) -> int:
        """PESQ's rate (16 kHz ``wb``, 8 kHz ``nb``): each clip is taken straight to it."""
        return RATES[self.options["mode"]]

    def score_pairs(self, samples: Sequence[AudioClip],
                    references: Sequence[AudioClip]) -> list[float | Failed]:
        # clips arrive at their own rates (resamples_itself) and lengths; the workers
        # resample them. A pair of one rate is cut to its shorter clip first, as ever;
        # a pair of two rates is cut once both are at PESQ's rate (score_pair)
        mode = self.options["mode"]
        jobs: list[Job] = []
        for s, r in zip(samples, references, strict=True):
            if s.sample_rate == r.sample_rate:
                k = min(len(s.waveform), len(r.waveform))
                jobs.append((r.waveform[:k], s.waveform[:k], s.sample_rate, mode))
            else:
                jobs.append((r.waveform, s.waveform, s.sample_rate, mode, r.sample_rate))
        outcomes: list[Outcome | None] = [None] * len(jobs)
        if self.workers > 1 and len(jobs) >= MIN_PARALLEL:
            self._score_in_pool(jobs, outcomes)
        for i, job in enumerate(jobs):
            if outcomes[i] is None:
                outcomes[i] = score_pair(*job)
        return [Failed(why) if value is None else value
                for value, why in outcomes]  # type: ignore[misc]

    def _score_in_pool(self, jobs: list[Job], outcomes: list[Outcome | None]) -> None:
        """Fill ``outcomes``; entries left ``None`` are scored in this process by the caller."""
        todo = sorted(range(len(jobs)), key=lambda i: -len(jobs[i][1]))  # longest first
        with _Spool() as spool:
            while todo:
                pool = self._get_pool()
                ran = None if pool is None else _run(pool, spool, jobs, todo, outcomes,
                                                     window=2 * self.workers)
                if ran is None:  # no process could be started
                    self.close()
                    return
                suspects, todo, broken = ran
                if broken:
                    self.close()
                # a worker died: each pair it may have held is retried alone, in its own
                # pool (a pair that may crash is never scored in this process)
                for i in suspects:
                    pool = self._get_pool()
                    again = None if pool is None else _run(pool, spool, jobs, [i], outcomes,
                                                           window=1)
                    if again is None or again[0]:
                        outcomes[i] = None, CRASHED if again else CRASHED_NO_RETRY
                        self.close()

    # -- signature -------------------------------------------------------------------
    def signature_extra(self) -> dict[str, Any]:
        return {"rate": RATES[self.options["mode"]]}

    def libraries(self) -> dict[str, str]:
        return {"pesq": library_version("pesq")}
