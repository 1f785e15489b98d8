"""Auxiliary terms of the plan: feature L1 after alignment, offset smoothness, domain loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def feature_l1(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Mean over (reference, warped) pairs of mean |reference - warped|."""
    if not pairs:
        raise ValueError("pairs=[] is not valid; feature_l1 needs at least one aligned pair")
    losses = []
    for index, (reference, warped) in enumerate(pairs):
        if reference.shape != warped.shape:
            raise ValueError(
                f"aligned_features[{index}] shapes {tuple(reference.shape)} and "
                f"{tuple(warped.shape)} differ"
            )
        losses.append((reference.float() - warped.float()).abs().mean())
    return torch.stack(losses).mean()


def total_variation(offsets: torch.Tensor) -> torch.Tensor:
    """mean |d/dy| + mean |d/dx| of a (B, C, h, w) offset field.

    An axis of length 1 has no neighbours and contributes 0 rather than the NaN of an empty mean.
    """
    if offsets.dim() != 4:
        raise ValueError(f"offsets of shape {tuple(offsets.shape)} are not valid; expected 4-D")
    offsets = offsets.float()
    total = offsets.new_zeros(())
    if offsets.shape[-2] > 1:
        total = total + (offsets[..., 1:, :] - offsets[..., :-1, :]).abs().mean()
    if offsets.shape[-1] > 1:
        total = total + (offsets[..., :, 1:] - offsets[..., :, :-1]).abs().mean()
    return total


def domain_loss(logits: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """Cross entropy of the modality classifier behind the gradient-reversal layer."""
    if labels is None:
        raise ValueError("domain_labels=None is not valid when domain_logits are given")
    return F.cross_entropy(logits.float(), labels)
