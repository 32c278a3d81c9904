"""Audio input: formats, bit depths, mix-down, pairing, rates, lengths and bad files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genmetrics.errors import InputError
from genmetrics.io.audio import AudioPair, open_audio, resample
from genmetrics.io.common import Skipped

RATE = 16000


def tone(seconds=0.5, rate=RATE, freq=440.0, amp=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def write(path: Path, data, rate=RATE, subtype=None, fmt=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, rate, subtype=subtype, format=fmt)
    return path


def items(source):
    return list(source)


@pytest.mark.parametrize("suffix, subtype, tol", [
    (".wav", "PCM_U8", 1 / 127), (".wav", "PCM_16", 1 / 32767), (".wav", "PCM_24", 1e-6),
    (".wav", "FLOAT", 1e-7), (".flac", "PCM_16", 1 / 32767), (".ogg", "VORBIS", 0.05),
])
def test_formats_and_bit_depths_decode_to_float(tmp_path, suffix, subtype, tol):
    wave = tone()
    write(tmp_path / "s" / f"a{suffix}", wave, subtype=subtype)
    (pair,) = items(open_audio(tmp_path / "s"))
    assert pair.sample.sample_rate == RATE and pair.sample.waveform.dtype == np.float64
    n = min(len(wave), len(pair.sample.waveform))
    assert np.max(np.abs(pair.sample.waveform[:n] - wave[:n])) <= tol


def test_stereo_is_mixed_down_to_the_channel_mean(tmp_path):
    left, right = tone(freq=300), tone(freq=500, amp=0.2)
    write(tmp_path / "s" / "a.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    (pair,) = items(open_audio(tmp_path / "s"))
    np.testing.assert_allclose(pair.sample.waveform, (left + right) / 2, atol=1e-7)


def test_pairs_match_by_path_without_extension(tmp_path):
    write(tmp_path / "s" / "x" / "1.flac", tone())
    write(tmp_path / "r" / "x" / "1.wav", tone())
    (pair,) = items(open_audio(tmp_path / "s", [tmp_path / "r"]))
    assert isinstance(pair, AudioPair) and pair.id == "x/1" and pair.warning is None


def test_unpaired_and_duplicate_names(tmp_path):
    write(tmp_path / "s" / "1.wav", tone())
    write(tmp_path / "s" / "2.wav", tone())
    write(tmp_path / "r" / "1.wav", tone())
    got = items(open_audio(tmp_path / "s", [tmp_path / "r"]))
    assert isinstance(got[0], AudioPair) and got[1].path == "2.wav"
    assert got[1].reason.startswith("no reference: no file named 2 (any of .wav, .flac")
    write(tmp_path / "other" / "9.wav", tone())
    with pytest.raises(InputError, match="no file in .*other has the name of a sample"):
        open_audio(tmp_path / "s", [tmp_path / "other"])
    write(tmp_path / "r" / "2.wav", tone())
    write(tmp_path / "r" / "3.wav", tone())
    with pytest.raises(InputError, match=r"1 reference\(s\) have no sample .*: 3"):
        open_audio(tmp_path / "s", [tmp_path / "r"])
    (tmp_path / "r" / "3.wav").unlink()
    write(tmp_path / "s" / "1.flac", tone())
    got = items(open_audio(tmp_path / "s", [tmp_path / "r"]))
    assert [(g.path, g.reason) for g in got[:2]] == [
        (f, "two files named 1 (1.flac, 1.wav): keep one") for f in ("1.flac", "1.wav")]
    assert isinstance(got[2], AudioPair) and got[2].id == "2"
    write(tmp_path / "r" / "2.flac", tone())
    got = items(open_audio(tmp_path / "s", [tmp_path / "r"]))
    assert got[2] == Skipped("2.wav", "reference: two files named 2 (2.flac, 2.wav): keep one")


def test_different_rates_keep_both_clips_as_read_and_warn(tmp_path):
    """The reader resamples nothing: which way to resample is each metric's choice (the
    reference taken down to a narrowband sample's rate would lose the band a metric
    judges). The lengths are compared at the higher rate."""
    import soundfile as sf

    write(tmp_path / "s" / "a.wav", tone(rate=16000), rate=16000, subtype="FLOAT")
    write(tmp_path / "r" / "a.wav", tone(rate=22050), rate=22050, subtype="FLOAT")
    write(tmp_path / "s" / "b.wav", tone(0.5, rate=8000), rate=8000, subtype="FLOAT")
    write(tmp_path / "r" / "b.wav", tone(0.75, rate=16000), rate=16000, subtype="FLOAT")
    a, b = items(open_audio(tmp_path / "s", [tmp_path / "r"]))
    assert (a.sample.sample_rate, a.reference.sample_rate) == (16000, 22050)
    assert np.array_equal(a.reference.waveform, sf.read(tmp_path / "r" / "a.wav")[0])
    assert a.warning.startswith("sample at 16000 Hz, reference at 22050 Hz: each metric")
    assert "lengths differ" not in a.warning  # 0.5 s each
    assert (b.sample.sample_rate, b.reference.sample_rate) == (8000, 16000)
    assert "lengths differ (8000 vs 12000 samples at 16000 Hz)" in b.warning


def test_mismatched_lengths_are_kept_with_a_warning(tmp_path):
    write(tmp_path / "s" / "a.wav", tone(0.5))
    write(tmp_path / "r" / "a.wav", tone(0.75))
    (pair,) = items(open_audio(tmp_path / "s", [tmp_path / "r"]))
    assert (len(pair.sample.waveform), len(pair.reference.waveform)) == (8000, 12000)
    assert "lengths differ (8000 vs 12000" in pair.warning and "use the first 8000" in pair.warning


def test_bad_files_are_skipped_with_reasons(tmp_path):
    s, r = tmp_path / "s", tmp_path / "r"
    for name in ("good", "zero", "nan", "empty", "badref"):
        write(r / f"{name}.wav", tone())
    write(s / "good.wav", tone())
    (s / "zero.wav").write_bytes(b"")
    nan = tone()
    nan[10] = np.nan
    write(s / "nan.wav", nan, subtype="FLOAT")
    write(s / "empty.wav", np.zeros(0))
    write(s / "badref.wav", tone())
    (r / "badref.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    got = {(g.path if isinstance(g, Skipped) else g.id): g for g in open_audio(s, [r])}
    assert isinstance(got["good"], AudioPair)
    assert got["zero.wav"].reason == "empty file (0 bytes)"
    assert got["nan.wav"].reason == "1 sample(s) are NaN or Inf"
    assert got["empty.wav"].reason == "no audio frames"
    assert got["badref.wav"].reason.startswith("reference badref.wav: cannot decode audio")


@pytest.mark.parametrize("factor, frames", [(4, 8000), (0.25, 2000)])
def test_a_header_that_lies_is_read_and_flagged(tmp_path, factor, frames):
    path = write(tmp_path / "s" / "a.wav", tone(), subtype="PCM_16")
    data = bytearray(path.read_bytes())
    at = data.find(b"data")
    size = struct.unpack("<I", data[at + 4:at + 8])[0]
    data[at + 4:at + 8] = struct.pack("<I", int(size * factor))
    path.write_bytes(bytes(data))
    write(tmp_path / "r" / "a.wav", tone())
    (pair,) = items(open_audio(tmp_path / "s", [tmp_path / "r"]))
    assert len(pair.sample.waveform) == frames
    assert "sample: the header disagrees with the file size" in pair.warning


def test_resample_is_a_no_op_at_the_same_rate():
    wave = tone()
    assert resample(wave, RATE, RATE) is wave
    assert len(resample(wave, RATE, 8000)) == len(wave) // 2


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=0, max_size=200), st.sampled_from([".wav", ".flac", ".ogg"]))
def test_fuzzed_files_never_crash(tmp_path_factory, data, suffix):
    root = tmp_path_factory.mktemp("fuzz")
    (root / f"a{suffix}").write_bytes(b"RIFF" + data if suffix == ".wav" else data)
    (got,) = items(open_audio(root))
    assert isinstance(got, (Skipped, AudioPair))
    if isinstance(got, AudioPair):
        assert np.isfinite(got.sample.waveform).all() and len(got.sample.waveform) > 0
