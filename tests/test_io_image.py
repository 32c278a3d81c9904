"""The image reader: formats, colour policy, pairing, bad files, workers, arrays."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from genmetrics.errors import InputError
from genmetrics.io.common import Skipped
from genmetrics.io.image import ImageSource, decode_image
from tests.conftest import TEST_DEVICE
from tests.photos import tiles

TILES = dict(tiles()[:6])


def _save(image: np.ndarray | Image.Image, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = image if isinstance(image, Image.Image) else Image.fromarray(image)
    img.save(path, **kwargs)
    return path


def _pil_rgb(path: Path) -> np.ndarray:
    """What torch-fidelity feeds its network: Pillow's convert("RGB")."""
    return np.asarray(Image.open(path).convert("RGB"))


def _items(source) -> list:
    return list(source)


@pytest.mark.parametrize("suffix,kwargs", [(".png", {}), (".jpg", {"quality": 90}),
                                           (".webp", {"lossless": True}), (".bmp", {})])
def test_formats_decode_like_pillow_convert_rgb(tmp_path, suffix, kwargs):
    tile = next(iter(TILES.values()))
    path = _save(tile, tmp_path / f"a{suffix}", **kwargs)
    tensor = decode_image(path)
    assert tensor.dtype.is_floating_point is False and tuple(tensor.shape) == (3, 128, 128)
    assert np.array_equal(tensor.permute(1, 2, 0).numpy(), _pil_rgb(path))


def test_grayscale_palette_and_rgba_policies(tmp_path):
    tile = next(iter(TILES.values()))
    gray = _save(Image.fromarray(tile).convert("L"), tmp_path / "g.png")
    g = decode_image(gray).numpy()
    assert np.array_equal(g[0], g[1]) and np.array_equal(g[1], g[2])
    rgba = np.dstack([tile, np.full(tile.shape[:2], 7, np.uint8)])
    a = decode_image(_save(rgba, tmp_path / "a.png"))
    assert np.array_equal(a.permute(1, 2, 0).numpy(), tile)  # alpha dropped, colour kept
    pal = _save(Image.fromarray(tile).convert("P"), tmp_path / "p.png")
    assert np.array_equal(decode_image(pal).permute(1, 2, 0).numpy(), _pil_rgb(pal))


def test_pairs_by_relative_path_and_marks_size_mismatch(tmp_path):
    """A pair of two sizes keeps its sample (for FID/KID/IS); SSIM/PSNR fail it alone."""
    from genmetrics.io.common import Unusable

    (a, ta), (b, tb), (c, tc) = list(TILES.items())[:3]
    _save(ta, tmp_path / "s" / "x" / "1.png")
    _save(tb, tmp_path / "s" / "2.png")
    _save(tc, tmp_path / "s" / "3.png")
    _save(ta, tmp_path / "r" / "x" / "1.jpg", quality=95)
    _save(tb, tmp_path / "r" / "2.png")
    _save(tc[:64, :64], tmp_path / "r" / "3.png")
    source = ImageSource(tmp_path / "s", [tmp_path / "r"], workers=0)
    assert source.has_references
    items = _items(source)
    assert [i.id for i in items] == ["2", "3", "x/1"]
    unusable = items[1].reference
    assert isinstance(unusable, Unusable) and items[1].sample.shape[1] == 128
    assert "64x64" in unusable.reason and "128x128" in unusable.reason and items[1].warning
    assert any("JPEG" in w["message"] for w in source.warnings())


def test_unpaired_reference_folder_is_a_distribution_only(tmp_path):
    ta, tb = list(TILES.values())[:2]
    _save(ta, tmp_path / "s" / "1.png")
    _save(tb, tmp_path / "r" / "other.png")
    source = ImageSource(tmp_path / "s", [tmp_path / "r"], workers=0)
    assert not source.has_references and source.has_reference_set
    assert "1" in source.pairing_problem()
    items = _items(source)
    assert items[0].reference is None
    assert [i.id for i in source.reference_items()] == ["other"]


def test_bad_files_are_skipped_with_reasons(tmp_path):
    tile = next(iter(TILES.values()))
    good = _save(tile, tmp_path / "s" / "good.png")
    data = good.read_bytes()
    (tmp_path / "s" / "empty.png").write_bytes(b"")
    (tmp_path / "s" / "truncated.png").write_bytes(data[: len(data) // 2])
    buf = io.BytesIO()
    Image.fromarray(tile).save(buf, format="JPEG")
    (tmp_path / "s" / "cut.jpg").write_bytes(buf.getvalue()[:300])
    (tmp_path / "s" / "text.webp").write_text("not an image")
    items = _items(ImageSource(tmp_path / "s", [], workers=0))
    skipped = {i.path: i.reason for i in items if isinstance(i, Skipped)}
    assert set(skipped) == {"empty.png", "truncated.png", "cut.jpg", "text.webp"}
    assert all(reason.startswith("cannot decode") for reason in skipped.values())


def test_decompression_bomb_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    _save(next(iter(TILES.values())), tmp_path / "big.png")
    with pytest.raises(ValueError, match="too large"):
        decode_image(tmp_path / "big.png")


def test_duplicate_stems_are_skipped_and_empty_folder_is_refused(tmp_path):
    tile = next(iter(TILES.values()))
    _save(tile, tmp_path / "d" / "a.png")
    _save(tile, tmp_path / "d" / "a.bmp")
    _save(tile, tmp_path / "d" / "b.png")
    items = _items(ImageSource(tmp_path / "d", [], workers=0))
    assert [(i.path, i.reason) for i in items if isinstance(i, Skipped)] == [
        ("a.bmp", "two files named a (a.bmp, a.png): keep one"),
        ("a.png", "two files named a (a.bmp, a.png): keep one")]
    assert [i.id for i in items if not isinstance(i, Skipped)] == ["b"]
    (tmp_path / "e").mkdir()
    with pytest.raises(InputError, match="no images"):
        ImageSource(tmp_path / "e", [])


def test_workers_give_the_same_items_in_the_same_order(tmp_path):
    for i, tile in enumerate(list(TILES.values()) * 12):
        _save(tile, tmp_path / "s" / f"{i:03d}.png")
    direct = _items(ImageSource(tmp_path / "s", [], workers=0))
    pooled = _items(ImageSource(tmp_path / "s", [], workers=2))
    assert len(direct) == len(pooled) == 72
    for a, b in zip(direct, pooled, strict=True):
        assert a.id == b.id and bool((a.sample == b.sample).all())


def test_npy_and_npz_arrays(tmp_path):
    stack = np.stack(list(TILES.values())[:3])
    np.save(tmp_path / "x.npy", stack)
    np.savez(tmp_path / "x.npz", arr_0=stack)
    for name in ("x.npy", "x.npz"):
        items = _items(ImageSource(tmp_path / name, [], workers=0))
        assert [i.id for i in items] == [f"{name}#{k:06d}" for k in range(3)]
        assert np.array_equal(items[2].sample.permute(1, 2, 0).numpy(), stack[2])
    np.save(tmp_path / "f.npy", stack.astype(np.float32))
    with pytest.raises(InputError, match="uint8"):
        ImageSource(tmp_path / "f.npy", [])
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match="cannot read"):
        ImageSource(tmp_path / "o.npy", [])  # never unpickled


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400), keep=st.integers(0, 2000))
def test_fuzzed_bytes_never_raise(tmp_path, data, keep):
    """Arbitrary bytes, or a valid PNG cut anywhere, decode or become a Skipped item."""
    tile = next(iter(TILES.values()))
    buf = io.BytesIO()
    Image.fromarray(tile[:16, :16]).save(buf, format="PNG")
    folder = tmp_path / "fuzz"
    folder.mkdir(exist_ok=True)
    (folder / "a.png").write_bytes(data)
    (folder / "b.png").write_bytes(buf.getvalue()[:keep])
    for item in ImageSource(folder, [], workers=0):
        assert isinstance(item, Skipped) or tuple(item.sample.shape)[0] == 3


def test_deferred_jpeg_decoding_matches_pillow_keeps_order_and_skips_bad_files(tmp_path):
    """The GPU JPEG path (torchvision's batch decoder, run here on the CPU where it uses
    the same libjpeg-turbo as Pillow): same pixels, same order; a JPEG whose header reads
    but whose data is cut is decoded alone and skipped; CMYK and PNG go to Pillow."""
    tiles_ = list(TILES.values())
    _save(tiles_[0], tmp_path / "s" / "a.jpg", quality=85)
    _save(tiles_[1], tmp_path / "s" / "b.png")
    _save(Image.fromarray(tiles_[2]).convert("CMYK"), tmp_path / "s" / "c.jpg")
    _save(tiles_[3], tmp_path / "s" / "d.jpg", quality=60)
    good = (tmp_path / "s" / "d.jpg").read_bytes()
    (tmp_path / "s" / "e.jpg").write_bytes(good[: len(good) // 3])
    _save(tiles_[4][:, :, 0], tmp_path / "s" / "f.jpg")  # grayscale
    source = ImageSource(tmp_path / "s", [], workers=0)
    expected = _items(source)
    source.jpeg_device = TEST_DEVICE  # cuda under scripts/gpu_check.sh: nvJPEG
    deferred = _items(source)
    assert [getattr(i, "id", None) or i.path for i in deferred] == ["a", "b", "c", "d",
                                                                      "e.jpg", "f"]
    assert isinstance(deferred[4], Skipped) and "cannot decode" in deferred[4].reason
    for ours, pillow in zip(deferred, expected, strict=True):
        if not isinstance(ours, Skipped):
            assert ours.sample.dtype == pillow.sample.dtype
            assert ours.sample.shape == pillow.sample.shape, ours.id
            diff = (ours.sample.cpu().int() - pillow.sample.int()).abs()
            if TEST_DEVICE == "cpu":  # the same libjpeg-turbo: identical pixels
                assert int(diff.max()) == 0, ours.id
            else:  # nvJPEG's IDCT and chroma upsampling differ by rounding-level steps
                assert float(diff.float().mean()) < 1.0 and int(diff.max()) <= 16, ours.id


def test_lossy_webp_is_warned_about_like_jpeg_and_lossless_is_not(tmp_path):
    from PIL import Image

    (a, ta), (b, tb) = list(TILES.items())[:2]
    (tmp_path / "s").mkdir()
    Image.fromarray(ta).save(tmp_path / "s" / "lossy.webp", quality=80)
    Image.fromarray(tb).save(tmp_path / "s" / "exact.webp", lossless=True)
    Image.fromarray(tb).save(tmp_path / "s" / "photo.jpg", quality=90)
    messages = [w["message"] for w in ImageSource(tmp_path / "s", [], workers=0).warnings()]
    assert "1 sample image is lossy WebP: lossy compression alone moves FID; prefer PNG " \
           "(or lossless WebP)" in messages
    assert any(m.startswith("1 sample image is JPEG") for m in messages)
    (tmp_path / "s" / "lossy.webp").unlink()
    messages = [w["message"] for w in ImageSource(tmp_path / "s", [], workers=0).warnings()]
    assert not any("is lossy WebP" in m for m in messages)  # lossless WebP is exact
