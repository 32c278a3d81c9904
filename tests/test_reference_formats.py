"""Reference statistics formats: genmetrics (with spatial statistics), ADM reference
batches (``arr_0`` images + ``mu``/``sigma``/``mu_s``/``sigma_s``) and the plain
``mu``/``sigma`` files of pytorch-fid and clean-fid; small files of each kind are built
here from real photo tiles and the real weights, and scored through the API and the CLI.

Each file's statistics are written the way its tool writes them (mean and ``np.cov`` of
the features; pytorch-fid/clean-fid: float32 mean, float64 covariance), from the same
network's features, so FID and sFID against them equal FID and sFID against the
reference folder itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from genmetrics.errors import InputError, UsageError
from genmetrics.features.inception import POOL3, SPATIAL, InceptionExtractor
from genmetrics.reference_stats import build_stats, load_stats, save_stats
from genmetrics.runner import score
from tests.conftest import assert_one_line_error, cli_env
from tests.photos import DEGRADATIONS, save_png, tiles

N = 16  # images per side


@pytest.fixture(scope="module")
def sets(tmp_path_factory, real_weights) -> dict[str, Path]:
    """Sample and reference folders of real 128 x 128 tiles, the references also as an
    ADM reference batch and as a pytorch-fid statistics file."""
    root = tmp_path_factory.mktemp("formats")
    all_tiles = [tile for _, tile in tiles()]
    kinds = list(DEGRADATIONS.values())
    for side in ("samples", "refs"):
        (root / side).mkdir()
    refs = np.stack(all_tiles[60:60 + N])
    for i in range(N):
        save_png(kinds[i % 4](all_tiles[i]), root / "samples" / f"{i:02d}.png")
        save_png(refs[i], root / "refs" / f"{i:02d}.png")
    extractor = InceptionExtractor(real_weights, device="cpu")
    out = extractor.extract([torch.from_numpy(r).permute(2, 0, 1).contiguous() for r in refs])
    pool3, spatial = out[POOL3].astype(np.float64), out[SPATIAL].astype(np.float64)
    np.savez(root / "adm.npz", arr_0=refs, mu=pool3.mean(0), sigma=np.cov(pool3, rowvar=False),
             mu_s=spatial.mean(0), sigma_s=np.cov(spatial, rowvar=False))
    np.savez_compressed(root / "pytorch-fid.npz", mu=out[POOL3].mean(0),  # float32, as theirs
                        sigma=np.cov(out[POOL3], rowvar=False))
    return {"root": root, "samples": root / "samples", "refs": root / "refs",
            "adm": root / "adm.npz", "mu_sigma": root / "pytorch-fid.npz",
            "weights": real_weights, "pool3": out[POOL3]}


def _score(sets, **kwargs):
    return score(sets["samples"], modality="image", workers=0, device="cpu",
                 inception_weights=sets["weights"], **kwargs)


@pytest.fixture(scope="module")
def against_folder(sets):
    return score(sets["samples"], sets["refs"], modality="image", workers=0, device="cpu",
                 metrics=["fid", "sfid", "kid"], inception_weights=sets["weights"])


def test_adm_reference_batch(sets, against_folder):
    card = _score(sets, reference_stats=sets["adm"])
    assert {"fid", "sfid", "kid"} <= set(card.metrics) and not card.errors
    for name in ("fid", "sfid", "kid"):  # the same features as the folder's
        assert card.metrics[name].value == pytest.approx(against_folder.metrics[name].value,
                                                         rel=1e-6), name
        signature = card.metrics[name].signature
        assert signature["ref"] == "stats:adm" and signature["ref_format"] == "adm"
        assert signature["refs"] == load_stats(sets["adm"]).short_digest
    assert "reference_n" in card.metrics["fid"].components
    assert card.metrics["fid"].components["reference_n"] is None  # the file does not say
    doc = card.inputs["reference_stats"]
    assert doc["format"] == "adm" and doc["images"] == N and doc["digest"].startswith("sha256:")


def test_adm_images_are_extracted_once_through_the_cache(sets, monkeypatch):
    from genmetrics.metrics.image.kid import KID

    stats = load_stats(sets["adm"])
    assert stats.has_rows and stats.features is None and stats.images.count == N
    totals, done = [], []
    stats.progress = lambda total: totals.append(total) or done.append
    first, second = KID(device="cpu", weights=str(sets["weights"])), KID(
        device="cpu", weights=str(sets["weights"]))
    rows = stats.feature_rows(first)
    assert stats.feature_rows(second) is rows  # memoised: one pass for every metric
    assert rows.shape == (N, 2048) and rows.dtype == np.float32
    assert totals == [N] and sum(done) == N
    np.testing.assert_allclose(rows, sets["pool3"], rtol=0, atol=1e-5 * np.abs(rows).max())

    def no_network(*args, **kwargs):
        raise AssertionError("the network ran although the rows were cached")

    monkeypatch.setattr(InceptionExtractor, "extract", no_network)
    again = load_stats(sets["adm"]).feature_rows(first)  # a new run: from the feature cache
    np.testing.assert_array_equal(again, rows)


def _truncated_adm(path: Path, images: np.ndarray, mu: np.ndarray, sigma: np.ndarray,
                   claimed: int) -> Path:
    """An ADM reference batch whose ``arr_0`` header claims ``claimed`` images while the
    member holds ``images`` only (a file cut short when it was written): its header and
    statistics read, its images do not."""
    import zipfile

    header = np.lib.format.header_data_from_array_1_0(images)
    header["shape"] = (claimed, *images.shape[1:])
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("arr_0.npy", "w") as member:
            np.lib.format.write_array_header_1_0(member, header)
            member.write(images.tobytes())
        for key, value in (("mu", mu), ("sigma", sigma)):
            with archive.open(f"{key}.npy", "w") as member:
                np.lib.format.write_array(member, value)
    return path


def test_a_failed_extraction_is_kept_for_every_metric(sets, tmp_path, monkeypatch):
    """A truncated ``arr_0`` fails once: KID, precision/recall and density/coverage of the
    run all get the same error naming the file, and the file is read once."""
    from genmetrics.reference_stats import ReferenceStats

    with np.load(sets["adm"]) as adm:
        path = _truncated_adm(tmp_path / "cut.npz", adm["arr_0"][:5], adm["mu"], adm["sigma"],
                              claimed=N)
    stats = load_stats(path)
    assert stats.images.count == N
    tries = []
    extract = ReferenceStats._extract_rows
    monkeypatch.setattr(ReferenceStats, "_extract_rows",
                        lambda self, metric: tries.append(1) or extract(self, metric))
    card = _score(sets, reference_stats=path,
                  metrics=["fid", "kid", "precision_recall", "density_coverage"])
    assert "fid" in card.metrics and len(tries) == 1
    message = f"{path}: arr_0 is truncated (image 5 of {N})"
    knn = ("kid", "precision_recall", "density_coverage")
    assert {name: card.errors.get(name) for name in knn} == dict.fromkeys(knn, message)
    from genmetrics.metrics.image.kid import KID

    for _ in range(2):  # the API: a failure is kept on the statistics object
        with pytest.raises(InputError) as info:
            stats.feature_rows(KID(device="cpu", weights=str(sets["weights"])))
        assert str(info.value) == message
    assert len(tries) == 2


def test_an_unreadable_arr_0_is_an_input_error_naming_the_file(tmp_path):
    from genmetrics.reference_stats import ImageArray

    images = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    np.savez(tmp_path / "corrupt.npz", arr_0=images)  # stored: a flipped byte fails the CRC
    data = bytearray((tmp_path / "corrupt.npz").read_bytes())
    data[1000] ^= 0xFF
    (tmp_path / "corrupt.npz").write_bytes(bytes(data))
    cut = _truncated_adm(tmp_path / "cut.npz", images[:4], np.zeros(1), np.zeros(1), claimed=6)
    for path, reason in ((tmp_path / "corrupt.npz", "cannot read the images of arr_0 (Bad CRC"),
                         (cut, "arr_0 is truncated (image 4 of 6)")):
        array = ImageArray.open(path, "arr_0")
        with pytest.raises(InputError) as info:
            list(array.batches(4))
        assert str(info.value).startswith(f"{path}: {reason}")
    # rows (the report's): before the cut they read, past it the cut is said (a CRC is
    # checked only by reading to the end: Python 3.12+ seeks without reading)
    assert ImageArray.open(cut, "arr_0").rows([3, 1, 7]).keys() == {1, 3}
    with pytest.raises(InputError, match="arr_0 is truncated"):
        ImageArray.open(cut, "arr_0").rows([5])


def test_mu_sigma_files_give_fid_only(sets, against_folder):
    stats = load_stats(sets["mu_sigma"])
    assert stats.format == "mu-sigma" and stats.n is None and not stats.has_rows
    card = _score(sets, reference_stats=sets["mu_sigma"])
    assert card.metrics["fid"].value == pytest.approx(against_folder.metrics["fid"].value,
                                                      rel=1e-6)
    assert card.metrics["fid"].signature["ref_format"] == "mu-sigma"
    assert "pool3 statistics only" in card.unavailable["sfid"]
    assert "kid needs reference features" in card.unavailable["kid"]
    with pytest.raises(UsageError, match="sfid needs spatial reference statistics"):
        _score(sets, reference_stats=sets["mu_sigma"], metrics=["sfid"])


def test_genmetrics_statistics_hold_spatial_moments(sets, against_folder, tmp_path):
    path, entry = build_stats(sets["refs"], "refs", out_dir=tmp_path, device="cpu",
                              weights=str(sets["weights"]), batch_size=5)
    assert entry["spatial_dim"] == 2023 and entry["features_kept"]
    with np.load(path, allow_pickle=False) as data:  # n <= 2023 rows replace sigma_s
        assert {"mu_s", "features_s"} <= set(data.files) and "sigma_s" not in data.files
        rows = data["features_s"].astype(np.float64)
    stats = load_stats(path)
    assert stats.format == "genmetrics" and stats.n == N
    np.testing.assert_allclose(stats.sigma_s, np.cov(rows, rowvar=False), rtol=1e-9,
                               atol=1e-12 * np.abs(stats.sigma_s).max())
    card = _score(sets, reference_stats=path, metrics=["fid", "sfid", "kid"])
    for name in ("fid", "sfid", "kid"):
        assert card.metrics[name].value == pytest.approx(against_folder.metrics[name].value,
                                                         rel=1e-7), name
        assert card.metrics[name].signature["ref_format"] == "genmetrics"

    # a file written before sFID existed: FID and KID still work, sFID says why not
    old = tmp_path / "old.npz"
    save_stats(old, n=stats.n, mu=stats.mu, sigma=stats.sigma, features=stats.features,
               extractor=stats.extractor, source="old")
    card = _score(sets, reference_stats=old)
    assert {"fid", "kid"} <= set(card.metrics) and "sfid" not in card.metrics
    assert "built before sFID existed" in card.unavailable["sfid"]


def test_adm_images_stream_in_batches_from_plain_and_compressed_files(tmp_path):
    from genmetrics.reference_stats import ImageArray

    images = np.random.default_rng(0).integers(0, 256, (10, 5, 6, 3), dtype=np.uint8)
    for save in (np.savez, np.savez_compressed):  # ADM writes np.savez
        save(tmp_path / "a.npz", arr_0=images)
        array = ImageArray.open(tmp_path / "a.npz", "arr_0")
        parts = list(array.batches(3))
        assert array.count == 10 and [len(part) for part in parts] == [3, 3, 3, 1]
        np.testing.assert_array_equal(np.concatenate(parts), images)


def _bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    mu, sigma = np.zeros(2048), np.eye(2048)
    cases = {
        "dims-64": ({"mu": np.zeros(64, np.float32), "sigma": np.eye(64)},
                    "mu has shape (64,), expected (2048,)"),
        "float-images": ({"arr_0": images.astype(np.float32), "mu": mu, "sigma": sigma},
                         "arr_0 must hold uint8 N x H x W x 3 images"),
        "sample-batch": ({"arr_0": images}, "no statistics (mu, sigma)"),
        "spatial-size": ({"arr_0": images, "mu": mu, "sigma": sigma, "mu_s": np.zeros(2048),
                          "sigma_s": np.eye(2048)}, "mu_s has shape (2048,), expected (2023,)"),
        "no-mu": ({"sigma": sigma}, "reference statistics need mu and sigma"),
        "nan": ({"mu": np.full(2048, np.nan), "sigma": sigma}, "mu holds NaN"),
    }
    out = {}
    for name, (arrays, message) in cases.items():
        np.savez(folder / f"{name}.npz", **arrays)
        out[name] = (folder / f"{name}.npz", message)
    np.save(folder / "array.npy", mu)
    out["npy"] = (folder / "array.npy", "a single array")
    return out


def test_files_that_do_not_fit_are_refused_naming_the_file(tmp_path):
    for name, (path, message) in _bad_files(tmp_path).items():
        with pytest.raises(InputError, match="not a statistics file|a single array") as info:
            load_stats(path)
        assert str(path) in str(info.value) and message in str(info.value), name
        assert "\n" not in str(info.value)


def test_cli_scores_an_adm_batch_and_refuses_a_64_dim_file(sets, run_cli, tmp_path):
    out = tmp_path / "card.json"
    done = run_cli("score", "-m", "image", sets["samples"], "--reference-stats", sets["adm"],
                   "--inception-weights", sets["weights"], "--workers", "0", "--out", out,
                   env=cli_env(COLUMNS="250"))
    assert done.returncode == 0, done.stderr
    card = json.loads(out.read_text())
    assert {"fid", "sfid", "kid"} <= set(card["metrics"])
    assert card["metrics"]["sfid"]["signature"]["ref_format"] == "adm"
    bad, message = _bad_files(tmp_path)["dims-64"]
    done = run_cli("score", "-m", "image", sets["samples"], "--reference-stats", bad,
                   "--inception-weights", sets["weights"], "--workers", "0")
    assert_one_line_error(done, str(bad), message, "pytorch-fid --dims")
