"""Run (variant, seed) pairs of a study: claim each in the runs database, train, record.

Nothing here prints: progress goes through a ``Reporter`` so the CLI can show a rich bar and
tests can run silently. A failing run is recorded as failed and the study goes on.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.db import RunStore
from ablate.db.store import IMAGE_KEYS
from ablate.study import Study
from model.config import DataConfig, RunConfig
from model.data import Splits, load_splits
from model.engine import train


class Pruned(Exception):
    """Raised by an ``on_epoch`` callback to stop a run early (a tuner's pruner said so)."""


class Reporter:
    """Progress hooks; the default does nothing."""

    def study_started(self, total: int) -> None: ...
    def run_started(self, variant: str, seed: int, action: str, epochs: int) -> None: ...
    def epoch_done(self, epoch: int, row: dict[str, float]) -> None: ...
    def run_done(self, outcome: RunOutcome) -> None: ...


@dataclass
class RunOutcome:
    variant: str
    seed: int
    action: str  # the claim's action: new, resume, rerun, skip-done, skip-busy
    run_id: int | None = None
    status: str = "skipped"
    error: str | None = None
    test: dict[str, float] = field(default_factory=dict)


class SplitsCache:
    """Decode a dataset once for all variants that read it the same way."""

    def __init__(self) -> None:
        self._cache: dict[tuple[DataConfig, int], Splits] = {}

    def get(self, cfg: RunConfig) -> Splits:
        key = (cfg.data, cfg.model.thermal_channels)
        if key not in self._cache:
            self._cache[key] = load_splits(cfg.data, cfg.model.thermal_channels)
        return self._cache[key]


def run_dir(save_root: Path, study: str, variant: str, seed: int, cfg: RunConfig) -> Path:
    return save_root / study / f"{variant}-seed{seed}-{cfg.config_hash()}"


def run_one(
    store: RunStore,
    study: Study,
    variant: str,
    seed: int,
    extra: dict[str, Any],
    save_root: Path,
    force: bool = False,
    reporter: Reporter | None = None,
    splits: SplitsCache | None = None,
    exact_save_dir: Path | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> RunOutcome:
    """Claim and train one (variant, seed); a done run with the same config is skipped."""
    reporter = reporter or Reporter()
    cfg = study.config(variant, seed, extra)
    save_dir = (exact_save_dir or run_dir(save_root, study.name, variant, seed, cfg)).resolve()
    if force and exact_save_dir is None:
        # A forced rerun must not resume from the finished run's checkpoints.
        save_dir = save_dir.with_name(f"{save_dir.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    claim = store.claim(study.name, variant, seed, cfg.to_dict(), cfg.config_hash(),
                        label=study.variants[variant].label, save_dir=str(save_dir), force=force)
    if not claim.claimed:
        return RunOutcome(variant, seed, claim.action, claim.run.id if claim.run else None,
                          "done" if claim.action == "skip-done" else "busy")
    run = claim.run
    if run.save_dir:
        save_dir = Path(run.save_dir)  # a resumed run continues from its own checkpoints
    outcome = RunOutcome(variant, seed, claim.action, run.id)
    reporter.run_started(variant, seed, claim.action, cfg.train.epochs)

    def record(epoch: int, row: dict[str, float]) -> None:
        store.record_epoch(run.id, epoch, row)
        reporter.epoch_done(epoch, row)
        if on_epoch is not None:
            on_epoch(epoch, row)

    try:
        with store.keep_alive(run.id):
            result = train(cfg, save_dir, (splits or SplitsCache()).get(cfg), on_epoch=record)
    except Pruned:
        store.prune(run.id)
        outcome.status = "pruned"
        reporter.run_done(outcome)
        return outcome
    except KeyboardInterrupt:
        store.fail(run.id, "interrupted; the next study run resumes it from its checkpoint")
        raise
    except Exception as exc:  # recorded and reported; the study goes on
        outcome.status, outcome.error = "failed", _one_line(exc)
        store.fail(run.id, f"{outcome.error}\n\n{traceback.format_exc()}")
        reporter.run_done(outcome)
        return outcome
    rows = [{"split": "test", **{k: v for k, v in row.items() if k in IMAGE_KEYS}}
            for row in result.image_results]
    _backfill_epochs(store, run.id, result.history)
    store.finish(run.id, result.val, result.test, result.best_epoch, rows)
    outcome.status, outcome.test = "done", result.test
    reporter.run_done(outcome)
    return outcome


def run_study(
    store: RunStore,
    study: Study,
    variants: list[str],
    seeds: list[int],
    extra: dict[str, Any],
    save_root: Path,
    force: bool = False,
    reporter: Reporter | None = None,
) -> list[RunOutcome]:
    reporter = reporter or Reporter()
    reporter.study_started(len(variants) * len(seeds))
    cache = SplitsCache()
    outcomes = []
    for seed in seeds:
        for variant in variants:
            outcome = run_one(store, study, variant, seed, extra, save_root, force, reporter, cache)
            if outcome.status in ("done", "busy") and outcome.action.startswith("skip"):
                reporter.run_done(outcome)
            outcomes.append(outcome)
    return outcomes


def _backfill_epochs(store: RunStore, run_id: int, history: list[dict[str, float]]) -> None:
    """Record the epochs the checkpoint holds but the database missed: a worker that died
    between saving last.pt and recording that epoch resumes after it."""
    stored = {row["epoch"] for row in store.epochs(run_id)}
    for row in history:
        if row["epoch"] not in stored:
            store.record_epoch(run_id, int(row["epoch"]), row)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
