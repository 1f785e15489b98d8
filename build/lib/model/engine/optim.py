"""Optimiser, schedule and the recipe's per-epoch switches (freezing, local-count ramp)."""

from __future__ import annotations

import math

import torch

from model.config import TrainConfig
from model.network import RGBTCounter, parameter_groups


def build_optimizer(net: RGBTCounter, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with the plan's two learning rates: backbone (low) and everything else."""
    groups = parameter_groups(net)
    return torch.optim.AdamW(
        [
            {"params": groups["backbone"], "lr": cfg.backbone_lr, "name": "backbone"},
            {"params": groups["head"], "lr": cfg.lr, "name": "head"},
        ],
        weight_decay=cfg.weight_decay,
    )


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig):
    """Stepped once per epoch."""
    if cfg.schedule == "cosine":
        factor = lambda e: 0.5 * (1 + math.cos(math.pi * min(e, cfg.epochs) / cfg.epochs))  # noqa: E731
    elif cfg.schedule == "step":
        factor = lambda e: 0.1 ** (e // cfg.step_size)  # noqa: E731
    else:
        factor = lambda e: 1.0  # noqa: E731
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def local_count_scale(epoch: int, ramp_epochs: int) -> float:
    """The plan's "start small, then increase": 25% of the weight, rising linearly to 100%."""
    if ramp_epochs <= 0:
        return 1.0
    return min(1.0, 0.25 + 0.75 * epoch / ramp_epochs)


def set_frozen(net: RGBTCounter, frozen: bool, all_stages: bool, n_stages: int) -> None:
    """Freeze the stems and the lower ``n_stages`` stages (or the whole encoder)."""
    enc = net.encoder
    stage_lists = [s for s in (enc.stages_rgb, enc.stages_thermal) if s is not None]
    lower = [enc.stem_rgb, enc.stem_thermal]
    for stages in stage_lists:
        lower.extend(stages if all_stages else stages[:n_stages])
    for p in enc.parameters():
        p.requires_grad_(True)
    if frozen:
        for module in lower:
            for p in module.parameters():
                p.requires_grad_(False)
