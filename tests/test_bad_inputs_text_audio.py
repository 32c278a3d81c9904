"""The bad-input matrix for text and audio (issue 8).

Every case has one defined behaviour (the table in ``docs_bad_input_text_audio.md``):

* skipped: named with the reason in the scorecard's ``skipped`` under the default
  ``on_error="skip"``, and the metric values then equal, exactly, a clean run on a copy
  of the inputs without the bad files; with ``on_error="fail"`` an :class:`InputError`
  that names the file;
* scored, with a warning (e.g. an empty text file, a WAV header that lies): values are
  checked against the reference implementation (sacrebleu, rouge-score, torchmetrics)
  on the same input, and ``on_error="fail"`` changes nothing;
* fatal (nothing can be scored, or the inputs cannot be paired): an :class:`InputError`
  or :class:`UsageError` in both modes; the CLI prints one line and exits 2.

Most cases run through :func:`genmetrics.runner.score`; a few through the CLI.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genmetrics.errors import InputError, UsageError
from genmetrics.io.audio import RATE_RANGE, AudioPair, open_audio
from genmetrics.io.common import Skipped
from genmetrics.runner import score
from tests.conftest import assert_one_line_error, write_files

FIXTURE_OK = [HealthCheck.function_scoped_fixture]
TEXT_METRICS = ["bleu", "chrf", "rouge"]
AUDIO_METRICS = ["snr", "si_snr"]
RATE = 16000


def values(card) -> dict[str, float]:
    return {name: result.value for name, result in card.metrics.items()}


def counts(card) -> dict[str, int]:
    return {name: result.n for name, result in card.metrics.items()}


def assert_same_values(card, clean) -> None:
    """Bit-for-bit the same metric values and counts, and no metric failed."""
    assert card.errors == {} and clean.errors == {}
    assert values(card) == values(clean)
    assert counts(card) == counts(clean)


def check_skipped(run: Callable[..., Any], clean, expected: list[tuple[str, str]]):
    """``run(on_error=...)`` skips exactly ``expected`` ([(path, reason fragment)]) under
    the default, with the values of ``clean``; under "fail" it stops at the first one."""
    card = run()
    assert [s["path"] for s in card.skipped] == [path for path, _ in expected]
    for entry, (_, fragment) in zip(card.skipped, expected, strict=True):
        assert fragment in entry["reason"], entry
    assert_same_values(card, clean)
    with pytest.raises(InputError) as failed:
        run(on_error="fail")
    path, fragment = expected[0]
    message = str(failed.value)
    assert message.startswith(f"{path}: ") and fragment in message
    assert "stopped by --on-error fail" in message
    return card


def mock_unreadable(monkeypatch, path: Path) -> None:
    """Make ``path`` unreadable: chmod 000, or (as root, who reads anyway) a patched open."""
    if os.geteuid() != 0:
        path.chmod(0)
        return
    real_open = Path.open

    def refusing_open(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refusing_open)


# == text =================================================================================
GOOD_TEXT = {
    "a.txt": ("the cat sat on the mat", "the cat was sitting on the mat"),
    "b.txt": ("a quick brown fox jumps over the dog", "the quick brown fox jumped over a dog"),
    "c.txt": ("prices rose by 3.5% in may", "prices went up 3.5% in may"),
    "sub/d.txt": ("he left early.\nshe stayed.", "he went home early.\nshe stayed late."),
}


def text_folders(root: Path, extra_samples: dict[str, Any] | None = None,
                 extra_refs: dict[str, Any] | None = None,
                 good: dict[str, tuple[str, str]] = GOOD_TEXT) -> tuple[Path, Path]:
    samples = write_files(root / "samples", {k: h for k, (h, _) in good.items()})
    refs = write_files(root / "refs", {k: r for k, (_, r) in good.items()})
    write_files(samples, extra_samples or {})
    write_files(refs, extra_refs or {})
    return samples, refs


@pytest.fixture
def clean_text(tmp_path):
    """The scorecard of the good text pairs alone."""
    samples, refs = text_folders(tmp_path / "clean")
    return score(samples, refs, metrics=TEXT_METRICS)


def _broken_link(folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).symlink_to(folder / "nowhere" / name)


TEXT_SKIP_CASES = {
    # case: (extra sample files, extra reference files, [(skipped path, reason)])
    "invalid UTF-8 sample": ({"bad.txt": b"caf\xe9 au lait"}, {"bad.txt": "cafe au lait"},
                             [("bad.txt", "not valid UTF-8 (byte 0xe9 at offset 3)")]),
    "invalid UTF-8 reference": ({"bad.txt": "cafe"}, {"bad.txt": b"\xff\xfe"},
                                [("bad.txt", "refs/bad.txt: not valid UTF-8 (byte 0xff")]),
    "reference missing": ({"lonely.txt": "no one to compare with"}, {},
                          [("lonely.txt", "no reference: ")]),
    "several bad files": ({"bad.txt": b"\x80", "lonely.txt": "x", "z/bad.txt": "fine"},
                          {"bad.txt": "r", "z/bad.txt": b"\xc3("},
                          [("bad.txt", "not valid UTF-8"), ("lonely.txt", "no reference"),
                           ("z/bad.txt", "reference ")]),
}


@pytest.mark.parametrize("case", list(TEXT_SKIP_CASES))
def test_text_bad_files_are_skipped_and_the_rest_equals_a_clean_run(tmp_path, clean_text, case):
    extra_samples, extra_refs, expected = TEXT_SKIP_CASES[case]
    samples, refs = text_folders(tmp_path, extra_samples, extra_refs)
    card = check_skipped(lambda **kw: score(samples, refs, metrics=TEXT_METRICS, **kw),
                         clean_text, expected)
    if case == "reference missing":  # names the reference it looked for
        assert card.skipped[0]["reason"] == f"no reference: {refs / 'lonely.txt'} does not exist"


def test_text_broken_link_and_unreadable_file_are_skipped(tmp_path, clean_text, monkeypatch):
    samples, refs = text_folders(tmp_path, {"locked.txt": "secret"}, {"locked.txt": "s",
                                                                       "link.txt": "r"})
    _broken_link(samples, "link.txt")
    mock_unreadable(monkeypatch, samples / "locked.txt")
    check_skipped(lambda **kw: score(samples, refs, metrics=TEXT_METRICS, **kw), clean_text,
                  [("link.txt", "broken symbolic link"),
                   ("locked.txt", "cannot read: permission denied")])


def test_text_reference_sets_skip_only_samples_missing_from_every_set(tmp_path):
    """Several reference sets (sub-folders): a sample needs a reference in one of them."""
    samples = write_files(tmp_path / "s", {"1.txt": "the cat", "2.txt": "a dog", "3.txt": "x"})
    refs = write_files(tmp_path / "r", {"a/1.txt": "the cat", "a/2.txt": "the dog",
                                        "b/1.txt": "a cat", "notes.txt": "stray"})
    clean_s = write_files(tmp_path / "cs", {"1.txt": "the cat", "2.txt": "a dog"})
    clean_r = write_files(tmp_path / "cr", {"a/1.txt": "the cat", "a/2.txt": "the dog",
                                            "b/1.txt": "a cat"})
    clean = score(clean_s, clean_r, metrics=TEXT_METRICS)
    card = check_skipped(lambda **kw: score(samples, refs, metrics=TEXT_METRICS, **kw), clean,
                         [("3.txt", f"no reference: {refs / 'a' / '3.txt'} or "
                                    f"{refs / 'b' / '3.txt'} does not exist")])
    # a .txt file outside the reference sets is named, not silently ignored
    assert any("notes.txt" in w["message"] and "no reference set" in w["message"]
               for w in card.warnings)


def _jsonl(rows: list[Any]) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n"
                    for r in rows)


GOOD_ROWS = [{"text": h, "reference": r} for h, r in GOOD_TEXT.values()]


def test_jsonl_bad_lines_are_skipped_and_the_rest_equals_a_clean_run(tmp_path):
    bad = [b"{not json", {"reference": "no text here"}, b'{"text": "caf\xe9"}', b"[1, 2]",
           {"text": 5, "reference": "r"}]
    rows = [GOOD_ROWS[0], bad[0], GOOD_ROWS[1], bad[1], bad[2], GOOD_ROWS[2], bad[3],
            GOOD_ROWS[3], bad[4]]
    write_files(tmp_path, {"s.jsonl": _jsonl(rows), "clean.jsonl": _jsonl(GOOD_ROWS)})
    clean = score(tmp_path / "clean.jsonl", metrics=TEXT_METRICS)
    check_skipped(lambda **kw: score(tmp_path / "s.jsonl", metrics=TEXT_METRICS, **kw), clean,
                  [("s.jsonl:2", "not valid JSON"), ("s.jsonl:4", 'no "text" field'),
                   ("s.jsonl:5", "not valid UTF-8"), ("s.jsonl:7", "a JSON object is expected"),
                   ("s.jsonl:9", '"text" must be a string')])


def test_jsonl_id_missing_from_the_reference_file_is_skipped(tmp_path):
    ids = [{"id": f"x{i}", "text": h} for i, (h, _) in enumerate(GOOD_TEXT.values())]
    refs = [{"id": f"x{i}", "text": r} for i, (_, r) in enumerate(GOOD_TEXT.values())]
    write_files(tmp_path, {"s.jsonl": _jsonl([*ids, {"id": "extra", "text": "alone"}]),
                           "clean.jsonl": _jsonl(ids), "r.jsonl": _jsonl(refs[::-1])})
    clean = score(tmp_path / "clean.jsonl", tmp_path / "r.jsonl", metrics=TEXT_METRICS)
    check_skipped(lambda **kw: score(tmp_path / "s.jsonl", tmp_path / "r.jsonl",
                                     metrics=TEXT_METRICS, **kw), clean,
                  [("s.jsonl:5 (id extra)", f"no reference: id extra is not in "
                                            f"{tmp_path / 'r.jsonl'}")])


def test_jsonl_with_a_byte_order_mark_reads_its_first_line(tmp_path):
    write_files(tmp_path, {"s.jsonl": b"\xef\xbb\xbf" + _jsonl(GOOD_ROWS),
                           "clean.jsonl": _jsonl(GOOD_ROWS)})
    card = score(tmp_path / "s.jsonl", metrics=TEXT_METRICS)
    assert card.skipped == []
    assert_same_values(card, score(tmp_path / "clean.jsonl", metrics=TEXT_METRICS))


def test_jsonl_row_with_an_empty_reference_list_is_skipped_by_name(tmp_path):
    """Issue 20: one ``"references": []`` row made BLEU and chrF fail for the whole file
    without naming it. It is skipped, named, and the rest is scored."""
    rows = [{"id": f"r{i}", **row} for i, row in enumerate(GOOD_ROWS)]
    empty = {"id": "nothing", "text": "a sample with no reference", "references": []}
    write_files(tmp_path, {"s.jsonl": _jsonl([*rows[:2], empty, *rows[2:]]),
                           "clean.jsonl": _jsonl(rows)})
    clean = score(tmp_path / "clean.jsonl", metrics=TEXT_METRICS)
    check_skipped(lambda **kw: score(tmp_path / "s.jsonl", metrics=TEXT_METRICS, **kw), clean,
                  [("s.jsonl:3 (id nothing)", 'no reference: "references" is an empty list')])


# -- scored as they are: empty texts, parity with sacrebleu and rouge-score ----------------
def reference_values(hyps: list[str], refs: list[str]) -> dict[str, float]:
    """BLEU, chrF (sacrebleu) and the mean ROUGE F-measures (rouge-score) of the pairs."""
    import sacrebleu
    from rouge_score import rouge_scorer

    types = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    scorer = rouge_scorer.RougeScorer(types)
    scores = [scorer.score(r, h) for h, r in zip(hyps, refs, strict=True)]
    return {"bleu": sacrebleu.corpus_bleu(hyps, [refs]).score,
            "chrf": sacrebleu.corpus_chrf(hyps, [refs]).score,
            **{t: math.fsum(s[t].fmeasure for s in scores) / len(scores) for t in types}}


def assert_matches_references(card, hyps: list[str], refs: list[str]) -> None:
    expected = reference_values(hyps, refs)
    assert card.errors == {}
    assert values(card).keys() == expected.keys()
    for name, value in values(card).items():
        assert value == pytest.approx(expected[name], abs=1e-9), name


@pytest.mark.parametrize("side", ["sample", "reference"])
def test_empty_text_file_is_scored_as_empty_text(tmp_path, side):
    """A 0-byte file is an empty sample (or reference), not skipped: leaving an empty
    output out would raise the score. A warning names it; "fail" changes nothing."""
    extra = {"empty.txt": ("", "the reference")} if side == "sample" else {
        "empty.txt": ("a sample", "")}
    good = {**GOOD_TEXT, **extra}
    samples, refs = text_folders(tmp_path, good=good)
    for on_error in ("skip", "fail"):
        card = score(samples, refs, metrics=TEXT_METRICS, on_error=on_error)
        assert card.skipped == []
        names = sorted(good)
        assert_matches_references(card, [good[n][0] for n in names], [good[n][1] for n in names])
        (warning,) = card.warnings
        assert warning["path"] == "empty.txt" and "empty file" in warning["message"]


def test_all_empty_hypotheses_give_bleu_and_rouge_zero_as_the_references_do(tmp_path):
    good = {name: ("", ref) for name, (_, ref) in GOOD_TEXT.items()}
    samples, refs = text_folders(tmp_path, good=good)
    card = score(samples, refs, metrics=TEXT_METRICS)
    names = sorted(good)
    assert_matches_references(card, [""] * len(names), [good[n][1] for n in names])
    assert set(values(card).values()) == {0.0}  # the documented value


# -- names, layouts, folders ---------------------------------------------------------------
def test_names_with_spaces_and_unicode_keep_their_ids(tmp_path, clean_text):
    names = ["a b.txt", "ünï cødé ✓.txt", "日本語.txt", "sub dir/x  y.txt"]
    good = dict(zip(names, GOOD_TEXT.values(), strict=True))
    samples, refs = text_folders(tmp_path, good=good)
    card = score(samples, refs, metrics=TEXT_METRICS, per_sample=True)
    assert card.per_sample["ids"] == sorted(names)
    assert card.skipped == [] and card.warnings == []
    assert_same_values(card, clean_text)
    assert json.loads(card.to_json())["per_sample"]["ids"] == sorted(names)


def test_a_file_name_that_is_not_utf8_is_scored_under_an_escaped_id(tmp_path, clean_text):
    good = dict(GOOD_TEXT)
    bad_name = os.fsdecode(b"caf\xe9.txt")
    good[bad_name] = good.pop("a.txt")
    samples, refs = text_folders(tmp_path, good=good)
    (samples / os.fsdecode(b"notes\xfe.md")).write_text("not a sample")
    card = score(samples, refs, metrics=TEXT_METRICS, per_sample=True)
    assert "caf\\xe9.txt" in card.per_sample["ids"]
    assert "notes\\xfe.md" in card.warnings[0]["message"]
    assert_same_values(card, clean_text)
    card.save(tmp_path / "card.json")  # writable as UTF-8 JSON
    assert "caf\\xe9.txt" in json.loads((tmp_path / "card.json").read_text())["per_sample"]["ids"]


def test_same_stem_other_extension_is_named_in_a_warning(tmp_path, clean_text):
    """Folders hold .txt samples only: a.jsonl next to a.txt is not read, and said so."""
    samples, refs = text_folders(tmp_path, {"a.jsonl": '{"text": "x"}\n', "notes.md": "n"},
                                 {"README": "about"})
    for on_error in ("skip", "fail"):
        card = score(samples, refs, metrics=TEXT_METRICS, on_error=on_error)
        assert card.skipped == []
        assert_same_values(card, clean_text)
        messages = {w["path"]: w["message"] for w in card.warnings}
        assert "2 file(s)" in messages[str(samples)] and "a.jsonl, notes.md" in messages[
            str(samples)]
        assert "README" in messages[str(refs)]


def test_names_that_differ_only_in_case_are_two_samples(tmp_path):
    good = {"a.txt": ("the cat sat", "the cat sat down"), "a.TXT": ("a dog", "the dog")}
    samples, refs = text_folders(tmp_path, good=good)
    card = score(samples, refs, metrics=TEXT_METRICS, per_sample=True)
    assert card.per_sample["ids"] == ["a.TXT", "a.txt"] and card.skipped == []
    assert_matches_references(card, ["a dog", "the cat sat"], ["the dog", "the cat sat down"])


@pytest.mark.parametrize("modality, error, message", [
    ("text", InputError, "no .txt files found in"),
    (None, UsageError, "cannot tell the modality"),
])
def test_empty_text_folder_is_fatal(tmp_path, modality, error, message):
    (tmp_path / "s").mkdir()
    for on_error in ("skip", "fail"):
        with pytest.raises(error, match=message):
            score(tmp_path / "s", modality=modality, metrics=["bleu"], on_error=on_error)


def test_folder_of_other_files_is_fatal_and_says_what_it_holds(tmp_path):
    write_files(tmp_path / "s", {"notes.md": "x", "data.csv": "a,b"})
    with pytest.raises(InputError, match=r"no .txt files found in .*s \(it holds 2 other "
                                         r"file\(s\): data.csv, notes.md\)"):
        score(tmp_path / "s", modality="text", metrics=["bleu"])


def test_reference_without_a_sample_is_fatal(tmp_path):
    samples, refs = text_folders(tmp_path, {}, {"orphan.txt": "nobody"})
    for on_error in ("skip", "fail"):
        with pytest.raises(InputError, match=r"1 reference\(s\) have no sample .*orphan.txt"):
            score(samples, refs, metrics=TEXT_METRICS, on_error=on_error)


def test_no_reference_name_matching_at_all_is_fatal(tmp_path):
    samples, _ = text_folders(tmp_path)
    other = write_files(tmp_path / "other", {"zzz.txt": "r"})
    with pytest.raises(InputError, match="no reference in .*other matches a sample name"):
        score(samples, other, metrics=TEXT_METRICS)


def test_every_sample_skipped_is_an_input_error_naming_them(tmp_path):
    """Nothing left to score: an input error (the CLI exits 2) naming the files."""
    samples = write_files(tmp_path / "s", {"a.txt": b"\xff", "b.txt": b"\xfe"})
    refs = write_files(tmp_path / "r", {"a.txt": "x", "b.txt": "y"})
    with pytest.raises(InputError, match=r"every input was skipped \(2 unreadable\): a.txt: "
                       r".*; b.txt: "):
        score(samples, refs, metrics=["bleu", "rouge"])


@settings(max_examples=30, deadline=None, suppress_health_check=FIXTURE_OK)
@given(st.lists(st.binary(max_size=24), min_size=1, max_size=5))
def test_fuzzed_text_files_are_skipped_or_scored_like_a_clean_run(tmp_path_factory, contents):
    """Any bytes as .txt samples: the undecodable ones are skipped (named), and the values
    equal a run on the decodable ones alone."""
    root = tmp_path_factory.mktemp("fuzz")
    names = [f"{i}.txt" for i in range(len(contents))]
    write_files(root / "s", dict(zip(names, contents, strict=True)))
    write_files(root / "r", {n: "the reference text" for n in names})
    ok = []
    for name, raw in zip(names, contents, strict=True):
        try:
            raw.decode("utf-8")
            ok.append(name)
        except UnicodeDecodeError:
            pass
    if not ok:  # every file unreadable: an input error naming them
        with pytest.raises(InputError, match="every input was skipped"):
            score(root / "s", root / "r", metrics=["bleu", "chrf"])
        return
    card = score(root / "s", root / "r", metrics=["bleu", "chrf"])
    assert [s["path"] for s in card.skipped] == [n for n in names if n not in ok]
    write_files(root / "cs", {n: contents[names.index(n)] for n in ok})
    write_files(root / "cr", {n: "the reference text" for n in ok})
    assert_same_values(card, score(root / "cs", root / "cr", metrics=["bleu", "chrf"]))


# == audio ================================================================================
def tone(n: int, freq: float, amp: float = 0.5, rate: int = RATE) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(n) / rate)


def noisy(clean: np.ndarray, seed: int, level: float = 0.05) -> np.ndarray:
    return clean + level * np.random.default_rng(seed).standard_normal(len(clean))


def write_wav(path: Path, data: np.ndarray, rate: int = RATE, subtype: str = "FLOAT") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, rate, subtype=subtype)
    return path


GOOD_AUDIO = {f"{i}": (noisy(tone(4000, f), i), tone(4000, f))
              for i, f in enumerate((220.0, 330.0, 440.0))}


def audio_folders(root: Path, good=GOOD_AUDIO) -> tuple[Path, Path]:
    for key, (sample, ref) in good.items():
        write_wav(root / "s" / f"{key}.wav", sample)
        write_wav(root / "r" / f"{key}.wav", ref)
    return root / "s", root / "r"


def score_audio(samples: Path, refs: Path | None, **kw):
    return score(samples, refs, modality="audio", metrics=AUDIO_METRICS, device="cpu", **kw)


@pytest.fixture(scope="module")
def clean_audio(tmp_path_factory):
    return score_audio(*audio_folders(tmp_path_factory.mktemp("clean")))


def tm_values(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """torchmetrics' SNR and SI-SNR, pair by pair on float64 tensors, and their means."""
    import torch
    from torchmetrics.functional.audio import (
        scale_invariant_signal_noise_ratio,
        signal_noise_ratio,
    )

    snr, si = [], []
    for p, t in pairs:
        n = min(len(p), len(t))
        pt, tt = torch.from_numpy(p[:n]), torch.from_numpy(t[:n])
        snr.append(float(signal_noise_ratio(pt, tt)))
        si.append(float(scale_invariant_signal_noise_ratio(pt, tt)))
    return {"snr": math.fsum(snr) / len(snr), "si_snr": math.fsum(si) / len(si)}


def read(path: Path) -> np.ndarray:
    return sf.read(str(path), dtype="float64")[0]


def wav_bytes(data: np.ndarray, subtype: str = "PCM_16", rate: int = RATE) -> bytearray:
    import io

    buf = io.BytesIO()
    sf.write(buf, data, rate, subtype=subtype, format="WAV")
    return bytearray(buf.getvalue())


def _patched(field: str, value: int, fmt: str = "<H") -> bytes:
    """A valid 16-bit WAV with one field of its 'fmt ' chunk changed."""
    data = wav_bytes(tone(2000, 500.0))
    at = data.find(b"fmt ") + {"format": 8, "channels": 10, "rate": 12}[field]
    data[at:at + struct.calcsize(fmt)] = struct.pack(fmt, value)
    return bytes(data)


def _float_wav_with(*bad: float) -> bytes:
    wave = tone(2000, 500.0)
    wave[[10 * (i + 1) for i in range(len(bad))]] = bad
    return bytes(wav_bytes(wave, "FLOAT"))


AUDIO_SKIP_CASES = {
    # case: (sample files {name: bytes}, reference files, [(skipped path, reason)])
    "zero-byte WAV": ({"bad.wav": b""}, {"bad.wav": bytes(wav_bytes(tone(2000, 500.0)))},
                      [("bad.wav", "empty file (0 bytes)")]),
    "bogus format in the RIFF header": (
        {"bad.wav": _patched("format", 0x1234)}, {"bad.wav": bytes(wav_bytes(tone(9, 1.0)))},
        [("bad.wav", "cannot decode audio: Error in WAV/W64/RF64 file. Malformed 'fmt ' chunk")]),
    "not a WAVE file": ({"bad.wav": b"RIFF\x24\x00\x00\x00XXXXfmt " + bytes(40)},
                        {"bad.wav": bytes(wav_bytes(tone(9, 1.0)))},
                        [("bad.wav", "cannot decode audio: ")]),
    "no audio frames": ({"bad.wav": bytes(wav_bytes(np.zeros(0)))},
                        {"bad.wav": bytes(wav_bytes(tone(9, 1.0)))},
                        [("bad.wav", "no audio frames")]),
    "NaN samples": ({"bad.wav": _float_wav_with(np.nan)}, {"bad.wav": _float_wav_with()},
                    [("bad.wav", "1 sample(s) are NaN or Inf")]),
    "Inf samples": ({"bad.wav": _float_wav_with(np.inf, -np.inf)},
                    {"bad.wav": _float_wav_with()}, [("bad.wav", "2 sample(s) are NaN or Inf")]),
    "implausible sample rate": ({"bad.wav": _patched("rate", 1, "<I")},
                                {"bad.wav": _float_wav_with()},
                                [("bad.wav", "sample rate 1 Hz is outside 1000-768000 Hz")]),
    "NaN reference": ({"bad.wav": _float_wav_with()}, {"bad.wav": _float_wav_with(np.nan)},
                      [("bad.wav", "reference bad.wav: 1 sample(s) are NaN or Inf")]),
    "reference missing": ({"lonely.wav": _float_wav_with()}, {},
                          [("lonely.wav", "no reference: no file named lonely (any of .wav")]),
    "two files of one name": ({"dup.wav": _float_wav_with(), "dup.flac": b"fLaC"},
                              {"dup.wav": _float_wav_with()},
                              [("dup.flac", "two files named dup (dup.flac, dup.wav): keep one"),
                               ("dup.wav", "two files named dup")]),
}


@pytest.mark.parametrize("case", list(AUDIO_SKIP_CASES))
def test_audio_bad_files_are_skipped_and_the_rest_equals_a_clean_run(tmp_path, clean_audio,
                                                                      case):
    extra_samples, extra_refs, expected = AUDIO_SKIP_CASES[case]
    samples, refs = audio_folders(tmp_path)
    write_files(samples, extra_samples)
    write_files(refs, extra_refs)
    check_skipped(lambda **kw: score_audio(samples, refs, **kw), clean_audio, expected)


def test_audio_unreadable_file_is_skipped(tmp_path, clean_audio, monkeypatch):
    samples, refs = audio_folders(tmp_path)
    write_files(samples, {"locked.wav": _float_wav_with()})
    write_files(refs, {"locked.wav": _float_wav_with()})
    mock_unreadable(monkeypatch, samples / "locked.wav")
    check_skipped(lambda **kw: score_audio(samples, refs, **kw), clean_audio,
                  [("locked.wav", "cannot read: permission denied")])


def test_audio_file_name_that_is_not_utf8_is_scored_under_an_escaped_id(tmp_path,
                                                                        clean_audio):
    samples, refs = audio_folders(tmp_path)
    for folder in (samples, refs):
        (folder / "1.wav").rename(folder / os.fsdecode(b"\xff1.wav"))
    card = score_audio(samples, refs, per_sample=True)
    assert card.per_sample["ids"] == ["0", "2", "\\xff1"]
    assert_same_values(card, clean_audio)
    assert json.loads(card.to_json())["per_sample"]["ids"][2] == "\\xff1"


def test_audio_other_files_are_named_in_a_warning(tmp_path, clean_audio):
    samples, refs = audio_folders(tmp_path)
    write_files(samples, {"transcript.txt": "hello", "sub/cover.png": b"\x89PNG"})
    for on_error in ("skip", "fail"):
        card = score_audio(samples, refs, on_error=on_error)
        assert card.skipped == []
        assert_same_values(card, clean_audio)
        (warning,) = card.warnings
        assert warning["path"] == str(samples)
        assert "2 file(s)" in warning["message"]
        assert "sub/cover.png, transcript.txt" in warning["message"]


@pytest.mark.parametrize("factor", [4, 0.25])
def test_a_wav_header_that_lies_about_its_size_is_scored_with_a_warning(tmp_path, factor):
    """libsndfile reads the frames present (header claims more) or the frames the header
    declares (claims fewer); the pair is scored on those, with a warning."""
    samples, refs = audio_folders(tmp_path)
    path = samples / "0.wav"
    data = bytearray(path.read_bytes())
    at = data.find(b"data") + 4
    size = struct.unpack("<I", data[at:at + 4])[0]
    data[at:at + 4] = struct.pack("<I", int(size * factor))
    path.write_bytes(bytes(data))
    frames = min(4000, int(4000 * factor))
    for on_error in ("skip", "fail"):
        card = score_audio(samples, refs, on_error=on_error)
        assert card.skipped == []
        assert "sample: the header disagrees with the file size" in card.warnings[0]["message"]
        pairs = [(read(samples / f"{k}.wav")[:frames] if k == "0" else read(samples / f"{k}.wav"),
                  read(refs / f"{k}.wav")) for k in GOOD_AUDIO]
        for name, value in tm_values(pairs).items():
            assert values(card)[name] == pytest.approx(value, abs=1e-6)


def test_a_reference_at_another_rate_is_compared_at_the_higher_rate_with_a_warning(tmp_path):
    """The 16 kHz sample is brought up to the 22.05 kHz reference's rate (resampling never
    removes a band the metric judges), not the reference down."""
    import soxr

    samples, refs = audio_folders(tmp_path)
    ref_22k = tone(5513, 330.0, rate=22050)
    write_wav(refs / "1.wav", ref_22k, rate=22050)
    card = score_audio(samples, refs)
    assert card.skipped == []
    (warning,) = card.warnings
    assert warning["path"] == "1"
    assert warning["message"].startswith("sample at 16000 Hz, reference at 22050 Hz")
    upsampled = soxr.resample(read(samples / "1.wav"), RATE, 22050, quality="VHQ")
    pairs = [(upsampled if k == "1" else read(samples / f"{k}.wav"), read(refs / f"{k}.wav"))
             for k in GOOD_AUDIO]
    assert card.metrics["snr"].components["rates"] == {"16000": 2, "22050": 1}
    for name, value in tm_values(pairs).items():
        assert values(card)[name] == pytest.approx(value, abs=1e-6)


def test_mismatched_lengths_use_the_shorter_with_a_warning(tmp_path):
    samples, refs = audio_folders(tmp_path)
    write_wav(refs / "2.wav", tone(6000, 440.0))
    write_wav(samples / "0.wav", read(samples / "0.wav")[:2500])
    card = score_audio(samples, refs)
    assert card.skipped == []
    assert {w["path"] for w in card.warnings} == {"0", "2"}
    assert all("lengths differ" in w["message"] for w in card.warnings)
    pairs = [(read(samples / f"{k}.wav"), read(refs / f"{k}.wav")) for k in GOOD_AUDIO]
    for name, value in tm_values(pairs).items():  # tm_values cuts to the shorter
        assert values(card)[name] == pytest.approx(value, abs=1e-6)


def test_silent_sample_scores_like_torchmetrics(tmp_path):
    samples, refs = audio_folders(tmp_path)
    write_wav(samples / "1.wav", np.zeros(4000))
    card = score_audio(samples, refs, per_sample=True)
    assert card.skipped == [] and card.errors == {}
    pairs = [(read(samples / f"{k}.wav"), read(refs / f"{k}.wav")) for k in GOOD_AUDIO]
    for name, value in tm_values(pairs).items():
        assert values(card)[name] == pytest.approx(value, abs=1e-6)
    assert card.metrics["snr"].per_sample[1] == pytest.approx(0.0, abs=1e-9)


def test_silent_reference_fails_its_pair_and_the_rest_equals_a_clean_run(tmp_path, clean_audio):
    """SNR is undefined against a silent reference: the pair fails with the reason (not a
    -180 dB number from eps); the value is the mean of the other pairs."""
    samples, refs = audio_folders(tmp_path)
    write_files(samples, {"quiet.wav": _float_wav_with()})
    write_wav(refs / "quiet.wav", np.zeros(2000))
    for on_error in ("skip", "fail"):
        card = score_audio(samples, refs, on_error=on_error)
        assert_same_values(card, clean_audio)
        assert card.metrics["snr"].components["failed"] == [
            {"index": 3, "id": "quiet", "reason": "silent reference: SNR undefined"}]
        assert card.metrics["si_snr"].components["failed"][0]["index"] == 3


def test_only_silent_references_put_the_metric_under_errors(tmp_path):
    good = {k: (s, np.zeros(len(r))) for k, (s, r) in GOOD_AUDIO.items()}
    card = score_audio(*audio_folders(tmp_path, good))
    assert card.metrics == {} and card.skipped == []
    assert card.errors["snr"] == ("snr: none of the 3 pairs could be scored (first reason: "
                                  "silent reference: SNR undefined)")
    assert "si_snr: none of the 3 pairs could be scored" in card.errors["si_snr"]


def test_audio_reference_problems_that_are_fatal(tmp_path):
    samples, refs = audio_folders(tmp_path)
    write_wav(refs / "orphan.wav", tone(100, 300.0))
    for on_error in ("skip", "fail"):
        with pytest.raises(InputError, match=r"1 reference\(s\) have no sample .*orphan"):
            score_audio(samples, refs, on_error=on_error)
    other = tmp_path / "other"
    write_wav(other / "zzz.wav", tone(100, 300.0))
    with pytest.raises(InputError, match="no file in .*other has the name of a sample"):
        score_audio(samples, other)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no audio files .* found in"):
        score(tmp_path / "empty", modality="audio", metrics=AUDIO_METRICS)


@st.composite
def wav_files(draw) -> bytes:
    """RIFF/WAVE files whose header fields are plausible or wild, and whose data size
    matches the payload, or not."""
    def field(plausible: list[int], wild: st.SearchStrategy[int]) -> int:
        """Mostly a plausible value, one time in four anything."""
        return draw(st.sampled_from(plausible) if draw(st.integers(0, 3)) else wild)

    fmt, bits = draw(st.sampled_from([(1, 16), (1, 8), (1, 24), (3, 32), (3, 64), (6, 8)]))
    fmt = field([fmt], st.integers(0, 0xFFFF))
    bits = field([bits], st.sampled_from([0, 7, 12, 128]))
    channels = field([1, 2], st.integers(0, 0xFFFF))
    rate = field([16000, 8000, 48000], st.sampled_from([0, 1, 999, 768001, 10**6])
                 | st.integers(0, 2**32 - 1))
    payload = draw(st.binary(max_size=64))
    size = field([len(payload)], st.sampled_from([len(payload) // 2, 4 * len(payload)])
                 | st.integers(0, 2**32 - 1))
    block = max(1, channels * bits // 8) % 2**16
    fmt_chunk = struct.pack("<HHIIHH", fmt, channels, rate, (rate * block) % 2**32, block, bits)
    body = (b"WAVEfmt " + struct.pack("<I", 16) + fmt_chunk + b"data" + struct.pack("<I", size)
            + payload)
    return b"RIFF" + struct.pack("<I", len(body)) + body


@settings(max_examples=50, deadline=None, suppress_health_check=FIXTURE_OK)
@given(wav_files())
def test_fuzzed_wav_headers_are_skipped_or_scored(tmp_path_factory, data):
    """A RIFF/WAVE file with arbitrary header fields never raises: it is skipped with a
    reason, or read into finite samples at a plausible rate."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "a.wav").write_bytes(data)
    (got,) = list(open_audio(root))
    assert isinstance(got, (Skipped, AudioPair))
    if isinstance(got, Skipped):
        assert got.path == "a.wav" and got.reason
    else:
        assert len(got.sample.waveform) > 0 and np.isfinite(got.sample.waveform).all()
        assert RATE_RANGE[0] <= got.sample.sample_rate <= RATE_RANGE[1]


# == through the command line: one line, exit codes ========================================
def test_cli_text_skip_writes_skipped_and_fail_is_one_line(run_cli, tmp_path):
    samples, refs = text_folders(tmp_path, {"bad.txt": b"caf\xe9"}, {"bad.txt": "cafe"})
    out = tmp_path / "card.json"
    done = run_cli("score", samples, "-r", refs, "--metrics", "bleu", "--out", out, "--quiet")
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["skipped"] == [
        {"path": "bad.txt", "reason": "not valid UTF-8 (byte 0xe9 at offset 3)"}]
    done = run_cli("score", samples, "-r", refs, "--metrics", "bleu", "--on-error", "fail",
                   "--out", tmp_path / "never.json")
    assert_one_line_error(done, "error: bad.txt: not valid UTF-8", "--on-error fail")
    assert not (tmp_path / "never.json").exists()


def test_cli_empty_text_folder_is_one_line(run_cli, tmp_path):
    (tmp_path / "s").mkdir()
    done = run_cli("score", tmp_path / "s", "--modality", "text", "--metrics", "bleu")
    assert_one_line_error(done, "no .txt files found in")


def test_cli_audio_missing_reference_and_silent_references(run_cli, tmp_path):
    samples, refs = audio_folders(tmp_path / "a")
    (refs / "2.wav").unlink()
    done = run_cli("score", samples, "-r", refs, "--metrics", "snr", "--on-error", "fail",
                   "--device", "cpu")
    assert_one_line_error(done, "error: 2.wav: no reference: no file named 2")
    good = {k: (s, np.zeros(len(r))) for k, (s, r) in GOOD_AUDIO.items()}
    samples, refs = audio_folders(tmp_path / "b", good)
    out = tmp_path / "card.json"
    done = run_cli("score", samples, "-r", refs, "--metrics", "snr", "--device", "cpu",
                   "--out", out, "--quiet")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "silent reference" in json.loads(out.read_text())["errors"]["snr"]
