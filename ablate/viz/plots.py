"""The debugging pictures of plan section 7, one function per picture, each writing one PNG.

Figures are built with ``matplotlib.figure.Figure`` (the Agg canvas, no display and no global
pyplot state), so they work on headless machines and in threads.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy import ndimage

from ablate.viz.infer import Inference
from model.game import cell_sums, point_map

LOSS_TERMS = ("loss_density", "loss_feat_l1", "loss_tv", "loss_local_count", "loss_domain",
              "loss_density_s4", "loss")
VAL_GAME = ("val_game0", "val_game1", "val_game2", "val_game3")
ALIGN_CURVES = ("val_align_residual_px", "val_align_baseline_px")  # synthetic runs only
MAX_PEAKS = 500


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def _composite(moving: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Moving in magenta, reference in green: registered structure turns grey, a misaligned
    edge shows as a magenta/green double."""
    m, r = moving.mean(axis=2), reference.mean(axis=2)
    return np.stack([m, r, m], axis=2)


def stn_overlay(inf: Inference, path: Path, moving_name: str, reference_name: str) -> Path:
    fig = Figure(figsize=(12, 4.2))
    axes = fig.subplots(1, 3)
    panels = ((inf.reference, f"reference ({reference_name}) + labels"),
              (_composite(inf.moving, inf.reference), f"{moving_name} before STN (magenta) on "
                                                     f"{reference_name} (green)"),
              (_composite(inf.warped, inf.reference), f"{moving_name} after STN on "
                                                     f"{reference_name}"))
    for ax, (image, title) in zip(axes, panels, strict=True):
        ax.imshow(image)
        ax.plot(inf.points[:, 0], inf.points[:, 1], "o", mfc="none", mec="yellow", ms=5, mew=0.8)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    dx, dy = inf.stn_shift_px
    truth = inf.sample.meta.get("shift")
    known = (f"; synthetic misalignment: shift ({truth[0]:+.1f}, {truth[1]:+.1f}) px, rotation "
             f"{inf.sample.meta.get('rotation', 0.0):+.1f} deg") if truth else ""
    fig.suptitle(f"image {inf.sample.id}: STN translation ({dx:+.1f}, {dy:+.1f}) px{known}"
                 f"{align_text(inf)}", fontsize=10)
    return _save(fig, path)


def align_text(inf: Inference) -> str:
    """The alignment measured at this image's heads (synthetic data), for a title line."""
    if inf.align_px is None:
        return ""
    residual, baseline = inf.align_px
    return (f"\nat the labelled heads: {residual:.2f} px left after alignment, "
            f"{baseline:.2f} px without")


def offset_quiver(inf: Inference, path: Path, aligner: str = "") -> Path:
    """The displacement field as arrows and magnitude; ``aligner`` only labels the title."""
    flow = inf.offsets  # (2, h, w) as (dx, dy) in feature pixels, from any aligner
    _, h, w = flow.shape
    height, width = inf.reference.shape[:2]
    step = max(1, int(math.ceil(max(h, w) / 32)))  # at most ~32 arrows per side
    ys, xs = np.mgrid[0:h:step, 0:w:step]
    u, v = flow[0, ::step, ::step], flow[1, ::step, ::step]
    stride = inf.offset_stride
    magnitude = np.hypot(flow[0], flow[1]) * stride
    # Arrows in input pixels; offsets shorter than the arrow spacing are magnified to show.
    gain = max(1.0, 0.8 * step * stride / max(float(magnitude.max()), 1e-6))
    fig = Figure(figsize=(11, 4.4))
    left, right = fig.subplots(1, 2)
    left.imshow(inf.reference, extent=(0, width, height, 0))
    left.quiver((xs + 0.5) * stride, (ys + 0.5) * stride, u * stride * gain, v * stride * gain,
                np.hypot(u, v) * stride, angles="xy", scale_units="xy", scale=1, cmap="autumn",
                width=0.004)
    left.set_xlim(0, width)
    left.set_ylim(height, 0)
    scale = "to scale" if gain == 1 else f"magnified x{gain:.3g}"
    left.set_title(f"{aligner} displacement on the reference ({scale})".lstrip(), fontsize=9)
    left.axis("off")
    shown = right.imshow(magnitude, cmap="viridis", extent=(0, width, height, 0))
    fig.colorbar(shown, ax=right, label="|offset| in input px")
    right.set_title("offset magnitude", fontsize=9)
    right.axis("off")
    fig.suptitle(f"image {inf.sample.id}: offset field at stride {stride}; mean |offset| "
                 f"{magnitude.mean():.2f} px, max {magnitude.max():.2f} px{align_text(inf)}",
                 fontsize=10)
    return _save(fig, path)


def peaks(inf: Inference) -> np.ndarray:
    """Local maxima of the stride-r density above 10% of its maximum, as (x, y) input px."""
    d = inf.density
    if d.size == 0 or d.max() <= 0:
        return np.zeros((0, 2))
    is_peak = (d == ndimage.maximum_filter(d, size=3)) & (d > 0.1 * d.max())
    rows, cols = np.nonzero(is_peak)
    order = np.argsort(-d[rows, cols])[:MAX_PEAKS]
    height, width = inf.density_full.shape
    sy, sx = height / d.shape[0], width / d.shape[1]
    return np.stack([(cols[order] + 0.5) * sx, (rows[order] + 0.5) * sy], axis=1)


def density_overlay(inf: Inference, path: Path) -> Path:
    game = inf.game
    found = peaks(inf)
    fig = Figure(figsize=(11, 4.4))
    left, right = fig.subplots(1, 2)
    left.imshow(inf.reference)
    left.imshow(inf.density_full, cmap="jet", alpha=0.45)
    left.plot(inf.points[:, 0], inf.points[:, 1], "o", mfc="none", mec="white", ms=6, mew=1,
              label=f"ground truth ({len(inf.points)})")
    left.plot(found[:, 0], found[:, 1], "x", color="black", ms=5, mew=1.2,
              label=f"density peaks ({len(found)})")
    left.legend(fontsize=7, loc="lower right")
    left.set_title("density over the reference image", fontsize=9)
    left.axis("off")
    shown = right.imshow(inf.density, cmap="jet")
    fig.colorbar(shown, ax=right, label="density per output pixel")
    h, w = inf.density.shape
    right.set_title(f"predicted density, {h}x{w} at stride {inf.density_full.shape[0] // h}",
                    fontsize=9)
    right.axis("off")
    fig.suptitle(f"image {inf.sample.id}: predicted {game['pred_count']:.1f}, true "
                 f"{game['true_count']:.0f}; GAME0-3 " +
                 " / ".join(f"{game[f'game{k}']:.1f}" for k in range(4)), fontsize=10)
    return _save(fig, path)


def cell_grids(inf: Inference, path: Path) -> Path:
    """Predicted vs true count per GAME cell (levels 1-3), coloured by the signed error."""
    return _save(cell_grid_figure(inf), path)


PANEL_IN = 5.0  # width of one level's panel, inches


def cell_grid_figure(inf: Inference) -> Figure:
    """The figure of ``cell_grids``: the cells keep the image's proportions, and their numbers
    are sized to the drawn cell and outlined in white, readable on the deepest red or blue."""
    height, width = inf.density_full.shape
    aspect = height / width
    pred_map = torch.from_numpy(inf.density_full).double()
    true_map = point_map(torch.from_numpy(inf.points), (height, width)).double()
    # subplots leave each panel about 80% of PANEL_IN wide; 1 in for the titles
    fig = Figure(figsize=(3 * PANEL_IN, 0.8 * PANEL_IN * aspect + 1.0))
    axes = fig.subplots(1, 3)
    for ax, level in zip(axes, (1, 2, 3), strict=True):
        p = 2**level
        pred, true = cell_sums(pred_map, p).numpy(), cell_sums(true_map, p).numpy()
        error = pred - true
        limit = max(1.0, float(np.abs(error).max()))
        ax.imshow(error, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect=aspect)
        size = cell_font_size(fig, ax, p, aspect)
        outline = [patheffects.withStroke(linewidth=min(3.0, size / 4), foreground="white")]
        for i in range(p):
            for j in range(p):
                ax.text(j, i, f"{pred[i, j]:.1f}\n{true[i, j]:.0f}", ha="center", va="center",
                        fontsize=size, linespacing=1.0, path_effects=outline)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"GAME{level}: {np.abs(error).sum():.1f} (cells: predicted / true)",
                     fontsize=9)
    fig.suptitle(f"image {inf.sample.id}: per-cell counts; red = over-counted, blue = "
                 "under-counted", fontsize=10)
    return fig


def cell_font_size(fig: Figure, ax: Any, cells: int, aspect: float) -> float:
    """Points that fit two lines of "12.3" in one of ``cells`` x ``cells`` cells drawn at
    ``aspect`` (height / width) in ``ax``: about 2.4 em wide and 2.4 em tall."""
    box = ax.get_position()  # fraction of the figure
    width_in, height_in = box.width * fig.get_figwidth(), box.height * fig.get_figheight()
    cell_w = min(width_in / cells, height_in / (cells * aspect)) * 72  # points
    cell_h = cell_w * aspect
    return float(np.clip(min(cell_w, cell_h) / 2.6, 4.0, 16.0))


def loss_curves(epochs: list[dict[str, Any]], path: Path, title: str) -> tuple[Path, list[str]]:
    """Each recorded loss term and the val GAME per epoch; returns the terms drawn."""
    aligned = any(ALIGN_CURVES[0] in row for row in epochs)
    fig = Figure(figsize=(16 if aligned else 11, 4))
    axes = fig.subplots(1, 3 if aligned else 2)
    left, right = axes[:2]
    x = [row["epoch"] for row in epochs]
    if aligned:
        _align_curves(axes[2], x, epochs)
    drawn = [name for name in LOSS_TERMS if any(name in row for row in epochs)]
    for name in drawn:
        left.plot(x, [_positive(row.get(name)) for row in epochs], marker=".",
                  label=name.removeprefix("loss_") if name != "loss" else "total (weighted)",
                  linestyle="--" if name == "loss" else "-")
    left.set_yscale("log")
    left.set_title("training loss terms (unweighted)", fontsize=9)
    for name in VAL_GAME:
        if any(name in row for row in epochs):
            right.plot(x, [row.get(name, np.nan) for row in epochs], marker=".",
                       label=name.removeprefix("val_").upper())
    right.set_title("val GAME per epoch", fontsize=9)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(x) == 1:
            ax.set_xlim(x[0] - 1, x[0] + 1)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path), drawn


def _align_curves(ax, x: list[int], epochs: list[dict[str, Any]]) -> None:
    """Val alignment at the heads per epoch (synthetic data): is the STN learning it?"""
    for name, label in zip(ALIGN_CURVES, ("residual after alignment", "without alignment"),
                           strict=True):
        ax.plot(x, [row.get(name, np.nan) for row in epochs], marker=".", label=label,
                linestyle="-" if name == ALIGN_CURVES[0] else "--")
    ax.set_ylabel("px at the labelled heads (val)")
    ax.set_title("alignment at the heads per epoch", fontsize=9)


def _positive(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and value > 0 else np.nan
