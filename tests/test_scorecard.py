"""Scorecard v1: shipped schema, validation, atomic write, load/to_dict round trip."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest

from genmetrics.errors import InputError
from genmetrics.runner import score
from genmetrics.scorecard import SCHEMA_ID, Scorecard, schema, validate


@pytest.fixture
def card(text_pair_dirs) -> Scorecard:
    samples, refs = text_pair_dirs
    return score(samples, refs, per_sample=True, metrics=["bleu", "chrf", "rouge"])


def test_schema_ships_inside_the_package_and_is_valid():
    jsonschema.Draft202012Validator.check_schema(schema())
    assert schema()["$id"] == SCHEMA_ID


def test_scorecard_validates_and_round_trips(card, tmp_path):
    doc = card.to_dict()
    validate(doc)
    assert doc["schema"] == SCHEMA_ID and doc["modality"] == "text"
    assert set(doc["metrics"]) == {"bleu", "chrf", "rouge1", "rouge2", "rougeL", "rougeLsum"}
    path = tmp_path / "card.json"
    card.save(path)
    loaded = Scorecard.load(path)
    assert loaded.to_dict() == doc
    assert loaded.metrics["bleu"].per_sample == card.metrics["bleu"].per_sample


def test_every_result_has_a_signature(card):
    for name, result in card.metrics.items():
        sig = result.signature
        assert sig["n"] == 3 and sig["refs"].startswith("sha256:")
        assert result.signature_str.startswith(sig["metric"] + "|")
        assert name in ("bleu", "chrf") or sig["rouge_type"] == name


@pytest.mark.parametrize("breakage, where", [
    (lambda d: d.pop("metrics"), "metrics"),
    (lambda d: d["metrics"]["bleu"].pop("signature"), "metrics/bleu"),
    (lambda d: d.update(schema="genmetrics.scorecard/0"), "schema"),
    (lambda d: d["metrics"]["bleu"].update(value="high"), "metrics/bleu/value"),
    (lambda d: d["skipped"].append({"path": "x"}), "skipped/0"),
])
def test_invalid_documents_are_refused_with_the_place(card, tmp_path, breakage, where):
    doc = card.to_dict()
    breakage(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=where.split("/")[0]):
        Scorecard.load(path)


def test_load_names_the_file_for_non_json(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match="x.json is not a JSON scorecard"):
        Scorecard.load(path)
    with pytest.raises(InputError, match="does not exist"):
        Scorecard.load(tmp_path / "missing.json")


def test_save_is_atomic(card, tmp_path, monkeypatch):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    path = out_dir / "card.json"
    path.write_text("previous content")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(InputError, match="cannot write .*card.json: disk full"):
        card.save(path)
    assert path.read_text() == "previous content"
    assert [p.name for p in out_dir.iterdir()] == ["card.json"]  # no temp file left behind


def test_save_refuses_an_invalid_card_without_touching_the_file(card, tmp_path):
    path = tmp_path / "card.json"
    card.modality = "video"
    with pytest.raises(InputError, match="modality"):
        card.save(path)
    assert not path.exists()


def test_demo_scorecard_matches_schema(tmp_path: Path):
    from tests.conftest import DEMO_TEXT

    card = score(DEMO_TEXT / "samples", DEMO_TEXT / "references")
    validate(card.to_dict())
    assert card.inputs["samples"]["count"] == len(list((DEMO_TEXT / "samples").glob("*.txt")))


def test_unwritable_and_unreadable_paths_are_input_errors(card, tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        card.save(tmp_path)
    with pytest.raises(InputError, match="cannot read"):
        Scorecard.load(tmp_path)
