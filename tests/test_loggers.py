"""Experiment loggers, each against the real library writing to a temporary folder.

Every test logs two scorecards at steps 1 and 2 (one through the ``log_*`` function, one
through ``Scorecard.log_to``) and reads back what the library stored with that library's
own reader: TensorBoard's ``EventAccumulator``, ``MlflowClient`` on a file store, and the
records of W&B's offline ``.wandb`` file decoded with wandb's protobuf ``Record``.
"""

from __future__ import annotations

import copy
import json
import math
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

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


def test_rouge_logs_each_number_once() -> None:
    """ROUGE's value is its mean F-measure: the ``fmeasure`` component stays in the
    scorecard (code reads it) but is logged once, as the value, beside precision and
    recall; a component of that name on another metric is still logged."""
    pytest.importorskip("rouge_score_rs")
    from genmetrics.metrics.text.rouge import ROUGE

    metric = ROUGE(rouge_types="rouge1,rougeL")
    metric.update(["the cat sat on the mat", "a dog barked"],
                  [["the cat was sitting on the mat"], ["the dog barked loudly at night"]])
    card = Scorecard(modality="text", inputs={}, metrics=metric.compute())
    for result in card.metrics.values():
        assert result.components["fmeasure"] == result.value
        assert set(result.components) == {"precision", "recall", "fmeasure"}
    assert "genmetrics/rouge1_fmeasure" not in scalars(card, sep="_")
    assert "genmetrics/rouge1.fmeasure" not in scalars(card, sep=".")
    other = MetricResult(name="f1", value=0.5, n=2, higher_is_better=True, unit="",
                         signature={"metric": "f1"}, components={"fmeasure": 0.5})
    assert "genmetrics/f1/fmeasure" in scalars(Scorecard(modality="text", inputs={},
                                                         metrics={"f1": other}))
    logged = scalars(card)
    for name in ("rouge1", "rougeL"):
        mine = {k: v for k, v in logged.items() if k.startswith(f"genmetrics/{name}")}
        assert set(mine) == {f"genmetrics/{name}", f"genmetrics/{name}/precision",
                             f"genmetrics/{name}/recall"}
        assert len(set(mine.values())) == 3  # precision != recall != F here: no repeats
        precision, recall = (mine[f"genmetrics/{name}/{k}"] for k in ("precision", "recall"))
        assert min(precision, recall) < mine[f"genmetrics/{name}"] < max(precision, recall)


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
        for step, card in {1: CARDS[1], 2: CARDS[2], 3: CARDS[1], 4: CARDS[2]}.items():
            stored_card = mlflow.artifacts.load_dict(
                f"{run.info.artifact_uri}/genmetrics/step-{step:06d}/scorecard.json")
            assert stored_card == card.to_dict()
        assert not [t for t in stored.tags if "signature_changed" in t]  # same signatures
    finally:
        mlflow.set_tracking_uri(None)  # back to the default (it also unsets the variable)


def test_mlflow_artifact_file_is_a_deprecated_alias(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``log_mlflow(artifact_file=...)`` (genmetrics 0.2.0) still works, with a
    DeprecationWarning: the last card goes to that path, each step's card under
    ``artifact_dir`` as always."""
    mlflow = pytest.importorskip("mlflow")
    for name in ("MLFLOW_ALLOW_FILE_STORE", "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK"):
        monkeypatch.setenv(name, "true")
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run() as run:
            with pytest.warns(DeprecationWarning, match="artifact_file"):
                log_mlflow(CARDS[1], step=1, artifact_file="old/card.json")
        root = run.info.artifact_uri
        assert mlflow.artifacts.load_dict(f"{root}/old/card.json") == CARDS[1].to_dict()
        assert mlflow.artifacts.load_dict(
            f"{root}/genmetrics/step-000001/scorecard.json") == CARDS[1].to_dict()
        listed = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id,
                                                                        "genmetrics")}
        assert listed == {"genmetrics/step-000001"}  # the last card went to old/card.json
    finally:
        mlflow.set_tracking_uri(None)


def _retokenized(card: Scorecard, tokenize: str, n: int | None = None) -> Scorecard:
    """``card`` with BLEU's ``tokenize`` (and, if given, every result's ``n``) changed."""
    other = copy.deepcopy(card)
    other.metrics["bleu"].signature["tokenize"] = tokenize
    for result in other.metrics.values():
        if n is not None:
            result.n = result.signature["n"] = n
    return other


#: steps 1-3 of a training run: BLEU's tokenizer changes at step 2; at step 3 only ``n``
#: changes, which leaves results comparable (the gate ignores ``n``)
STEPS = {1: CARDS[1], 2: _retokenized(CARDS[2], "intl"), 3: _retokenized(CARDS[1], "intl", n=9)}


@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")
def test_mlflow_keeps_each_steps_signature(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    """A ``sqlite:`` store (what the README shows): one scorecard artifact per step and a
    tag where a signature changed, read back with ``MlflowClient``."""
    mlflow = pytest.importorskip("mlflow")
    # the sqlite store needs them; the dev extra lists them, so never a silent skip
    import importlib.util

    missing = [m for m in ("sqlalchemy", "alembic") if importlib.util.find_spec(m) is None]
    assert not missing, f"{missing} not installed: pip install -e '.[dev]'"
    for name in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK"):
        monkeypatch.setenv(name, "true")
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    try:
        client = mlflow.MlflowClient()
        experiment = client.create_experiment(
            "genmetrics-test", artifact_location=(tmp_path / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment) as run:
            for step, card in STEPS.items():
                card.log_to(mlflow, step=step)
        run_id = run.info.run_id
        tags = client.get_run(run_id).data.tags
        changes = {k: v for k, v in tags.items() if "signature_changed" in k}
        assert changes == {"genmetrics/bleu.signature_changed.step-000002": "tok: 13a -> intl"}
        for name, result in STEPS[3].metrics.items():  # the latest
            assert tags[f"genmetrics/{name}.signature"] == result.signature_str
        assert STEPS[3].metrics["kid"].signature_str != CARDS[1].metrics["kid"].signature_str

        listed = {a.path for a in client.list_artifacts(run_id, "genmetrics")}
        assert listed == {"genmetrics/scorecard.json"} | {
            f"genmetrics/step-00000{step}" for step in STEPS}
        for step, card in STEPS.items():
            local = client.download_artifacts(
                run_id, f"genmetrics/step-00000{step}/scorecard.json", str(tmp_path / "got"))
            stored = Scorecard.load(local)
            assert {name: r.signature for name, r in stored.metrics.items()} == {
                name: r.signature for name, r in card.metrics.items()}
            assert stored.to_dict() == card.to_dict()
        history = client.get_metric_history(run_id, "genmetrics/bleu")
        assert sorted(m.step for m in history) == list(STEPS)
    finally:
        mlflow.set_tracking_uri(None)


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


def _wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """wandb, set to write an offline run under ``tmp_path`` (no login, no network)."""
    wandb = pytest.importorskip("wandb")
    for name, value in {"WANDB_MODE": "offline", "WANDB_DIR": tmp_path, "WANDB_SILENT": "true",
                        "WANDB_CONFIG_DIR": tmp_path / "config", "WANDB_CACHE_DIR":
                        tmp_path / "cache", "WANDB_DATA_DIR": tmp_path / "data",
                        "WANDB_DISABLE_GIT": "true", "WANDB_DISABLE_CODE": "true"}.items():
        monkeypatch.setenv(name, str(value))
    return wandb


def _wandb_read(tmp_path: Path) -> tuple[list[dict[str, Any]], dict[str, Any], list[Any]]:
    """The offline run's history rows (in order, ``_step`` kept), config and metric records."""
    from wandb.proto.wandb_internal_pb2 import Record

    (datastore,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    history: list[dict[str, Any]] = []
    config: dict[str, Any] = {}
    metrics = []
    for raw in _wandb_records(datastore):
        record = Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                            for item in record.history.item})
        elif kind == "config":
            config.update({u.key: json.loads(u.value_json) for u in record.config.update})
        elif kind == "metric":
            metrics.append(record.metric)
    return history, config, metrics


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def test_wandb_offline_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Epochs 1-3 after the run has logged 5 steps of its own (W&B would drop a
    ``step=1`` there): each is a row on genmetrics' own axis, with its signatures."""
    wandb = _wandb_offline(tmp_path, monkeypatch)
    from genmetrics.loggers import signatures

    run = wandb.init(project="genmetrics-test", dir=tmp_path, mode="offline",
                     settings=wandb.Settings(console="off", x_disable_stats=True))
    try:
        for i in range(5):
            run.log({"train/loss": 1.0 / (i + 1)})
        log_wandb(STEPS[1], run, step=1)
        STEPS[2].log_to(run, step=2)
        STEPS[3].log_to("wandb", step=3)  # wandb.run
        CARDS[2].log_to(run, step=0)  # goes back: still a row of its own
        CARDS[1].log_to(run)  # no step: the W&B step of its row (9)
        run.log({"train/loss": 0.1})
    finally:
        run.finish()
        wandb.teardown()  # run.finish() returns before the service has written the file
    with pytest.raises(UsageError, match="wandb.init"):
        log_wandb(CARDS[1])  # no active run any more

    history, config, metrics = _wandb_read(tmp_path)
    assert [row["_step"] for row in history] == list(range(11))  # nothing dropped
    assert [_public(row) for row in history[:5]] == [{"train/loss": 1.0 / (i + 1)}
                                                    for i in range(5)]
    assert _public(history[10]) == {"train/loss": 0.1}
    logged = [(1, STEPS[1]), (2, STEPS[2]), (3, STEPS[3]), (0, CARDS[2]), (9, CARDS[1])]
    for row, (step, card) in zip(history[5:10], logged, strict=True):
        assert _public(row) == {
            **scalars(card), "genmetrics/step": step,
            **{f"genmetrics/{name}/signature": r.signature_str
               for name, r in card.metrics.items()}}
    bleu = [row["genmetrics/bleu/signature"] for row in history[5:8]]
    assert "tok:13a" in bleu[0] and "tok:intl" in bleu[1] and "tok:intl" in bleu[2]
    assert config["genmetrics"] == signatures(CARDS[1])  # the last call's
    assert config["genmetrics"]["kid"]["signature"] == CARDS[1].metrics["kid"].signature
    assert {(m.glob_name, m.step_metric) for m in metrics if m.glob_name} == {
        ("genmetrics/*", "genmetrics/step")}
