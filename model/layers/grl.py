"""Gradient reversal for domain-invariant features (Ganin & Lempitsky, ICML 2015).

A small classifier tells RGB from thermal features; the reversed gradient pushes the encoder
to make them indistinguishable instead of discriminative.
"""

from __future__ import annotations

import torch
from torch import nn

from model.registry import register


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, lam: float) -> torch.Tensor:
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.lam * grad, None


def grad_reverse(x: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    return _GradReverse.apply(x, lam)


@register("domain_head", "grl")
class DomainHead(nn.Module):
    def __init__(self, channels: int, lam: float, hidden: int = 64) -> None:
        super().__init__()
        self.lam = lam
        self.classify = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2)
        )

    def forward(self, rgb: torch.Tensor, thermal: torch.Tensor):
        pooled = torch.cat([rgb, thermal]).mean(dim=(2, 3))  # (2B, C)
        logits = self.classify(grad_reverse(pooled, self.lam))  # (2B, 2)
        labels = torch.arange(2, device=rgb.device).repeat_interleave(rgb.shape[0])
        return logits, labels


@register("domain_head", "none")
class NoDomain(nn.Module):
    """Off: no domain classifier, so no domain loss."""

    def __init__(self, channels: int = 0, lam: float = 0.0) -> None:
        super().__init__()

    def forward(self, rgb: torch.Tensor, thermal: torch.Tensor):
        return None, None
