"""The report's fidelity/diversity panel and the nearest reference image of each sample.

Hand-built scorecards (values chosen here) check the panel's placement of each number,
its reading sentence, the comparison's one row per card and that a card without these
metrics has no panel; the nearest reference of a sample (``per_sample.nearest_reference``)
is shown from the reference folder, pixel for pixel, beside the memorization hint. An end
to end run over real photo tiles checks that the runner names each sample's nearest
reference by its file, as brute force over the files' pool3 features finds it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from genmetrics.metric import MetricResult
from genmetrics.report import render_report
from genmetrics.report.fidelity import READING
from genmetrics.report.sections import MEMORIZATION
from genmetrics.scorecard import Scorecard
from tests import photos
from tests.test_report import box, expected_rank, parse, pictures

PANEL = "<h3>Fidelity and diversity</h3>"


def _result(name: str, value: float, family: str, n: int = 6,
            ci: tuple[float, float] | None = None) -> MetricResult:
    return MetricResult(name, value, n, True, "",
                        {"metric": family, "v": 1, "n": n, "genmetrics": "0"}, ci95=ci)


def _card(values: dict[str, float], **extra) -> Scorecard:
    families = {"precision": "precision_recall", "recall": "precision_recall",
                "density": "density_coverage", "coverage": "density_coverage",
                "vendi": "vendi", "psnr": "psnr"}
    results = {name: _result(name, value, families[name]) for name, value in values.items()}
    return Scorecard("image", extra.pop("inputs", {"samples": {"path": "s", "count": 6}}),
                     results, **extra)


def _panel(html: str) -> str:
    start = html.index(PANEL)
    return html[start:html.index("</table>", start)]


def _cells(panel: str) -> dict[str, str]:
    """The text of each value cell of a panel, by metric."""
    return {name: re.sub(r"<[^>]+>", " ", text).split()[0] for name, text in
            re.findall(r'<td class="num[^"]*" data-metric="([a-z]+)"[^>]*>(.*?)</td>', panel)}


def test_the_panel_puts_fidelity_beside_diversity_with_the_cards_values():
    card = _card({"precision": 0.8125, "recall": 0.3333, "density": 1.2468,
                  "coverage": 0.5, "vendi": 4.75, "psnr": 21.5})
    card.metrics["precision"].ci95 = (0.7, 0.9)
    html = render_report([card])
    panel = _panel(html)
    assert _cells(panel) == {"precision": "0.8125", "recall": "0.3333", "density": "1.2468",
                             "coverage": "0.5000", "vendi": "4.7500"}
    assert "0.7000 – 0.9000" in panel  # the CI under the value
    rows = re.findall(r"<tr>(.*?)</tr>", panel)
    # the header names the two sides; each row pairs a fidelity metric with a diversity one
    assert "Fidelity" in rows[0] and "Diversity" in rows[0]
    assert [re.findall(r'data-metric="([a-z]+)"', row) for row in rows[1:]] == [
        ["precision", "recall"], ["density", "coverage"], ["vendi"]]
    assert READING in html.replace("&#x27;", "'")
    assert "mode collapse" in READING and "exceed 1" in READING
    assert "psnr" not in panel  # other metrics stay in the metric table only


def test_an_unavailable_side_is_named_with_its_reason():
    reason = "precision needs reference feature rows; these statistics hold mu and sigma only"
    card = _card({"density": 0.9, "coverage": 0.75},
                 unavailable={"precision": reason, "recall": reason})
    html = render_report([card])
    panel = _panel(html)
    assert _cells(panel) == {"precision": "unavailable", "recall": "unavailable",
                             "density": "0.9000", "coverage": "0.7500", "vendi": "-"}
    assert f"precision: {reason}" in html


def test_a_card_without_these_metrics_has_no_panel():
    html = render_report([_card({"psnr": 21.5})])
    assert "Fidelity and diversity" not in html and READING not in html
    two = render_report([_card({"psnr": 21.5}), _card({"psnr": 23.0})])
    assert "Fidelity and diversity" not in two


def test_the_comparison_has_one_row_per_card():
    first = _card({"precision": 0.9, "recall": 0.2, "density": 1.4, "coverage": 0.3})
    second = _card({"precision": 0.7, "recall": 0.6, "density": 0.8, "coverage": 0.7,
                    "vendi": 5.5})
    third = _card({"psnr": 20.0})
    html = render_report([first, second, third])
    comparison = html[html.index('<h2 id="comparison">'):html.index('<section id="card1"')]
    table = _panel(comparison)
    rows = re.findall(r'<tr data-card="([^"]+)">(.*?)</tr>', table)
    assert [label for label, _ in rows] == ["card 1", "card 2", "card 3"]
    assert [_cells(row) for _, row in rows] == [
        {"precision": "0.9000", "density": "1.4000", "recall": "0.2000", "coverage": "0.3000",
         "vendi": "-"},
        {"precision": "0.7000", "density": "0.8000", "recall": "0.6000", "coverage": "0.7000",
         "vendi": "5.5000"},
        dict.fromkeys(("precision", "density", "recall", "coverage", "vendi"), "-")]
    # each card's own section has its panel too, the one without these metrics none
    assert html.count(PANEL) == 3


# ------------------------------------------------------------------ nearest references


@pytest.fixture(scope="module")
def photo_folders(tmp_path_factory) -> dict[str, Any]:
    """Samples (degraded photo tiles and an exact copy of a reference) and references."""
    root = tmp_path_factory.mktemp("nearest")
    tiles = photos.tiles(size=32, longer_side=96)
    samples, refs = root / "samples", root / "refs"
    samples.mkdir()
    (refs / "sub").mkdir(parents=True)  # a nested reference keeps its relative id
    for i, (name, tile) in enumerate(tiles[1:40:6]):
        photos.save_png(photos.noise(tile, std=20.0, seed=i), samples / f"s{i}-{name}.png")
    for name, tile in tiles[0:40:5]:
        photos.save_png(tile, (refs / "sub" if name.endswith("-0") else refs) / f"{name}.png")
    copied = sorted(refs.rglob("*.png"))[2]
    (samples / "copy.png").write_bytes(copied.read_bytes())  # a "memorized" reference
    return {"root": root, "samples": samples, "refs": refs,
            "copied": copied.relative_to(refs).with_suffix("").as_posix()}


def _rgb(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def _picture_keys(html: str) -> list[str]:
    return re.findall(r'class="pic (p[0-9a-f]{16}) thumb', html)


def test_worst_density_samples_are_shown_beside_their_named_nearest_reference(photo_folders):
    samples, refs = photo_folders["samples"], photo_folders["refs"]
    ids = sorted(p.stem for p in samples.iterdir())
    ref_ids = sorted(p.relative_to(refs).with_suffix("").as_posix() for p in refs.rglob("*.png"))
    density = [0.2 * (i % 5) for i in range(len(ids))]
    nearest = [ref_ids[(3 * i) % len(ref_ids)] for i in range(len(ids))]
    distance = [10.0 + i for i in range(len(ids))]
    card = _card({"density": 0.6}, inputs={
        "samples": {"path": str(samples), "count": len(ids)}, "reference": {"path": str(refs)}},
        per_sample={"ids": ids, "values": {"density": density}, "nearest_reference": {
            "density": {"ids": nearest, "distance": distance}}})
    card.metrics["density"].per_sample = density
    path = photo_folders["root"] / "card.json"
    card.save(path)  # the schema accepts the per-sample document
    html = render_report([path], k=3)
    worst, _ = expected_rank(density, ids, True, 3)
    assert parse(html).blocks[("density", "worst")] == worst
    found = pictures(html)
    for ident in worst:
        shown = box(html, "density", "worst", ident)
        keys = _picture_keys(shown)
        assert len(keys) == 2  # the sample and its nearest reference, no difference image
        index = ids.index(ident)
        np.testing.assert_array_equal(found[keys[0]], _rgb(samples / f"{ident}.png"))
        np.testing.assert_array_equal(found[keys[1]], _rgb(refs / f"{nearest[index]}.png"))
        assert f"<code>{nearest[index]}</code>" in shown
        assert f"distance {distance[index]:.2f}" in shown
    assert MEMORIZATION in html
    # the closest samples: smallest distances first
    closest = parse(html).blocks[("density", "closest")]
    assert closest == [ids[i] for i in np.argsort(distance, kind="stable")[:3]]


def test_unnamed_reference_rows_are_said_to_be_rows(photo_folders):
    samples = photo_folders["samples"]
    ids = sorted(p.stem for p in samples.iterdir())
    card = _card({"density": 0.6}, inputs={"samples": {"path": str(samples), "count": len(ids)},
                                           "reference_stats": {"stats": "skimage-photos"}},
                 per_sample={"ids": ids, "values": {"density": [1.0] * len(ids)},
                             "nearest_reference": {"density": {
                                 "rows": list(range(len(ids))), "distance": [5.0] * len(ids)}}})
    html = render_report([card], k=2)
    shown = box(html, "density", "worst", ids[0])
    assert "nearest reference:<br>row 0<br>of the reference statistics skimage-photos" in shown
    assert len(_picture_keys(shown)) == 1  # the sample alone
    assert MEMORIZATION in html


def _adm_batch(path: Path, refs: list[Path]) -> Path:
    """An ADM reference batch of the reference files: ``arr_0`` their pixels in file order,
    ``mu``/``sigma`` their pool3 moments."""
    arr_0 = np.stack([_rgb(p) for p in refs])
    pool3 = _pool3(refs)
    np.savez(path, arr_0=arr_0, mu=pool3.mean(0), sigma=np.cov(pool3, rowvar=False))
    return path


def _stats_card(samples: Path, ids: list[str], stats: dict[str, Any], rows: list[int],
                images: dict[str, str]) -> Scorecard:
    density = [0.2 * (i % 5) for i in range(len(ids))]
    card = _card({"density": 0.6}, inputs={
        "samples": {"path": str(samples), "count": len(ids)}, "reference_stats": stats},
        per_sample={"ids": ids, "values": {"density": density}, "nearest_reference": {
            "density": {"rows": rows, "distance": [4.0 + i for i in range(len(ids))],
                        "images": images}}})
    card.metrics["density"].per_sample = density
    return card


def test_rows_of_an_adm_batch_are_shown_as_their_images(photo_folders, tmp_path):
    samples = photo_folders["samples"]
    ids = sorted(p.stem for p in samples.iterdir())
    arr_0 = np.stack([photos.noise(np.full((24, 20, 3), 40 * i, np.uint8), 30.0, seed=i)
                      for i in range(6)])
    np.savez(tmp_path / "adm.npz", arr_0=arr_0, mu=np.zeros(2048), sigma=np.eye(2048))
    rows = [(5 * i) % 6 for i in range(len(ids))]
    stats = {"stats": "adm", "path": str(tmp_path / "adm.npz"), "format": "adm",
             "digest": "sha256:" + "0" * 64, "images": 6}
    card = _stats_card(samples, ids, stats, rows, {"path": "adm.npz", "array": "arr_0"})
    card.save(tmp_path / "card.json")  # the schema accepts the images entry
    html = render_report([tmp_path / "card.json"], k=3)  # "adm.npz": next to the card
    found = pictures(html)
    worst, _ = expected_rank(card.per_sample["values"]["density"], ids, True, 3)
    for ident in worst:
        shown = box(html, "density", "worst", ident)
        keys = _picture_keys(shown)
        assert len(keys) == 2 and "no image shown" not in shown
        row = rows[ids.index(ident)]
        np.testing.assert_array_equal(found[keys[1]], arr_0[row])
        assert f"<code>adm.npz arr_0[{row}]</code>" in shown
    closest = box(html, "density", "closest", ids[0])
    np.testing.assert_array_equal(found[_picture_keys(closest)[1]], arr_0[rows[0]])

    # the file gone, or changed since the run: said instead of a wrong picture
    for images, count, problem in (({"path": "gone.npz", "array": "arr_0"}, 6, "file not found"),
                                   ({"path": "adm.npz", "array": "arr_0"}, 7,
                                    "adm.npz changed since the run: arr_0 holds 6 images")):
        card = _stats_card(samples, ids, {**stats, "images": count}, rows, images)
        card.save(tmp_path / "card.json")
        shown = box(render_report([tmp_path / "card.json"], k=3), "density", "worst", worst[0])
        assert problem in shown and len(_picture_keys(shown)) == 1


def test_a_reference_id_is_looked_for_in_every_reference_folder(tmp_path):
    from genmetrics.report.media import SampleFinder

    for name, shade in (("a", 10), ("b", 200)):
        (tmp_path / name).mkdir()
        photos.save_png(np.full((4, 4, 3), shade, np.uint8), tmp_path / name / f"{name}1.png")
    finder = SampleFinder("image", {"reference": {"path": ["a", "b"]}}, [tmp_path])
    item = finder.reference_item("b1")
    assert item.problem is None and item.label == "b/b1"
    assert finder.reference_item("c1").problem == "file not found"
    nothing = SampleFinder("image", {"samples": {"path": "a"}}, [tmp_path])
    assert nothing.reference_item("a1").problem == "the scorecard names no reference folder"


# ------------------------------------------------------------------ end to end


def _pool3(paths: list[Path]) -> np.ndarray:
    """Pool3 features of ``paths`` by the shared FID Inception (its parity with
    torch-fidelity and the wheel's network is tests/test_inception.py's), in float64."""
    import torch

    from genmetrics.features.inception import get_extractor

    images = [torch.from_numpy(_rgb(p).copy()).permute(2, 0, 1) for p in paths]
    return get_extractor(device="cpu").extract(images)["2048"].astype(np.float64)


def test_a_run_names_each_samples_nearest_reference_file(photo_folders, tmp_path):
    """``score --per-sample`` on real photo tiles: each sample's nearest reference is the
    reference file that brute force over the Inception features of the files finds
    nearest, at its distance; the copied
    reference is found at distance ~0, first among the closest, and the report shows the
    worst density samples beside their nearest reference images."""
    from genmetrics.runner import score
    from tests.conftest import TEST_DEVICE

    samples, refs = photo_folders["samples"], photo_folders["refs"]
    card = score(samples, refs, modality="image", metrics=["density_coverage"],
                 per_sample=True, workers=0, device=TEST_DEVICE)
    assert "nearest_reference" not in card.metrics["density"].components  # moved, not kept
    nearest = card.per_sample["nearest_reference"]["density"]
    ids = card.per_sample["ids"]
    sample_files = [next(samples.glob(f"{i}.png")) for i in ids]
    ref_files = sorted(refs.rglob("*.png"))
    ref_ids = [p.relative_to(refs).with_suffix("").as_posix() for p in ref_files]
    both = _pool3(sample_files + ref_files)
    ours, theirs = both[:len(sample_files)], both[len(sample_files):]
    distances = np.linalg.norm(ours[:, None, :] - theirs[None, :, :], axis=2)
    assert nearest["ids"] == [ref_ids[j] for j in distances.argmin(axis=1)]
    np.testing.assert_allclose(nearest["distance"], distances.min(axis=1), rtol=1e-3,
                               atol=1e-2)
    copy = ids.index("copy")
    assert nearest["ids"][copy] == photo_folders["copied"]
    assert nearest["distance"][copy] < 1e-2 < min(np.delete(nearest["distance"], copy))

    path = tmp_path / "card.json"
    card.save(path)  # valid against the schema
    html = render_report([path], k=3)
    assert parse(html).blocks[("density", "closest")][0] == "copy"
    found = pictures(html)
    density = card.per_sample["values"]["density"]
    worst, _ = expected_rank(density, ids, True, 3)
    assert parse(html).blocks[("density", "worst")] == worst
    for ident in worst:
        keys = _picture_keys(box(html, "density", "worst", ident))
        reference = ref_files[ref_ids.index(nearest["ids"][ids.index(ident)])]
        np.testing.assert_array_equal(found[keys[1]], _rgb(reference))
    assert MEMORIZATION in html and PANEL in html


def test_against_an_adm_batch_the_nearest_reference_image_is_shown(photo_folders, tmp_path):
    """``score --reference-stats adm.npz --per-sample``: each sample's nearest reference is
    the ``arr_0`` row brute force finds nearest, the scorecard says where those rows'
    images are, and the report shows each worst density sample beside ``arr_0[row]``."""
    from genmetrics.runner import score
    from tests.conftest import TEST_DEVICE

    samples, refs = photo_folders["samples"], photo_folders["refs"]
    ref_files = sorted(refs.rglob("*.png"))
    adm = _adm_batch(tmp_path / "adm.npz", ref_files)
    card = score(samples, modality="image", reference_stats=adm, metrics=["density_coverage"],
                 per_sample=True, workers=0, device=TEST_DEVICE)
    nearest = card.per_sample["nearest_reference"]["density"]
    assert nearest["images"] == {"path": str(adm), "array": "arr_0"}
    ids = card.per_sample["ids"]
    both = _pool3([next(samples.glob(f"{i}.png")) for i in ids] + ref_files)
    ours, theirs = both[:len(ids)], both[len(ids):]
    distances = np.linalg.norm(ours[:, None, :] - theirs[None, :, :], axis=2)
    assert nearest["rows"] == distances.argmin(axis=1).tolist()
    np.testing.assert_allclose(nearest["distance"], distances.min(axis=1), rtol=1e-3,
                               atol=1e-2)

    path = tmp_path / "card.json"
    card.save(path)  # valid against the schema
    html = render_report([path], k=3)
    found = pictures(html)
    with np.load(adm) as data:
        arr_0 = data["arr_0"]
    density = card.per_sample["values"]["density"]
    worst, _ = expected_rank(density, ids, True, 3)
    for ident in worst:
        shown = box(html, "density", "worst", ident)
        keys = _picture_keys(shown)
        assert len(keys) == 2 and "no image shown" not in shown
        row = nearest["rows"][ids.index(ident)]
        np.testing.assert_array_equal(found[keys[1]], arr_0[row])
        assert f"adm.npz arr_0[{row}]" in shown
    assert parse(html).blocks[("density", "closest")][0] == "copy"
