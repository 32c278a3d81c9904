"""Audio end to end through the command line: every metric, and bad inputs in one run."""

from __future__ import annotations

import json

import numpy as np

from tests.conftest import REPO
from tests.speech import add_noise, require_speech_tools, speech, write_wav

AUDIO_METRICS = ("snr", "si_snr", "pesq", "mcd", "stoi", "f0_rmse", "vuv_error", "dnsmos",
                 "dnsmos_sig", "dnsmos_bak", "dnsmos_p808")
#: what `make demo` asks for: the default paired set, F0 error (opt-in) and DNSMOS (by
#: default only without references or with TTS inputs)
DEMO_METRICS = "snr,si_snr,pesq,mcd,stoi,f0_rmse,dnsmos"


def test_demo_audio_reports_every_metric(run_cli, tmp_path):
    assert f"--metrics {DEMO_METRICS} " in (REPO / "Makefile").read_text()
    out = tmp_path / "card.json"
    done = run_cli("score", "--modality", "audio", REPO / "demo/audio/degraded",
                   "--reference", REPO / "demo/audio/clean", "--metrics", DEMO_METRICS,
                   "--per-sample", "-o", out)
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert set(doc["metrics"]) == set(AUDIO_METRICS)
    assert doc["metrics"]["pesq"]["signature"]["mode"] == "wb"
    for name in AUDIO_METRICS:
        assert name in done.stdout
    snr = doc["per_sample"]["values"]["snr"]
    ids = doc["per_sample"]["ids"]
    by_id = dict(zip(ids, snr, strict=True))
    assert by_id["00_noise20db"] > by_id["01_noise10db"] > by_id["02_noise5db"]


def test_bad_audio_in_one_run_loses_nothing(run_cli, tmp_path):
    require_speech_tools()
    clean = speech(rate=16000)
    s, r = tmp_path / "s", tmp_path / "r"
    write_wav(r / "good.wav", clean, 16000)
    write_wav(s / "good.wav", add_noise(clean, 10.0), 16000)
    write_wav(r / "clipped.wav", clean, 16000)
    write_wav(s / "clipped.wav", np.clip(clean * 4, -1, 1), 16000)  # hard clipping
    write_wav(r / "stereo.wav", clean, 16000)
    write_wav(s / "stereo.wav", np.stack([clean, clean], axis=1), 16000)
    write_wav(r / "short.wav", clean[:1600], 16000)  # 0.1 s: too short for PESQ
    write_wav(s / "short.wav", clean[:1600], 16000)
    write_wav(r / "silent.wav", np.zeros(16000), 16000)
    write_wav(s / "silent.wav", add_noise(clean, 10.0)[:16000], 16000)
    write_wav(r / "rate.wav", speech(rate=22050), 22050)  # reference at another rate
    write_wav(s / "rate.wav", clean, 16000)
    (r / "broken.wav").write_bytes(b"")
    write_wav(s / "broken.wav", clean, 16000)
    out = tmp_path / "card.json"
    done = run_cli("score", s, "-r", r, "--per-sample", "-o", out)
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert [x["path"] for x in doc["skipped"]] == ["broken.wav"]
    ids = doc["per_sample"]["ids"]
    assert sorted(ids) == ["clipped", "good", "rate", "short", "silent", "stereo"]
    values = {m: dict(zip(ids, v, strict=True)) for m, v in doc["per_sample"]["values"].items()}
    # identical channels mix down to the reference exactly: infinite SNR, not scored
    assert values["snr"]["stereo"] is None and values["pesq"]["stereo"] is not None
    assert values["pesq"]["short"] is None and values["snr"]["silent"] is None
    failed = {(f["index"], f["id"], f["reason"].split(":")[0])
              for f in doc["metrics"]["pesq"]["components"]["failed"]}
    assert (ids.index("short"), "short", "too short") in failed
    snr_failed = {f["id"]: f["reason"] for f in doc["metrics"]["snr"]["components"]["failed"]}
    assert snr_failed["stereo"] == "identical signals (SNR is infinite)"
    assert snr_failed["silent"] == "silent reference: SNR undefined"
    assert values["pesq"]["good"] is not None and values["pesq"]["clipped"] is not None
    warned = {w["path"] for w in doc["warnings"]}
    assert "rate" in warned
