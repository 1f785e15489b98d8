"""What the training commands check before a run is claimed, and bound before it starts.

A run that is claimed and then fails on its first write (an unwritable ``--save-dir``) is
recorded as failed with a raw OS error; a thousand worker processes for one run, or a
hundred billion seeds, are a typo. So: every folder a run writes is checked here, the worker
count is bounded by the machine and by the runs left to do, and counts of seeds are bounded.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ablate.errors import UsageError

if TYPE_CHECKING:
    from ablate.db import RunStore
    from ablate.launch.slots import Slot
    from ablate.study.plan import RunSpec

# More seeds than this is a typo: a paired test has its power long before, and every seed is
# one more training of every variant.
MAX_SEEDS = 1000
# Worker processes per core beyond which they only wait for each other (each loads torch).
WORKERS_PER_CORE = 4


def check_worker_count(workers: int | None, option: str = "--workers") -> None:
    """``--workers 1000`` on an 8-core machine is an error (one line naming the bound)."""
    cores = os.cpu_count() or 1
    bound = WORKERS_PER_CORE * cores
    if workers is not None and workers > bound:
        raise UsageError(f"{option} {workers} is not valid; it must be at most {bound} "
                         f"({WORKERS_PER_CORE} per core of this machine's {cores})")


def check_seed_count(seeds: int, option: str = "--seeds") -> None:
    if seeds > MAX_SEEDS:
        raise UsageError(f"{option} {seeds} is not valid; it must be at most {MAX_SEEDS} "
                         "(every seed trains every variant once more)")


def unwritable(path: Path) -> str | None:
    """Why ``path`` cannot be made and written as a folder, or None when it can: the path
    itself, or else its nearest existing parent, must be a writable folder."""
    path = path.expanduser().absolute()
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None:  # pragma: no cover - the root always exists
        return f"no parent of {path} exists"
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def check_writable(paths: Iterable[tuple[str, Path]]) -> None:
    """``(what the user gave, folder)`` pairs, e.g. ``("--save-dir runs", runs/demo/A-seed0)``;
    the first folder that cannot be written is one error line naming both."""
    for given, path in paths:
        reason = unwritable(path)
        if reason is not None:
            raise UsageError(f"{given}: cannot write run files there: {reason}")


Folders = list[tuple[str, Path]]  # (what the user gave, a folder a run writes)


def run_folders(specs: list[RunSpec], save_dir: Path | None, log_dir: Path | None) -> Folders:
    """Every folder the runs of ``specs`` write: their save dirs (one per distinct parent:
    they share a root), under ``--save-dir save_dir``, and ``--log-dir`` when logging."""
    given = f"--save-dir {save_dir}" if save_dir is not None else "run folder"
    parents = {spec.save_dir.parent: spec.save_dir for spec in specs}
    folders = [(given, folder) for folder in parents.values()]
    return folders + ([(f"--log-dir {log_dir}", log_dir)] if log_dir is not None else [])


def runs_left(store: RunStore, specs: list[RunSpec]) -> int:
    """How many of ``specs`` a worker would train: the rest are done with the same config."""
    latest: dict[tuple, str] = {}
    names = {spec.study for spec in specs}
    for run in (run for name in names for run in store.list_runs(name)):  # in id order
        latest[(run.study, run.variant, run.seed, run.condition, run.config_hash)] = run.status
    return sum(spec.force or latest.get((spec.study, spec.variant, spec.seed, spec.condition,
                                         spec.config_hash)) != "done" for spec in specs)


def fit_workers(slots: list[Slot] | None, left: int) -> list[Slot] | None:
    """No more worker processes than runs left to do (none when nothing is left: the runs
    are skipped here, at once), with a note when the count given is cut."""
    if not slots:
        return slots
    if left == 0:
        return None
    if len(slots) <= left:
        return slots
    typer.echo(f"note: {len(slots)} workers for {left} run(s) left to do: starting {left}",
               err=True)
    threads = max(1, (os.cpu_count() or 1) // left)
    return [dataclasses.replace(slot, threads=threads) for slot in slots[:left]]
