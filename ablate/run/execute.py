"""Executing one planned run: claim it in the runs database, train it, record it.

``execute`` claims one ``RunSpec``, trains it, records it and reports every outcome (done,
skipped, busy, failed, pruned) through ``Hooks``. ``ablate run``, ``ablate study run``, the
tuner's trials and ``--confirm-seeds`` all go through it. Nothing here prints.
"""

from __future__ import annotations

import gc
import traceback
from pathlib import Path

import torch

from ablate.db import RunStore
from ablate.db.store import IMAGE_KEYS
from ablate.run.hooks import Chain, Hooks, Pruned, Reporter, RunOutcome
from ablate.study.plan import RunSpec
from model.config import EXECUTION_FIELDS, DataConfig, RunConfig
from model.data import Splits, load_splits
from model.engine import train

OOM_HINT = " (lower --batch-size or --set crop_size=..., or use a larger GPU)"


class SplitsCache:
    """Decode a dataset once for all variants that read it the same way."""

    def __init__(self) -> None:
        self._cache: dict[tuple[DataConfig, int], Splits] = {}

    def get(self, cfg: RunConfig) -> Splits:
        key = (cfg.data, cfg.model.thermal_channels)
        if key not in self._cache:
            self._cache[key] = load_splits(cfg.data, cfg.model.thermal_channels)
        return self._cache[key]


def execute(store: RunStore, spec: RunSpec, hooks: Hooks | None = None,
            splits: SplitsCache | None = None) -> RunOutcome:
    """Claim ``spec``; train, record and report it if this worker got it. A done run with the
    same config is skipped, a run busy in another worker too; a failing run is recorded as
    failed and reported (the caller goes on), a pruned one as pruned."""
    hooks = hooks or Hooks()
    claim = store.claim(spec)
    outcome = RunOutcome(spec.variant, spec.seed, claim.action,
                         claim.run.id if claim.run is not None else None,
                         condition=spec.condition)
    if not claim.claimed:
        outcome.status = "done" if claim.action == "skip-done" else "busy"
        hooks.on_finished(outcome)
        return outcome
    # A resumed run continues from the checkpoints in its own folder.
    save_dir = Path(claim.run.save_dir) if claim.run.save_dir else spec.save_dir
    _train(store, spec, save_dir, hooks, splits or SplitsCache(), outcome)
    hooks.on_finished(outcome)
    return outcome


def _train(store: RunStore, spec: RunSpec, save_dir: Path, hooks: Hooks, splits: SplitsCache,
           outcome: RunOutcome) -> None:
    run_id = outcome.run_id

    def record(epoch: int, row: dict[str, float]) -> None:
        store.record_epoch(run_id, epoch, row)
        hooks.on_epoch(epoch, row)

    try:
        with store.keep_alive(run_id):
            hooks.on_claimed(spec, outcome)
            result = train(spec.config, save_dir, splits.get(spec.config), on_epoch=record)
    except Pruned:
        store.prune(run_id)
        outcome.status = "pruned"
        return
    except (KeyboardInterrupt, SystemExit):
        # Ctrl-C, SIGTERM, or submitit exiting after a Slurm preemption: training has
        # stopped, so the run is handed on at once instead of after the heartbeat timeout.
        store.fail(run_id, "interrupted; the next study run resumes it from its checkpoint")
        raise
    except Exception as exc:  # recorded with its traceback and reported; the study goes on
        outcome.status, outcome.error = "failed", _one_line(exc)
        if isinstance(exc, torch.OutOfMemoryError):
            outcome.error += OOM_HINT
            _release_gpu_memory()
        store.fail(run_id, f"{outcome.error}\n\n{traceback.format_exc()}")
        return
    _backfill_epochs(store, run_id, result.history)
    rows = [{"split": "test", **{k: v for k, v in row.items() if k in IMAGE_KEYS}}
            for row in result.image_results]
    outcome.execution = {k: v for k, v in result.execution.items() if k in EXECUTION_FIELDS}
    ran = spec.config.with_overrides(outcome.execution)
    store.finish(run_id, result.val, result.test, result.best_epoch, rows, ran.to_dict())
    outcome.status, outcome.test, outcome.warnings = "done", result.test, result.warnings


def _release_gpu_memory() -> None:
    """After an out-of-memory run the next run of this worker starts with what the failed one
    held freed (its tensors are garbage once the traceback is dropped)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


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


def run_specs(store: RunStore, specs: list[RunSpec], reporter: Reporter | None = None,
              hooks: Hooks | None = None) -> list[RunOutcome]:
    """Execute every specification in order, one progress display (and ``hooks``, e.g. live
    logging, after it), each dataset decoded once."""
    reporter = reporter or Reporter()
    reporter.study_started(len(specs))
    cache = SplitsCache()
    both = Chain(reporter, hooks)
    return [execute(store, spec, both, cache) for spec in specs]

