"""The runner: metric choice, invariance to batching, skipped inputs, failures."""

from __future__ import annotations

import json

import pytest

from genmetrics.errors import InputError, UsageError
from genmetrics.runner import default_metrics, score
from tests.conftest import write_files


def values(card):
    return {name: r.value for name, r in card.metrics.items()}


def test_default_metrics_need_references_for_paired_metrics():
    assert {"bleu", "chrf", "rouge", "meteor", "perplexity"} <= set(default_metrics("text", True))
    without_refs = set(default_metrics("text", False))
    assert "perplexity" in without_refs and not {"bleu", "chrf", "rouge", "meteor"} & without_refs


def test_results_do_not_depend_on_batch_size(text_pair_dirs, default_lm):
    samples, refs = text_pair_dirs
    cards = [score(samples, refs, batch_size=b, per_sample=True) for b in (1, 2, 1000)]
    exact = [{k: v for k, v in values(c).items() if k != "perplexity"} for c in cards]
    assert exact[0] == exact[1] == exact[2]  # reference-parity metrics: bit for bit
    # perplexity runs the LM in float32 on batches of different shapes: 1e-5 relative
    ppl = [c.metrics["perplexity"].value for c in cards]
    assert ppl[1] == pytest.approx(ppl[0], rel=1e-5) and ppl[2] == pytest.approx(ppl[0], rel=1e-5)
    assert cards[0].per_sample["ids"] == cards[2].per_sample["ids"]
    assert cards[0].per_sample["values"]["bleu"] == cards[2].per_sample["values"]["bleu"]
    assert cards[0].inputs == cards[2].inputs


def test_options_reach_the_metric_and_its_signature(text_pair_dirs):
    samples, refs = text_pair_dirs
    card = score(samples, refs, metrics=["bleu", "rouge"],
                 options={"bleu": {"tokenize": "char"}, "rouge": {"rouge_types": "rouge1"}})
    assert card.metrics["bleu"].signature["tokenize"] == "char"
    assert set(card.metrics) == {"bleu", "rouge1"}


@pytest.mark.parametrize("kwargs, message", [
    ({"metrics": ["nope"]}, "unknown metric 'nope'"),
    ({"metrics": ["bleu"], "options": {"rouge": {"use_stemmer": "1"}}}, "not being run: rouge"),
    ({"metrics": ["bleu"], "options": {"bleu": {"tokenize": "moses"}}}, "must be one of"),
    ({"modality": "video"}, "unknown modality"),
    ({"batch_size": 0}, "at least 1"),
])
def test_usage_errors(text_pair_dirs, kwargs, message):
    samples, refs = text_pair_dirs
    with pytest.raises(UsageError, match=message):
        score(samples, refs, **kwargs)


def test_text_folder_read_as_images_names_the_problem(text_pair_dirs):
    from genmetrics.errors import InputError

    samples, refs = text_pair_dirs
    with pytest.raises(InputError, match="no images"):
        score(samples, refs, modality="image")


def test_paired_metric_without_references_is_refused(text_pair_dirs):
    samples, _ = text_pair_dirs
    with pytest.raises(UsageError, match="bleu compares each sample with its references"):
        score(samples, metrics=["bleu"])


def test_skipped_samples_are_listed_and_the_rest_scored(tmp_path, text_pair_dirs):
    samples, refs = text_pair_dirs
    clean = score(samples, refs)
    write_files(samples, {"zz.txt": b"\xc3\x28 bad"})
    write_files(refs, {"zz.txt": "fine"})
    card = score(samples, refs)
    assert card.skipped == [{"path": "zz.txt", "reason": "not valid UTF-8 (byte 0xc3 at offset 0)"}]
    assert values(card) == values(clean)
    assert card.inputs["samples"]["count"] == 3


def test_all_samples_unreadable_is_an_input_error_naming_them(tmp_path):
    samples = write_files(tmp_path / "s", {"a.txt": b"\xff"})
    refs = write_files(tmp_path / "r", {"a.txt": "x"})
    with pytest.raises(InputError, match=r"every input was skipped \(1 unreadable\): a.txt: "
                       "not valid UTF-8"):
        score(samples, refs, metrics=["bleu"])


def test_input_digests_identify_content(text_pair_dirs):
    samples, refs = text_pair_dirs
    first = score(samples, refs, metrics=["bleu"])
    (refs / "a.txt").write_text("A different reference.")
    second = score(samples, refs, metrics=["bleu"])
    assert first.inputs["samples"]["digest"] == second.inputs["samples"]["digest"]
    assert first.inputs["reference"]["digest"] != second.inputs["reference"]["digest"]
    assert first.metrics["bleu"].signature["refs"] != second.metrics["bleu"].signature["refs"]


def test_inline_jsonl_references_are_used(tmp_path):
    text = "the cat sat on the mat today"
    write_files(tmp_path, {"s.jsonl": json.dumps({"text": text, "references": [text]}) + "\n"})
    card = score(tmp_path / "s.jsonl", metrics=["bleu"])
    assert card.metrics["bleu"].value == pytest.approx(100.0)
    assert card.inputs["reference"]["path"].endswith("(inline)")
    assert card.metrics["bleu"].signature["refs"].startswith("sha256:")


def test_an_unexpected_exception_in_one_metric_keeps_the_others(text_pair_dirs, monkeypatch):
    from genmetrics.metrics.text.rouge import ROUGE

    def broken(self, samples, references=None):
        raise IndexError("boom")

    monkeypatch.setattr(ROUGE, "update", broken)
    samples, refs = text_pair_dirs
    card = score(samples, refs, metrics=["bleu", "rouge"])
    assert "bleu" in card.metrics and card.errors == {"rouge": "IndexError: boom"}


def test_bad_seed_and_bad_orders_are_usage_errors(text_pair_dirs):
    samples, refs = text_pair_dirs
    with pytest.raises(UsageError, match="--seed"):
        score(samples, refs, metrics=["bleu"], bootstrap=10, seed=-1)
    with pytest.raises(UsageError, match="max_ngram_order must be at least 1"):
        score(samples, refs, metrics=["bleu"], options={"bleu": {"max_ngram_order": "0"}})


def test_a_missing_lm_folder_stops_before_reading(text_pair_dirs, tmp_path):
    samples, _ = text_pair_dirs
    with pytest.raises(UsageError, match="does not exist"):
        score(samples, metrics=["perplexity"],
              options={"perplexity": {"lm": str(tmp_path / "nope")}})


def test_audio_default_sets_follow_the_inputs():
    """Paired runs (enhancement, conversion) keep the reference metrics only; DNSMOS joins
    runs without references or with TTS inputs; F0 error is opt-in."""
    assert set(default_metrics("audio", True)) == {"snr", "si_snr", "pesq", "mcd", "stoi"}
    assert default_metrics("audio", False) == ["dnsmos"]
    tts = frozenset({"transcript", "speaker_reference"})
    assert set(default_metrics("audio", False, provides=tts)) == {
        "wer", "cer", "speaker_sim", "dnsmos"}
    with_refs = set(default_metrics("audio", True, provides=frozenset({"transcript"})))
    assert {"dnsmos", "wer", "cer", "snr", "pesq"} <= with_refs
    assert "f0_rmse" not in with_refs and "speaker_sim" not in with_refs


@pytest.mark.parametrize("names, modality", [
    (["1.wav", "1.txt", "2.wav", "2.txt"], "audio"),  # transcripts beside the clips
    (["1.wav", "1.txt", "2.wav", "2.txt", "README.txt"], "audio"),
    (["1.wav", "1.txt", "2.wav", "2.txt", "texts.jsonl"], "audio"),
    (["1.png", "1.txt", "2.png", "2.txt"], "image"),  # captions beside the images
    (["1.png", "1.txt", "2.png", "2.txt", "notes.txt"], "image"),
    (["a.txt", "b.txt", "c.txt"], "text"),
    (["a.txt", "b.txt", "1.wav"], "text"),
    (["1.wav", "notes.txt"], "text"),  # a tie between unrelated files: text, as before
])
def test_a_txt_beside_its_clip_or_image_is_not_a_text_sample(tmp_path, names, modality):
    from genmetrics.runner import detect_modality

    for name in names:  # the guess reads names only
        (tmp_path / name).touch()
    assert detect_modality(tmp_path) == modality


def test_modality_is_the_kind_with_the_most_files(tmp_path):
    import numpy as np

    from genmetrics.runner import detect_modality
    from tests.photos import save_png

    for i in range(3):
        save_png(np.zeros((4, 4, 3), np.uint8), tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("how these were made")
    assert detect_modality(tmp_path) == "image"


def test_on_error_fail_stops_at_a_pair_that_cannot_be_compared(tmp_path):
    import numpy as np

    from genmetrics.errors import InputError
    from tests.photos import save_png

    rng = np.random.default_rng(0)
    for side in ("s", "r"):
        (tmp_path / side).mkdir()
    for i in range(3):
        save_png(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), tmp_path / "s" / f"{i}.png")
        size = (8, 8, 3) if i else (6, 8, 3)  # 0.png's reference has another size
        save_png(rng.integers(0, 256, size, dtype=np.uint8), tmp_path / "r" / f"{i}.png")
    lenient = score(tmp_path / "s", tmp_path / "r", modality="image", metrics=["psnr"],
                    workers=0)
    assert lenient.metrics["psnr"].n == 2
    with pytest.raises(InputError, match="0.png"):
        score(tmp_path / "s", tmp_path / "r", modality="image", metrics=["psnr"], workers=0,
              on_error="fail")
