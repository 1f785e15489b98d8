"""Encoders with a common stage interface: a per-modality stem conv, then five stages.

Stage strides are 2, 4, 8, 16, 16 (VGG without its last pool, as in Bayesian-loss counting);
``feature_info`` lists (channels, stride) per stage so the modules after the encoder size
themselves from it. The stem is the first conv alone, so the plan's Option C (one stem per
modality, every later layer shared) is just "two stems, one ``stages`` list".

A "backbone" registry entry is a function ``(in_channels, pretrained) -> EncoderParts``.

A shared backbone normalises RGB and thermal with one set of batch statistics;
``split_batch_norms`` gives each modality its own (``modality_norm = "separate"``).
"""

from __future__ import annotations

import copy
import socket
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torchvision import models

from model import torchfile
from model.errors import ConfigError
from model.registry import lookup, register

STRIDES = (2, 4, 8, 16, 16)


@dataclass(frozen=True)
class FeatureInfo:
    channels: int
    stride: int


@dataclass
class EncoderParts:
    stem: nn.Conv2d  # (B, C_in, H, W) -> (B, C0, H, W)
    stages: nn.ModuleList  # five stages, strides STRIDES
    feature_info: list[FeatureInfo]


def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


@register("backbone", "tiny")
def _tiny(in_channels: int, pretrained: str | None = None) -> EncoderParts:
    """A few conv blocks with VGG's stage interface, for CPU tests and the demo study."""
    pretrained_path("tiny", pretrained)  # weights for "tiny" are an error, not ignored
    widths = (16, 32, 48, 64, 64)
    stem = nn.Conv2d(in_channels, widths[0], 3, padding=1)
    stages = [nn.Sequential(nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True), nn.MaxPool2d(2))]
    for i in range(1, 5):
        layers = _conv_bn(widths[i - 1], widths[i])
        if i < 4:
            layers.append(nn.MaxPool2d(2))
        stages.append(nn.Sequential(*layers))
    info = [FeatureInfo(w, s) for w, s in zip(widths, STRIDES, strict=True)]
    return EncoderParts(stem, nn.ModuleList(stages), info)


# (torchvision layer config, batch norm, weights): only the conv features are built, since the
# 120M-parameter classifier is never used and dominates construction time.
TORCHVISION_VGG: dict[str, tuple[str, bool, object]] = {
    "vgg16_bn": ("D", True, models.VGG16_BN_Weights.IMAGENET1K_V1),
    "vgg19": ("E", False, models.VGG19_Weights.IMAGENET1K_V1),
}


def torchvision_cache_path(name: str) -> Path:
    weights = TORCHVISION_VGG[name][2]
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


# Seconds a stalled connection may stay silent before the download gives up: a machine behind
# a firewall that drops packets would otherwise hang in the pre-claim check for minutes.
DOWNLOAD_TIMEOUT_S = 30.0


def pretrained_path(name: str, pretrained: str | None) -> Path | None:
    """Where ``pretrained`` points for backbone ``name``; a clear error when it is absent.

    ``"torchvision"`` is torchvision's own file in the torch cache, downloaded there (with
    torchvision's progress bar) when missing: only this value ever fetches anything.
    """
    if pretrained is None:
        return None
    if name not in TORCHVISION_VGG:
        raise ConfigError(f"pretrained weights exist only for {', '.join(TORCHVISION_VGG)}, "
                         f"not backbone={name!r}")
    if pretrained == "torchvision":
        path = torchvision_cache_path(name)
        if not path.is_file():
            download_torchvision_weights(name, path)
        return path
    path = Path(pretrained)
    if not path.is_file():
        raise ConfigError(f"pretrained weights for {name} not found at {path}; give the path "
                          "of a torchvision state dict, 'torchvision', or None")
    return path


def download_torchvision_weights(name: str, path: Path) -> None:
    """Fetch torchvision's ImageNet weights through its weights API into ``path``'s folder
    (the torch cache); any failure is one ConfigError naming the file and the folder."""
    weights = TORCHVISION_VGG[name][2]
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # torch.hub's urlopen takes no timeout
    try:
        weights.get_state_dict(progress=True, check_hash=True)
    except (OSError, RuntimeError, ValueError) as exc:  # offline, refused, stalled, bad hash
        lines = str(exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
        raise ConfigError(
            f"cannot download ImageNet weights {path.name} for {name} into {path.parent} "
            f"({reason}); put {path.name} in {path.parent} or pass "
            "--set pretrained=/path/file.pth") from None
    finally:
        socket.setdefaulttimeout(previous)
    if not path.is_file():  # a torch that caches elsewhere than torch.hub.get_dir()
        raise ConfigError(f"downloaded ImageNet weights for {name} are not at {path}; "
                          "pass --set pretrained=/path/file.pth")


def load_state_dict(name: str, pretrained: str) -> dict[str, torch.Tensor]:
    """Read ImageNet weights from an explicit file or the torch cache (see pretrained_path)."""
    path = pretrained_path(name, pretrained)
    state = torchfile.read(path, "state dict", ConfigError)
    if not isinstance(state, dict) or not any(k.startswith("features.") for k in state):
        raise ConfigError(f"pretrained={str(path)!r} holds no torchvision VGG 'features.*' weights")
    return state


def _vgg(name: str, in_channels: int, pretrained: str | None) -> EncoderParts:
    layer_cfg, batch_norm, _ = TORCHVISION_VGG[name]
    features = models.vgg.make_layers(models.vgg.cfgs[layer_cfg], batch_norm=batch_norm)
    if pretrained is not None:
        state = load_state_dict(name, pretrained)
        state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        missing, _ = features.load_state_dict(state, strict=False)
        if missing:
            raise ConfigError(f"pretrained weights for {name} lack features.{missing[0]}")
    layers = list(features.children())[:-1]  # drop pool5: stride 16 as in BL/BM
    stem = layers[0]
    if in_channels != 3:
        # A 1-channel thermal stem keeps the pretrained response to grey input.
        grey = nn.Conv2d(in_channels, stem.out_channels, 3, padding=1)
        with torch.no_grad():
            grey.weight.copy_(stem.weight.sum(dim=1, keepdim=True))
            grey.bias.copy_(stem.bias)
        stem = grey
    stages, current = [], []
    for layer in layers[1:]:
        current.append(layer)
        if isinstance(layer, nn.MaxPool2d):
            stages.append(nn.Sequential(*current))
            current = []
    stages.append(nn.Sequential(*current))
    channels = [[m.out_channels for m in st if isinstance(m, nn.Conv2d)][-1] for st in stages]
    info = [FeatureInfo(c, s) for c, s in zip(channels, STRIDES, strict=True)]
    return EncoderParts(stem, nn.ModuleList(stages), info)


for _name in TORCHVISION_VGG:
    register("backbone", _name)(partial(_vgg, _name))


class ModalityBatchNorm2d(nn.Module):
    """Batch norm with each modality's own statistics and affine parameters, in a stage whose
    convolutions both share: domain-specific batch norm (Chang et al., CVPR 2019).

    One shared batch norm sees a batch of RGB and thermal together, so its mean and variance
    are the two modalities' mixture: neither is normalised as a backbone of its own would.
    The input is the shared stage's batch of 2B, RGB first (``TwoStreamEncoder.stage``).
    """

    def __init__(self, norm: nn.BatchNorm2d) -> None:
        super().__init__()
        # Both start as the given norm: its pretrained statistics and affine parameters.
        self.rgb, self.thermal = copy.deepcopy(norm), copy.deepcopy(norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (2B, C, H, W), RGB first
        rgb, thermal = x.chunk(2)
        return torch.cat([self.rgb(rgb), self.thermal(thermal)])


def split_batch_norms(module: nn.Module) -> nn.Module:
    """``module`` with every BatchNorm2d in it replaced, in place, by a ModalityBatchNorm2d
    made of two copies of it; a backbone without batch norm (VGG19) is left as it was."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, ModalityBatchNorm2d(child))
        else:
            split_batch_norms(child)
    return module


def build_encoder(name: str, in_channels: int, pretrained: str | None = None) -> EncoderParts:
    """The encoder registered as ``name`` (an unknown name is a ConfigError listing them)."""
    return lookup("backbone", name)(in_channels, pretrained)
