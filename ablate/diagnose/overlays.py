"""Pictures of the worst images: the prediction over the image with its labels, as given and
after the best correction, so the misplacement (or its absence) is seen, not only counted.

Figures use ``matplotlib.figure.Figure`` (the Agg canvas, no pyplot state): headless-safe.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from ablate.diagnose import WORST
from ablate.diagnose.hypotheses import apply, full_map
from ablate.diagnose.run import Diagnosis
from ablate.errors import UsageError
from ablate.paths import inside


def _grey(image: torch.Tensor) -> np.ndarray:
    grey = image.to(torch.float64).mean(0)
    return ((grey - grey.min()) / (grey.max() - grey.min()).clamp_min(1e-6)).numpy()


def _panel(ax, background: np.ndarray, density: torch.Tensor, points: np.ndarray,
           title: str, vmax: float) -> None:
    ax.imshow(background, cmap="gray")
    ax.imshow(density.numpy(), cmap="inferno", alpha=0.55, vmin=0, vmax=vmax)
    ax.plot(points[:, 0], points[:, 1], "o", mfc="none", mec="cyan", ms=4, mew=0.8)
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def write_overlays(diagnosis: Diagnosis, out: Path, n_images: int = WORST) -> list[Path]:
    """One PNG per worst image (by GAME3 as given) under ``out``; returns the paths."""
    fixes = [s for s in diagnosis.scored if not s.bound]
    best = diagnosis.chosen or (fixes[0] if fixes else None)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {out}: {exc.strerror}") from None
    order = np.argsort([-row["game3"] for row in diagnosis.rows], kind="stable")[:n_images]
    written = []
    for rank, index in enumerate(order.tolist(), start=1):
        truth, density = diagnosis.truths[index], diagnosis.maps[index]
        sample, _ = diagnosis.data.sample(truth.id)
        before = full_map(density, truth.size)
        panels = [(before, f"as given: GAME3 {diagnosis.rows[index]['game3']:.2f}")]
        if best is not None:
            fixed = apply(best.name, best.params, density, truth.size, truth.affine)
            panels.append((full_map(fixed, truth.size),
                           f"after {best.name}: GAME3 {best.rows[index]['game3']:.2f}"))
        fig = Figure(figsize=(5.2 * len(panels), 4.4), layout="compressed")
        axes = np.atleast_1d(fig.subplots(1, len(panels)))
        vmax = max(float(p[0].max()) for p in panels) or 1.0
        for ax, (full, title) in zip(axes, panels, strict=True):
            _panel(ax, _grey(sample.thermal), full, truth.points.numpy(), title, vmax)
        fig.suptitle(f"image {truth.id}: {truth.points.shape[0]} labelled, "
                     f"{float(before.sum()):.1f} predicted", fontsize=10)
        path = inside(out, f"{rank:02d}_{truth.id}.png")
        fig.savefig(path, dpi=80)
        written.append(path)
    return written
