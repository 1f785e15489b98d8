"""In-memory RGB-T pairs: one Sample per image pair, a PairSet per split, and normalisation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from model.data.batch import Batch

FORMATS = ("synthetic", "rgbtcc", "dronergbt")


@dataclass
class Sample:
    """One decoded pair. Points are (x, y) pixels in the thermal frame, where the labels live.

    Coordinates are continuous: pixel column c spans [c, c + 1), which is how the official
    protocol rasterises a point (``int(x)``). Points outside [0, W) x [0, H) were dropped when the
    pair was read; ``dropped`` says how many, so the data check can report them.
    """

    id: str
    rgb: torch.Tensor  # (3, H, W) uint8
    thermal: torch.Tensor  # (C, H, W) uint8, C = 3 as stored or 1 after conversion
    points: torch.Tensor  # (N, 2) float32
    dropped: int = 0
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. the synthetic RGB misalignment

    @property
    def size(self) -> tuple[int, int]:
        return int(self.thermal.shape[-2]), int(self.thermal.shape[-1])


class PairSet(Sequence[Sample]):
    """The decoded pairs of one split, kept in memory as uint8 so each JPEG is decoded once."""

    def __init__(self, name: str, samples: Sequence[Sample]):
        self.name = name
        self.samples = list(samples)
        # Stacked copies on an accelerator, built once per device by the on-device loader.
        self.device_cache: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index):  # type: ignore[override]
        return self.samples[index]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __repr__(self) -> str:
        return f"PairSet({self.name!r}, {len(self)} pairs)"

    @property
    def num_points(self) -> int:
        return sum(int(s.points.shape[0]) for s in self.samples)


@dataclass(frozen=True)
class NormStats:
    """Per-channel mean and std of images scaled to [0, 1]."""

    rgb_mean: tuple[float, float, float]
    rgb_std: tuple[float, float, float]
    thermal_mean: tuple[float, float, float]
    thermal_std: tuple[float, float, float]


# The public RGBT-CC code's values (domain.md).
RGBTCC_STATS = NormStats(
    rgb_mean=(0.407, 0.389, 0.396),
    rgb_std=(0.241, 0.246, 0.242),
    thermal_mean=(0.492, 0.168, 0.430),
    thermal_std=(0.317, 0.174, 0.191),
)
# DroneRGBT ships no statistics; its models start from ImageNet backbones, so ImageNet's values
# are the natural choice for both modalities (the infrared JPEGs are near-grey 3-channel images).
DRONERGBT_STATS = NormStats(
    rgb_mean=(0.485, 0.456, 0.406),
    rgb_std=(0.229, 0.224, 0.225),
    thermal_mean=(0.485, 0.456, 0.406),
    thermal_std=(0.229, 0.224, 0.225),
)


@dataclass
class Splits:
    train: PairSet
    val: PairSet
    test: PairSet
    format: str
    stats: NormStats

    def __iter__(self) -> Iterator[PairSet]:
        return iter((self.train, self.val, self.test))


def compute_stats(pairs: PairSet) -> NormStats:
    """Per-channel mean/std over every pixel of a split (used for the synthetic set)."""

    def channel_stats(images: list[torch.Tensor]) -> tuple[tuple, tuple]:
        flat = torch.cat([im.flatten(1).float() / 255 for im in images], dim=1)
        if flat.shape[0] == 1:  # a 1-channel thermal: report it as three equal channels
            flat = flat.expand(3, -1)
        mean, std = flat.mean(1), flat.std(1).clamp_min(1e-3)
        return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)

    rgb_mean, rgb_std = channel_stats([s.rgb for s in pairs])
    thermal_mean, thermal_std = channel_stats([s.thermal for s in pairs])
    return NormStats(rgb_mean, rgb_std, thermal_mean, thermal_std)


def _normalise(images: torch.Tensor, mean: tuple, std: tuple) -> torch.Tensor:
    if images.shape[1] == 1:  # 1-channel thermal: one mean/std for the grey channel
        mean, std = (sum(mean) / 3,), (sum(std) / 3,)
    m = torch.tensor(mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255 - m) / s


def normalize(batch: Batch, stats: NormStats) -> Batch:
    """uint8 images -> float32 normalised, on whatever device the batch already is."""
    return replace(
        batch,
        rgb=_normalise(batch.rgb, stats.rgb_mean, stats.rgb_std),
        thermal=_normalise(batch.thermal, stats.thermal_mean, stats.thermal_std),
    )


def to_thermal_channels(thermal: torch.Tensor, channels: int) -> torch.Tensor:
    """RGBT-CC's thermal is pseudo-colour; a 1-channel model gets its luminance."""
    if channels == thermal.shape[0]:
        return thermal
    if channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114], device=thermal.device).view(3, 1, 1)
        return (
            (thermal.float() * weights).sum(0, keepdim=True).round().clamp(0, 255).to(torch.uint8)
        )
    if channels == 3 and thermal.shape[0] == 1:
        return thermal.expand(3, -1, -1).contiguous()
    raise ValueError(f"thermal_channels={channels} is not valid; choose one of 1, 3")
