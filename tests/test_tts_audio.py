"""Text-to-speech audio: transcripts and speaker references as input, ASR WER/CER
(pocketsphinx on espeak-ng speech; a tiny random Whisper through the real loading path),
speaker similarity (resemblyzer parity; a tiny random WavLMForXVector), and the
issue's end-to-end command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genmetrics.errors import InputError, UsageError
from genmetrics.io.audio import AudioClip, open_audio
from genmetrics.io.common import Unusable
from tests.speech import SENTENCES, add_noise, require_speech_tools, speech, write_wav

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _clips(texts, waves, rate=16000):
    return [AudioClip(str(i), w, rate, text=t) for i, (t, w) in enumerate(zip(texts, waves,
                                                                             strict=True))]


# -- input --------------------------------------------------------------------------------
def test_transcripts_beside_and_jsonl_and_speaker_folder(tmp_path):
    rng = np.random.default_rng(0)
    s = tmp_path / "s"
    for name in ("a", "b", "c"):
        write_wav(s / f"{name}.wav", 0.1 * rng.standard_normal(1600), 16000)
    (s / "a.txt").write_text("Hello there.\n")
    (s / "c.txt").write_text("   \n")
    source = open_audio(s)
    assert source.provides == {"transcript"}
    assert source.warnings() == []  # the .txt files are transcripts, not stray files
    got = {p.id: p.sample.text for p in source}
    assert got["a"] == "Hello there."
    assert isinstance(got["b"], Unusable) and "no b.txt beside" in got["b"].reason
    assert got["c"] == Unusable("empty transcript")

    jsonl = tmp_path / "texts.jsonl"
    jsonl.write_text(json.dumps({"id": "a", "text": "one"}) + "\n"
                     + json.dumps({"id": "b", "text": "two"}) + "\n")
    spk = tmp_path / "spk"
    write_wav(spk / "a.wav", 0.1 * rng.standard_normal(1600), 16000)
    source = open_audio(s, transcripts=jsonl, speaker_reference=spk)
    assert source.provides == {"transcript", "speaker_reference"}
    pairs = {p.id: p for p in source}
    assert pairs["a"].sample.text == "one"  # the jsonl wins over the .txt beside
    assert "no id 'c'" in pairs["c"].sample.text.reason
    assert isinstance(pairs["a"].sample.speaker, AudioClip)
    assert "no file named b" in pairs["b"].missing()["speaker_reference"]

    jsonl.write_text('{"id": "a"}\n')
    with pytest.raises(InputError, match="line 1"):
        open_audio(s, transcripts=jsonl)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"")
    with pytest.raises(InputError, match="speaker-reference"):
        open_audio(s, speaker_reference=bad)


def test_transcripts_change_the_reference_digest(tmp_path):
    s = tmp_path / "s"
    write_wav(s / "a.wav", 0.1 * np.random.default_rng(0).standard_normal(1600), 16000)
    digests = []
    for text in ("one", "two"):
        (s / "a.txt").write_text(text)
        (pair,) = list(open_audio(s))
        digests.append(pair.digest_parts()[1])
    assert digests[0] != digests[1]


# -- WER / CER ----------------------------------------------------------------------------
def test_pocketsphinx_wer_cer_equal_jiwer_on_its_transcripts():
    require_speech_tools()
    import jiwer

    from genmetrics.features.asr import load_asr
    from genmetrics.metrics.audio.asr_error_rate import AudioCER, AudioWER
    from genmetrics.metrics.text.error_rate import normalizer

    waves = [speech(t) for t in SENTENCES[:4]]
    clips = _clips(SENTENCES[:4], waves)
    hyps = load_asr("pocketsphinx").transcribe(waves, [16000] * 4)
    norm = normalizer("whisper")
    refs, hyps = [norm(t) for t in SENTENCES[:4]], [norm(h) for h in hyps]
    wer, cer = AudioWER(asr="pocketsphinx"), AudioCER(asr="pocketsphinx")
    wer.update(clips[:1], [[]])  # batching does not matter
    wer.update(clips[1:], [[]] * 3)
    cer.update(clips, [[]] * 4)
    w = wer.compute(per_sample=True)["wer"]
    c = cer.compute(per_sample=True)["cer"]
    assert w.value == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)
    assert c.value == pytest.approx(jiwer.cer(refs, hyps), abs=1e-12)
    assert w.per_sample == pytest.approx([jiwer.wer(r, h) for r, h in zip(refs, hyps,
                                                                          strict=True)])
    out = jiwer.process_words(refs, hyps)
    n = out.substitutions + out.deletions + out.hits
    assert w.components["substitutions"] == pytest.approx(out.substitutions / n)
    assert w.components["deletions"] == pytest.approx(out.deletions / n)
    assert w.components["insertions"] == pytest.approx(out.insertions / n)
    sig = w.signature
    assert (sig["asr"], sig["normalize"]) == ("pocketsphinx", "whisper")
    assert "en-us" in sig["asr_model"] and sig["pocketsphinx"] != "-"


def test_wer_rises_when_noise_is_added():
    """pocketsphinx is weak (WER ~0.65 on clean espeak-ng speech), but over six sentences
    white noise at 0 dB SNR makes both rates clearly worse."""
    require_speech_tools()
    from genmetrics.metrics.audio.asr_error_rate import AudioCER, AudioWER

    clean = [speech(t) for t in SENTENCES]
    noisy = [add_noise(w, 0.0, seed=i) for i, w in enumerate(clean)]
    rates = {}
    for label, waves in (("clean", clean), ("noisy", noisy)):
        for cls in (AudioWER, AudioCER):
            m = cls(asr="pocketsphinx")
            m.update(_clips(SENTENCES, waves), [[]] * len(waves))
            rates[label, m.spec.name] = m.compute()[m.spec.name].value
    assert rates["noisy", "wer"] > rates["clean", "wer"] + 0.1
    assert rates["noisy", "cer"] > rates["clean", "cer"] + 0.1


def test_missing_and_empty_transcripts_are_named_and_the_rest_scored():
    require_speech_tools()
    from genmetrics.metrics.audio.asr_error_rate import AudioWER

    wave = speech(SENTENCES[0])
    clips = [AudioClip("a", wave, 16000, text=SENTENCES[0]),
             AudioClip("b", wave, 16000, text=Unusable("empty transcript")),
             AudioClip("c", wave, 16000),
             AudioClip("d", wave, 16000, text="[laughs] (uh)")]  # empty once normalised
    m = AudioWER(asr="pocketsphinx")
    m.update(clips, [[]] * 4)
    r = m.compute(per_sample=True)["wer"]
    assert r.n == 1 and r.per_sample[1:] == [None, None, None]
    reasons = [f["reason"] for f in r.components["failed"]]
    assert reasons[0] == "empty transcript"
    assert "no transcript given" in reasons[1]
    assert "empty after normalize=whisper" in reasons[2]


def _tiny_whisper(folder):
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    specials = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>",
                "<|notimestamps|>"]
    for s in specials:
        vocab[s] = len(vocab)
    tok = WhisperTokenizer(vocab=vocab, merges=[], pad_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": specials[1:]})
    eot, sot, _, _, nots = tok.convert_tokens_to_ids(specials)
    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=len(tok), num_mel_bins=80, d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
        decoder_ffn_dim=64, max_source_positions=1500, max_target_positions=64,
        pad_token_id=eot, bos_token_id=eot, eos_token_id=eot, decoder_start_token_id=sot,
        init_std=0.5)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot, eos_token_id=eot, pad_token_id=eot, bos_token_id=eot,
        no_timestamps_token_id=nots, max_length=64)
    model.save_pretrained(folder)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tok).save_pretrained(folder)
    return folder


def test_tiny_whisper_batched_equals_the_transformers_pipeline(tmp_path):
    """A random Whisper saved with save_pretrained and loaded through the real path: its
    transcripts are garbage, but our batched decoding gives the pipeline's, clip by clip."""
    from transformers import pipeline

    from genmetrics.features.asr import load_asr
    from genmetrics.metrics.audio.asr_error_rate import AudioWER

    folder = _tiny_whisper(tmp_path / "whisper")
    rng = np.random.default_rng(0)
    waves = [0.1 * rng.standard_normal(int(16000 * s)) for s in (0.7, 2.0, 3.5, 1.2, 5.0)]
    m = AudioWER(asr=str(folder), batch_size=3, max_new_tokens=12, device="cpu",
                 normalize="none")
    asr = m._asr()
    ours = asr.transcribe(waves, [16000] * 5)
    pipe = pipeline("automatic-speech-recognition", model=str(folder), device="cpu")
    theirs = [pipe({"raw": w.astype(np.float32), "sampling_rate": 16000},
                   generate_kwargs=asr.generate_kwargs())["text"].strip() for w in waves]
    assert ours == theirs
    assert len(set(ours)) > 1  # the transcripts depend on the audio
    m.update(_clips(["a b c"] * 5, waves), [[]] * 5)
    sig = m.compute()["wer"].signature
    assert sig["asr"] == "whisper" and sig["asr_weights"].startswith("sha256:")
    assert "num_beams=1" in sig["decoding"] and "float32" in sig["decoding"]
    assert load_asr.cache_info().currsize >= 1


def test_whisper_large_v3_missing_is_unavailable_with_the_fetch_command(tmp_path,
                                                                        monkeypatch):
    from genmetrics.runner import build_metrics

    monkeypatch.setenv("GENMETRICS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UsageError, match="genmetrics assets fetch whisper-large-v3"):
        build_metrics(["wer"], "audio", {}, False, provides=frozenset({"transcript"}))
    unavailable: dict[str, str] = {}
    got = build_metrics(["wer", "cer"], "audio", {}, False, explicit=False,
                        unavailable=unavailable, provides=frozenset({"transcript"}))
    assert got == {} and "pocketsphinx" in unavailable["cer"]
    with pytest.raises(UsageError, match="--transcripts"):
        build_metrics(["wer"], "audio", {"wer": {"asr": "pocketsphinx"}}, False,
                      provides=frozenset())


# -- speaker similarity -------------------------------------------------------------------
def test_resemblyzer_embeddings_equal_embed_utterance():
    require_speech_tools()
    from resemblyzer import VoiceEncoder, preprocess_wav

    from genmetrics.features.speaker import load_encoder

    waves = [speech(SENTENCES[0]), speech(SENTENCES[1], 22050, voice="en+f3"),
             speech(SENTENCES[2])[:20000], speech(SENTENCES[3], voice="en+m3")]
    rates = [16000, 22050, 16000, 16000]
    ours = load_encoder("resemblyzer", "cpu").embed(waves, rates)
    encoder = VoiceEncoder("cpu", verbose=False)
    for got, wave, rate in zip(ours, waves, rates, strict=True):
        want = encoder.embed_utterance(preprocess_wav(wave.astype(np.float32), rate))
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_speaker_sim_same_voice_beats_another_voice():
    require_speech_tools()
    from genmetrics.metrics.audio.speaker_sim import SpeakerSim

    prompt = AudioClip("prompt", speech(SENTENCES[5]), 16000)
    m = SpeakerSim(device="cpu")
    same = [AudioClip(f"s{i}", speech(t), 16000, speaker=prompt) for i, t in
            enumerate(SENTENCES[:4])]
    other = [AudioClip(f"o{i}", speech(t, voice="en+f3"), 16000, speaker=prompt) for i, t in
             enumerate(SENTENCES[:4])]
    m.update(same + other, [[]] * 8)
    values = m.compute(per_sample=True)["speaker_sim"].per_sample
    assert min(values[:4]) > max(values[4:]) + 0.05


def test_wavlm_xvector_folder(tmp_path):
    import torch
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMForXVector

    from genmetrics.metrics.audio.speaker_sim import SpeakerSim

    torch.manual_seed(0)
    config = WavLMConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, conv_dim=(32, 32), conv_stride=(5, 4),
                         conv_kernel=(10, 8), num_conv_pos_embeddings=16,
                         num_conv_pos_embedding_groups=2, tdnn_dim=(32, 32),
                         tdnn_kernel=(3, 1), tdnn_dilation=(1, 1), xvector_output_dim=16)
    model = WavLMForXVector(config).eval()
    folder = tmp_path / "wavlm"
    model.save_pretrained(folder)
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000,
                                         do_normalize=True, return_attention_mask=True)
    extractor.save_pretrained(folder)
    rng = np.random.default_rng(1)
    a, b = (0.1 * rng.standard_normal(16000) for _ in range(2))
    prompt = AudioClip("p", a, 16000)
    m = SpeakerSim(model=str(folder), device="cpu")
    m.update([AudioClip("x", a, 16000, speaker=prompt), AudioClip("y", b, 16000,
                                                                   speaker=prompt)], [[], []])
    r = m.compute(per_sample=True)["speaker_sim"]
    with torch.no_grad():
        e = [model(**extractor(w.astype(np.float32), sampling_rate=16000,
                               return_tensors="pt")).embeddings[0].double().numpy()
             for w in (a, b)]
    want = float(np.dot(e[0], e[1]) / np.linalg.norm(e[0]) / np.linalg.norm(e[1]))
    assert r.per_sample[0] == pytest.approx(1.0, abs=1e-9)
    assert r.per_sample[1] == pytest.approx(want, abs=1e-6)
    assert r.signature["speaker_model"] == "wavlm-xvector:wavlm"


# -- the command ------------------------------------------------------------------
def test_done_when_command(run_cli, tmp_path):
    """genmetrics score --modality audio tts_out/ --transcripts texts.jsonl
    --speaker-reference prompt.wav --set wer.asr=pocketsphinx: WER, CER and speaker
    similarity, exit 0; a clip without a transcript and one with an empty transcript are
    named under skipped (for wer and cer) and still scored by speaker_sim."""
    require_speech_tools()
    out_dir = tmp_path / "tts_out"
    rows = []
    for i, text in enumerate(SENTENCES[:3]):
        write_wav(out_dir / f"{i:02d}.wav", speech(text), 16000)
        rows.append({"id": f"{i:02d}", "text": text})
    write_wav(out_dir / "03.wav", speech(SENTENCES[3]), 16000)  # no transcript
    write_wav(out_dir / "04.wav", speech(SENTENCES[4]), 16000)
    rows.append({"id": "04", "text": ""})
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prompt = write_wav(tmp_path / "prompt.wav", speech(SENTENCES[5]), 16000)
    card = tmp_path / "card.json"
    done = run_cli("score", "--modality", "audio", out_dir, "--transcripts", texts,
                   "--speaker-reference", prompt, "--set", "wer.asr=pocketsphinx",
                   "--per-sample", "-o", card)
    assert done.returncode == 0, done.stderr
    doc = json.loads(card.read_text())
    assert {"wer", "cer", "speaker_sim"} <= set(doc["metrics"])
    assert doc["metrics"]["wer"]["n"] == doc["metrics"]["cer"]["n"] == 3
    assert doc["metrics"]["cer"]["signature"]["asr"] == "pocketsphinx"  # follows wer's
    assert doc["metrics"]["speaker_sim"]["n"] == 5
    skipped = {s["path"]: s["reason"] for s in doc["skipped"]}
    assert "no id '03'" in skipped["03"] and "cer, wer" in skipped["03"]
    assert skipped["04"].startswith("empty transcript")
    assert doc["inputs"]["transcripts"]["path"] == str(texts)
    assert doc["metrics"]["wer"]["signature"]["refs"] == doc["inputs"]["transcripts"]["digest"]


def test_evaluator_texts_and_speaker_reference():
    require_speech_tools()
    from genmetrics import Evaluator

    waves = [speech(t) for t in SENTENCES[:2]]
    ev = Evaluator(["wer", "speaker_sim"], "audio", device="cpu",
                   options={"wer": {"asr": "pocketsphinx"}})
    ev.update(waves, sample_rate=16000, texts=SENTENCES[:2], speaker_reference=waves[0])
    card = ev.compute()
    assert card.metrics["wer"].n == 2 and card.metrics["speaker_sim"].n == 2
    with pytest.raises(UsageError, match="2 samples but 1"):
        ev.update(waves, sample_rate=16000, texts=SENTENCES[:1])


def test_a_transcript_beside_each_clip_is_still_audio(tmp_path):
    from genmetrics.runner import detect_modality

    write_wav(tmp_path / "a.wav", np.zeros(160), 16000)
    (tmp_path / "a.txt").write_text("hello")
    assert detect_modality(tmp_path) == "audio"
