"""The RGB-T counting network: every change of the plan is a flag of ``ModelConfig``.

Data flow (reference = the frame of the labels, thermal by default; moving = the other):
    moving image --STN--> warped moving image
    stems (one per modality) -> stages 1..5, shared or separate
    after stage ``offset_stage``: moving features aligned onto the reference grid
    fusion(reference, moving) at stride 16 -> resampled to stride r -> density head

Each switchable part is a registry entry chosen here, "off" included ("none": the identity),
so ``forward`` runs the same code for every variant.
"""

from __future__ import annotations

import contextlib
import zlib

import torch
from torch import nn

from model.backbones import build_encoder, split_batch_norms
from model.config import ModelConfig
from model.layers.heads import DensityHead, resample
from model.output import ModelOutput
from model.registry import lookup

S4_STAGE = 1  # index of the stride-4 stage the multiscale head reads


@contextlib.contextmanager
def part_seed(name: str):
    """Initial weights of one part of the network from a seed of its own: the run's seed
    (torch's initial seed) with the part's name; torch's generator is left where it was.

    A variant's parts then start exactly as its parent's, and an addition that is the identity
    at init (the STN, the offset field) starts as the parent's very function: the difference
    between two variants of one seed is the change, not a fresh draw of the parts they share
    (common random numbers).
    """
    seed = (torch.initial_seed() + zlib.crc32(name.encode())) % 2**63
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class TwoStreamEncoder(nn.Module):
    """Per-modality stems; stages shared (run as one batch of 2B) or one copy per modality.

    Shared stages normalise both modalities together, unless ``modality_norm = "separate"``
    gives each its own batch norms (``model.backbones.ModalityBatchNorm2d``).
    ``stem`` and ``stage`` take and return (reference, moving) pairs; the module keeps its
    rgb/thermal parameter names, which checkpoints store.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        with part_seed("encoder.rgb"):
            rgb = build_encoder(cfg.backbone, 3, cfg.pretrained)
        with part_seed("encoder.thermal"):
            thermal = build_encoder(cfg.backbone, cfg.thermal_channels, cfg.pretrained)
        self.shared = cfg.shared_backbone
        self.moving_is_rgb = cfg.moving == "rgb"
        self.stem_rgb, self.stem_thermal = rgb.stem, thermal.stem
        self.stages_rgb = rgb.stages
        self.stages_thermal = None if self.shared else thermal.stages
        if self.shared and cfg.modality_norm == "separate":
            split_batch_norms(self.stages_rgb)  # separate stages have their own norms already
        self.feature_info = rgb.feature_info

    def swap(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(rgb, thermal) -> (reference, moving), and back: the same exchange both ways."""
        return (b, a) if self.moving_is_rgb else (a, b)

    def stem(self, reference: torch.Tensor, moving: torch.Tensor):
        rgb, thermal = self.swap(reference, moving)
        return self.swap(self.stem_rgb(rgb), self.stem_thermal(thermal))

    def stage(self, i: int, reference: torch.Tensor, moving: torch.Tensor):
        rgb, thermal = self.swap(reference, moving)
        if self.shared:
            # RGB first in the batch of 2B, as runs recorded before the registries were made:
            # batch-norm sums in another order change a seed's result.
            return self.swap(*self.stages_rgb[i](torch.cat([rgb, thermal])).chunk(2))
        return self.swap(self.stages_rgb[i](rgb), self.stages_thermal[i](thermal))


class RGBTCounter(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = TwoStreamEncoder(cfg)
        info = self.encoder.feature_info
        ref_c, mov_c = self.encoder.swap(3, cfg.thermal_channels)
        with part_seed("stn"):
            self.stn = lookup("stn", cfg.stn)(mov_c, ref_c, **cfg.stn_limits())
        self.align_stage = cfg.offset_stage - 1
        # Named "offset", not "aligner": checkpoints store the aligner's weights as offset.*.
        with part_seed("offset"):
            self.offset = lookup("aligner", cfg.aligner)(info[self.align_stage].channels)
        deep_c = info[-1].channels
        with part_seed("fusion"):
            self.fusion = lookup("fusion", cfg.fusion)(deep_c)
        with part_seed("domain"):
            self.domain = lookup("domain_head", cfg.domain_head)(deep_c, cfg.grl_lambda)
        with part_seed("head"):
            self.head = DensityHead(deep_c)
        with part_seed("head_s4"):
            self.head_s4 = lookup("multiscale_head", cfg.multiscale_head)(
                deep_c, info[S4_STAGE].channels)

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
        reference_img, moving_img = self.encoder.swap(rgb, thermal)  # reference/moving below
        warped_img, theta = self.stn(moving_img, reference_img)  # (B, C, H, W), (B, 2, 3)|None
        ref, mov = self.encoder.stem(reference_img, warped_img)
        aligned, s4 = [], None
        for i in range(len(self.encoder.feature_info)):
            ref, mov = self.encoder.stage(i, ref, mov)
            if i == self.align_stage:
                before = mov
                mov, displacement = self.offset(ref, mov)  # (B, C, h, w), (B, 2, h, w)|None
                aligned.append((ref, mov))
            if i == S4_STAGE:
                s4 = ref + mov  # (B, C1, H/4, W/4)
        aligned.append((ref, mov))  # (B, C, H/16, W/16)

        fused = self.fusion(ref, mov)
        h, w = rgb.shape[-2:]
        r = self.cfg.downsample_ratio
        density = self.head(resample(fused, (h // r, w // r)))  # (B, 1, H/r, W/r)
        domain_logits, domain_labels = self.domain(*self.encoder.swap(ref, mov))
        return ModelOutput(
            density=density,
            density_s4=self.head_s4(fused, s4),
            theta=theta,
            moving_warped=warped_img,
            displacement=displacement,
            moving_features=before,
            aligned_features=aligned,
            domain_logits=domain_logits,
            domain_labels=domain_labels,
        )


def build_model(cfg: ModelConfig) -> RGBTCounter:
    """The network of ``cfg``; its parts come from the registries named by the config."""
    return RGBTCounter(cfg)


def parameter_groups(net: RGBTCounter) -> dict[str, list[nn.Parameter]]:
    """Backbone vs. everything else (heads, alignment, fusion): the plan's two learning rates."""
    backbone_ids = {id(p) for p in net.encoder.parameters()}
    backbone = [p for p in net.parameters() if id(p) in backbone_ids]
    rest = [p for p in net.parameters() if id(p) not in backbone_ids]
    return {"backbone": backbone, "head": rest}


ALIGNMENT_PARTS = ("stn", "offset")


def clip_groups(net: RGBTCounter) -> list[list[nn.Parameter]]:
    """The parameters whose gradient norm is clipped together: the counting network, then each
    alignment module on its own.

    A shared clip let the alignment modules' gradient (the counting loss reaches the STN
    through the warped image; about 100 against the clip's 10 on registered data) shrink the
    counting network's step tenfold, so an STN that stayed the identity still cost GAME3.
    """
    aligners = [list(getattr(net, name).parameters()) for name in ALIGNMENT_PARTS]
    aligned_ids = {id(p) for params in aligners for p in params}
    counting = [p for p in net.parameters() if id(p) not in aligned_ids]
    return [params for params in [counting, *aligners] if params]
