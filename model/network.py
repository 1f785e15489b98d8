"""The RGB-T counting network: every change of the plan is a flag of ``ModelConfig``.

Data flow (reference = the frame of the labels, thermal by default; moving = the other):
    moving image --STN--> warped moving image
    stems (one per modality) -> stages 1..5, shared or separate
    after stage ``offset_stage``: moving features warped onto the reference grid
    fusion(reference, moving) at stride 16 -> resampled to stride r -> density head
"""

from __future__ import annotations

import torch
from torch import nn

from model.backbones import build_encoder
from model.config import ModelConfig
from model.layers.fusion import FUSIONS
from model.layers.grl import DomainHead, NoDomain
from model.layers.heads import DensityHead, MultiScaleHead, NoHead, resample
from model.layers.offset_align import OFFSET_ALIGNERS, NoAlign
from model.layers.stn import AffineSTN, NoSTN
from model.output import ModelOutput


class TwoStreamEncoder(nn.Module):
    """Per-modality stems; stages shared (run as one batch of 2B) or one copy per modality."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        rgb = build_encoder(cfg.backbone, 3, cfg.pretrained)
        thermal = build_encoder(cfg.backbone, cfg.thermal_channels, cfg.pretrained)
        self.shared = cfg.shared_backbone
        self.stem_rgb, self.stem_thermal = rgb.stem, thermal.stem
        self.stages_rgb = rgb.stages
        self.stages_thermal = None if self.shared else thermal.stages
        self.feature_info = rgb.feature_info

    def stage(self, i: int, x_rgb: torch.Tensor, x_thermal: torch.Tensor):
        if self.shared:
            both = self.stages_rgb[i](torch.cat([x_rgb, x_thermal]))
            return both.chunk(2)
        return self.stages_rgb[i](x_rgb), self.stages_thermal[i](x_thermal)


class RGBTCounter(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = TwoStreamEncoder(cfg)
        info = self.encoder.feature_info
        rgb_c, th_c = 3, cfg.thermal_channels
        mov_c, ref_c = (rgb_c, th_c) if cfg.moving == "rgb" else (th_c, rgb_c)
        self.stn = AffineSTN(mov_c, ref_c) if cfg.stn else NoSTN()
        align_c = info[cfg.offset_stage - 1].channels
        self.offset = OFFSET_ALIGNERS[cfg.offset_mode](align_c) if cfg.offset_align else NoAlign()
        deep_c = info[-1].channels
        self.fusion = FUSIONS[cfg.fusion](deep_c)
        self.domain = DomainHead(deep_c, cfg.grl_lambda) if cfg.grl else NoDomain()
        self.head = DensityHead(deep_c)
        self.head_s4 = MultiScaleHead(deep_c, info[1].channels) if cfg.multiscale else NoHead()

    def _check(self, rgb: torch.Tensor, thermal: torch.Tensor) -> None:
        cfg = self.cfg
        if rgb.dim() != 4 or rgb.shape[1] != 3:
            raise ValueError(f"rgb has shape {tuple(rgb.shape)}; expected (B, 3, H, W)")
        if thermal.dim() != 4 or thermal.shape[1] != cfg.thermal_channels:
            raise ValueError(
                f"thermal has shape {tuple(thermal.shape)}; expected (B, {cfg.thermal_channels}, "
                f"H, W) for thermal_channels={cfg.thermal_channels} (valid: 1, 3)"
            )
        if rgb.shape[0] != thermal.shape[0] or rgb.shape[-2:] != thermal.shape[-2:]:
            raise ValueError(
                f"rgb {tuple(rgb.shape)} and thermal {tuple(thermal.shape)} differ in batch or size"
            )
        h, w = rgb.shape[-2:]
        r = cfg.downsample_ratio
        if h % r or w % r:
            raise ValueError(f"input size {h}x{w} is not divisible by downsample_ratio={r}")

    def forward(self, rgb: torch.Tensor, thermal: torch.Tensor) -> ModelOutput:
        self._check(rgb, thermal)
        moving_is_rgb = self.cfg.moving == "rgb"
        reference_img, moving_img = (thermal, rgb) if moving_is_rgb else (rgb, thermal)
        moving_img, theta = self.stn(moving_img, reference_img)
        rgb_in, th_in = (moving_img, thermal) if moving_is_rgb else (rgb, moving_img)

        x_rgb, x_th = self.encoder.stem_rgb(rgb_in), self.encoder.stem_thermal(th_in)
        aligned, offsets, s4, before = [], None, None, None
        for i in range(len(self.encoder.feature_info)):
            x_rgb, x_th = self.encoder.stage(i, x_rgb, x_th)
            ref, mov = (x_th, x_rgb) if moving_is_rgb else (x_rgb, x_th)
            if i == self.cfg.offset_stage - 1:
                before = mov
                mov, offsets = self.offset(ref, mov)
                x_rgb, x_th = (mov, ref) if moving_is_rgb else (ref, mov)
                if self.cfg.offset_align or self.cfg.stn:
                    aligned.append((ref, mov))
            if i == 1:
                s4 = ref + mov  # (B, C1, H/4, W/4)
        ref, mov = (x_th, x_rgb) if moving_is_rgb else (x_rgb, x_th)  # (B, C, H/16, W/16)
        if aligned:
            aligned.append((ref, mov))

        fused = self.fusion(ref, mov)
        h, w = rgb.shape[-2:]
        r = self.cfg.downsample_ratio
        density = self.head(resample(fused, (h // r, w // r)))  # (B, 1, H/r, W/r)
        domain_logits, domain_labels = self.domain(x_rgb, x_th)
        return ModelOutput(
            density=density,
            density_s4=self.head_s4(fused, s4),
            theta=theta,
            moving_warped=moving_img if self.cfg.stn else None,
            offsets=offsets,
            moving_features=before if self.cfg.offset_align else None,
            aligned_features=aligned,
            domain_logits=domain_logits,
            domain_labels=domain_labels,
        )


def build_model(cfg: ModelConfig) -> RGBTCounter:
    return RGBTCounter(cfg)


def parameter_groups(net: RGBTCounter) -> dict[str, list[nn.Parameter]]:
    """Backbone vs. everything else (heads, alignment, fusion): the plan's two learning rates."""
    backbone_ids = {id(p) for p in net.encoder.parameters()}
    backbone = [p for p in net.parameters() if id(p) in backbone_ids]
    rest = [p for p in net.parameters() if id(p) not in backbone_ids]
    return {"backbone": backbone, "head": rest}
