"""SNR and SI-SNR of each sample against its reference, as torchmetrics computes them.

With ``t`` the reference (target), ``p`` the sample (prediction), sums over the clip's
samples and ``eps = 2.220446049250313e-16`` (float64 machine epsilon, which torchmetrics
adds on float64 input):

* ``snr`` -- torchmetrics ``signal_noise_ratio(p, t, zero_mean=False)``::

      SNR = 10 * log10((sum(t**2) + eps) / (sum((t - p)**2) + eps))

  With ``zero_mean=true`` both signals first lose their mean (``t - mean(t)``,
  ``p - mean(p)``), as torchmetrics does with ``zero_mean=True``.

* ``si_snr`` -- torchmetrics ``scale_invariant_signal_noise_ratio(p, t)``, which is
  SI-SDR with ``zero_mean=True``: with ``t`` and ``p`` mean-removed,
  ``alpha = (sum(p * t) + eps) / (sum(t**2) + eps)`` and ``s = alpha * t``::

      SI-SNR = 10 * log10((sum(s**2) + eps) / (sum((s - p)**2) + eps))

  It does not change when the sample is scaled (x0.5 and x2 give the same value);
  SNR does.

Both are in dB, higher is better; the corpus value is the mean of the per-pair values.
Each pair's value equals torchmetrics' on the float64 tensors within 1e-5 dB (in
practice about 1e-12 dB), except for identical pairs (see below). A sample and a
reference at different rates are compared at the higher rate: the clip at the lower
rate is resampled up (see :mod:`._base`), so the band it lacks counts as noise.

    >>> import numpy as np
    >>> from genmetrics.io.audio import AudioClip
    >>> ref = AudioClip("a", np.array([3.0, -0.5, 2.0, 7.0]), 8000)
    >>> deg = AudioClip("a", np.array([2.5, 0.0, 2.0, 8.0]), 8000)
    >>> m = SNR(device="cpu")
    >>> m.update([deg], [[ref]])
    >>> round(m.compute()["snr"].value, 4)        # torchmetrics' docstring: 16.1805
    16.1805
    >>> m = SISNR(device="cpu")
    >>> m.update([deg], [[ref]])
    >>> round(m.compute()["si_snr"].value, 4)     # torchmetrics' docstring: 15.0918
    15.0918

Edge cases:

* **Silent reference.** SNR is undefined when the reference has no energy: torchmetrics
  returns ``10 * log10(eps / (sum(p**2) + eps))`` (about -180 dB for speech), a number
  that says only how large ``eps`` is. Such a pair is not scored: it fails with the reason
  ``"silent reference: SNR undefined"`` (``snr``: the reference's energy ``sum(t**2)``
  is 0). When the mean is removed (``si_snr``; ``snr`` with ``zero_mean``) a constant
  (DC) reference is silent too and fails the same way (``"constant reference (silent
  once its mean is removed): ..."``).
* **Identical signals** have no noise, so their SNR is infinite. Such a pair is not
  scored: it fails with the reason ``"identical signals (SNR is infinite)"`` (``SI-SNR``
  for ``si_snr``), its per-sample value is ``None`` and the mean is over the other
  pairs -- the rule PSNR follows for identical images (one rule for both modalities).
  torchmetrics gives ``10 * log10((sum(t**2) + eps) / eps)`` instead, about 180 dB for
  speech: a number set by ``eps``, a float floor, which would lift the mean by whatever
  ``eps`` is. The test is exact: the noise energy is 0 (for ``si_snr`` this includes a
  sample that is its reference times a power of two, whose projection is exact). A
  pair that differs by float rounding only keeps a finite value; above about 150 dB the
  noise is of the order of ``eps`` and of rounding, so agreement with torchmetrics there
  is only as good as the rounding of the two computations. Compare the ``failed``
  component's count with ``n`` to see how many samples reproduced their reference.
* **Silent sample** (reference not silent): SNR is 0 dB; SI-SNR about 0 dB.
* **Empty clips** fail with ``"empty clip"``. A sample and reference of different
  lengths are cut to the shorter one first (by the audio reader, and for in-memory
  clips by :class:`~._base.PairedAudioMetric`). NaN cannot occur: the reader refuses
  files with NaN or Inf samples.

Computation, batched in torch, float64, on the device of option ``device`` (``auto``:
CUDA when available, else the CPU), in chunks of pairs of any lengths:

* SI-SNR, SNR with ``zero_mean``, and everything off the CPU: the pairs are packed, in
  order, into one buffer per chunk (up to ``CHUNK_ELEMENTS`` samples per signal), each
  clip starting at a multiple of ``BLOCK`` samples and padded with zeros to the next
  multiple; after the means are taken off, a mask zeroes the padding again. The rest is
  a few batched, in-place torch operations per chunk. Sums are taken per block of
  ``BLOCK`` samples and the blocks of a clip are then added exactly (``math.fsum``).
* Plain SNR on the CPU: no packing. torch's multi-tensor ops (``torch._foreach_sub``,
  ``torch._foreach_norm``, the ones optimizers use) take ``t - p`` of every pair of a
  chunk (``FOREACH_ELEMENTS`` samples) in one call and the norms of every ``t`` and
  ``t - p`` in another, on the clips' own memory. This reads each waveform once and
  writes only ``t - p``: the cost is bound by memory bandwidth, and on a 2-core CPU 200
  pairs of 1-3 s run about 1.3-1.7x as fast as torchmetrics called pair by pair
  (``scripts/bench.py --rows snr``), which reads each waveform once too.

Either way a pair's value comes from reductions over that pair alone, so on the CPU it
does not depend on the other pairs of its batch or chunk: updating in batches of 1, 3
or all and merging gives identical per-sample values. (On CUDA the block sums may
differ in the last bit with the batch's shape.)

Signature: the metric version, ``zero_mean`` (``snr``), and the torch version. The
device is not part of it, and states made on different devices merge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from genmetrics.errors import UsageError
from genmetrics.io.audio import AudioClip
from genmetrics.metric import Option, library_version
from genmetrics.metrics.audio._base import Failed, MetricSpec, PairedAudioMetric

__all__ = ["SNR", "SISNR", "snr_values", "identical", "EPS", "BLOCK"]

EPS = 2.220446049250313e-16  # torch.finfo(torch.float64).eps, what torchmetrics adds
BLOCK = 4096  # samples per partial sum: clips start at, and pad to, multiples of this
CHUNK_ELEMENTS = {"cpu": 1 << 20, "cuda": 1 << 23}  # samples per signal per packed step
FOREACH_ELEMENTS = 1 << 18  # samples per signal per multi-tensor step (plain SNR, CPU)
FOREACH_DEVICES = ("cpu",)  # where plain SNR uses multi-tensor ops on the clips themselves
# a mean-removed reference whose energy is below this fraction of n * mean**2 is checked
# for being constant (a constant one keeps only rounding errors, ~1e-31 of it)
_CONSTANT_CANDIDATE = 1e-20
_DEVICE_HELP = "auto (CUDA when available, else CPU), cpu, cuda, cuda:N"


def snr_values(preds: Sequence[Any], targets: Sequence[Any], *, scale_invariant: bool = False,
               zero_mean: bool = False, device: str = "cpu") -> list[float | Failed]:
    """SNR (or SI-SNR) in dB of each ``preds[i]`` against ``targets[i]`` (1-D float arrays).

    ``device`` is a torch device name (not ``auto``). Lengths must match pair by pair.
    """
    import numpy as np

    name = "SI-SNR" if scale_invariant else "SNR"
    remove_mean = scale_invariant or zero_mean
    preds = [_array(p) for p in preds]
    targets = [_array(t) for t in targets]
    out: list[float | Failed | None] = [None] * len(preds)
    todo = []
    for i, (p, t) in enumerate(zip(preds, targets, strict=True)):
        if p.ndim != 1 or t.ndim != 1:
            raise UsageError(f"{name}: pair {i} is not a pair of mono (1-D) waveforms")
        if len(p) != len(t):
            raise UsageError(f"{name}: pair {i} has {len(p)} sample and {len(t)} reference "
                             "samples; the lengths must be equal")
        if len(t) == 0:
            out[i] = Failed("empty clip")
        else:
            todo.append(i)
    if not todo:
        return out  # type: ignore[return-value]
    import torch

    lengths = [len(t) for t in targets]
    device_type = torch.device(device).type
    if not remove_mean and device_type in FOREACH_DEVICES:
        for rows in _chunks(todo, lengths, FOREACH_ELEMENTS):
            values = _plain_snr([preds[i] for i in rows], [targets[i] for i in rows], name)
            for i, value in zip(rows, values, strict=True):
                out[i] = value
        return out  # type: ignore[return-value]
    chunks = _chunks(todo, lengths, CHUNK_ELEMENTS.get(device_type, CHUNK_ELEMENTS["cuda"]))
    # one packing buffer (references, samples, work space), reused chunk after chunk
    scratch = np.empty((3, max(sum(_blocks(len(targets[i])) for i in c) for c in chunks)
                        * BLOCK))
    for rows in chunks:
        chunk = _Chunk([preds[i] for i in rows], [targets[i] for i in rows], scratch,
                       difference=not remove_mean, device=device)
        if scale_invariant:
            values = chunk.si_snr(name)
        elif zero_mean:
            values = chunk.snr_zero_mean(name)
        else:
            values = chunk.snr(name)
        for i, value in zip(rows, values, strict=True):
            out[i] = value
    return out  # type: ignore[return-value]


def _array(wave: Any) -> Any:
    """A contiguous, writable float64 array (torch cannot wrap the others without a copy)."""
    import numpy as np

    wave = np.ascontiguousarray(wave, dtype=np.float64)
    return wave if wave.flags.writeable else wave.copy()


def _plain_snr(preds: list[Any], targets: list[Any], name: str) -> list[float | Failed]:
    """SNR of a few pairs with torch's multi-tensor (``_foreach``) ops on the clips.

    One call takes ``t - p`` of every pair, one the norms of every ``t`` and ``t - p``:
    no copy of the clips, and each clip's norm is a reduction over that clip alone.
    """
    import torch

    t = [torch.from_numpy(w) for w in targets]
    p = [torch.from_numpy(w) for w in preds]
    foreach_sub = getattr(torch, "_foreach_sub", None)
    foreach_norm = getattr(torch, "_foreach_norm", None)
    if foreach_sub is None or foreach_norm is None:  # private API: fall back to a loop
        noise = [a - b for a, b in zip(t, p, strict=True)]
        norms = [torch.linalg.vector_norm(x) for x in t + noise]
    else:
        noise = list(foreach_sub(t, p))
        norms = list(foreach_norm(t + noise))
    values = torch.stack(norms).tolist()
    out: list[float | Failed] = []
    for norm_t, norm_n in zip(values[:len(t)], values[len(t):], strict=True):
        if norm_t == 0.0:
            out.append(Failed(f"silent reference: {name} undefined"))
        else:
            out.append(_db(norm_t * norm_t, norm_n * norm_n, name))
    return out


def _blocks(n: int) -> int:
    return -(-n // BLOCK)


def _chunks(rows: list[int], lengths: list[int], budget: int) -> list[list[int]]:
    """Consecutive runs of ``rows`` whose padded lengths add up to at most ``budget``."""
    out: list[list[int]] = []
    current: list[int] = []
    size = 0
    for i in rows:
        padded = _blocks(lengths[i]) * BLOCK
        if current and size + padded > budget:
            out.append(current)
            current, size = [], 0
        current.append(i)
        size += padded
    if current:
        out.append(current)
    return out


class _Chunk:
    """Pairs packed block-aligned into ``2 x total`` of ``scratch``, then on the device.

    Row 0 holds the references; row 1 the samples, or, with ``difference``, the
    references minus the samples (what ``snr`` needs; one pass fewer). The metrics
    then work in place on the packed tensor (on the CPU: on ``scratch`` itself), with
    one more row of ``scratch`` as work space: no large temporaries.
    """

    def __init__(self, preds: list[Any], targets: list[Any], scratch: Any, *,
                 difference: bool, device: str) -> None:
        import numpy as np
        import torch

        self.targets = targets
        self.lengths = [len(t) for t in targets]
        self.blocks = [_blocks(n) for n in self.lengths]
        self.n_blocks = sum(self.blocks)
        buf = scratch[:, :self.n_blocks * BLOCK]
        offset = 0
        for p, t, n, b in zip(preds, targets, self.lengths, self.blocks, strict=True):
            end = offset + n
            buf[0, offset:end] = t
            if difference:
                np.subtract(t, p, out=buf[1, offset:end])
            else:
                buf[1, offset:end] = p
            buf[:2, end:offset + b * BLOCK] = 0.0
            offset += b * BLOCK
        self.torch = torch
        self.device = torch.device(device)
        packed = torch.from_numpy(buf).view(3, self.n_blocks, BLOCK)
        self.x = packed[:2].to(self.device)
        self.work = packed[2] if self.device.type == "cpu" else torch.empty_like(self.x[0])

    # -- helpers -------------------------------------------------------------------
    def per_block(self, values: Sequence[Sequence[float]]) -> Any:
        """Per pair values, ``q`` rows -> a ``q x n_blocks x 1`` tensor (each pair's
        blocks get its value)."""
        import numpy as np

        expanded = np.repeat(np.asarray(values, dtype=np.float64), self.blocks, axis=1)
        return self.torch.from_numpy(expanded).to(self.device).unsqueeze(-1)

    def totals(self, block_sums: Any, square: bool = False) -> list[list[float]]:
        """``q x n_blocks`` block sums (or norms, ``square``) -> ``q`` lists of pair totals.

        The blocks of a pair are added exactly (``math.fsum``): no rounding depends on
        where the pair sits in its chunk.
        """
        out = []
        for row in block_sums.cpu().tolist():
            if square:
                row = [v * v for v in row]
            sums, start = [], 0
            for b in self.blocks:
                sums.append(math.fsum(row[start:start + b]))
                start += b
            out.append(sums)
        return out

    def energies(self) -> list[list[float]]:
        """Sums of squares of both rows per pair: block norms in one pass, squared."""
        return self.totals(self.torch.linalg.vector_norm(self.x, dim=-1), square=True)

    def remove_mean(self) -> list[float]:
        """Take each signal's mean off, in place, the padding zero again; the references'
        means."""
        torch = self.torch
        sum_t, sum_p = self.totals(self.x.sum(dim=-1))
        mean_t = [s / n for s, n in zip(sum_t, self.lengths, strict=True)]
        mean_p = [s / n for s, n in zip(sum_p, self.lengths, strict=True)]
        self.x.sub_(self.per_block([mean_t, mean_p]))
        valid = [min(BLOCK, n - k * BLOCK) for n, b in zip(self.lengths, self.blocks,
                                                            strict=True) for k in range(b)]
        valid_t = torch.tensor(valid, device=self.device).view(-1, 1)
        self.x.masked_fill_(torch.arange(BLOCK, device=self.device) >= valid_t, 0.0)
        return mean_t

    def constant(self, i: int, energy: float, mean: float) -> bool:
        """Is reference ``i`` constant (its mean-removed energy only rounding error)?"""
        if energy > _CONSTANT_CANDIDATE * self.lengths[i] * mean * mean:
            return False
        t = self.targets[i]
        return bool(t.min() == t.max())

    def silent(self, i: int, name: str) -> Failed:
        if self.targets[i].any():
            return Failed(f"constant reference (silent once its mean is removed): "
                          f"{name} undefined")
        return Failed(f"silent reference: {name} undefined")

    # -- the metrics -----------------------------------------------------------------
    def snr(self, name: str) -> list[float | Failed]:
        e_t, e_n = self.energies()  # rows: t, t - p
        return [Failed(f"silent reference: {name} undefined") if et == 0.0
                else _db(et, en, name) for et, en in zip(e_t, e_n, strict=True)]

    def snr_zero_mean(self, name: str) -> list[float | Failed]:
        mean_t = self.remove_mean()
        t, p = self.x
        self.torch.sub(t, p, out=p)  # rows: t, t - p
        e_t, e_n = self.energies()
        return [self.silent(i, name) if self.constant(i, et, mean_t[i]) else _db(et, en, name)
                for i, (et, en) in enumerate(zip(e_t, e_n, strict=True))]

    def si_snr(self, name: str) -> list[float | Failed]:
        torch = self.torch
        mean_t = self.remove_mean()
        t, p = self.x
        # sum(t*t) and sum(p*t) the same way, so that p == t gives alpha == 1 exactly
        e_t_blocks = torch.mul(t, t, out=self.work).sum(dim=-1)
        dot_blocks = torch.mul(p, t, out=self.work).sum(dim=-1)
        e_t, dot = self.totals(torch.stack((e_t_blocks, dot_blocks)))
        alpha = [(d + EPS) / (e + EPS) for d, e in zip(dot, e_t, strict=True)]
        t.mul_(self.per_block([alpha])[0])  # s = alpha * t
        p.sub_(t)  # rows: s, p - s (the noise, negated)
        e_s, e_n = self.energies()
        return [self.silent(i, name) if self.constant(i, e_t[i], mean_t[i])
                else _db(es, en, name)
                for i, (es, en) in enumerate(zip(e_s, e_n, strict=True))]


def _db(signal: float, noise: float, name: str) -> float | Failed:
    """``10 log10((signal + eps) / (noise + eps))``; no noise at all: infinite, failed."""
    if noise == 0.0:
        return Failed(identical(name))
    return 10.0 * math.log10((signal + EPS) / (noise + EPS))


def identical(name: str) -> str:
    """The reason a pair without noise fails (the wording of PSNR's identical images).

    >>> identical("SNR")
    'identical signals (SNR is infinite)'
    """
    return f"identical signals ({name} is infinite)"


class _SNRMetric(PairedAudioMetric):
    """Shared by SNR and SI-SNR: batched torch computation on the chosen device."""

    scale_invariant = False
    merge_ignores = frozenset({"device"})  # states made on different devices merge

    def score_pairs(self, samples: Sequence[AudioClip],
                    references: Sequence[AudioClip]) -> list[float | Failed]:
        return snr_values([s.waveform for s in samples], [r.waveform for r in references],
                          scale_invariant=self.scale_invariant,
                          zero_mean=bool(self.options.get("zero_mean", False)),
                          device=self.device())

    def libraries(self) -> dict[str, str]:
        return {"torch": library_version("torch")}


class SNR(_SNRMetric):
    spec = MetricSpec(
        name="snr",
        modality="audio",
        kind="paired",
        higher_is_better=True,
        unit="dB",
        description="Signal-to-noise ratio 10*log10(sum(t^2) / sum((t - p)^2)) of each "
        "sample against its reference, as torchmetrics signal_noise_ratio.",
        options=(
            Option("zero_mean", False, "remove each signal's mean first (as torchmetrics "
                   "zero_mean=True)", type=bool),
            Option("device", "auto", _DEVICE_HELP, affects_values=False),
        ),
    )


class SISNR(_SNRMetric):
    spec = MetricSpec(
        name="si_snr",
        modality="audio",
        kind="paired",
        higher_is_better=True,
        unit="dB",
        description="Scale-invariant SNR of each sample against its (mean-removed) "
        "reference, as torchmetrics scale_invariant_signal_noise_ratio.",
        options=(Option("device", "auto", _DEVICE_HELP, affects_values=False),),
    )
    scale_invariant = True
