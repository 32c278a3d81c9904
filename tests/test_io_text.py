"""Text input: layouts, pairing by path / line / id, multi-reference, bad bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genmetrics.errors import InputError
from genmetrics.io.common import Skipped
from genmetrics.io.text import TextPair, open_text
from tests.conftest import write_files

FIXTURE_OK = [HealthCheck.function_scoped_fixture]


def items(source):
    return list(source)


def test_folders_pair_by_relative_path(text_pair_dirs):
    samples, refs = text_pair_dirs
    got = items(open_text(samples, [refs]))
    assert [p.id for p in got] == ["a.txt", "b.txt", "sub/c.txt"]
    assert got[0] == TextPair(
        "a.txt", "The cat sat on the mat.", ["The cat was sitting on the mat."]
    )


def test_reference_subfolders_are_reference_sets(tmp_path):
    samples = write_files(tmp_path / "s", {"1.txt": "h1", "2.txt": "h2"})
    refs = write_files(tmp_path / "r", {"a/1.txt": "r1a", "a/2.txt": "r2a", "b/1.txt": "r1b"})
    got = items(open_text(samples, [refs]))
    assert [p.references for p in got] == [["r1a", "r1b"], ["r2a"]]


def test_repeated_reference_folders_are_reference_sets(tmp_path):
    samples = write_files(tmp_path / "s", {"1.txt": "h1"})
    r1 = write_files(tmp_path / "r1", {"1.txt": "x"})
    r2 = write_files(tmp_path / "r2", {"1.txt": "y"})
    assert items(open_text(samples, [r1, r2]))[0].references == ["x", "y"]


def test_samples_without_a_reference_are_skipped_naming_it(tmp_path):
    samples = write_files(tmp_path / "s", {f"{i}.txt": "h" for i in range(3)})
    refs = write_files(tmp_path / "r", {"0.txt": "r"})
    got = items(open_text(samples, [refs]))
    assert got[0] == TextPair("0.txt", "h", ["r"])
    assert got[1:] == [Skipped(f"{i}.txt", f"no reference: {refs / f'{i}.txt'} does not exist")
                       for i in (1, 2)]


def test_references_without_samples_are_an_error(tmp_path):
    samples = write_files(tmp_path / "s", {"1.txt": "h"})
    refs = write_files(tmp_path / "r", {"1.txt": "r", "extra.txt": "r"})
    with pytest.raises(InputError, match=r"1 reference\(s\) have no sample.*extra.txt"):
        open_text(samples, [refs])


def test_no_matching_reference_names_at_all(tmp_path):
    samples = write_files(tmp_path / "s", {"1.txt": "h"})
    refs = write_files(tmp_path / "r", {"other.txt": "r"})
    with pytest.raises(InputError, match="no reference in .* matches a sample name"):
        open_text(samples, [refs])


def test_invalid_utf8_is_skipped_with_reason(tmp_path):
    samples = write_files(tmp_path / "s", {"1.txt": b"caf\xe9", "2.txt": "ok"})
    refs = write_files(tmp_path / "r", {"1.txt": "cafe", "2.txt": b"\xff"})
    got = items(open_text(samples, [refs]))
    assert got[0] == Skipped("1.txt", "not valid UTF-8 (byte 0xe9 at offset 3)")
    assert isinstance(got[1], Skipped) and got[1].path == "2.txt"
    assert "reference" in got[1].reason and "0xff" in got[1].reason


@pytest.mark.parametrize("make, message", [
    (lambda t: t / "missing", "does not exist"),
    (lambda t: write_files(t / "empty", {"x.md": "not text"}), "no .txt files"),
    (lambda t: write_files(t, {"x.csv": "a,b"}) / "x.csv", "must be a folder of .txt"),
])
def test_unusable_inputs_are_clear_errors(tmp_path, make, message):
    with pytest.raises(InputError, match=message):
        open_text(make(tmp_path))


def test_line_files_pair_by_line_number(tmp_path):
    write_files(tmp_path, {"h.txt": "one\ntwo\r\nthree\n", "r.txt": "1\n2\n3\n"})
    got = items(open_text(tmp_path / "h.txt", [tmp_path / "r.txt"]))
    assert [(p.id, p.text, p.references) for p in got] == [
        ("1", "one", ["1"]), ("2", "two", ["2"]), ("3", "three", ["3"])]


def test_line_count_mismatch_is_an_error(tmp_path):
    write_files(tmp_path, {"h.txt": "a\nb\n", "r.txt": "a\n"})
    with pytest.raises(InputError, match="has 2 lines but .*r.txt has 1"):
        open_text(tmp_path / "h.txt", [tmp_path / "r.txt"])


def test_jsonl_inline_references(tmp_path):
    lines = [{"id": "x", "text": "hello", "references": ["hi", "hey"]},
             {"id": "y", "text": "bye", "reference": "goodbye"}]
    write_files(tmp_path, {"s.jsonl": "\n".join(json.dumps(x) for x in lines) + "\n"})
    got = items(open_text(tmp_path / "s.jsonl"))
    assert got == [TextPair("x", "hello", ["hi", "hey"]), TextPair("y", "bye", ["goodbye"])]


def test_jsonl_pairs_by_id_in_any_order(tmp_path):
    write_files(tmp_path, {
        "s.jsonl": '{"id": 1, "text": "a"}\n{"id": 2, "text": "b"}\n',
        "r.jsonl": '{"id": 2, "text": "B"}\n{"id": 1, "references": ["A", "AA"]}\n',
    })
    got = items(open_text(tmp_path / "s.jsonl", [tmp_path / "r.jsonl"]))
    assert got == [TextPair("1", "a", ["A", "AA"]), TextPair("2", "b", ["B"])]


def test_jsonl_id_problems_are_errors(tmp_path):
    write_files(tmp_path, {
        "dup.jsonl": '{"id": 1, "text": "a"}\n{"id": 1, "text": "b"}\n',
        "s.jsonl": '{"id": 1, "text": "a"}\n{"id": 2, "text": "b"}\n',
        "r.jsonl": '{"id": 1, "text": "A"}\n{"id": 3, "text": "C"}\n',
    })
    with pytest.raises(InputError, match="duplicate ids 1"):
        open_text(tmp_path / "dup.jsonl", [tmp_path / "r.jsonl"])
    with pytest.raises(InputError, match=r"1 id\(s\) in .*r.jsonl have no sample: 3"):
        open_text(tmp_path / "s.jsonl", [tmp_path / "r.jsonl"])


def test_a_sample_id_missing_from_the_references_is_skipped(tmp_path):
    write_files(tmp_path, {
        "s.jsonl": '{"id": 1, "text": "a"}\n{"id": 2, "text": "b"}\n',
        "r.jsonl": '{"id": 1, "text": "A"}\n',
        "none.jsonl": '{"id": 7, "text": "A"}\n',
    })
    got = items(open_text(tmp_path / "s.jsonl", [tmp_path / "r.jsonl"]))
    missing = f"no reference: id 2 is not in {tmp_path / 'r.jsonl'}"
    assert got == [TextPair("1", "a", ["A"]), Skipped("s.jsonl:2 (id 2)", missing)]
    with pytest.raises(InputError, match="no id in .*none.jsonl matches a sample id"):
        open_text(tmp_path / "s.jsonl", [tmp_path / "none.jsonl"])


def test_bad_jsonl_lines_are_skipped_with_line_numbers(tmp_path):
    write_files(tmp_path, {"s.jsonl": b'{"text": "fine", "reference": "ok"}\n{oops\n'
                                      b'[1, 2]\n{"reference": "r"}\n{"text": "\xff"}\n'})
    got = items(open_text(tmp_path / "s.jsonl"))
    assert isinstance(got[0], TextPair)
    assert [(s.path, s.reason.split(" (")[0]) for s in got[1:]] == [
        ("s.jsonl:2", "not valid JSON"),
        ("s.jsonl:3", "a JSON object is expected on each line"),
        ("s.jsonl:4", 'no "text" field'),
        ("s.jsonl:5", "not valid UTF-8"),
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=FIXTURE_OK)
@given(lines=st.lists(st.binary(max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b),
                      min_size=1, max_size=12))
def test_fuzzed_line_files_lose_nothing(tmp_path_factory, lines):
    """Any bytes: every line becomes exactly one pair or one skipped entry, in order;
    a readable line is the text sacrebleu's command line reads (``line.rstrip()``)."""
    root: Path = tmp_path_factory.mktemp("fuzz")
    (root / "h.txt").write_bytes(b"\n".join(lines) + b"\n")
    (root / "r.txt").write_bytes(b"\n".join(lines) + b"\n")
    got = items(open_text(root / "h.txt", [root / "r.txt"]))
    assert len(got) == len(lines)
    for number, (raw, item) in enumerate(zip(lines, got, strict=True)):
        try:
            text = raw.decode("utf-8-sig" if number == 0 else "utf-8").rstrip()
        except UnicodeDecodeError:
            assert isinstance(item, Skipped) and "UTF-8" in item.reason
        else:
            assert item.text == text and item.references == [text]


@settings(max_examples=150, deadline=None, suppress_health_check=FIXTURE_OK)
@given(lines=st.lists(st.one_of(
    st.binary(max_size=30),
    st.dictionaries(st.sampled_from(["id", "text", "reference", "references"]),
                    st.one_of(st.text(max_size=10), st.integers(), st.lists(st.text(max_size=5)),
                              st.none()), max_size=4).map(lambda d: json.dumps(d).encode()),
), min_size=1, max_size=10))
def test_fuzzed_jsonl_never_crashes(tmp_path_factory, lines):
    """Arbitrary JSONL never raises anything but InputError and yields one item per line."""
    root: Path = tmp_path_factory.mktemp("fuzz")
    data = [ln.replace(b"\n", b" ").replace(b"\r", b" ") for ln in lines]
    (root / "s.jsonl").write_bytes(b"\n".join(data) + b"\n")
    try:
        got = items(open_text(root / "s.jsonl"))
    except InputError:
        return
    assert len(got) == sum(1 for ln in data if ln.strip())
    for item in got:
        assert isinstance(item, (TextPair, Skipped))
        if isinstance(item, TextPair):
            assert isinstance(item.text, str)
            assert all(isinstance(r, str) for r in item.references)


def test_a_broken_reference_line_does_not_switch_pairing_to_line_numbers(tmp_path):
    write_files(tmp_path, {
        "s.jsonl": '{"id": "a", "text": "x"}\n{"id": "b", "text": "y"}\n{"id": "c", "text": "z"}\n',
        "r.jsonl": '{"id": "b", "text": "Y"}\n{"id": "a", "text": "X"}\n{"id": "c", bad json\n',
    })
    with pytest.raises(InputError, match=r"line\(s\) 3 cannot be read"):
        open_text(tmp_path / "s.jsonl", [tmp_path / "r.jsonl"])


def test_duplicate_reference_ids_and_mixed_ids_are_refused(tmp_path):
    write_files(tmp_path, {
        "s.jsonl": '{"id": "a", "text": "x"}\n{"id": "b", "text": "y"}\n',
        "dup.jsonl": '{"id": "a", "text": "1"}\n{"id": "b", "text": "2"}\n'
                     '{"id": "a", "text": "3"}\n',
        "mixed.jsonl": '{"id": "a", "text": "1"}\n{"text": "2"}\n',
    })
    with pytest.raises(InputError, match="duplicate ids a"):
        open_text(tmp_path / "s.jsonl", [tmp_path / "dup.jsonl"])
    with pytest.raises(InputError, match="some lines have an \"id\" and some do not"):
        open_text(tmp_path / "s.jsonl", [tmp_path / "mixed.jsonl"])


def test_suffixes_are_case_insensitive(tmp_path):
    samples = write_files(tmp_path / "s", {"a.TXT": "x", "b.txt": "y"})
    assert [p.id for p in open_text(samples)] == ["a.TXT", "b.txt"]


# -- byte order marks, trailing whitespace, empty reference lists (issue 20) --------------
BOM = "\ufeff"


@pytest.mark.parametrize("layout", ["folder", "txt", "jsonl"])
@pytest.mark.parametrize("side", ["samples", "references"])
def test_a_leading_byte_order_mark_is_dropped_by_every_reader(tmp_path, layout, side):
    """A UTF-8 BOM (editors on Windows write one) is not part of the text: kept, it
    would glue itself to the first word and lower every score of that sample."""
    texts = ["The cat sat on the mat.", "A quick brown fox."]

    def content(with_bom: bool) -> dict[str, bytes]:
        bom = BOM.encode() if with_bom else b""
        if layout == "folder":
            return {f"{i}.txt": bom + t.encode() for i, t in enumerate(texts)}
        if layout == "txt":
            return {"x.txt": bom + "\n".join(texts).encode() + b"\n"}
        rows = [json.dumps({"id": str(i), "text": t}) for i, t in enumerate(texts)]
        return {"x.jsonl": bom + "\n".join(rows).encode() + b"\n"}

    samples = write_files(tmp_path / "s", content(side == "samples"))
    refs = write_files(tmp_path / "r", content(side == "references"))
    if layout != "folder":
        samples, refs = samples / f"x.{layout}", refs / f"x.{layout}"
    got = items(open_text(samples, [refs]))
    assert [(p.text, p.references) for p in got] == [(t, [t]) for t in texts]
    if layout != "folder":  # the reader the report uses too
        from genmetrics.io.text import read_lines

        first = next(read_lines(samples if side == "samples" else refs))[1]
        assert first.text == texts[0]


@pytest.mark.parametrize("layout", ["folder", "txt", "jsonl"])
def test_the_report_shows_samples_as_scoring_read_them(tmp_path, layout):
    """``genmetrics report`` looks samples up with its own reader: no BOM there either,
    and line files lose their trailing whitespace as when scored."""
    from genmetrics.report.media import SampleFinder

    if layout == "folder":
        write_files(tmp_path, {"s/a.txt": f"{BOM}The cat ".encode()})
        path, ident, expected = "s", "a.txt", "The cat "
    elif layout == "txt":
        write_files(tmp_path, {"s.txt": f"{BOM}The cat \t\r\nA dog\n".encode()})
        path, ident, expected = "s.txt", "1", "The cat"
    else:
        write_files(tmp_path, {"s.jsonl": (BOM + json.dumps({"id": "a", "text": "The cat "})
                                           + "\n").encode()})
        path, ident, expected = "s.jsonl", "a", "The cat "
    finder = SampleFinder("text", {"samples": {"path": path}}, [tmp_path])
    item = finder.sample(ident)
    assert item.problem is None and item.text == expected


def test_only_a_leading_byte_order_mark_is_dropped(tmp_path):
    """A U+FEFF inside the text (a zero-width no-break space) is the text's own."""
    write_files(tmp_path, {"s/a.txt": f"{BOM}{BOM}a{BOM}b".encode(),
                           "r/a.txt": "ab", "h.txt": f"x\n{BOM}y\n".encode(),
                           "rr.txt": "x\ny\n"})
    assert items(open_text(tmp_path / "s", [tmp_path / "r"]))[0].text == f"{BOM}a{BOM}b"
    assert [p.text for p in items(open_text(tmp_path / "h.txt", [tmp_path / "rr.txt"]))] == [
        "x", f"{BOM}y"]


def _as_sacrebleu_cli_reads(path: Path) -> list[str]:
    """The lines of ``path`` exactly as the ``sacrebleu`` command reads a line file:
    its own ``smart_open`` and ``line.rstrip()`` (sacrebleu/sacrebleu.py, ``main``);
    ``utf-8-sig`` is its ``-e utf-8-sig``, which drops a leading BOM as we do."""
    from sacrebleu.utils import smart_open

    with smart_open(str(path), encoding="utf-8-sig") as fh:
        return [line.rstrip() for line in fh]


WHITESPACE_LINES = [
    "trailing spaces   ", "trailing tab\t", "both \t \t", "  leading kept", "in\tside kept",
    "crlf end\r", "lone \r inside", "no-break space\u00a0", "ideographic\u3000", "",
    "   ", "\t", "next line\x85", "vertical\x0b\x0c", "plain",
]


@pytest.mark.parametrize("bom", [False, True])
def test_txt_line_files_are_read_as_the_sacrebleu_command_reads_them(tmp_path, bom):
    """One rule for every ``.txt`` line file, samples and references alike: a leading BOM
    dropped, lines split on ``\\n`` only, trailing whitespace (``str.rstrip()``) removed."""
    from genmetrics.io.text import read_lines

    data = (BOM if bom else "") + "\n".join(WHITESPACE_LINES) + "\n"
    write_files(tmp_path, {"h.txt": data.encode(), "r.txt": data.encode()})
    expected = _as_sacrebleu_cli_reads(tmp_path / "h.txt")
    assert len(expected) == len(WHITESPACE_LINES)
    got = items(open_text(tmp_path / "h.txt", [tmp_path / "r.txt"]))
    assert [p.text for p in got] == expected
    assert [p.references for p in got] == [[t] for t in expected]
    assert [r.text for _, r in read_lines(tmp_path / "r.txt")] == expected


def test_jsonl_text_fields_are_used_exactly(tmp_path):
    """A JSON string says where it ends: its trailing whitespace is the sample's own."""
    write_files(tmp_path, {"s.jsonl": json.dumps({"text": "a \t", "reference": "b  "}) + "\n"})
    assert items(open_text(tmp_path / "s.jsonl")) == [TextPair("1", "a \t", ["b  "])]


def test_a_jsonl_row_without_references_is_skipped_by_name(tmp_path):
    """``"references": []`` (or no reference field) in a file whose other rows carry
    references: that row alone is skipped, named by line and id, with the reason."""
    rows = [{"id": "a", "text": "x", "references": ["x"]},
            {"id": "b", "text": "y", "references": []},
            {"id": "c", "text": "z"},
            {"text": "w", "references": []},
            {"id": "e", "text": "v", "reference": "v"}]
    write_files(tmp_path, {"s.jsonl": "\n".join(json.dumps(r) for r in rows) + "\n"})
    got = items(open_text(tmp_path / "s.jsonl"))
    assert got == [
        TextPair("a", "x", ["x"]),
        Skipped("s.jsonl:2 (id b)", 'no reference: "references" is an empty list'),
        Skipped("s.jsonl:3 (id c)", 'no reference: no "references" or "reference" field'),
        Skipped("s.jsonl:4", 'no reference: "references" is an empty list'),
        TextPair("e", "v", ["v"]),
    ]


def test_a_reference_jsonl_row_with_an_empty_list_is_skipped_by_name(tmp_path):
    write_files(tmp_path, {
        "s.jsonl": '{"id": 1, "text": "a"}\n{"id": 2, "text": "b"}\n',
        "r.jsonl": '{"id": 2, "references": []}\n{"id": 1, "references": ["A"]}\n',
    })
    got = items(open_text(tmp_path / "s.jsonl", [tmp_path / "r.jsonl"]))
    assert got == [TextPair("1", "a", ["A"]), Skipped(
        "s.jsonl:2 (id 2)", 'no reference: "references" is an empty list in r.jsonl')]
