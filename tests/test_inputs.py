"""The description of what a run reads (genmetrics.inputs.Inputs): built by score()'s
keywords and the CLI alike, refused early when it cannot be read."""

from __future__ import annotations

from pathlib import Path

import pytest

from genmetrics.errors import UsageError
from genmetrics.inputs import PER_ITEM, Inputs
from genmetrics.runner import score


def test_of_normalises_paths(tmp_path: Path) -> None:
    one = Inputs.of(str(tmp_path), str(tmp_path / "r"), transcripts=str(tmp_path / "t.jsonl"))
    assert one.references == (tmp_path / "r",)
    assert one.transcripts == tmp_path / "t.jsonl"
    several = Inputs.of(tmp_path, [tmp_path / "r1", tmp_path / "r2"])
    assert several.references == (tmp_path / "r1", tmp_path / "r2")
    assert Inputs.of(tmp_path).references == ()
    with pytest.raises(TypeError, match="no field"):
        Inputs.of(tmp_path, colour="red")


def test_score_takes_the_description_or_keywords_alike(text_pair_dirs) -> None:
    samples, refs = text_pair_dirs
    by_keywords = score(samples, refs, metrics=["bleu"])
    by_inputs = score(Inputs.of(samples, refs), metrics=["bleu"])
    assert by_inputs.metrics["bleu"].value == by_keywords.metrics["bleu"].value
    assert by_inputs.inputs == by_keywords.inputs


def test_score_refuses_inputs_given_twice(text_pair_dirs) -> None:
    samples, refs = text_pair_dirs
    with pytest.raises(UsageError, match="give reference in the Inputs"):
        score(Inputs.of(samples), refs, metrics=["bleu"])
    with pytest.raises(UsageError, match="on_error"):
        score(Inputs.of(samples, refs), metrics=["bleu"], on_error="fail")


@pytest.mark.parametrize("field", sorted(PER_ITEM))
def test_per_item_input_of_another_modality_is_refused(text_pair_dirs, field) -> None:
    samples, refs = text_pair_dirs
    flag = PER_ITEM[field][2]
    with pytest.raises(UsageError, match=f"{flag} is for .* samples, not text"):
        score(Inputs.of(samples, refs, **{field: samples}), metrics=["bleu"])


def test_group_by_needs_a_file_to_read(text_pair_dirs, tmp_path) -> None:
    samples, refs = text_pair_dirs
    with pytest.raises(UsageError, match="--group-by topic reads a field of --metadata"):
        score(samples, refs, metrics=["bleu"], group_by="topic")
    with pytest.raises(UsageError, match="--metadata .*: no such file"):
        score(samples, refs, metrics=["bleu"], group_by="topic",
              metadata=tmp_path / "absent.jsonl")


def test_bad_on_error_is_refused(text_pair_dirs) -> None:
    samples, refs = text_pair_dirs
    with pytest.raises(UsageError, match="--on-error 'later': choose skip or fail"):
        score(samples, refs, metrics=["bleu"], on_error="later")


def test_cli_builds_the_description(run_cli, text_pair_dirs, tmp_path) -> None:
    samples, refs = text_pair_dirs
    done = run_cli("score", samples, "-r", refs, "--metrics", "bleu", "--group-by", "topic",
                   "--out", tmp_path / "card.json", "-q")
    assert done.returncode == 2
    assert "--group-by topic reads a field of --metadata" in done.stderr
