"""Failure-mode diagnostics computed during ``score`` (genmetrics.diagnostics).

Planted failures must be flagged with the right ids and clean samples must not be:
text (a repeated phrase, an empty and a short output, two identical outputs, a
collapsed corpus), images (a blurred photograph among sharp ones, two near-identical
images, a set of variations of one photograph) and audio (a clipped, a silent and a
DC-offset WAV). The measures are checked against independent computations:
``scipy.ndimage.laplace`` for the Laplacian, ``imagehash`` for the perceptual-hash
distances (brute force over all pairs), plain Python sets for distinct-n and the
repetition rate. The scorecard validates against its schema, round-trips, and
``--no-diagnostics`` leaves the section out.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from genmetrics.diagnostics import FLAGGED_LIMIT, SampleCheck, collector, combine, summary
from genmetrics.diagnostics.image import (
    laplacian_variance,
    mean_pairwise_distance,
    nearest_duplicates,
)
from genmetrics.diagnostics.text import repetition_rate, words
from genmetrics.errors import InputError, UsageError
from genmetrics.io.text import TextPair
from genmetrics.runner import score
from genmetrics.scorecard import Scorecard, validate
from tests.conftest import write_files

imagehash = pytest.importorskip("imagehash")


def flagged_ids(card_or_doc, name: str) -> set[str]:
    doc = card_or_doc.diagnostics if isinstance(card_or_doc, Scorecard) else card_or_doc
    return {f["id"] for f in doc[name]["flagged"]}


# -- text -------------------------------------------------------------------------------
CLEAN = {
    "c1": ("The committee approved the budget after a long debate on Tuesday.",
           "After a long debate the committee approved the budget on Tuesday."),
    "c2": ("Heavy rain flooded several streets in the old town overnight.",
           "Several streets in the old town were flooded by heavy rain overnight."),
    "c3": ("She plays the violin in a small orchestra near the harbour.",
           "She is a violinist in a small orchestra close to the harbour."),
    "c4": ("Thanks.", "Thank you."),  # short, but so is its reference
    "c5": ("Prices of fresh vegetables rose sharply during the dry summer months.",
           "During the dry summer, vegetable prices rose sharply."),
}
PLANTED = {
    "loop": ("I am not sure about that. " * 8, "I do not know the answer to that question."),
    "empty": ("", "The meeting was moved to next Monday morning."),
    "short": ("Yes", "Yes, the train leaves from platform four at noon."),
    "dup_a": ("The results will be published next week.", "The report comes out soon."),
    "dup_b": ("The results will be published next week.", "Results are due next week."),
}


@pytest.fixture(scope="module")
def text_card(tmp_path_factory) -> Scorecard:
    root = tmp_path_factory.mktemp("diag-text")
    pairs = {**CLEAN, **PLANTED}
    write_files(root / "s", {f"{k}.txt": hyp for k, (hyp, _) in pairs.items()})
    write_files(root / "r", {f"{k}.txt": ref for k, (_, ref) in pairs.items()})
    return score(root / "s", root / "r", modality="text", metrics=["chrf"])


def test_text_planted_failures_are_flagged_and_clean_samples_are_not(text_card):
    diag = text_card.diagnostics  # text folder ids are the files' relative paths
    assert flagged_ids(diag, "repetition_rate") == {"loop.txt"}
    assert flagged_ids(diag, "short_outputs") == {"empty.txt", "short.txt"}  # not "Thanks."
    assert flagged_ids(diag, "duplicate_outputs") == {"dup_a.txt", "dup_b.txt"}
    matches = {f["id"]: f["match"] for f in diag["duplicate_outputs"]["flagged"]}
    assert matches == {"dup_a.txt": "dup_b.txt", "dup_b.txt": "dup_a.txt"}
    # the varied corpus is diverse: set-level checks do not alert
    assert not diag["distinct_1"]["alert"] and not diag["distinct_2"]["alert"]
    for name in ("distinct_1", "distinct_2"):
        assert diag[name]["scope"] == "set"
        assert diag[name]["threshold"] == pytest.approx(0.5 * diag[name]["baseline"], rel=1e-5)
    loop = diag["repetition_rate"]["flagged"][0]
    assert loop["value"] == pytest.approx(repetition_rate(words(PLANTED["loop"][0])), rel=1e-5)
    assert {e["n"] for e in diag.values()} == {len(CLEAN) + len(PLANTED)}
    assert summary(diag).startswith("diagnostics: repetition_rate 1 sample(s), short_outputs 2")


def _naive_distinct(texts: list[str], n: int) -> float:
    grams = [tuple(w[i:i + n]) for w in map(words, texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams)


def test_distinct_n_and_repetition_match_plain_python_counts():
    rng = random.Random(4)
    vocab = [f"w{i}" for i in range(50)] + ["Naïve", "NAÏVE", "日本語", "É", "😀", "a.b", "-"]
    separators = [" ", "  ", "\t", "\n", "\xa0", "\u3000"]  # str.split's whitespace
    texts = ["".join(w + rng.choice(separators) for w in rng.choices(vocab, k=rng.randint(0, 30)))
             for _ in range(300)]
    diag = collector("text")
    for start in range(0, len(texts), 37):  # batches of uneven size
        diag.update([TextPair(str(i), t, []) for i, t in enumerate(texts[start:start + 37],
                                                                     start)])
    doc = diag.result()
    assert doc["distinct_1"]["value"] == pytest.approx(_naive_distinct(texts, 1), rel=1e-5)
    assert doc["distinct_2"]["value"] == pytest.approx(_naive_distinct(texts, 2), rel=1e-5)
    expected = np.mean([repetition_rate(words(t)) for t in texts])
    assert doc["repetition_rate"]["value"] == pytest.approx(expected, rel=1e-5)
    for text in texts[:50]:  # the rate itself: repeated 4-gram occurrences / all of them
        w = words(text)
        grams = [tuple(w[i:i + 4]) for i in range(len(w) - 3)]
        seen, repeats = set(), 0
        for g in grams:
            repeats += g in seen
            seen.add(g)
        assert repetition_rate(w) == (repeats / len(grams) if grams else 0.0)


def test_a_collapsed_corpus_alerts_on_diversity_with_and_without_references():
    answers = ["I do not know.", "I am not sure.", "I do not know about that."]
    refs = [f"The capital of country {i} is city number {i * 7} on the coast." for i in range(60)]
    with_refs = collector("text")
    with_refs.update([TextPair(str(i), answers[i % 3], [refs[i]]) for i in range(60)])
    doc = with_refs.result()
    assert doc["distinct_1"]["alert"] and doc["distinct_2"]["alert"]
    assert doc["duplicate_outputs"]["flagged_count"] == 60  # references differ: a collapse
    alone = collector("text")
    alone.update([TextPair(str(i), answers[i % 3], []) for i in range(600)])
    doc = alone.result()
    assert doc["distinct_2"]["threshold"] == 0.05 and doc["distinct_2"]["alert"]
    assert "baseline" not in doc["distinct_2"]


def test_identical_outputs_of_one_repeated_reference_are_not_duplicates():
    diag = collector("text")
    diag.update([TextPair("a", "Thank you very much.", ["Thank you very much."]),
                 TextPair("b", "Thank you very much.", ["Thank you very much."]),
                 TextPair("c", "The sun rose over the quiet valley.", ["Sunrise."])])
    assert diag.result()["duplicate_outputs"]["flagged_count"] == 0


def test_flagged_list_is_capped_and_ordered_worst_first_but_all_are_counted():
    check = SampleCheck(0.5, "above", "test")
    values = np.random.default_rng(0).uniform(0.0, 1.0, 500)
    for i, v in enumerate(values):
        check.add(f"s{i:03d}", float(v))
    entry = check.entry()
    assert entry["flagged_count"] == int((values > 0.5).sum())
    assert len(entry["flagged"]) == FLAGGED_LIMIT
    listed = [f["value"] for f in entry["flagged"]]
    assert listed == sorted(listed, reverse=True)
    assert listed[0] == pytest.approx(values.max(), rel=1e-5)


# -- images -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> dict[str, Path]:
    from tests.photos import blur, brighten, save_png, tiles

    sharp = [(n, t) for n, t in tiles() if laplacian_variance(t.mean(axis=2)) > 200]
    chosen, seen = [], set()
    for name, tile in sharp:  # one tile per photograph
        if name.split("-")[0] not in seen:
            seen.add(name.split("-")[0])
            chosen.append((name, tile))
    chosen = chosen[:7]
    root = tmp_path_factory.mktemp("diag-images")
    for side in ("s", "r"):
        (root / side).mkdir()
    images = {name: tile for name, tile in chosen[:5]}
    images["blurred"] = blur(chosen[5][1], sigma=3.0)
    images["twin_a"] = chosen[6][1]
    images["twin_b"] = brighten(chosen[6][1], 3)
    for name, image in images.items():
        save_png(image, root / "s" / f"{name}.png")
        save_png(image, root / "r" / f"{name}.png")
    return {"samples": root / "s", "refs": root / "r", "clean": root / "clean",
            "names": sorted(images)}


def test_image_planted_failures_are_flagged_and_clean_samples_are_not(image_folder):
    card = score(image_folder["samples"], image_folder["refs"], modality="image",
                 metrics=["psnr"], workers=0)
    diag = card.diagnostics
    assert flagged_ids(diag, "blur") == {"blurred"}
    assert flagged_ids(diag, "near_duplicates") == {"twin_a", "twin_b"}
    matches = {f["id"]: f["match"] for f in diag["near_duplicates"]["flagged"]}
    assert matches == {"twin_a": "twin_b", "twin_b": "twin_a"}
    assert not diag["phash_diversity"]["alert"]
    assert diag["blur"]["n"] == diag["near_duplicates"]["n"] == len(image_folder["names"])
    assert card.timing["diagnostics_s"] >= 0


def test_variations_of_one_photograph_alert_low_diversity():
    from PIL import Image

    from genmetrics.io.image import ImageItem
    from tests.photos import brighten, noise, photos, resize_longer_side

    torch = pytest.importorskip("torch")
    base = resize_longer_side(photos()["astronaut"], 96)
    variants = [brighten(noise(base, std=4.0, seed=s), delta=s - 5) for s in range(10)]
    diag = collector("image")
    diag.update([ImageItem(str(i), torch.from_numpy(v).permute(2, 0, 1).contiguous())
                 for i, v in enumerate(variants)])
    doc = diag.result()
    assert doc["phash_diversity"]["alert"]
    assert doc["near_duplicates"]["flagged_count"] == 10
    # the stored distances are imagehash's own
    hashes = [imagehash.phash(Image.fromarray(v).convert("L")) for v in variants]
    for flagged in doc["near_duplicates"]["flagged"]:
        i, j = int(flagged["id"]), int(flagged["match"])
        assert flagged["value"] == hashes[i] - hashes[j]


def test_laplacian_variance_matches_scipy_ndimage_laplace():
    from scipy.ndimage import laplace

    rng = np.random.default_rng(1)
    for shape in ((3, 3), (17, 40), (64, 64)):
        gray = rng.integers(0, 256, shape, dtype=np.uint8)
        expected = laplace(gray.astype(np.float64))[1:-1, 1:-1].var()
        assert laplacian_variance(gray) == pytest.approx(expected, rel=1e-12, abs=1e-12)
        assert laplacian_variance(gray.astype(np.float64)) == pytest.approx(expected, rel=1e-12)


def test_near_duplicate_search_equals_brute_force_over_imagehash_pairs():
    rng = np.random.default_rng(2)
    base = rng.integers(0, 2**63, 300, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 300,
                                                                                         dtype=np.uint64)
    hashes = base.copy()
    for k in range(40):  # plant near copies at 0-6 flipped bits
        flips = rng.choice(64, size=k % 7, replace=False)
        mask = np.uint64(sum(1 << int(f) for f in flips))
        hashes = np.append(hashes, base[k] ^ mask)
    objects = [imagehash.hex_to_hash(f"{int(h):016x}") for h in hashes]
    within = 4
    distance, match = nearest_duplicates(hashes, within)
    for i, a in enumerate(objects):
        d = [a - b if j != i else 99 for j, b in enumerate(objects)]
        best = min(d)
        if best <= within:
            assert distance[i] == best and d[match[i]] == best
            assert match[i] == min(j for j, x in enumerate(d) if x == best)
        else:
            assert distance[i] == -1 and match[i] == -1
    pairs = [objects[i] - objects[j] for i in range(len(objects)) for j in range(i)]
    assert mean_pairwise_distance(hashes) == pytest.approx(np.mean(pairs), rel=1e-12)


def test_cached_features_still_give_complete_image_diagnostics(image_folder, tmp_path,
                                                               monkeypatch, random_weights):
    monkeypatch.setenv("GENMETRICS_CACHE_DIR", str(tmp_path / "cache"))
    weights = random_weights()
    runs = [score(image_folder["samples"], modality="image", metrics=["inception_score"],
                  inception_weights=weights, device="cpu", workers=0) for _ in range(2)]
    assert runs[1].inputs["feature_cache"]["extracted"] == 0  # the network did not run
    assert runs[1].diagnostics == runs[0].diagnostics
    assert flagged_ids(runs[1], "blur") == {"blurred"}


# -- audio ------------------------------------------------------------------------------
RATE = 16000


@pytest.fixture(scope="module")
def audio_card(tmp_path_factory) -> Scorecard:
    import soundfile as sf

    root = tmp_path_factory.mktemp("diag-audio")
    t = np.arange(RATE) / RATE
    rng = np.random.default_rng(3)

    def tone(freq: float, amp: float) -> np.ndarray:
        return amp * np.sin(2 * np.pi * freq * t) + rng.normal(0, 0.01, t.size)

    clips = {
        "clean_a": tone(220, 0.4), "clean_b": tone(330, 0.6), "clean_c": tone(523, 0.2),
        "clipped": np.clip(tone(440, 3.0), -1.0, 1.0),
        "silent": np.r_[rng.normal(0, 1e-5, RATE * 3 // 4), tone(440, 0.3)[:RATE // 4]],
        "dc": tone(300, 0.3) + 0.05,
    }
    for side in ("s", "r"):
        (root / side).mkdir()
    for name, wave in clips.items():
        sf.write(root / "s" / f"{name}.wav", np.clip(wave, -1, 1), RATE, subtype="PCM_16")
        sf.write(root / "r" / f"{name}.wav", tone(220, 0.4), RATE, subtype="PCM_16")
    return score(root / "s", root / "r", modality="audio", metrics=["snr"])


def test_audio_planted_failures_are_flagged_and_clean_samples_are_not(audio_card):
    diag = audio_card.diagnostics
    assert flagged_ids(diag, "clipping_ratio") == {"clipped"}
    assert flagged_ids(diag, "silence_ratio") == {"silent"}
    assert flagged_ids(diag, "dc_offset") == {"dc"}
    silent = diag["silence_ratio"]["flagged"][0]["value"]
    assert silent == pytest.approx(0.75, abs=0.021)  # 37 or 38 of the 50 frames
    assert diag["dc_offset"]["flagged"][0]["value"] == pytest.approx(0.05, abs=2e-3)
    assert {e["n"] for e in diag.values()} == {6}


# -- scorecard, merging, CLI ------------------------------------------------------------
def test_scorecard_validates_and_round_trips(text_card, audio_card, tmp_path):
    for card in (text_card, audio_card):
        path = tmp_path / f"{card.modality}.json"
        card.save(path)
        doc = json.loads(path.read_text())
        validate(doc)
        assert Scorecard.load(path).diagnostics == doc["diagnostics"] == card.diagnostics
    broken = json.loads((tmp_path / "text.json").read_text())
    del broken["diagnostics"]["short_outputs"]["threshold"]
    with pytest.raises(InputError, match="diagnostics/short_outputs"):
        validate(broken)


def test_merged_collectors_equal_one_collector(image_folder):
    from genmetrics.io.image import ImageSource

    items = list(ImageSource(image_folder["samples"], [], workers=0))
    texts = [TextPair(f"t{i}", text, [ref]) for i, (text, ref) in
             enumerate(list(CLEAN.values()) + list(PLANTED.values()))]
    for modality, batch in (("image", items), ("text", texts)):
        whole = collector(modality)
        whole.update(batch)
        halves = [collector(modality), collector(modality)]
        halves[0].update(batch[:4])
        halves[1].update(batch[4:])
        assert combine(halves).result() == whole.result()


def test_an_error_in_the_diagnostics_is_noted_and_does_not_stop_the_run(tmp_path, monkeypatch):
    from genmetrics.diagnostics.text import TextDiagnostics

    def broken(self, items):
        raise RuntimeError("boom")

    monkeypatch.setattr(TextDiagnostics, "update", broken)
    write_files(tmp_path / "s", {"a.txt": "one two three"})
    write_files(tmp_path / "r", {"a.txt": "one two four"})
    card = score(tmp_path / "s", tmp_path / "r", metrics=["chrf"])
    assert card.metrics["chrf"].n == 1 and card.diagnostics == {}
    assert any("boom" in w["message"] for w in card.warnings)


def test_unknown_threshold_is_a_usage_error():
    with pytest.raises(UsageError, match="blurr"):
        collector("image", blurr=3.0)


def test_cli_stores_diagnostics_prints_a_line_and_no_diagnostics_omits_them(tmp_path, run_cli):
    write_files(tmp_path / "s", {"a.txt": "", "b.txt": "A normal sentence about the river."})
    write_files(tmp_path / "r", {"a.txt": "The reference text is long enough.",
                                 "b.txt": "A plain sentence about the river."})
    on = run_cli("score", tmp_path / "s", "-r", tmp_path / "r", "--metrics", "chrf",
                 "-o", tmp_path / "on.json")
    assert on.returncode == 0, on.stderr
    assert "diagnostics: short_outputs 1 sample(s)" in on.stdout
    assert flagged_ids(json.loads((tmp_path / "on.json").read_text())["diagnostics"],
                       "short_outputs") == {"a.txt"}
    off = run_cli("score", tmp_path / "s", "-r", tmp_path / "r", "--metrics", "chrf",
                  "--no-diagnostics", "-o", tmp_path / "off.json")
    assert off.returncode == 0, off.stderr
    doc = json.loads((tmp_path / "off.json").read_text())
    assert "diagnostics" not in doc and "diagnostics_s" not in doc["timing"]
    assert "diagnostics:" not in off.stdout
    assert Scorecard.load(tmp_path / "off.json").diagnostics is None


def test_two_torchrun_processes_give_the_diagnostics_of_one(tmp_path, run_cli):
    import subprocess
    import sys

    from tests.conftest import REPO, cli_env

    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed")
    # 11 files: rank 0 scores c1..c5 and dup_a, rank 1 dup_b..zz; both duplicate pairs
    # (dup_a/dup_b, c1/zz) are split between the ranks
    pairs = {**CLEAN, **PLANTED, "zz": (CLEAN["c1"][0], "An unrelated reference.")}
    write_files(tmp_path / "s", {f"{k}.txt": hyp for k, (hyp, _) in pairs.items()})
    write_files(tmp_path / "r", {f"{k}.txt": ref for k, (_, ref) in pairs.items()})
    args = ["score", tmp_path / "s", "-r", tmp_path / "r", "--metrics", "chrf", "-q"]
    two = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", "-m",
                          "genmetrics", *map(str, args), "-o", str(tmp_path / "two.json")],
                         capture_output=True, text=True, env=cli_env(OMP_NUM_THREADS="1"),
                         cwd=REPO, timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    one = run_cli(*args, "-o", tmp_path / "one.json")
    assert one.returncode == 0, one.stderr
    doc_two = json.loads((tmp_path / "two.json").read_text())
    doc_one = json.loads((tmp_path / "one.json").read_text())
    assert doc_two["environment"]["processes"].startswith("2")
    assert doc_two["diagnostics"] == doc_one["diagnostics"]
    assert flagged_ids(doc_two["diagnostics"], "duplicate_outputs") == {
        "dup_a.txt", "dup_b.txt", "c1.txt", "zz.txt"}
