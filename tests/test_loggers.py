"""Experiment loggers, each against the real library writing to a temporary folder.

Every test logs two scorecards at steps 1 and 2 (one through the ``log_*`` function, one
through ``Scorecard.log_to``) and reads back what the library stored with that library's
own reader: TensorBoard's ``EventAccumulator``, ``MlflowClient`` on a file store, and the
records of W&B's offline ``.wandb`` file decoded with wandb's protobuf ``Record``.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from genmetrics.errors import UsageError
from genmetrics.loggers import LOGGERS, log_mlflow, log_tensorboard, log_wandb, scalars
from genmetrics.metric import MetricResult
from genmetrics.scorecard import Scorecard


def _card(shift: float = 0.0) -> Scorecard:
    """KID with a CI and mixed components, BLEU without, one skipped input, one error."""
    kid = MetricResult(
        name="kid", value=0.0123 + shift, n=64, higher_is_better=False, unit="",
        signature={"metric": "kid", "v": "1", "n": 64, "subsets": 10,
                   "refs": "sha256:9f86d081884c7d650a2feb", "genmetrics": "0.1.0"},
        components={"std": 0.0021 + shift, "reference_n": 80, "exact": True,
                    "failed": [{"index": 3, "reason": "unreadable"}],
                    "rank_deficient": {"sides": ["samples"]}, "overflow": math.inf},
        ci95=(0.0101 + shift, 0.0145 + shift))
    bleu = MetricResult(
        name="bleu", value=31.5 + 10 * shift, n=3, higher_is_better=True, unit="BLEU",
        signature={"metric": "bleu", "v": "1", "tokenize": "13a", "lowercase": False,
                   "nrefs": 1, "n": 3, "genmetrics": "0.1.0"})
    return Scorecard(modality="image", inputs={"samples": {"path": "s/", "count": 3}},
                     metrics={"kid": kid, "bleu": bleu}, errors={"fid": "no reference"},
                     skipped=[{"path": "s/x.png", "reason": "unreadable"}])


CARDS = {1: _card(), 2: _card(0.5)}


def test_scalars_content() -> None:
    card = CARDS[1]
    kid, bleu = card.metrics["kid"], card.metrics["bleu"]
    assert scalars(card) == {
        "genmetrics/kid": kid.value,
        "genmetrics/kid/ci95_low": kid.ci95[0],
        "genmetrics/kid/ci95_high": kid.ci95[1],
        "genmetrics/kid/std": kid.components["std"],
        "genmetrics/kid/reference_n": 80.0,  # numbers only: no bool, list, dict, inf
        "genmetrics/bleu": bleu.value,
        "genmetrics/skipped": 1.0,
        "genmetrics/errors": 1.0,
    }
    assert all(type(v) is float for v in scalars(card).values())
    assert set(scalars(card, "eval/", sep=".")) == {
        "eval/kid", "eval/kid.ci95_low", "eval/kid.ci95_high", "eval/kid.std",
        "eval/kid.reference_n", "eval/bleu", "eval/skipped", "eval/errors"}


def test_log_to_rejects_unknown_targets() -> None:
    card = CARDS[1]
    for target in ("csv", object(), 3):
        with pytest.raises(UsageError) as err:
            card.log_to(target)
        assert all(repr(name) in str(err.value) for name in LOGGERS)
    with pytest.raises(UsageError, match="writer="):
        card.log_to("tensorboard")
    assert set(LOGGERS) == {"tensorboard", "mlflow", "wandb"}


def test_importing_genmetrics_loads_no_tracker() -> None:
    code = ("import sys, genmetrics, genmetrics.scorecard, genmetrics.loggers; "
            "print([m for m in ('mlflow', 'wandb', 'tensorboard', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# -- TensorBoard --------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:html5lib's sanitizer is deprecated:DeprecationWarning")
def test_tensorboard_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    tb = pytest.importorskip("torch.utils.tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugin_util import markdown_to_safe_html

    writer = tb.SummaryWriter(log_dir=str(tmp_path))
    log_tensorboard(CARDS[1], writer, step=1)
    CARDS[2].log_to(writer, step=2)
    writer.close()

    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    expected = {step: scalars(card) for step, card in CARDS.items()}
    assert set(acc.Tags()["scalars"]) == set(expected[1])
    for tag in expected[1]:
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [1, 2]
        for event in events:  # TensorBoard stores scalars as float32
            assert event.value == pytest.approx(expected[event.step][tag], rel=1e-6)

    texts = acc.Tensors("genmetrics/signatures/text_summary")
    assert [t.step for t in texts] == [1, 2]
    for event in texts:
        text = event.tensor_proto.string_val[0].decode("utf-8")
        html = markdown_to_safe_html(text)
        assert "<table>" in html
        for result in CARDS[event.step].metrics.values():
            assert f"<code>{result.signature_str}</code>" in html  # one cell, pipes kept


# -- MLflow -------------------------------------------------------------------------------


def test_mlflow_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow = pytest.importorskip("mlflow")
    from genmetrics.loggers import mlflow_key

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 frowns on file stores
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # restored after the test
    mlflow.set_tracking_uri(uri)
    try:
        with pytest.raises(UsageError, match="mlflow.start_run"):
            log_mlflow(CARDS[1])
        with mlflow.start_run() as run:
            log_mlflow(CARDS[1], step=1)
            CARDS[2].log_to("mlflow", step=2)
            CARDS[2].log_to(mlflow, step=4)
        CARDS[2].log_to(run, step=5)  # the ActiveRun, closed by now
        run_id = run.info.run_id
        client = mlflow.MlflowClient()
        CARDS[1].log_to(client, step=3, run_id=run_id)  # last: its card is the artifact
        stored = client.get_run(run_id).data

        expected = {step: scalars(card, sep=".") for step, card in CARDS.items()}
        expected.update({3: expected[1], 4: expected[2], 5: expected[2]})
        assert "genmetrics/kid.ci95_low" in expected[1]
        assert set(stored.metrics) == {mlflow_key(k) for k in expected[1]}
        for name in expected[1]:
            history = client.get_metric_history(run_id, mlflow_key(name))
            assert sorted((m.step, m.value) for m in history) == [
                (step, pytest.approx(values[name], rel=1e-12))
                for step, values in sorted(expected.items())]
        for name, result in CARDS[1].metrics.items():
            assert stored.tags[f"genmetrics/{name}.signature"] == result.signature_str
        artifact = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/genmetrics/scorecard.json")
        assert Scorecard.from_dict(artifact).to_dict() == CARDS[1].to_dict()
    finally:
        mlflow.set_tracking_uri(None)  # back to the default (it also unsets the variable)


# -- Weights & Biases (offline) -----------------------------------------------------------

_BLOCK, _HEADER = 32768, 7


def _wandb_records(path: Path) -> list[bytes]:
    """The records of a ``.wandb`` file: a 7-byte ``:W&B`` header, then a LevelDB-style log
    (32 KiB blocks; each chunk: crc32 of type + data, length, type full/first/middle/last).
    wandb 0.31 ships no Python reader of its own, only the ``Record`` protobuf."""
    data = path.read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:_HEADER])
    assert (ident, magic) == (b":W&B", 0xBEE1)
    records, pending, pos = [], b"", _HEADER
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:  # block trailer padding
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + _HEADER])
        chunk = data[pos + _HEADER:pos + _HEADER + length]
        assert zlib.crc32(bytes([kind]) + chunk) == crc
        pos += _HEADER + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            records.append(pending)
    return records


def test_wandb_offline_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wandb = pytest.importorskip("wandb")
    from wandb.proto.wandb_internal_pb2 import Record

    from genmetrics.loggers import signatures

    for name, value in {"WANDB_MODE": "offline", "WANDB_DIR": tmp_path, "WANDB_SILENT": "true",
                        "WANDB_CONFIG_DIR": tmp_path / "config", "WANDB_CACHE_DIR":
                        tmp_path / "cache", "WANDB_DATA_DIR": tmp_path / "data",
                        "WANDB_DISABLE_GIT": "true", "WANDB_DISABLE_CODE": "true"}.items():
        monkeypatch.setenv(name, str(value))
    run = wandb.init(project="genmetrics-test", dir=tmp_path, mode="offline",
                     settings=wandb.Settings(console="off", x_disable_stats=True))
    try:
        log_wandb(CARDS[1], run, step=1)
        CARDS[2].log_to(run, step=2)
        CARDS[1].log_to("wandb", step=3)  # wandb.run
    finally:
        run.finish()
        wandb.teardown()  # run.finish() returns before the service has written the file
    with pytest.raises(UsageError, match="wandb.init"):
        log_wandb(CARDS[1])  # no active run any more

    (datastore,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    history: dict[int, dict[str, float]] = {}
    config: dict[str, object] = {}
    for raw in _wandb_records(datastore):
        record = Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") == "history":
            row = {item.key or "/".join(item.nested_key): json.loads(item.value_json)
                   for item in record.history.item}
            history[row.pop("_step")] = {k: v for k, v in row.items() if not k.startswith("_")}
        elif record.WhichOneof("record_type") == "config":
            config.update({u.key: json.loads(u.value_json) for u in record.config.update})
    assert history == {1: scalars(CARDS[1]), 2: scalars(CARDS[2]), 3: scalars(CARDS[1])}
    assert config["genmetrics"] == signatures(CARDS[1])  # the last call's
    assert config["genmetrics"]["kid"]["signature"] == CARDS[1].metrics["kid"].signature
