"""``ablate viz``: the pictures that show *why* a run's numbers look the way they do.

For a few val or test images of one recorded run (its best checkpoint):
``<image>_stn.png`` the moving image before and after the STN on the reference image;
``<image>_offsets.png`` the feature offset field as arrows and magnitude (both titles give, on
synthetic data, the displacement left at the labelled heads after alignment and without it);
``<image>_density.png`` the predicted density and its peaks over the image, with the labels;
``<image>_cells.png`` predicted vs true count per GAME1-3 cell;
``loss_curves.png`` every recorded loss term and the val GAME per epoch (synthetic data: and
the val alignment at the heads).
A picture whose module is off in the run (no STN in variant A) is skipped with a note.

    from ablate.db import RunStore
    from ablate.viz import write_pictures
    with RunStore("runs.db") as store:
        result = write_pictures(store, 7, "reports/viz/run7")
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ablate.db import RunStore
from ablate.errors import DataError, UsageError
from ablate.viz import plots
from ablate.viz.infer import infer, load_pairs, load_run

SPLITS = ("val", "test")
OPTIONAL_TERMS = {"loss_feat_l1": "feature L1", "loss_tv": "TV", "loss_local_count":
                  "local-count"}


@dataclass
class VizResult:
    written: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was skipped, and why


def default_dir(run_id: int) -> Path:
    return Path("reports") / "viz" / f"run{run_id}"


def write_pictures(store: RunStore, run_id: int, out: str | Path | None = None,
                   n_images: int = 3, split: str = "val",
                   data_path: str | None = None) -> VizResult:
    """Write the pictures of run ``run_id`` into ``out`` (default reports/viz/run<id>)."""
    if split not in SPLITS:
        raise UsageError(f"--split {split!r} is not valid; choose one of {', '.join(SPLITS)}")
    if n_images < 1:
        raise UsageError(f"--images {n_images} is not valid; it must be >= 1")
    loaded = load_run(store, run_id)
    folder = Path(out) if out is not None else default_dir(run_id)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot write to {folder}: {exc.strerror or exc}") from None
    pairs, splits = load_pairs(loaded.config, split, data_path)
    if len(pairs) == 0:
        raise DataError(f"the {split} split of run {run_id}'s data is empty")
    cfg = loaded.config.model
    result = VizResult()
    if cfg.stn == "none":
        result.notes.append("STN is off in this run: no STN overlay")
    if cfg.aligner == "none":
        result.notes.append("offset alignment is off in this run: no offset field")
    try:
        for inf in infer(loaded, pairs, splits, n_images):
            stem = f"{split}-{_slug(inf.sample.id)}"
            if inf.warped is not None:
                result.written.append(plots.stn_overlay(inf, folder / f"{stem}_stn.png",
                                                        cfg.moving, cfg.reference))
            if inf.offsets is not None:
                result.written.append(plots.offset_quiver(inf, folder / f"{stem}_offsets.png",
                                                          cfg.aligner))
            result.written.append(plots.density_overlay(inf, folder / f"{stem}_density.png"))
            result.written.append(plots.cell_grids(inf, folder / f"{stem}_cells.png"))
        _curves(store, loaded.run, folder, result)
    except OSError as exc:
        raise UsageError(f"cannot write to {folder}: {exc.strerror or exc}") from None
    return result


def _curves(store: RunStore, run, folder: Path, result: VizResult) -> None:
    epochs = store.epochs(run.id)
    if not epochs:
        result.notes.append(f"run {run.id} recorded no epochs: no loss curves")
        return
    title = f"run {run.id}: {run.study} / {run.variant}, seed {run.seed}".replace("$", r"\$")
    path, drawn = plots.loss_curves(epochs, folder / "loss_curves.png", title)
    result.written.append(path)
    off = [name for key, name in OPTIONAL_TERMS.items() if key not in drawn]
    if off:
        result.notes.append(f"loss terms off in this run (weight 0 or module off): "
                            f"{', '.join(off)}")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)) or "image"
