"""The bad-input matrix for images and for paths and folders (issue 8).

Each case has one defined behaviour (see docs_bad_input_image_paths.md): skipped with its
path (relative to the input folder) and reason under the default ``on_error="skip"``, and a
one-line InputError naming it under ``"fail"``; or scored by a stated policy; or a fatal
error. With the bad files removed the values equal a clean run's exactly (same digests too).
Cheap metrics: Inception Score (random weights, 2 splits), SSIM and PSNR on 32 x 32
images, on the CPU, decoded in this process; the session's feature cache keeps the
Inception passes few.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from genmetrics.errors import InputError, UsageError
from genmetrics.io.common import Skipped, discover
from genmetrics.io.image import ImageSource, decode_image
from genmetrics.runner import score
from genmetrics.scorecard import Scorecard
from tests.conftest import assert_one_line_error, write_files

SIDE = 32
N_GOOD = 4
METRICS = ("inception_score", "ssim", "psnr")
_RNG = np.random.default_rng(8)
SAMPLES = [_RNG.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8) for _ in range(N_GOOD)]
REFS = [np.clip(s.astype(int) + _RNG.integers(-40, 41, s.shape), 0, 255).astype(np.uint8)
        for s in SAMPLES]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# -- file makers ---------------------------------------------------------------------------
def _encode(image: np.ndarray | Image.Image, fmt: str, **kwargs) -> bytes:
    img = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _animated(fmt: str, frames: int = 3) -> bytes:
    images = [Image.fromarray(a) for a in SAMPLES[:frames]]
    return _encode(images[0], fmt, save_all=True, append_images=images[1:])


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, depth: int, colour: int, pixels: bytes = b"") -> bytes:
    """A PNG written by hand: IHDR, one IDAT of ``pixels`` (filter 0 per row) when given."""
    head = PNG_SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth,
                                                      colour, 0, 0, 0))
    idat = _chunk(b"IDAT", zlib.compress(pixels)) if pixels else b""
    return head + idat + _chunk(b"IEND", b"")


def _png16(array: np.ndarray) -> bytes:
    """A 16-bit PNG of ``array`` (H x W gray or H x W x 3 RGB, uint16)."""
    colour = 0 if array.ndim == 2 else 2
    rows = array.astype(">u2").reshape(array.shape[0], -1)
    return _png(array.shape[1], array.shape[0], 16, colour,
                b"".join(b"\x00" + row.tobytes() for row in rows))


def _huge_jpeg(width: int, height: int) -> bytes:
    """A real JPEG whose frame header claims ``width x height`` (nothing that large is
    allocated: Pillow refuses at open)."""
    data = bytearray(_encode(SAMPLES[0], "JPEG"))
    at = data.index(b"\xff\xc0")  # baseline frame header: length, precision, height, width
    data[at + 5: at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


GOOD_PNG = _encode(SAMPLES[0], "PNG")
GOOD_JPG = _encode(SAMPLES[1], "JPEG", quality=90)


# -- scoring -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def weights(random_weights) -> Path:
    return random_weights()


def _write_good(root: Path) -> tuple[Path, Path]:
    for i, (sample, ref) in enumerate(zip(SAMPLES, REFS, strict=True)):
        write_files(root, {f"s/{i}.png": _encode(sample, "PNG"),
                           f"r/{i}.png": _encode(ref, "PNG")})
    return root / "s", root / "r"


def _score(weights: Path, samples: Path | str, refs: Path | str | None = None,
           metrics: tuple[str, ...] = METRICS, **kwargs) -> Scorecard:
    inception = any(m in ("inception_score", "fid", "kid") for m in metrics)
    options = {"inception_score": {"splits": 2}} if "inception_score" in metrics else {}
    if "kid" in metrics:
        options["kid"] = {"subset_size": 3}
    return score(samples, refs, modality="image", metrics=list(metrics), options=options,
                 inception_weights=weights if inception else None, device="cpu", workers=0,
                 per_sample=True, **kwargs)


def _values(card: Scorecard) -> dict:
    return {name: (r.value, r.per_sample) for name, r in card.metrics.items()}


@pytest.fixture(scope="module")
def clean(tmp_path_factory, weights) -> Scorecard:
    """IS, SSIM and PSNR of the good files alone."""
    samples, refs = _write_good(tmp_path_factory.mktemp("clean"))
    card = _score(weights, samples, refs)
    assert card.errors == {} and card.skipped == [] and card.per_sample["ids"] == list("0123")
    assert all(card.metrics[m].value == card.metrics[m].value for m in METRICS)  # not NaN
    return card


def _assert_same_as_clean(card: Scorecard, clean: Scorecard) -> None:
    assert card.errors == {}
    assert card.per_sample["ids"] == clean.per_sample["ids"]
    assert _values(card) == _values(clean)
    assert card.inputs["samples"]["digest"] == clean.inputs["samples"]["digest"]


@pytest.fixture
def deny(monkeypatch) -> Callable[[Path], None]:
    """Make a file unreadable or a folder unlistable: a real chmod 000 when not root;
    as root (CI), where chmod does not stop reads, a simulated EACCES for that path."""
    import pathlib

    restore: list[tuple[Path, int]] = []

    def deny(path: Path) -> None:
        if os.geteuid() != 0:
            restore.append((path, path.stat().st_mode))
            path.chmod(0)
        elif path.is_dir():
            real_scandir = os.scandir

            def scandir(target=".", _real=real_scandir):
                if Path(target) == path:
                    raise PermissionError(13, "Permission denied", str(target))
                return _real(target)

            monkeypatch.setattr(os, "scandir", scandir)
        else:
            real_read = pathlib.Path.read_bytes

            def read_bytes(self, _real=real_read):
                if self == path:
                    raise PermissionError(13, "Permission denied", str(self))
                return _real(self)

            monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)

    yield deny
    for path, mode in restore:
        path.chmod(mode)


def _files(files: dict[str, bytes], reasons: dict[str, str]):
    def setup(samples: Path, deny: Callable[[Path], None]) -> dict[str, str]:
        write_files(samples, files)
        return reasons
    return setup


def _broken_link(samples: Path, deny) -> dict[str, str]:
    (samples / "gone.png").symlink_to(samples / "nowhere.png")
    return {"gone.png": "broken symbolic link (points to "}


def _unreadable_file(samples: Path, deny) -> dict[str, str]:
    write_files(samples, {"locked.png": GOOD_PNG})
    deny(samples / "locked.png")
    return {"locked.png": "cannot read: permission denied"}


def _unlistable_folder(samples: Path, deny) -> dict[str, str]:
    write_files(samples, {"private/z.png": GOOD_PNG})
    deny(samples / "private")
    return {"private": "cannot list folder: permission denied; its files are not read"}


DUPLICATE = "two files named a (a.jpg, a.png): keep one"
BAD = {
    "zero-byte": _files({"empty.png": b""},
                        {"empty.png": "cannot decode image: empty file (0 bytes)"}),
    "truncated-png": _files({"cut.png": GOOD_PNG[: len(GOOD_PNG) // 2]},
                            {"cut.png": "cannot decode image: "}),
    "truncated-jpeg": _files({"cut.jpg": GOOD_JPG[: len(GOOD_JPG) // 2]},
                             {"cut.jpg": "cannot decode image: "}),
    "text-named-png": _files({"notes.png": b"just some notes\n"},
                             {"notes.png": "cannot decode image: not a recognised image file"}),
    "animated-gif": _files({"anim.gif": _animated("GIF")},
                           {"anim.gif": "animated image (3 frames): save one frame as PNG"}),
    "animated-png": _files({"anim.png": _animated("PNG", 2)},
                           {"anim.png": "animated image (2 frames): save one frame as PNG"}),
    "animated-webp": _files({"anim.webp": _animated("WEBP")},
                            {"anim.webp": "animated image (3 frames)"}),
    "huge-png": _files({"huge.png": _png(100_000, 100_000, 8, 2)},
                       {"huge.png": "too large to decode safely"}),
    "huge-png-over-the-warning-limit": _files({"huge.png": _png(10_000, 10_000, 8, 2)},
                                              {"huge.png": "too large to decode safely"}),
    "huge-jpeg": _files({"huge.jpg": _huge_jpeg(60_000, 60_000)},
                        {"huge.jpg": "too large to decode safely"}),
    "duplicate-stem": _files({"a.png": GOOD_PNG, "a.jpg": GOOD_JPG},
                             {"a.jpg": DUPLICATE, "a.png": DUPLICATE}),
    "nested-unicode-names": _files({"sub dir/ü/é mpty 猫.png": b""},
                                   {"sub dir/ü/é mpty 猫.png": "empty file (0 bytes)"}),
    "broken-link": _broken_link,
    "unreadable-file": _unreadable_file,
    "unlistable-folder": _unlistable_folder,
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_skipped_by_default_and_stops_the_run_under_fail(
        case, tmp_path, weights, clean, deny):
    samples, refs = _write_good(tmp_path)
    reasons = BAD[case](samples, deny)
    card = _score(weights, samples, refs)
    skipped = {entry["path"]: entry["reason"] for entry in card.skipped}
    assert sorted(skipped) == sorted(reasons)
    for path, fragment in reasons.items():
        assert fragment in skipped[path], (path, skipped[path])
    _assert_same_as_clean(card, clean)
    with pytest.raises(InputError) as raised:
        _score(weights, samples, refs, on_error="fail")
    message = str(raised.value)
    first = sorted(reasons)[0]
    assert message.startswith(f"{first}: {skipped[first]} (stopped by --on-error fail")
    assert "\n" not in message


# -- images that are scored, by a stated policy ---------------------------------------------
def _torch_fidelity_pixels(path: Path) -> np.ndarray:
    """What torch-fidelity's image-folder dataset feeds its network (H x W x 3)."""
    import warnings

    from torch_fidelity.datasets import ImagesPathDataset

    with warnings.catch_warnings():  # Pillow's note on palette transparency
        warnings.simplefilter("ignore", UserWarning)
        return ImagesPathDataset([str(path)])[0].permute(1, 2, 0).numpy()


def _hwc(tensor) -> np.ndarray:
    return tensor.permute(1, 2, 0).numpy()


def test_cmyk_jpeg_palette_png_and_single_frame_gif_decode_as_torch_fidelity(tmp_path):
    rgba = np.dstack([SAMPLES[2], np.arange(SIDE * SIDE).reshape(SIDE, SIDE) % 256]).astype(
        np.uint8)
    palette_alpha = Image.fromarray(rgba, "RGBA").quantize(64)  # P with a tRNS table
    write_files(tmp_path, {
        "cmyk.jpg": _encode(Image.fromarray(SAMPLES[0]).convert("CMYK"), "JPEG"),
        "palette.png": _encode(Image.fromarray(SAMPLES[1]).convert("P"), "PNG"),
        "palette_alpha.png": _encode(palette_alpha, "PNG"),
        "one_frame.gif": _encode(SAMPLES[3], "GIF"),
    })
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    assert "transparency" in Image.open(tmp_path / "palette_alpha.png").info
    items = list(ImageSource(tmp_path, [], workers=0))
    assert [i.id for i in items] == ["cmyk", "one_frame", "palette", "palette_alpha"]
    for item, name in zip(items, ["cmyk.jpg", "one_frame.gif", "palette.png",
                                  "palette_alpha.png"], strict=True):
        assert item.warning is None
        np.testing.assert_array_equal(_hwc(item.sample), _torch_fidelity_pixels(tmp_path / name))
    gif = _hwc(items[1].sample).astype(int)  # a 256-colour GIF of noise: close, not equal
    assert np.abs(gif - SAMPLES[3]).mean() < 40


def test_sixteen_bit_pngs_are_scaled_with_a_warning_naming_the_file(tmp_path, weights):
    """Gray: round(x / 257), where Pillow's convert (torch-fidelity's loader) clips at 255;
    colour: Pillow's high byte, as torch-fidelity. The warning survives a cached rerun."""
    rng = np.random.default_rng(16)
    gray = rng.integers(0, 65536, (SIDE, SIDE), dtype=np.uint16)
    gray[0, :4] = [0, 128, 129, 65535]  # rounding edges: 0, 0, 1, 255
    colour = rng.integers(0, 65536, (SIDE, SIDE, 3), dtype=np.uint16)
    write_files(tmp_path / "s", {"g16.png": _png16(gray), "c16.png": _png16(colour)})
    assert Image.open(tmp_path / "s" / "g16.png").mode == "I;16"
    items = {i.id: i for i in ImageSource(tmp_path / "s", [], workers=0)}
    expected = np.round(gray / 257).astype(np.uint8)
    assert list(expected[0, :4]) == [0, 0, 1, 255]
    np.testing.assert_array_equal(_hwc(items["g16"].sample), np.dstack([expected] * 3))
    clipped = _torch_fidelity_pixels(tmp_path / "s" / "g16.png")
    assert (clipped == 255).mean() > 0.9  # the silently wrong picture we do not use
    np.testing.assert_array_equal(_hwc(items["c16"].sample), (colour >> 8).astype(np.uint8))
    np.testing.assert_array_equal(_hwc(items["c16"].sample),
                                  _torch_fidelity_pixels(tmp_path / "s" / "c16.png"))
    for _ in range(2):  # the second run reads the features from the cache, not the pixels
        card = _score(weights, tmp_path / "s", metrics=("inception_score",))
        notes = {w["path"]: w["message"] for w in card.warnings}
        assert notes["g16"] == "g16.png: 16-bit grayscale PNG scaled to 8 bits as round(x / 257)"
        assert notes["c16"].startswith("c16.png: 16-bit PNG reduced to 8 bits by Pillow")
    assert card.inputs["feature_cache"]["hits"] == 2


def test_one_pixel_images_count_for_is_and_psnr_and_fail_in_ssim(tmp_path, weights, clean):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    samples, refs = _write_good(tmp_path)
    tiny, tiny_ref = np.full((1, 1, 3), 200, np.uint8), np.full((1, 1, 3), 180, np.uint8)
    write_files(tmp_path, {"s/tiny.png": _encode(tiny, "PNG"),
                           "r/tiny.png": _encode(tiny_ref, "PNG")})
    for on_error in ("skip", "fail"):  # an image that is scored is no input error
        card = _score(weights, samples, refs, on_error=on_error)
        assert card.skipped == [] and card.errors == {}
        assert card.per_sample["ids"] == [*"0123", "tiny"]
        ssim = card.metrics["ssim"]
        assert ssim.per_sample == [*clean.metrics["ssim"].per_sample, None]
        assert ssim.value == clean.metrics["ssim"].value
        assert ssim.components["failed"][0]["index"] == 4
        assert "smaller than 11x11" in ssim.components["failed"][0]["reason"]
        with pytest.raises(ValueError):  # scikit-image refuses it too
            structural_similarity(tiny, tiny_ref, channel_axis=-1, gaussian_weights=True,
                                  sigma=1.5, use_sample_covariance=False, data_range=255)
        psnr = card.metrics["psnr"].per_sample[4]
        assert abs(psnr - peak_signal_noise_ratio(tiny_ref, tiny, data_range=255)) < 1e-9
        assert card.metrics["inception_score"].value != clean.metrics["inception_score"].value


def test_one_pixel_images_are_resized_for_inception_as_torch_fidelity_does(tmp_path, weights):
    """FID, KID and IS see a 1 x 1 (or 2 x 3) image as torch-fidelity does: the TF1
    bilinear resize to 299 x 299 of the decoded pixels, bit for bit (the network after
    the resize is compared with torch-fidelity's in test_inception.py)."""
    import torch
    from torch_fidelity.interpolate_compat_tensorflow import (
        interpolate_bilinear_2d_like_tensorflow1x as tf1_resize,
    )

    from genmetrics.features.inception import _tf1_resize_nhwc, get_extractor

    write_files(tmp_path, {"a.png": _encode(np.full((1, 1, 3), (200, 30, 90), np.uint8), "PNG"),
                           "b.png": _encode(SAMPLES[0][:2, :3], "PNG")})
    images = [decode_image(tmp_path / "a.png"), decode_image(tmp_path / "b.png")]
    assert [tuple(i.shape) for i in images] == [(3, 1, 1), (3, 2, 3)]
    for image in images:
        theirs = tf1_resize(image[None].float(), size=(299, 299), align_corners=False)
        assert torch.equal(_tf1_resize_nhwc(image[None], 299), theirs)
    features = get_extractor(str(weights), "cpu").extract(images)
    assert features["2048"].shape == (2, 2048) and np.isfinite(features["2048"]).all()


# -- paths and folders ----------------------------------------------------------------------
def test_symlink_loops_terminate_without_duplicates_and_are_named(tmp_path, weights, clean):
    samples, refs = _write_good(tmp_path)
    (samples / "loop").symlink_to(samples)  # the folder into itself
    (samples / "sub").mkdir()
    (samples / "sub" / "up").symlink_to("../..")  # above the input folder: also a loop
    for on_error in ("skip", "fail"):
        card = _score(weights, samples, refs, on_error=on_error)
        _assert_same_as_clean(card, clean)
        assert card.skipped == []
        loops = [w["message"] for w in card.warnings if "symlink loop" in w["message"]]
        assert len(loops) == 2
        assert loops[0].startswith(f"samples: symlink loop: loop -> {samples.resolve()}")
        assert loops[1].startswith("samples: symlink loop: sub/up -> ")


def test_folder_links_outside_the_input_are_followed_once(tmp_path):
    write_files(tmp_path, {"outside/x.png": GOOD_PNG, "s/sub/y.png": GOOD_PNG})
    samples = tmp_path / "s"
    (samples / "ext").symlink_to(tmp_path / "outside")
    (samples / "ext2").symlink_to(tmp_path / "outside")  # the same folder again
    (samples / "alias").symlink_to(samples / "sub")  # inside: read as sub/ already
    found = discover(samples, [".png"])
    assert list(found.files) == ["ext/x", "sub/y"]
    assert [n.split(" -> ")[0] for n in found.notes] == ["alias", "ext2"]
    assert "a folder inside the input" in found.notes[0]
    assert found.notes[1].endswith("the same folder as ext; not followed")


def test_names_with_spaces_and_unicode_keep_their_ids(tmp_path, weights, clean):
    """A name that is not valid UTF-8 (bytes kept by Python as surrogates) is written with
    ``\\xNN`` escapes, so the scorecard can be saved as UTF-8 JSON."""
    names = ["0 a b.png", "1 ü.png", "2 猫.png", os.fsdecode(b"3 caf\xe9.png")]
    for name, sample, ref in zip(names, SAMPLES, REFS, strict=True):
        write_files(tmp_path, {f"s/{name}": _encode(sample, "PNG"),
                               f"r/{name}": _encode(ref, "PNG")})
    write_files(tmp_path / "s", {os.fsdecode(b"sub \xff/\xfe.png"): b""})
    card = _score(weights, tmp_path / "s", tmp_path / "r")
    ids = ["0 a b", "1 ü", "2 猫", "3 caf\\xe9"]
    assert card.per_sample["ids"] == ids
    assert card.skipped == [{"path": "sub \\xff/\\xfe.png",
                             "reason": "cannot decode image: empty file (0 bytes)"}]
    card.save(tmp_path / "card.json")
    assert _values(card) == _values(clean)
    assert Scorecard.load(tmp_path / "card.json").per_sample["ids"] == ids


def test_empty_folders_are_fatal_and_name_what_they_hold(tmp_path, weights):
    (tmp_path / "empty").mkdir()
    write_files(tmp_path, {"texts/notes.txt": "hello", "texts/sub/meta.json": "{}"})
    for on_error in ("skip", "fail"):
        with pytest.raises(InputError, match="no images .* found in .*empty$"):
            _score(weights, tmp_path / "empty", on_error=on_error)
        with pytest.raises(InputError, match=r"holds 2 other file\(s\): notes.txt, sub/meta"):
            _score(weights, tmp_path / "texts", on_error=on_error)


def test_files_with_other_extensions_are_named_in_a_warning(tmp_path, weights, clean):
    samples, refs = _write_good(tmp_path)
    write_files(samples, {"notes.txt": "x", "meta/info.json": "{}", "arr.npy": b"\x93NUMPY"})
    card = _score(weights, samples, refs)
    _assert_same_as_clean(card, clean)
    message = next(w["message"] for w in card.warnings if "were not read" in w["message"])
    assert message.startswith("samples: 3 file(s) without an input extension (.png, ")
    assert message.endswith("were not read: arr.npy, meta/info.json, notes.txt")


def test_a_reference_missing_for_some_samples_fails_only_those_pairs(tmp_path, weights, clean):
    samples, refs = _write_good(tmp_path)
    write_files(samples, {"extra.png": _encode(REFS[0][::-1], "PNG")})
    card = _score(weights, samples, refs)
    alone = _score(weights, samples, metrics=("inception_score",))
    assert card.skipped == [] and card.per_sample["ids"] == [*"0123", "extra"]
    assert card.metrics["inception_score"].value == alone.metrics["inception_score"].value
    reason = f"no reference named extra in {refs}"
    for name in ("ssim", "psnr"):
        result = card.metrics[name]
        assert result.value == clean.metrics[name].value
        assert result.per_sample == [*clean.metrics[name].per_sample, None]
        assert result.components["failed"] == [{"index": 4, "id": "extra", "reason": reason}]
    assert {"path": "extra", "message": f"{reason}: not compared by SSIM/PSNR"} in card.warnings
    strict = ImageSource(samples, [refs], workers=0)  # what the runner sets under fail
    strict.strict_pairs = True
    assert list(strict)[-1] == Skipped("extra.png", reason)


def test_a_reference_name_that_cannot_be_used_fails_its_pair_with_the_reason(tmp_path):
    from genmetrics.io.common import Unusable

    samples, refs = _write_good(tmp_path)
    write_files(samples, {"extra.png": GOOD_PNG})
    (refs / "extra.png").symlink_to(refs / "nowhere.png")
    broken = f"broken symbolic link (points to {refs / 'nowhere.png'})"
    source = ImageSource(samples, [refs], workers=0)
    assert source.unpaired == []
    extra = list(source)[-1]
    assert extra.id == "extra" and extra.reference == Unusable(f"reference extra.png: {broken}")
    assert list(source.reference_items())[-1] == Skipped("extra.png", broken)


def test_a_reference_folder_that_pairs_half_or_fewer_is_a_distribution_only(tmp_path, weights):
    samples, refs = _write_good(tmp_path)
    write_files(samples, {f"x{i}.png": GOOD_PNG for i in range(4)})
    source = ImageSource(samples, [refs], workers=0)
    assert not source.has_references and source.has_reference_set
    with pytest.raises(UsageError, match=r"4 of 8 sample\(s\) have no reference .*x0, x1"):
        _score(weights, samples, refs, metrics=("ssim",))


def test_bad_reference_files_relative_paths_and_duplicate_reference_names(
        tmp_path, weights, monkeypatch):
    """KID's reference distribution skips bad references, named relative to the reference
    folder (also when the folders are given as relative paths); a reference name held by
    two files fails that pair in SSIM and skips both files from the distribution."""
    _write_good(tmp_path / "clean")
    _write_good(tmp_path / "bad")
    write_files(tmp_path / "bad" / "r", {"sub/deep/empty.png": b"", "0.jpg": GOOD_JPG})
    monkeypatch.chdir(tmp_path)
    clean_card = _score(weights, "clean/s", "clean/r", metrics=("kid", "ssim"))
    card = _score(weights, "bad/s", "bad/r", metrics=("kid", "ssim"))
    duplicate = "two files named 0 (0.jpg, 0.png): keep one"
    assert card.skipped == [
        {"path": "0.jpg", "reason": f"reference image: {duplicate}"},
        {"path": "0.png", "reason": f"reference image: {duplicate}"},
        {"path": "sub/deep/empty.png",
         "reason": "reference image: cannot decode image: empty file (0 bytes)"}]
    clean_refs = tmp_path / "clean" / "r"
    (clean_refs / "0.png").unlink()  # the distribution without the two files named 0
    fewer = _score(weights, "clean/s", "clean/r", metrics=("kid",))
    assert card.metrics["kid"].value == fewer.metrics["kid"].value
    ssim = card.metrics["ssim"]
    assert ssim.per_sample == [None, *clean_card.metrics["ssim"].per_sample[1:]]
    assert ssim.components["failed"] == [{"index": 0, "id": "0",
                                          "reason": f"reference: {duplicate}"}]
    with pytest.raises(InputError, match=r"^0.jpg: reference image: two files named 0"):
        _score(weights, "bad/s", "bad/r", metrics=("kid",), on_error="fail")


def test_cli_fail_and_empty_folder_are_one_line_errors(tmp_path, run_cli):
    samples, refs = _write_good(tmp_path)
    write_files(samples, {"sub/empty.png": b""})
    done = run_cli("score", samples, "--reference", refs, "--metrics", "psnr",
                   "--on-error", "fail", "--out", tmp_path / "card.json", "-q")
    assert_one_line_error(done, "error: sub/empty.png: cannot decode image: empty file",
                          "--on-error fail")
    (tmp_path / "nothing").mkdir()
    done = run_cli("score", tmp_path / "nothing", "--modality", "image", "--reference", refs,
                   "--metrics", "psnr", "--out", tmp_path / "card2.json", "-q")
    assert_one_line_error(done, "no images", "nothing")


# -- property: the reader never raises on arbitrary bytes ----------------------------------
VALID = [GOOD_PNG, GOOD_JPG, _animated("GIF"), _encode(SAMPLES[2], "GIF"),
         _png16(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000),
         _encode(Image.fromarray(SAMPLES[0]).convert("CMYK"), "JPEG")]


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".png", ".jpg", ".gif"]),
       base=st.sampled_from(range(len(VALID))), cut=st.integers(0, 4000),
       flips=st.lists(st.tuples(st.integers(0, 3999), st.integers(0, 255)), max_size=6))
def test_arbitrary_or_damaged_bytes_yield_an_image_or_a_skip(tmp_path, data, suffix, base,
                                                             cut, flips):
    damaged = bytearray(VALID[base][: max(cut, 1)])
    for at, value in flips:
        damaged[at % len(damaged)] = value
    folder = tmp_path / "fuzz"
    shutil.rmtree(folder, ignore_errors=True)  # each example alone (a.png + a.jpg would pair)
    write_files(folder, {f"a{suffix}": data, f"b{suffix}": bytes(damaged)})
    items = list(ImageSource(folder, [], workers=0))
    assert len(items) == 2
    for item in items:
        if isinstance(item, Skipped):
            assert item.path in (f"a{suffix}", f"b{suffix}") and item.reason
        else:
            assert item.sample.dtype.is_floating_point is False
            assert item.sample.ndim == 3 and item.sample.shape[0] == 3
