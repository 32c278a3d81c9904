"""``Evaluator(sync=...)`` under two gloo processes: ``"none"`` scores each rank's own
inputs (gathered already, as Hugging Face ``Trainer`` gives them) like one process,
``"auto"`` combines the ranks and warns when they all hold the same samples; and the
input digests leave out the ids the Evaluator makes up, so they do not depend on the
number of processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch

from genmetrics import Evaluator
from genmetrics.errors import UsageError
from tests.conftest import REPO

HYPS = ["the cat sat on the mat", "a quick brown fox jumps", "it rained all day in May",
        "hello there my old friend"]
REFS = ["the cat was on the mat", "the quick brown fox jumped", "it rained in May",
        "hello my friend"]
METRICS = ["bleu", "chrf"]

_WORKER = r'''
import datetime, json, os, sys, warnings
import numpy as np, torch, torch.distributed as dist
sys.path.insert(0, os.environ["REPO"])
from genmetrics import Evaluator
rank = int(sys.argv[1])
# a collective that one rank never joins fails in 30 s instead of hanging the test
dist.init_process_group("gloo", init_method="file://" + sys.argv[2], rank=rank,
                        world_size=2, timeout=datetime.timedelta(seconds=30))
hyps, refs, metrics = json.loads(sys.argv[3])
data = torch.load(sys.argv[4], weights_only=True)
half = lambda x: x[:len(x) // 2] if rank == 0 else x[len(x) // 2:]  # contiguous shards


def summary(card):
    doc = card.to_dict()
    return {"values": {k: r.value for k, r in card.metrics.items()},
            "n": {k: r.n for k, r in card.metrics.items()},
            "inputs": card.inputs, "ids": doc.get("per_sample", {}).get("ids"),
            "processes": card.environment.get("processes"),
            "card_warnings": [w["message"] for w in card.warnings]}


def computed(ev):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        card = ev.compute()
    return summary(card), [str(w.message) for w in caught if "sync=" in str(w.message)]


out = {}
# every rank holds all 4 samples (Trainer's compute_metrics): sync="none" ...
ev = Evaluator(metrics, "text", sync="none", per_sample=True)
ev.update(hyps, refs)
if rank == 0:  # ... makes no collective call: rank 1 does not compute yet
    out["none"] = computed(ev)
dist.barrier()
if rank == 1:
    out["none"] = computed(ev)
# ... and sync="auto" counts them twice, and says so (twice computed, warned once)
ev = Evaluator(metrics, "text", per_sample=True)
ev.update(hyps, refs)
out["auto"] = computed(ev)
out["auto_again"] = computed(ev)
# each rank its own shard: one process's result and digests, no warning
ev = Evaluator(metrics, "text", per_sample=True)
ev.update(half(hyps), half(refs))
out["sharded"] = computed(ev)
ev = Evaluator(["psnr"], "image", device="cpu")
ev.update(half(data["images"]), half(data["targets"]))
out["image"] = computed(ev)
ev = Evaluator(["snr"], "audio", device="cpu")
ev.update(half(data["noisy"]), half(data["clean"]), sample_rate=8000)
out["audio"] = computed(ev)
json.dump(out, open(sys.argv[5] + f".{rank}", "w"))
dist.barrier()
dist.destroy_process_group()  # a live group at exit can abort from gloo's threads
'''


def _data() -> dict[str, Any]:
    rng = np.random.default_rng(3)
    targets = rng.integers(0, 256, (4, 3, 16, 16), dtype=np.uint8)
    noise = rng.integers(-20, 21, targets.shape)
    images = np.clip(targets.astype(int) + noise, 0, 255).astype(np.uint8)
    clean = 0.3 * np.sin(np.linspace(0, 200, 4000))[None] * rng.uniform(0.5, 1, (4, 1))
    return {"images": torch.from_numpy(images), "targets": torch.from_numpy(targets),
            "clean": torch.from_numpy(clean),
            "noisy": torch.from_numpy(clean + 0.05 * rng.standard_normal(clean.shape))}


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Both ranks' outputs of ``_WORKER`` (run once for the module) and its data."""
    tmp = tmp_path_factory.mktemp("sync")
    data = _data()
    torch.save(data, tmp / "data.pt")
    script = tmp / "worker.py"
    script.write_text(_WORKER)
    # TMPDIR: anything torch.distributed writes to the temporary folder stays in tmp
    env = dict(os.environ, REPO=str(REPO), OMP_NUM_THREADS="1", TMPDIR=str(tmp))
    procs = [subprocess.Popen([sys.executable, str(script), str(rank), str(tmp / "init"),
                               json.dumps([HYPS, REFS, METRICS]), str(tmp / "data.pt"),
                               str(tmp / "out.json")], env=env)
             for rank in (0, 1)]
    try:
        assert [p.wait(timeout=240) for p in procs] == [0, 0]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [json.loads((tmp / f"out.json.{r}").read_text()) for r in (0, 1)], data


def _one_process(metrics: list[str], modality: str, *batch: Any, **kw: Any) -> dict[str, Any]:
    """What one process without torch.distributed gives (the summary of ``_WORKER``)."""
    options = {"device": "cpu"} if modality != "text" else {}
    ev = Evaluator(metrics, modality, per_sample=modality == "text", **options)
    ev.update(*batch, **kw)
    card = ev.compute()
    return {"values": {k: r.value for k, r in card.metrics.items()},
            "n": {k: r.n for k, r in card.metrics.items()},
            "inputs": json.loads(json.dumps(card.inputs)),
            "ids": card.to_dict().get("per_sample", {}).get("ids"), "processes": None,
            "card_warnings": []}


def test_sync_none_gives_one_process_n_on_gathered_inputs(two_ranks):
    """Both ranks hold the same 4 samples: sync="none" gives n = 4 on each rank, the very
    scorecard of one process (values, ids, input digests), without a collective call."""
    outs, _ = two_ranks
    single = _one_process(METRICS, "text", HYPS, REFS)
    assert single["n"] == {"bleu": 4, "chrf": 4}
    for rank in (0, 1):
        summary, warned = outs[rank]["none"]
        assert summary == single
        assert warned == []


def test_sync_auto_counts_gathered_inputs_per_rank_and_warns_once(two_ranks):
    """sync="auto" combines the ranks as asked (n = 8) and warns, on rank 0 once, with
    the fix; every rank's scorecard records the warning."""
    outs, _ = two_ranks
    single = _one_process(METRICS, "text", HYPS, REFS)
    twice = _one_process(METRICS, "text", HYPS * 2, REFS * 2)
    for rank in (0, 1):
        summary, warned = outs[rank]["auto"]
        assert summary["n"] == {"bleu": 8, "chrf": 8}
        assert summary["inputs"]["samples"]["count"] == 8
        assert summary["processes"] == "2 (torch.distributed)"
        # one process over the corpus twice over: BLEU moves (its smoothing of zero
        # n-gram counts depends on the totals), as FID and KID would
        assert summary["values"] == twice["values"] and summary["n"] == twice["n"]
        assert summary["values"]["bleu"] != pytest.approx(single["values"]["bleu"], rel=0.01)
        [note] = summary["card_warnings"]
        assert "all 2 ranks" in note and 'sync="none"' in note and "n = 8" in note
        assert len(warned) == (1 if rank == 0 else 0)
        assert warned == [note] * len(warned)
        again, warned_again = outs[rank]["auto_again"]
        assert again == summary and warned_again == []  # warned once per Evaluator
    assert outs[0]["auto"][0] == outs[1]["auto"][0]  # the same scorecard on every rank


def test_sharded_inputs_give_one_process_result_and_digests(two_ranks):
    """Each rank its own half: the result, n and every input digest equal one process's
    over all the samples (the made-up ids ``r0-0``... stay out of the digests); no
    warning. Text, image (paired PSNR) and audio (paired SNR)."""
    outs, data = two_ranks
    assert outs[0]["sharded"] == outs[1]["sharded"]
    summary, warned = outs[0]["sharded"]
    single = _one_process(METRICS, "text", HYPS, REFS)
    assert warned == [] and summary["card_warnings"] == []
    assert summary["values"] == single["values"] and summary["n"] == single["n"]
    assert summary["inputs"] == single["inputs"]  # samples and references digests
    assert summary["ids"] == ["r0-0", "r0-1", "r1-0", "r1-1"] != single["ids"]
    image = _one_process(["psnr"], "image", data["images"], data["targets"])
    audio = _one_process(["snr"], "audio", data["noisy"], data["clean"], sample_rate=8000)
    for name, metric, single in (("image", "psnr", image), ("audio", "snr", audio)):
        summary, warned = outs[0][name]
        assert summary["inputs"] == single["inputs"], name
        assert summary["values"] == pytest.approx(single["values"], rel=1e-12), name
        assert summary["n"] == single["n"] == {metric: 4}
        assert warned == []


def test_digests_ignore_order_and_batching_but_not_pairing() -> None:
    """The Evaluator's digests hash contents (sorted item hashes): another order or
    batching gives the same digests, a changed sample or a swapped reference does not."""
    def inputs(hyps: list[str], refs: list[str], batch: int = 4) -> dict[str, Any]:
        ev = Evaluator(["bleu"], "text")
        for start in range(0, len(hyps), batch):
            ev.update(hyps[start:start + batch], refs[start:start + batch])
        return ev.compute().inputs

    base = inputs(HYPS, REFS)
    order = [2, 0, 3, 1]
    assert inputs([HYPS[i] for i in order], [REFS[i] for i in order], batch=3) == base
    assert inputs(HYPS[:3] + ["hello there my friend"], REFS)["samples"] != base["samples"]
    swapped = inputs(HYPS, [REFS[1], REFS[0], *REFS[2:]])
    assert swapped["samples"] == base["samples"]
    assert swapped["reference"] != base["reference"]


def test_sync_is_checked_and_old_checkpoints_warn() -> None:
    """An unknown ``sync`` is a UsageError naming both choices; a state saved before the
    digests left out made-up ids resumes with a warning about its digests."""
    with pytest.raises(UsageError, match='sync="auto".*sync="none"'):
        Evaluator(["bleu"], "text", sync="all")  # type: ignore[arg-type]
    ev = Evaluator(["bleu"], "text")
    ev.update(HYPS, REFS)
    state = ev.state_dict()
    assert state["format"] == 2
    with pytest.warns(UserWarning, match="digests of this pass"):
        Evaluator(["bleu"], "text").load_state_dict({**state, "format": 1})
