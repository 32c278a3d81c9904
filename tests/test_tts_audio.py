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
    assert source.provides == {"transcript"}  # transcripts only: no prompt (clap_score)
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


def test_a_few_txt_files_beside_clips_are_a_note_not_transcripts(tmp_path):
    """Under half of the clips with a .txt: no transcript mode (so no clip is failed for
    lacking one), one note naming the count; at half, transcripts, the rest named."""
    rng = np.random.default_rng(0)
    s = tmp_path / "s"
    for name in ("a", "b", "c", "d", "e"):
        write_wav(s / f"{name}.wav", 0.1 * rng.standard_normal(1600), 16000)
    (s / "a.txt").write_text("Hello there.\n")
    (s / "b.txt").write_text("General Kenobi.\n")
    source = open_audio(s)
    assert source.provides == frozenset()
    (note,) = source.warnings()
    assert "2 of 5 clips have a .txt beside them" in note["message"]
    assert all(p.sample.text is None for p in source)
    (s / "c.txt").write_text("   \n")
    source = open_audio(s)
    assert source.provides == {"transcript"} and source.warnings() == []
    got = {p.id: p.missing().get("transcript") for p in source}
    assert got == {"a": None, "b": None, "c": "empty transcript",
                   "d": "no transcript: no d.txt beside the clip",
                   "e": "no transcript: no e.txt beside the clip"}


def test_transcripts_change_their_own_digest_only(tmp_path):
    s = tmp_path / "s"
    write_wav(s / "a.wav", 0.1 * np.random.default_rng(0).standard_normal(1600), 16000)
    seen = []
    for text in ("one", "two"):
        (s / "a.txt").write_text(text)
        (pair,) = list(open_audio(s))
        seen.append((pair.digest_parts(), pair.need_parts()))
    assert seen[0][0] == seen[1][0]  # sample and reference parts: as without transcripts
    assert seen[0][1]["transcript"] != seen[1][1]["transcript"]


def test_each_input_signs_only_the_metrics_that_need_it(tmp_path):
    """MCD's signature is the same with and without --transcripts / --speaker-reference;
    WER's follows the texts, not the prompt; speaker_sim's the prompt, not the texts."""
    require_speech_tools()
    from genmetrics.runner import score

    s, r = tmp_path / "s", tmp_path / "r"
    for i, text in enumerate(SENTENCES[:2]):
        write_wav(s / f"{i}.wav", speech(text), 16000)
        write_wav(r / f"{i}.wav", speech(text, voice="en+f3"), 16000)
    texts = {}
    for label, words in (("a", SENTENCES[:2]), ("b", SENTENCES[2:4])):
        texts[label] = tmp_path / f"{label}.jsonl"
        texts[label].write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n"
                                        for i, t in enumerate(words)))
    prompts = {k: write_wav(tmp_path / f"p{k}.wav", speech(SENTENCES[k + 4]), 16000)
               for k in (0, 1)}
    opts = {"wer": {"asr": "pocketsphinx"}}

    def signatures(**given):
        card = score(s, r, modality="audio", metrics=["mcd", "wer", "speaker_sim"]
                     if given else ["mcd"], options=opts if given else {}, **given).to_dict()
        return ({k: v["signature"] for k, v in card["metrics"].items()}, card["inputs"])

    plain, _ = signatures()
    base, inputs = signatures(transcripts=texts["a"], speaker_reference=prompts[0])
    other_prompt, _ = signatures(transcripts=texts["a"], speaker_reference=prompts[1])
    other_texts, _ = signatures(transcripts=texts["b"], speaker_reference=prompts[0])
    assert base["mcd"] == plain["mcd"] == other_prompt["mcd"] == other_texts["mcd"]
    assert base["wer"]["refs"] == inputs["transcripts"]["digest"]
    assert base["speaker_sim"]["refs"] == inputs["speaker_reference"]["digest"]
    assert inputs["transcripts"]["digest"] != inputs["speaker_reference"]["digest"]
    assert base["wer"] == other_prompt["wer"] != other_texts["wer"]
    assert base["speaker_sim"] == other_texts["speaker_sim"] != other_prompt["speaker_sim"]


# -- WER / CER ----------------------------------------------------------------------------
def test_pocketsphinx_wer_cer_equal_jiwer_on_its_transcripts():
    require_speech_tools()
    import jiwer

    from genmetrics.features.asr import load_asr
    from genmetrics.metrics.audio.asr_error_rate import AudioCER, AudioWER
    from genmetrics.metrics.text.error_rate import normalizer
    from genmetrics.metrics.text.wer import WER, ErrorRateMetric

    waves = [speech(t) for t in SENTENCES[:4]]
    clips = _clips(SENTENCES[:4], waves)
    hyps = hyps_raw = load_asr("pocketsphinx").transcribe(waves, [16000] * 4)
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
    assert {k: w.components[k] for k in ("substitutions", "deletions", "insertions", "hits",
                                         "reference_tokens")} == {
        "substitutions": out.substitutions, "deletions": out.deletions,
        "insertions": out.insertions, "hits": out.hits,
        "reference_tokens": out.substitutions + out.deletions + out.hits}
    assert isinstance(wer, ErrorRateMetric)  # one definition for text and audio
    text = WER(normalize="whisper")  # the text metric on the same strings: the same result
    text.update(hyps_raw, [[r] for r in SENTENCES[:4]])
    t = text.compute(per_sample=True)["wer"]
    assert (t.value, t.per_sample, t.components) == (w.value, w.per_sample, w.components)
    sig = w.signature
    assert (sig["asr"], sig["normalize"]) == ("pocketsphinx", "whisper")
    assert "en-us" in sig["asr_model"] and sig["pocketsphinx"] != "-"


def test_pocketsphinx_transcripts_do_not_depend_on_clip_order():
    """The demo's clips decoded forwards, in reverse, and each alone (a fresh recogniser
    each time, so no memo answers) give the same transcripts: no decoder state is carried
    from one clip to the next (a reused decoder changed clips 0 and 3)."""
    pytest.importorskip("pocketsphinx")
    import soundfile as sf

    from genmetrics.features.asr import PocketSphinx
    from tests.conftest import REPO

    clips = [sf.read(p) for p in sorted((REPO / "demo" / "tts" / "tts_out").glob("*.wav"))]
    waves, rates = [w for w, _ in clips], [r for _, r in clips]
    forward = PocketSphinx().transcribe(waves, rates)
    backward = PocketSphinx().transcribe(waves[::-1], rates[::-1])[::-1]
    alone = [PocketSphinx().transcribe([w], [r])[0] for w, r in zip(waves, rates,
                                                                     strict=True)]
    assert forward == backward == alone
    assert sum(bool(t) for t in alone) >= 3  # it heard something


def test_wer_rises_when_noise_is_added():
    """pocketsphinx is weak (WER 0.65 on these clean sentences, 0.94 at 0 dB: the README's
    figures, printed with -s), but white noise at 0 dB SNR makes both rates worse."""
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
    print("pocketsphinx on six espeak-ng sentences:", {k: round(v, 3) for k, v in rates.items()})
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


def _tiny_whisper(folder, multilingual=False):
    """A random Whisper; ``multilingual``: its generation config has ``lang_to_id`` and
    ``task_to_id`` as the real multilingual checkpoints' (large-v3) have."""
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
                "<|notimestamps|>", "<|de|>", "<|translate|>"]
    for s in specials:
        vocab[s] = len(vocab)
    tok = WhisperTokenizer(vocab=vocab, merges=[], pad_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": specials[1:]})
    eot, sot, en, transcribe, nots, de, translate = tok.convert_tokens_to_ids(specials)
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
    if multilingual:
        gen = model.generation_config
        gen.is_multilingual = True
        gen.lang_to_id = {"<|en|>": en, "<|de|>": de}
        gen.task_to_id = {"transcribe": transcribe, "translate": translate}
    model.save_pretrained(folder)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tok).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("multilingual", [False, True])
def test_tiny_whisper_batched_equals_the_transformers_pipeline(tmp_path, multilingual):
    """A random Whisper saved with save_pretrained and loaded through the real path: its
    transcripts are garbage, but our batched decoding gives the pipeline's, clip by clip.
    Multilingual (as large-v3): decoding is pinned to English transcription."""
    import torch
    from transformers import pipeline

    from genmetrics.features.asr import load_asr
    from genmetrics.metrics.audio.asr_error_rate import AudioWER

    folder = _tiny_whisper(tmp_path / "whisper", multilingual)
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
    kwargs = asr.generate_kwargs()
    assert (kwargs.get("language"), kwargs.get("task")) == (
        ("en", "transcribe") if multilingual else (None, None))
    if multilingual:  # the setting reaches the decoder: German gives other transcripts
        feats = asr.processor.feature_extractor([w.astype(np.float32) for w in waves],
                                                sampling_rate=16000, return_tensors="pt")
        with torch.inference_mode():
            other = asr.model.generate(feats.input_features, **{**kwargs, "language": "de"})
        german = [t.strip() for t in asr.processor.batch_decode(other,
                                                                skip_special_tokens=True)]
        assert german != ours
    m.update(_clips(["a b c"] * 5, waves), [[]] * 5)
    sig = m.compute()["wer"].signature
    assert sig["asr"] == "whisper" and sig["asr_weights"].startswith("sha256:")
    assert "num_beams=1" in sig["decoding"] and "float32" in sig["decoding"]
    assert ("language=en" in sig["decoding"]) == multilingual
    assert load_asr.cache_info().currsize >= 1


def test_whisper_fetch_lists_the_files_a_whisper_folder_needs(tmp_path, monkeypatch):
    """`assets fetch whisper-large-v3` asks the hub for exactly the files a Whisper model
    and processor load from (a save_pretrained folder cut down to them loads), never the
    fp32 shards beside model.safetensors."""
    from fnmatch import fnmatch

    import huggingface_hub

    from genmetrics import assets
    from genmetrics.features.asr import Whisper

    folder = _tiny_whisper(tmp_path / "whisper", multilingual=True)
    from transformers import WhisperFeatureExtractor

    # the hub's layout: the feature extractor in preprocessor_config.json (transformers 5
    # saves it inside processor_config.json, which the hub repo does not have)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)
    for extra in {p.name for p in folder.iterdir()} - set(assets.WHISPER_FILES):
        (folder / extra).unlink()
    assert {"model.safetensors", "preprocessor_config.json", "generation_config.json",
            "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    Whisper(str(folder), "cpu", False, 2, 4)  # loads from exactly those files
    asked = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo, local_dir, allow_patterns: asked.append(allow_patterns))
    monkeypatch.setenv("GENMETRICS_HOME", str(tmp_path / "home"))
    try:
        assets.get_asset("whisper-large-v3").fetch_online()
    except Exception:  # nothing was downloaded, so the manifest step may refuse
        pass
    (patterns,) = asked
    hub_files = ["model.safetensors", "model.fp32-00001-of-00002.safetensors",
                 "model.safetensors.index.fp32.json", "pytorch_model.bin",
                 "flax_model.msgpack", *assets.WHISPER_FILES]
    fetched = {f for f in hub_files if any(fnmatch(f, p) for p in patterns)}
    assert fetched == set(assets.WHISPER_FILES)


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
    print("speaker_sim same voice", np.round(values[:4], 3), "another", np.round(values[4:], 3))
    # the README's figures (0.86-0.90 same voice, 0.68-0.72 another), with some slack
    assert min(values[:4]) > 0.82 and max(values[4:]) < 0.76


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
    named under wer's and cer's failed, counted in one warning, not under skipped (they
    are scored by speaker_sim)."""
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
    assert doc["skipped"] == []
    for name in ("wer", "cer"):
        failed = {f["id"]: f["reason"] for f in doc["metrics"][name]["components"]["failed"]}
        assert "no id '03'" in failed["03"] and failed["04"].startswith("empty transcript")
    (note,) = [w["message"] for w in doc["warnings"] if w["path"] == "transcript"]
    assert note.startswith("2 sample(s) have no usable transcript: not scored by cer, wer")
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
    refs = {k: card.metrics[k].signature["refs"] for k in ("wer", "speaker_sim")}
    assert refs["wer"] != refs["speaker_sim"]  # each input its own digest
    again = Evaluator(["wer", "speaker_sim"], "audio", device="cpu",
                      options={"wer": {"asr": "pocketsphinx"}})
    again.load_state_dict(ev.state_dict())  # a checkpoint keeps the inputs' digests
    assert {k: again.compute().metrics[k].signature["refs"] for k in refs} == refs
    with pytest.raises(UsageError, match="2 samples but 1"):
        ev.update(waves, sample_rate=16000, texts=SENTENCES[:1])


def test_a_transcript_beside_each_clip_is_still_audio(tmp_path):
    from genmetrics.runner import detect_modality

    write_wav(tmp_path / "a.wav", np.zeros(160), 16000)
    (tmp_path / "a.txt").write_text("hello")
    assert detect_modality(tmp_path) == "audio"
