"""Re-evaluate done runs' best checkpoints on test with the moving image displaced, and keep
the results in ``<save_dir>/robustness.json`` next to the checkpoint (merged with earlier ones;
the runs database is only read)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ablate.db import RunStore
from ablate.errors import UsageError
from ablate.robustness.results import KEYS, RESULTS, read_results
from ablate.robustness.warp import displace
from model.data import load_splits
from model.engine.checkpoint import BEST, load_model
from model.engine.device import resolve_device
from model.engine.evaluate import evaluate
from model.errors import CheckpointError


@dataclass(frozen=True)
class Target:
    """What a re-evaluation needs of a done run, read once from the runs database."""

    run_id: int
    variant: str
    save_dir: Path | None  # None when the run row names no folder


def parse_values(text: str, option: str, minimum: float | None = None) -> list[float]:
    """``"0,2,4"`` -> [0.0, 2.0, 4.0]; anything not a finite number (>= ``minimum``) is a
    one-line UsageError naming ``option``."""
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise UsageError(f"{option} {text!r}: {part.strip()!r} is not a number") from None
        if not math.isfinite(value) or (minimum is not None and value < minimum):
            bound = f" >= {minimum:g}" if minimum is not None else ""
            raise UsageError(f"{option} {text!r}: {part.strip()} is not a finite number{bound}")
        values.append(value)
    return sorted(set(values))


def targets(db: str | None, run_id: int | None, study: str | None) -> list[Target]:
    """The done run ``run_id``, or every done run of ``study`` (exactly one of them given)."""
    if (run_id is None) == (study is None):
        raise UsageError("give either a RUN_ID or --study NAME (one of them)")
    with RunStore(db, readonly=True) as store:
        if run_id is not None:
            runs = [store.get_run(run_id)]
            if runs[0].status != "done":
                raise UsageError(f"run {run_id} is {runs[0].status}, not done: only a done run "
                                 "has a best checkpoint and test metrics to compare with")
        else:
            store.check_study(study)
            runs = store.list_runs(study, status="done")
            if not runs:
                raise UsageError(f"study {study!r} has no done run to re-evaluate")
        return [Target(r.id, r.variant, Path(r.save_dir) if r.save_dir else None) for r in runs]


def evaluate_target(target: Target, shifts: Sequence[float], rotations: Sequence[float],
                    device: str | None = None) -> list[dict[str, Any]]:
    """One result row per (shift, rotation) for ``target``'s best.pt on the test split."""
    if target.save_dir is None or not target.save_dir.is_dir():
        raise CheckpointError(f"run {target.run_id}: its checkpoint folder {target.save_dir} "
                              "is gone")
    loaded = load_model(target.save_dir / BEST, {"device": device} if device else None)
    cfg = loaded.config
    dev = resolve_device(cfg.train.device)
    splits = load_splits(cfg.data, cfg.model.thermal_channels)
    net = loaded.net.to(dev)
    rows = []
    for shift in shifts:
        for rotation in rotations:
            warp = partial(displace, shift=shift, rotation=rotation)
            summary, _ = evaluate(net, splits.test, splits.stats, dev, cfg.train, warp)
            rows.append({"run_id": target.run_id, "variant": target.variant, "shift": shift,
                         "rotation": rotation, **{k: summary[k] for k in KEYS}})
    return rows


def store_results(target: Target, rows: Sequence[dict[str, Any]]) -> Path:
    """Merge ``rows`` into ``<save_dir>/robustness.json`` (a new (shift, rotation) replaces
    the old one) and write it atomically; returns the file."""
    path = target.save_dir / RESULTS
    merged = {(r["shift"], r["rotation"]): r for r in read_results(path)}
    merged.update({(r["shift"], r["rotation"]): dict(r) for r in rows})
    tmp = path.with_name(f".{RESULTS}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps([merged[k] for k in sorted(merged)], indent=1))
    os.replace(tmp, path)  # a crash never leaves half a file
    return path


def run_robustness(db: str | None, run_id: int | None, study: str | None,
                   shifts: Sequence[float], rotations: Sequence[float],
                   device: str | None = None) -> list[dict[str, Any]]:
    """The library under ``ablate robustness``: evaluate, store next to each checkpoint,
    and return every row (run by run, then shift, then rotation)."""
    rows = []
    for target in targets(db, run_id, study):
        found = evaluate_target(target, shifts, rotations, device)
        store_results(target, found)
        rows.extend(found)
    return rows
