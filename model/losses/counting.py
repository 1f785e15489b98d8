"""The training objective: the density loss plus the plan's optional terms, each by weight."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from model.config import LossConfig, ModelConfig
from model.data.batch import Batch
from model.losses.alignment import gradient_ncc, supervised_alignment
from model.losses.density import MSEDensityLoss
from model.losses.local_count import local_count_loss
from model.losses.regularisers import domain_loss, feature_l1, total_variation
from model.output import ModelOutput
from model.registry import lookup
from model.targets import target_like

MULTISCALE_STRIDE = 4


def check_stride(name: str, density: torch.Tensor, batch: Batch, stride: int) -> None:
    """Refuse a map whose grid is not the input at ``stride``: a wrong downsample ratio would
    otherwise train quietly against targets in the wrong place."""
    height, width = batch.image_size
    if density.dim() != 4 or density.shape[:2] != (len(batch.points), 1):
        raise ValueError(
            f"{name} of shape {tuple(density.shape)} is not valid; expected "
            f"({len(batch.points)}, 1, h, w)"
        )
    h, w = int(density.shape[-2]), int(density.shape[-1])
    # Floor or ceil: backbones differ on inputs that the stride does not divide.
    if h not in (height // stride, math.ceil(height / stride)) or w not in (
        width // stride, math.ceil(width / stride)
    ):
        raise ValueError(
            f"{name} of size {h}x{w} does not match stride {stride} on a {height}x{width} input"
        )


@dataclass(frozen=True)
class Phase:
    """What the current epoch asks of the loss beyond its config: the warm-up turns the
    counting terms down (``count_weight``) and weighs the supervised alignment term by its own
    weight (``align_weight``; None: ``LossConfig.align_loss``); ``align_target`` (B, 3, 3) is
    the known reference -> moving pixel map (None: unknown, no supervised term)."""

    local_count_scale: float = 1.0
    count_weight: float = 1.0
    align_weight: float | None = None
    align_target: torch.Tensor | None = None


COUNT_TERMS = ("density", "local_count", "density_s4")


class CountingLoss(nn.Module):
    """``forward`` returns (total, terms): terms holds each computed term's unweighted value.

    A term is computed only when its weight is non-zero and the model produced what it needs
    (a displacement field, aligned features, domain logits, the stride-4 head); absent terms
    are absent from the dict, so a log never shows a zero that was not measured.
    """

    def __init__(self, cfg: LossConfig, model_cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.stride = model_cfg.downsample_ratio
        self.moving_is_rgb = model_cfg.moving == "rgb"
        self._align_target: torch.Tensor | None = None
        self.density_loss = lookup("density_loss", cfg.density)(cfg)
        self._stride_r_target: torch.Tensor | None = None

    def forward(
        self, output: ModelOutput, batch: Batch, local_count_scale: float = 1.0,
        phase: Phase | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        phase = phase or Phase(local_count_scale=local_count_scale)
        if not (phase.local_count_scale >= 0 and math.isfinite(phase.local_count_scale)):
            raise ValueError(
                f"local_count_scale={phase.local_count_scale!r} is not valid; it must be >= 0"
            )
        check_stride("density", output.density, batch, self.stride)
        # The MSE term and the local-count term share one target: build it once per step.
        self._stride_r_target = None
        self._align_target = phase.align_target
        specs = self._specs(phase)
        total = output.density.new_zeros((), dtype=torch.float32)
        terms: dict[str, torch.Tensor] = {}
        for name, (weight, term) in specs.items():
            if weight == 0:
                continue
            value = term(output, batch)
            if value is None:
                continue
            total = total + weight * value
            terms[name] = value.detach()
        return total, terms

    def _specs(self, phase: Phase) -> dict:
        cfg = self.cfg
        specs = {
            "density": (1.0, self._density),
            "local_count": (cfg.local_count * phase.local_count_scale, self._local_count),
            "feat_l1": (cfg.feat_l1, self._feat_l1),
            "tv": (cfg.tv, self._tv),
            "domain": (cfg.domain, self._domain),
            "density_s4": (cfg.multiscale_weight, self._density_s4),
            "align": (cfg.align_loss if phase.align_weight is None else phase.align_weight,
                      self._align),
            "align_ncc": (cfg.align_ncc, self._align_ncc),
        }
        for name in COUNT_TERMS:
            weight, term = specs[name]
            specs[name] = (weight * phase.count_weight, term)
        return specs

    def _align(self, output: ModelOutput, batch: Batch) -> torch.Tensor | None:
        if self._align_target is None:
            return None
        return supervised_alignment(output, self._align_target, batch.image_size)

    def _align_ncc(self, output: ModelOutput, batch: Batch) -> torch.Tensor | None:
        if output.theta is None:  # only the STN moves the image this term compares
            return None
        reference = batch.thermal if self.moving_is_rgb else batch.rgb
        return gradient_ncc(output.moving_warped, reference)

    def _target(self, output: ModelOutput, batch: Batch) -> torch.Tensor:
        if self._stride_r_target is None:
            self._stride_r_target = target_like(
                output.density, batch.points, batch.image_size, self.cfg.density_sigma)
        return self._stride_r_target

    def _density(self, output: ModelOutput, batch: Batch) -> torch.Tensor:
        if isinstance(self.density_loss, MSEDensityLoss):
            return self.density_loss(output.density, batch.points, batch.image_size,
                                     batch.full_sizes, target=self._target(output, batch))
        return self.density_loss(output.density, batch.points, batch.image_size,
                                 batch.full_sizes)

    def _local_count(self, output: ModelOutput, batch: Batch) -> torch.Tensor:
        density = output.density.float()
        target = self._target(output, batch)
        return local_count_loss(
            density, target, self.cfg.local_count_levels, self.cfg.local_count_level_weights
        )

    def _feat_l1(self, output: ModelOutput, batch: Batch) -> torch.Tensor | None:
        return feature_l1(output.aligned_features) if output.aligned_features else None

    def _tv(self, output: ModelOutput, batch: Batch) -> torch.Tensor | None:
        # Any aligner's (dx, dy) field: the term does not know which module made it.
        return None if output.displacement is None else total_variation(output.displacement)

    def _domain(self, output: ModelOutput, batch: Batch) -> torch.Tensor | None:
        if output.domain_logits is None:
            return None
        return domain_loss(output.domain_logits, output.domain_labels)

    def _density_s4(self, output: ModelOutput, batch: Batch) -> torch.Tensor | None:
        if output.density_s4 is None:
            return None
        check_stride("density_s4", output.density_s4, batch, MULTISCALE_STRIDE)
        return self.density_loss(output.density_s4, batch.points, batch.image_size,
                                 batch.full_sizes)


def build_loss(cfg: LossConfig, model_cfg: ModelConfig) -> CountingLoss:
    return CountingLoss(cfg, model_cfg)
