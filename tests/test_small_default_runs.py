"""A default `genmetrics score` run on a small but valid input exits 0 with every default
metric of its modality, whatever their library defaults assume (KID's 1000-image
subsets, IS's 10 splits); a run whose every input is unreadable is an input error
(exit 2), not a metric failure."""

from __future__ import annotations

import json
from pathlib import Path

from genmetrics.runner import default_metrics
from tests.conftest import assert_one_line_error, cli_env, write_files
from tests.photos import blur, resize_longer_side, save_png, tiles
from tests.speech import add_noise, require_speech_tools, speech, write_wav


def _run_default(run_cli, tmp_path: Path, modality: str, samples: Path, refs: Path,
                 *extra: str) -> dict:
    out = tmp_path / "card.json"
    done = run_cli("score", samples, "--reference", refs, "--modality", modality, "--out", out,
                   *extra, env=cli_env(COLUMNS="80"))
    assert done.returncode == 0, done.stdout + done.stderr
    card = json.loads(out.read_text())
    assert not card.get("errors"), card.get("errors")
    ran = set(card["metrics"]) | set(card.get("unavailable", {}))
    for name in default_metrics(modality, True, True):
        assert any(r == name or r.startswith(name) for r in ran), name
    return card


def test_default_image_run_on_three_images(run_cli, tmp_path, random_weights):
    for folder, degrade in (("samples", blur), ("refs", lambda x: x)):
        (tmp_path / folder).mkdir()
        for i, (_, tile) in enumerate(tiles()[:3]):
            save_png(degrade(resize_longer_side(tile, 48)), tmp_path / folder / f"{i}.png")
    card = _run_default(run_cli, tmp_path, "image", tmp_path / "samples", tmp_path / "refs",
                        "--inception-weights", random_weights(), "--workers", "0")
    assert card["metrics"]["kid"]["signature"]["subset_size"] == 3
    assert card["metrics"]["inception_score"]["signature"]["splits"] == 3


def test_default_text_run_on_one_pair(run_cli, tmp_path):
    samples = write_files(tmp_path / "s", {"a.txt": "the cat sat on the mat"})
    refs = write_files(tmp_path / "r", {"a.txt": "the cat is on the mat"})
    card = _run_default(run_cli, tmp_path, "text", samples, refs)
    assert card["metrics"]["bleu"]["n"] == 1


def test_default_audio_run_on_one_clip(run_cli, tmp_path):
    """One sentence (~2 s). A clip under ~0.4 s of speech is too short for STOI, which
    then fails with that reason: a property of the clip, not of the set's size."""
    require_speech_tools()
    clean = speech(rate=16000)
    write_wav(tmp_path / "r" / "a.wav", clean, 16000)
    write_wav(tmp_path / "s" / "a.wav", add_noise(clean, 10.0), 16000)
    card = _run_default(run_cli, tmp_path, "audio", tmp_path / "s", tmp_path / "r")
    assert card["metrics"]["pesq"]["n"] == 1


def test_every_input_skipped_is_an_input_error(run_cli, tmp_path):
    samples = write_files(tmp_path / "s", {"a.png": b"not a png", "b.png": b""})
    done = run_cli("score", samples, "--modality", "image", "--metrics", "psnr",
                   "--reference", samples, "--out", tmp_path / "card.json")
    assert_one_line_error(done, "every input was skipped (2 unreadable)", "a.png")
    assert not (tmp_path / "card.json").exists()
