"""``genmetrics report``: the HTML report of one or several scorecards.

Scorecards are made here with :func:`genmetrics.runner.score` (``per_sample=True``) on
small text, image (photo tiles) and audio inputs. Checked: the worst/best samples are
the ones the per-sample values rank so, each shown with its own reference (thumbnail
pixels and embedded audio decoded back and compared with the files), word diffs,
"file not found", the message for scorecards without per-sample values, diagnostics,
the comparison (deltas as :mod:`genmetrics.compare` computes them), the command line,
and the pages rendered in headless Chromium (a screenshot that is not blank, the
headings and sample counts in the rendered DOM, the audio players filled by the page's
script).
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import shutil
import subprocess
import sys
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from genmetrics.compare import compare
from genmetrics.errors import InputError, UsageError
from genmetrics.report import render_report, write_report
from genmetrics.runner import score
from genmetrics.scorecard import Scorecard
from tests import photos
from tests.conftest import REPO, assert_one_line_error, write_files

SAMPLES = {
    "a.txt": "The cat sat on the mat.",
    "b.txt": "A quick brown fox jumps over the dog.",
    "c.txt": "Prices rose by 3.5% in May.",
    "d.txt": "Completely unrelated words here.",
    "e.txt": "The meeting was moved to Friday afternoon.",
    "f.txt": "She opened the window <and> let air in.",
}
REFS = {
    "a.txt": "The cat was sitting on the mat.",
    "b.txt": "The quick brown fox jumped over the lazy dog.",
    "c.txt": "Prices went up 3.5% in May.",
    "d.txt": "The river flooded the old town.",
    "e.txt": "The meeting was moved to Friday afternoon.",
    "f.txt": "She opened the window and let the cold air in.",
}
RATE = 16000


class _Dom(HTMLParser):
    """Sample ids in page order per ``(metric, worst|best)`` block, and heading texts."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: dict[tuple[str, str], list[str]] = {}
        self.headings: list[str] = []
        self._block: tuple[str, str] | None = None
        self._depth = 0
        self._heading: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("h1", "h2", "h3", "h4", "h5"):
            self._heading = []
        if tag != "div":
            return
        if self._block is not None:
            self._depth += 1
            if "data-id" in a and "sample" in (a.get("class") or ""):
                self.blocks[self._block].append(a["data-id"])
        elif "data-rank" in a:
            self._block = (a["data-metric"], a["data-rank"])
            self.blocks[self._block] = []
            self._depth = 0

    def handle_endtag(self, tag):
        if tag in ("h1", "h2", "h3", "h4", "h5") and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self._heading = None
        if tag == "div" and self._block is not None:
            if self._depth == 0:
                self._block = None
            else:
                self._depth -= 1

    def handle_data(self, data):
        if self._heading is not None:
            self._heading.append(data)


def parse(html: str) -> _Dom:
    dom = _Dom()
    dom.feed(html)
    return dom


def expected_rank(values: list, ids: list[str], higher: bool, k: int) -> tuple[list, list]:
    """Worst and best ids computed from the per-sample values, independently."""
    scored = [(v, i) for i, v in zip(ids, values, strict=True) if v is not None]
    ordered = sorted(scored, key=lambda vi: vi[0], reverse=not higher)  # worst first
    n_worst = min(k, math.ceil(len(ordered) / 2))
    worst = [i for _, i in ordered[:n_worst]]
    best = [i for _, i in reversed(ordered[n_worst:])][:k]
    return worst, best


def pictures(html: str) -> dict[str, np.ndarray]:
    """Every embedded picture (the CSS rules of the page) by class key, as RGB arrays."""
    from PIL import Image

    found = {}
    for key, data in re.findall(r"\.(p[0-9a-f]{16})\{background-image:url\(data:image/png;"
                                r"base64,([A-Za-z0-9+/=]+)\)\}", html):
        found[key] = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
    return found


def section(html: str, heading: str) -> str:
    """The HTML from the ``<h3>`` named ``heading`` to the next ``<h3>``."""
    start = re.search(rf"<h3[^>]*>{heading}</h3>", html).end()
    end = html.find("<h3", start)
    return html[start:end if end > 0 else None]


def box(html: str, metric: str, rank: str, ident: str) -> str:
    """The HTML of one sample box of the ``metric``/``rank`` block."""
    start = html.index(f'data-metric="{metric}" data-rank="{rank}"')
    start = html.index(f'data-id="{ident}"', start)
    end = html.find('<div class="sample', start + 1)
    return html[start:end if end > 0 else None]


# ------------------------------------------------------------------ scorecards


def _tone(seconds: float, seed: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(int(seconds * RATE)) / RATE
    clean = 0.4 * np.sin(2 * np.pi * 220 * (seed + 1) * t) + 0.2 * np.sin(2 * np.pi * 660 * t)
    rng = np.random.default_rng(seed)
    return clean, clean + rng.normal(0, noise, clean.shape)


@pytest.fixture(scope="module")
def cards(tmp_path_factory) -> dict[str, Path]:
    import soundfile as sf

    root = tmp_path_factory.mktemp("report")
    made = {}
    samples = write_files(root / "text" / "samples", SAMPLES)
    refs = write_files(root / "text" / "refs", REFS)
    made["text"] = score(samples, refs, metrics=["bleu", "rouge"], per_sample=True,
                         bootstrap=100)
    made["perfect"] = score(refs, refs, metrics=["bleu", "rouge"], per_sample=True,
                            bootstrap=100)
    made["plain"] = score(samples, refs, metrics=["bleu"])  # no per-sample values
    gone = write_files(root / "text" / "gone", SAMPLES)
    made["missing"] = score(gone, refs, metrics=["bleu"], per_sample=True)
    (gone / "d.txt").unlink()  # the worst sample disappears after scoring
    lines = root / "text" / "hyps.jsonl"
    lines.write_text("".join(json.dumps({"id": f"q{i}", "text": SAMPLES[n], "reference": REFS[n]})
                             + "\n" for i, n in enumerate(sorted(SAMPLES))), encoding="utf-8")
    made["jsonl"] = score(lines, metrics=["bleu"], per_sample=True)

    image_s, image_r = root / "image" / "samples", root / "image" / "refs"
    image_s.mkdir(parents=True)
    image_r.mkdir(parents=True)
    steps = [photos.blur, photos.noise, photos.jpeg, photos.brighten, lambda x: x,
             lambda x: photos.noise(x, std=30.0, seed=3),
             lambda x: photos.blur(x, sigma=4.0)]  # planted: flagged as blurred
    for (name, tile), degrade in zip(photos.tiles(size=32, longer_side=64)[::7], steps,
                                     strict=True):
        photos.save_png(tile, image_r / f"{name}.png")
        photos.save_png(degrade(tile), image_s / f"{name}.png")
    first = sorted(image_s.iterdir())[0].name  # planted: a near-duplicate sample
    shutil.copy(image_s / first, image_s / f"zz-copy-{first}")
    shutil.copy(image_r / first, image_r / f"zz-copy-{first}")
    made["image"] = score(image_s, image_r, metrics=["psnr", "ssim"], per_sample=True)

    audio_s, audio_r = root / "audio" / "degraded", root / "audio" / "clean"
    audio_s.mkdir(parents=True)
    audio_r.mkdir(parents=True)
    for i, level in enumerate((0.01, 0.05, 0.2, 0.4)):
        clean, noisy = _tone(0.5 if i else 5.0, i, level)  # the first is longer than 4 s
        sf.write(audio_r / f"clip{i}.wav", clean, RATE, subtype="PCM_16")
        sf.write(audio_s / f"clip{i}.wav", np.clip(noisy, -1, 1), RATE, subtype="PCM_16")
    made["audio"] = score(audio_s, audio_r, metrics=["snr"], per_sample=True)

    paths = {}
    for name, card in made.items():
        paths[name] = root / f"{name}.json"
        card.save(paths[name])
    return paths


# ------------------------------------------------------------------ content


def test_text_worst_and_best_follow_the_per_sample_values(cards):
    card = Scorecard.load(cards["text"])
    html = render_report([cards["text"]], k=2)
    dom = parse(html)
    ids = card.per_sample["ids"]
    for name in ("bleu", "rouge1", "rougeL"):
        worst, best = expected_rank(card.per_sample["values"][name], ids, True, 2)
        assert dom.blocks[(name, "worst")] == worst, name
        assert dom.blocks[(name, "best")] == best, name
    for heading in ("Metrics", "Distributions", "Worst and best samples", "Worst 2 (lowest bleu)",
                    "Best 2 (highest bleu)"):
        assert heading in dom.headings
    # the worst BLEU sample is d.txt: its output, its reference and the word diff
    worst = box(html, "bleu", "worst", "d.txt")
    assert "Completely unrelated words here." in worst
    assert "The river flooded the old town." in worst
    assert "<del>The river flooded the old town.</del>" in worst
    assert "<ins>Completely unrelated words here.</ins>" in worst
    # text is escaped, never markup
    assert "window &lt;and&gt; let" in html and "<and>" not in html
    # the metric table: value, CI and signature of every result
    for name, result in card.metrics.items():
        assert f"{result.value:.4f}" in html
        assert f"{result.ci95[0]:.4f} – {result.ci95[1]:.4f}" in html
        assert escape(result.signature_str) in html, name
    assert html.count("<figure>") == len(card.per_sample["values"])  # one histogram each


def test_jsonl_samples_are_found_by_id_with_their_inline_reference(cards):
    html = render_report([cards["jsonl"]], k=3)
    dom = parse(html)
    card = Scorecard.load(cards["jsonl"])
    worst, _ = expected_rank(card.per_sample["values"]["bleu"], card.per_sample["ids"], True, 3)
    assert dom.blocks[("bleu", "worst")] == worst
    ident = worst[0]  # d.txt's line: q3
    assert ident == "q3"
    worst_box = box(html, "bleu", "worst", ident)
    assert SAMPLES["d.txt"] in worst_box and REFS["d.txt"] in worst_box
    assert "file not found" not in html


def test_image_thumbnails_are_the_sample_and_its_reference(cards):
    from PIL import Image

    card = Scorecard.load(cards["image"])
    html = render_report([cards["image"]], k=2)
    dom = parse(html)
    ids = card.per_sample["ids"]
    worst, best = expected_rank(card.per_sample["values"]["psnr"], ids, True, 2)
    assert dom.blocks[("psnr", "worst")] == worst and dom.blocks[("psnr", "best")] == best
    found = pictures(html)
    samples, refs = Path(card.inputs["samples"]["path"]), Path(card.inputs["reference"]["path"])
    for ident in worst + best:
        keys = re.findall(r'class="pic (p[0-9a-f]{16}) thumb', box(html, "psnr", "worst"
                          if ident in worst else "best", ident))
        assert len(keys) == 3  # sample, reference, difference
        sample = np.asarray(Image.open(samples / f"{ident}.png").convert("RGB"))
        reference = np.asarray(Image.open(refs / f"{ident}.png").convert("RGB"))
        np.testing.assert_array_equal(found[keys[0]], sample)  # 32 px: kept as is
        np.testing.assert_array_equal(found[keys[1]], reference)
        diff = np.abs(sample.astype(int) - reference.astype(int)).mean(axis=2)
        np.testing.assert_array_equal(found[keys[2]][..., 0],
                                      np.clip(diff * 4, 0, 255).astype(np.uint8))
    # each picture is embedded once although samples appear under psnr and ssim
    assert len(found) == len(set(found))
    assert len(re.findall(r"background-image", html)) == len(found)


def test_large_images_are_downscaled(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    big = rng.integers(0, 255, (300, 200, 3), dtype=np.uint8)
    (tmp_path / "s").mkdir()
    (tmp_path / "r").mkdir()
    Image.fromarray(big).save(tmp_path / "s" / "x.png")
    Image.fromarray(255 - big).save(tmp_path / "r" / "x.png")
    card = score(tmp_path / "s", tmp_path / "r", metrics=["psnr"], per_sample=True)
    html = render_report([card])
    sizes = {p.shape[:2] for p in pictures(html).values()}
    assert sizes == {(128, 85)}  # longer side 128, aspect ratio kept


def test_audio_players_hold_the_first_seconds_of_both_sides(cards):
    import soundfile as sf

    card = Scorecard.load(cards["audio"])
    html = render_report([cards["audio"]], k=2)
    dom = parse(html)
    worst, best = expected_rank(card.per_sample["values"]["snr"], card.per_sample["ids"], True, 2)
    assert dom.blocks[("snr", "worst")] == worst and dom.blocks[("snr", "best")] == best
    table = json.loads(re.search(r'<script type="application/json" id="genmetrics-media">'
                                 r"(.*?)</script>", html).group(1))
    assert len(table) == 8  # 4 samples + 4 references, each embedded once
    ranked = section(html, "Worst and best samples")
    shown = re.findall(r'<audio controls preload="none" data-media="(m[0-9a-f]{16})" '
                       r'title="([^"]+)"', ranked)
    assert len(shown) == 8
    for key, label in shown:
        data, rate = sf.read(io.BytesIO(base64.b64decode(table[key].split(",", 1)[1])))
        original, orig_rate = sf.read(Path(label + ".wav"))
        assert rate == orig_rate == RATE and data.ndim == 1
        assert len(data) == min(len(original), 4 * RATE)  # the 5 s clip is cut at 4 s
        np.testing.assert_allclose(data, original[:len(data)], atol=1 / 32768)
    assert "first 4 s of 5.0 s" in html
    assert len(re.findall(r'class="pic p[0-9a-f]{16} spec"', ranked)) == 8  # spectrograms


def test_audio_durations_are_read_at_the_files_own_rate(tmp_path):
    """A 3.67 s clip at 44.1 kHz is played at 16 kHz; its duration is still 3.7 s (it
    was shown as 10.1 s: the file's frames divided by the player's rate)."""
    import soundfile as sf

    from genmetrics.report._html import MediaStore
    from genmetrics.report.media import Item, audio_html

    seconds, rate = 3.67, 44100
    t = np.arange(int(seconds * rate)) / rate
    for name, length in (("short", len(t)), ("long", 2 * len(t))):  # 3.67 s and 7.34 s
        sf.write(tmp_path / f"{name}.wav", 0.3 * np.sin(2 * np.pi * 440 * np.resize(t, length)),
                 rate, subtype="PCM_16")
    html = audio_html(Item("short", path=tmp_path / "short.wav"),
                      Item("long", path=tmp_path / "long.wav"), MediaStore())
    notes = re.findall(r"</audio><span>([^<]*)</span>", html)
    assert notes == ["3.7 s", "first 4 s of 7.3 s"], notes


def test_failed_pairs_are_listed_with_their_ids_and_reasons(tmp_path):
    """Every pair a metric could not score is named in the scorecard (``failed``
    entries carry the sample's id beside its index) and in the report, with the
    reason; without --per-sample too."""
    import soundfile as sf

    s, r = tmp_path / "s", tmp_path / "r"
    s.mkdir()
    r.mkdir()
    for i in range(3):
        clean, noisy = _tone(0.5, i, 0.05)
        sf.write(r / f"clip{i}.wav", clean, RATE, subtype="PCM_16")
        sf.write(s / f"clip{i}.wav", np.clip(noisy, -1, 1), RATE, subtype="PCM_16")
    sf.write(r / "quiet.wav", np.zeros(RATE // 2), RATE, subtype="PCM_16")
    sf.write(s / "quiet.wav", _tone(0.5, 7, 0.05)[1], RATE, subtype="PCM_16")
    for per_sample in (True, False):
        card = score(s, r, metrics=["snr"], per_sample=per_sample)
        failed = card.metrics["snr"].components["failed"]
        assert failed == [{"index": 3, "id": "quiet",
                           "reason": "silent reference: SNR undefined"}]
        path = tmp_path / f"card-{per_sample}.json"
        card.save(path)
        html = render_report([path], k=2)
        listed = re.search(r'<details class="failed-pairs"[^>]*>(.*?)</details>', html, re.S)
        assert listed, html
        assert "snr: 1 pair(s) not scored" in listed.group(1)
        assert "<code>quiet</code>: silent reference: SNR undefined" in listed.group(1)
        if per_sample:
            assert "1 sample(s) without a value left out (reasons under Metrics)" in html


def test_without_per_sample_values_the_report_says_how_to_get_them(cards):
    html = render_report([cards["plain"]])
    assert html.count("score with --per-sample to see samples") == 2  # histograms, samples
    assert "<h3>Metrics</h3>" in html and "data-rank" not in html


def test_a_card_scored_in_memory_lists_values_without_files():
    from genmetrics.metric import MetricResult

    result = MetricResult("psnr", 30.0, 3, True, "dB", {"metric": "psnr", "v": 1, "n": 3,
                                                         "genmetrics": "0"})
    card = Scorecard("image", {"samples": {"path": "(in memory)", "count": 3}},
                     {"psnr": result},
                     per_sample={"ids": ["0", "1", "2"], "values": {"psnr": [31.0, 20.0, 39.0]}})
    html = render_report([card], k=1)
    assert "Scored in memory (Evaluator): no sample files to show." in html
    dom = parse(html)
    assert dom.blocks[("psnr", "worst")] == ["1"] and dom.blocks[("psnr", "best")] == ["2"]


def test_a_missing_sample_file_is_shown_as_such(cards):
    html = render_report([cards["missing"]], k=3)
    worst = box(html, "bleu", "worst", "d.txt")
    assert "file not found" in worst
    assert REFS["d.txt"] in worst  # its reference is still there
    assert html.count("file not found") == 1  # only that one


def test_comparison_uses_compare_deltas_and_ci_overlap(cards):
    html = render_report([cards["text"], cards["perfect"]], k=2)
    dom = parse(html)
    assert "Comparison" in dom.headings and "Distributions side by side" in dom.headings
    assert "Per-sample changes" in dom.headings
    loaded = [Scorecard.load(cards["text"]), Scorecard.load(cards["perfect"])]
    comparison = compare(loaded, ["text.json", "perfect.json"])
    for row in comparison.rows:
        match = re.search(rf'<tr data-metric="{row.metric}">(.*?)</tr>', html)
        assert match, row.metric
        cells = re.findall(r"<td[^>]*>(.*?)</td>", match.group(1))
        assert cells[4] == f"{row.delta[1]:+.4f}"
        assert cells[5] == ("yes" if row.ci_overlap[1] else "no")
    bleu = re.search(r'<tr data-metric="bleu">(.*?)</tr>', html).group(1)
    assert 'class="num better"' in bleu  # the perfect card is better, shown green
    # per-sample changes: every imperfect sample got better in the perfect card
    values = loaded[0].per_sample["values"]["bleu"]
    better = sum(v < 100 for v in values)
    assert f"bleu, perfect.json vs text.json: 0 worse, {better} better" in html
    # both cards still get their own sections
    assert '<section id="card1" data-card="text.json">' in html
    assert '<section id="card2" data-card="perfect.json">' in html


def test_diagnostics_of_scoring_are_shown_with_flagged_samples(cards):
    card = Scorecard.load(cards["image"])
    assert card.diagnostics, "score() records diagnostics by default"
    html = render_report([cards["image"]], k=2)
    dom = section(html, "Diagnostics")
    for name, entry in card.diagnostics.items():
        row = re.search(rf'<tr data-diagnostic="{name}">(.*?)</tr>', dom).group(1)
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
        assert cells[1] == f"{entry['value']:.4g}"
        assert f"{entry['threshold']:.4g}" in cells[2]
        assert re.sub("<[^>]+>", "", cells[3]) == str(entry["flagged_count"])
        shown = re.findall(rf'class="samples" data-diagnostic="{name}">(.*?)(?=<h5>|$)', dom,
                           re.S)
        ids = [f["id"] for f in entry["flagged"]][:2]
        if ids:  # the first k flagged samples, as thumbnails
            assert re.findall(r'<div class="sample image" data-id="([^"]+)"', shown[0]) == ids
            assert "file not found" not in shown[0]
    assert card.diagnostics["blur"]["flagged"], "the planted blur is flagged"
    assert card.diagnostics["near_duplicates"]["flagged"][0]["match"]
    entry = card.diagnostics["near_duplicates"]["flagged"][0]
    duplicate = dom[dom.index('class="samples" data-diagnostic="near_duplicates"'):]
    start = duplicate.index('<div class="sample')
    first = duplicate[start:duplicate.index('<div class="sample', start + 1)]
    titles = re.findall(r'class="pic p[0-9a-f]{16} thumb[^"]*"[^>]* title="([^"]+)"', first)
    assert [Path(t).name for t in titles] == [entry["id"], entry["match"]]  # side by side


def test_diagnostics_are_read_defensively(cards):
    card = Scorecard.load(cards["text"])
    card.diagnostics = {
        "distinct_2": {"value": 0.42, "threshold": 0.5, "direction": "below", "scope": "set",
                       "alert": True, "flagged": [], "flagged_count": 0, "baseline": 0.9},
        "repeats": {"value": 0.1, "threshold": 0.3, "flagged": ["d.txt", "e.txt"]},
        "dupes": {"value": 1, "threshold": 4, "flagged": [{"id": "a.txt", "value": 2,
                                                           "match": "b.txt"}]},
        "odd": "not a dict",
    }
    html = render_report([card], k=5)
    row = re.search(r'<tr data-diagnostic="distinct_2">(.*?)</tr>', html).group(1)
    assert "0.42" in row and "flag &lt; 0.5 (baseline 0.9)" in row
    assert "Diagnostics flag: distinct_2, repeats (2 sample(s)), dupes (1 sample(s))" in html
    assert "flagged: distinct_2, repeats (2 sample(s)), dupes (1 sample(s))" in html
    assert "d.txt, e.txt" in html and "a.txt (2) ≈ b.txt" in html and "not a dict" in html
    flagged = html[html.index('class="samples" data-diagnostic="repeats">'):]
    assert SAMPLES["d.txt"] in flagged.split("<h5>")[0]
    pair = html[html.index('class="samples" data-diagnostic="dupes">'):]
    assert SAMPLES["a.txt"] in pair and SAMPLES["b.txt"] in pair


def test_relative_input_paths_are_found_from_the_scorecard_or_root(tmp_path, monkeypatch):
    project = tmp_path / "project"
    write_files(project / "data" / "samples", SAMPLES)
    write_files(project / "data" / "refs", REFS)
    monkeypatch.chdir(project)
    card = score(Path("data/samples"), Path("data/refs"), metrics=["bleu"], per_sample=True)
    assert card.inputs["samples"]["path"] == "data/samples"
    card.save(project / "out" / "card.json")  # as `make demo` does: out/ under the project
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    html = render_report([project / "out" / "card.json"], k=1)
    assert "file not found" not in html and SAMPLES["d.txt"] in html and REFS["d.txt"] in html
    (project / "out" / "card.json").rename(elsewhere / "card.json")  # moved away
    html = render_report([elsewhere / "card.json"], k=1)
    ranked = section(html, "Worst and best samples")
    assert ranked.count("file not found") == 4  # 1 worst + 1 best, output and reference
    html = render_report([elsewhere / "card.json"], k=1, root=project)
    assert "file not found" not in html and SAMPLES["d.txt"] in html


def test_cards_given_twice_are_lettered(cards):
    html = render_report([cards["plain"], cards["plain"]])
    assert '<section id="card1" data-card="A">' in html
    assert "cards: A = " in html


def test_bad_input_is_a_one_line_error(cards, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        render_report([tmp_path / "nope.json"])
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(InputError, match="not a JSON scorecard"):
        render_report([tmp_path / "bad.json"])
    with pytest.raises(UsageError, match="needs a scorecard"):
        render_report([])
    with pytest.raises(UsageError, match="positive"):
        render_report([cards["text"]], k=0)


def test_cli_writes_the_report_and_reports_errors_in_one_line(cards, tmp_path):
    out = tmp_path / "sub" / "report.html"
    done = subprocess.run([sys.executable, "-m", "genmetrics", "report", str(cards["plain"]),
                           str(cards["plain"]), "--html", str(out), "-k", "2"],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert f"report: {out}" in done.stdout
    assert "<h2 id=\"comparison\">Comparison</h2>" in out.read_text("utf-8")
    done = subprocess.run([sys.executable, "-m", "genmetrics", "report",
                           str(tmp_path / "missing.json"), "--html", str(out)],
                          capture_output=True, text=True, cwd=REPO)
    assert_one_line_error(done, "missing.json", "does not exist")
    code = ("import sys, genmetrics.cli, genmetrics.report; "
            "print([m for m in ('matplotlib', 'PIL', 'numpy', 'torch') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


# ------------------------------------------------------------------ headless Chromium


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium found (chromium, chromium-browser or google-chrome); `make test` "
                "installs Debian's chromium as root: apt-get install chromium")


def run_chromium(binary: str, page: Path, profile: Path, *args: str) -> str:
    done = subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", "--no-first-run", f"--user-data-dir={profile}",
                           *args, page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("which", [("image",), ("audio",), ("text", "perfect")])
def test_report_renders_in_headless_chromium(cards, tmp_path, which):
    from PIL import Image, ImageStat

    binary = chromium()
    page = write_report([cards[name] for name in which], tmp_path / "report.html", k=3)
    shot = tmp_path / "shot.png"
    dom = run_chromium(binary, page, tmp_path / "profile", f"--screenshot={shot}",
                       "--dump-dom", "--window-size=1200,2000")
    if not shot.exists() or "<body" not in dom:  # builds that do one or the other per run
        run_chromium(binary, page, tmp_path / "profile", f"--screenshot={shot}",
                     "--window-size=1200,2000")
        dom = run_chromium(binary, page, tmp_path / "profile", "--dump-dom")
    with Image.open(shot) as image:
        assert image.size == (1200, 2000)
        variance = ImageStat.Stat(image.convert("L")).var[0]
    assert variance > 0, "blank screenshot"
    parsed = parse(dom)
    expected = ["genmetrics report", "Metrics", "Distributions", "Worst and best samples"]
    expected += ["Comparison"] if len(which) > 1 else []
    for heading in expected:
        assert heading in parsed.headings, (heading, parsed.headings)
    assert any(h.startswith("Worst ") for h in parsed.headings)
    assert any(h.startswith("Best ") for h in parsed.headings)
    for name in which:
        count = Scorecard.load(cards[name]).inputs["samples"]["count"]
        assert f"{count} samples" in dom
    if which == ("audio",):  # the page's script gave every player its WAV
        players = re.findall(r"<audio [^>]*>", dom)
        assert players and all('src="data:audio/wav;base64,' in p for p in players)


def test_line_files_are_looked_up_by_the_readers_line_numbers(tmp_path):
    """A ``.txt`` line file against a ``.txt`` reference file, with an undecodable line
    (skipped when scoring): each shown sample is its own line, beside its reference."""
    names = sorted(SAMPLES)
    broken = 2  # the third line is not UTF-8
    hyps, refs = tmp_path / "hyps.txt", tmp_path / "refs.txt"
    lines = [SAMPLES[n].encode() for n in names]
    lines.insert(broken, b"caf\xe9 au lait")
    hyps.write_bytes(b"\n".join(lines) + b"\n")
    ref_lines = [REFS[n].encode() for n in names]
    ref_lines.insert(broken, b"coffee with milk")
    refs.write_bytes(b"\n".join(ref_lines) + b"\n")
    card = score(hyps, refs, metrics=["bleu"], per_sample=True)
    assert [s["reason"] for s in card.skipped] == ["not valid UTF-8 (byte 0xe9 at offset 3)"]
    card.save(tmp_path / "card.json")
    html = render_report([tmp_path / "card.json"], k=3)
    worst, _ = expected_rank(card.per_sample["values"]["bleu"], card.per_sample["ids"], True, 3)
    assert parse(html).blocks[("bleu", "worst")] == worst
    by_line = {n + 1 + (n >= broken): name for n, name in enumerate(names)}
    assert len(worst) == 3
    for ident in worst:
        name = by_line[int(ident.rsplit(":", 1)[-1])]
        shown = box(html, "bleu", "worst", ident)
        assert escape(SAMPLES[name]) in shown and escape(REFS[name]) in shown, ident
    assert "file not found" not in html
