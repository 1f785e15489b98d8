"""ImageNet weights as torchvision gives them: the torch cache, an explicit file, and the
one-line error of an offline machine (the download is made to fail; nothing is fetched)."""

from __future__ import annotations

import sqlite3
import urllib.error
from pathlib import Path

import pytest
import torch
from torchvision.models import vgg16_bn

from model.backbones import pretrained_path, torchvision_cache_path
from model.config import DataConfig, ModelConfig
from model.data import synthetic_splits, write_rgbtcc
from model.errors import ConfigError
from model.network import build_model
from tests.conftest import REPO, invoke

VGG16_BN_FILE = "vgg16_bn-6c64b313.pth"  # torchvision's file name, hash prefix included
VGG19_FILE = "vgg19-dcbb9e9d.pth"  # studies/rgbtcc.toml's backbone, as the published baselines


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch cache: TORCH_HOME is read by torch.hub on every call."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """torch.hub's downloader fails as it does without a network; the URLs asked for are kept."""
    asked: list[str] = []

    def refuse(url, dst, *args, **kwargs):
        asked.append(url)
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return asked


def _saved_vgg16_bn(path: Path) -> torch.nn.Module:
    source = vgg16_bn(weights=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(source.state_dict(), path)
    return source


def test_cached_torchvision_file_is_loaded_without_a_download(torch_home, offline):
    cached = torch_home / "hub" / "checkpoints" / VGG16_BN_FILE
    assert torchvision_cache_path("vgg16_bn") == cached
    source = _saved_vgg16_bn(cached)
    net = build_model(ModelConfig(backbone="vgg16_bn", pretrained="torchvision"))
    assert torch.equal(net.encoder.stem_rgb.weight, source.features[0].weight)
    assert torch.equal(net.encoder.stages_rgb[4][0].weight, source.features[34].weight)
    assert offline == []


def test_explicit_file_is_loaded_and_nothing_is_downloaded(tmp_path, torch_home, offline):
    path = tmp_path / "mine.pth"
    source = _saved_vgg16_bn(path)
    assert pretrained_path("vgg16_bn", str(path)) == path
    net = build_model(ModelConfig(backbone="vgg16_bn", pretrained=str(path)))
    assert torch.equal(net.encoder.stages_thermal[1][0].weight, source.features[7].weight)
    assert offline == [] and not torch_home.exists()


def test_missing_cache_file_is_downloaded_through_torchvision(torch_home, monkeypatch):
    fetched: list[str] = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        fetched.append(url)
        assert progress and hash_prefix == "6c64b313"  # torchvision's bar and hash check
        _saved_vgg16_bn(Path(dst))

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    path = pretrained_path("vgg16_bn", "torchvision")
    assert path == torch_home / "hub" / "checkpoints" / VGG16_BN_FILE and path.is_file()
    assert fetched == [f"https://download.pytorch.org/models/{VGG16_BN_FILE}"]
    pretrained_path("vgg16_bn", "torchvision")  # cached now: no second download
    assert len(fetched) == 1


def test_offline_download_is_one_line_naming_the_file_and_the_folder(torch_home, offline):
    folder = torch_home / "hub" / "checkpoints"
    with pytest.raises(ConfigError) as caught:
        build_model(ModelConfig(backbone="vgg19", pretrained="torchvision"))
    message = str(caught.value)
    assert "\n" not in message
    assert f"vgg19-dcbb9e9d.pth for vgg19 into {folder}" in message
    assert "--set pretrained=/path/file.pth" in message and "URLError" in message
    assert offline == ["https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"]


def test_offline_run_of_the_rgbtcc_study_is_one_error_line_and_claims_nothing(
        tmp_path, torch_home, offline, monkeypatch):
    monkeypatch.chdir(tmp_path)
    splits = synthetic_splits(DataConfig(synth_n_train=2, synth_n_val=1, synth_n_test=1,
                                         synth_height=64, synth_width=64))
    write_rgbtcc(splits, tmp_path / "D")
    result = invoke("run", "--study", REPO / "studies" / "rgbtcc.toml", "--variant", "A",
                    "--data-path", tmp_path / "D", "--epochs", "1", "--db", tmp_path / "r.db")
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    folder = torch_home / "hub" / "checkpoints"
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert VGG19_FILE in lines[0] and str(folder) in lines[0]
    assert "--set pretrained=/path/file.pth" in lines[0]
    assert len(offline) == 1
    db = tmp_path / "r.db"
    if db.exists():  # the check runs before any claim: no run row may exist
        with sqlite3.connect(db) as con:
            tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master")]
            if "ablate_runs" in tables:
                assert con.execute("SELECT COUNT(*) FROM ablate_runs").fetchone() == (0,)
