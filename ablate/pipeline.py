"""The one run pipeline: a study is planned into run specifications, each executed alone.

``plan`` resolves every (condition, variant, seed) config exactly once and checks everything
that can be checked without the database (values, device, pretrained weights, save folder), so a bad
input claims nothing. ``execute`` claims one ``RunSpec`` in the runs database, trains it,
records it and reports every outcome (done, skipped, busy, failed, pruned) through ``Hooks``.
``ablate run``, ``ablate study run``, the tuner's trials and ``--confirm-seeds`` all go
through these two functions. Nothing here prints.
"""

from __future__ import annotations

import gc
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ablate.db import RunStore
from ablate.db.store import IMAGE_KEYS
from ablate.errors import ConfigError, UsageError
from ablate.paths import inside
from ablate.study import Study
from model.backbones import pretrained_path
from model.config import DataConfig, RunConfig
from model.data import Splits, load_splits
from model.engine import train
from model.engine.checkpoint import LAST
from model.engine.device import resolve_device

OOM_HINT = " (lower --batch-size or --set crop_size=..., or use a larger GPU)"


class Pruned(Exception):
    """Raised by an ``on_epoch`` hook to stop a run early (a tuner's pruner said so)."""


@dataclass(frozen=True)
class RunSpec:
    """One run to execute: everything ``execute`` needs, resolved once by ``plan``."""

    study: str
    variant: str
    seed: int
    label: str
    config: RunConfig
    config_hash: str
    save_dir: Path  # where it trains, unless the claim resumes a run that has its own
    force: bool = False  # train again even if a run with this config is done
    condition: str = ""  # the study's condition ("" in a study without conditions)

    def to_json(self) -> dict[str, Any]:
        return {"study": self.study, "variant": self.variant, "seed": self.seed,
                "label": self.label, "config": self.config.to_dict(),
                "config_hash": self.config_hash, "save_dir": str(self.save_dir),
                "force": self.force, "condition": self.condition}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSpec:
        """Inverse of ``to_json``; the config's plugins must be imported first."""
        config = RunConfig.from_dict(data["config"])
        return cls(data["study"], data["variant"], int(data["seed"]), data["label"], config,
                   data["config_hash"], Path(data["save_dir"]), bool(data["force"]),
                   data.get("condition", ""))


@dataclass
class RunOutcome:
    variant: str
    seed: int
    action: str  # the claim's action: new, resume, rerun, skip-done, skip-busy
    run_id: int | None = None
    status: str = "running"  # then done, busy, failed or pruned ("done" for skip-done too)
    error: str | None = None
    test: dict[str, float] = field(default_factory=dict)
    condition: str = ""

    @property
    def skipped(self) -> bool:
        return self.action.startswith("skip")

    @property
    def trained(self) -> bool:
        return self.status == "done" and not self.skipped


class Hooks:
    """What ``execute`` tells its caller; every hook does nothing by default."""

    def on_claimed(self, spec: RunSpec, outcome: RunOutcome) -> None: ...
    def on_epoch(self, epoch: int, row: dict[str, float]) -> None: ...
    def on_finished(self, outcome: RunOutcome) -> None: ...


class Reporter(Hooks):
    """Hooks of a progress display, which also hears how many runs a study plans."""

    def study_started(self, total: int) -> None: ...


class Chain(Hooks):
    """Several hooks called in order (e.g. a trial's pruning, then the progress display)."""

    def __init__(self, *hooks: Hooks | None) -> None:
        self.hooks = [h for h in hooks if h is not None]

    def on_claimed(self, spec: RunSpec, outcome: RunOutcome) -> None:
        for hook in self.hooks:
            hook.on_claimed(spec, outcome)

    def on_epoch(self, epoch: int, row: dict[str, float]) -> None:
        for hook in self.hooks:
            hook.on_epoch(epoch, row)

    def on_finished(self, outcome: RunOutcome) -> None:
        for hook in self.hooks:
            hook.on_finished(outcome)


class SplitsCache:
    """Decode a dataset once for all variants that read it the same way."""

    def __init__(self) -> None:
        self._cache: dict[tuple[DataConfig, int], Splits] = {}

    def get(self, cfg: RunConfig) -> Splits:
        key = (cfg.data, cfg.model.thermal_channels)
        if key not in self._cache:
            self._cache[key] = load_splits(cfg.data, cfg.model.thermal_channels)
        return self._cache[key]


def choose_save_dir(save_root: Path, names: tuple[str, ...], force: bool = False,
                    exact: Path | None = None) -> Path:
    """The save-folder policy, in one place (a claimed run that resumes keeps its own
    folder: ``execute`` prefers the claimed row's).

    ``exact`` (``ablate run --save-dir``) is used as given; else the run folder is
    ``save_root/<names...>``, every name made inert by ``ablate.paths.inside`` so nothing a
    study file says writes outside ``save_root``; ``force`` gets a timestamped folder of its
    own, so a forced rerun never resumes the finished run's checkpoints.
    """
    if exact is not None:
        if force and (exact.expanduser() / LAST).exists():
            raise UsageError(f"--force: {exact} holds a {LAST} that the rerun would resume "
                             "instead of retraining; give another --save-dir or delete it")
        return exact.expanduser().resolve()
    folder = inside(save_root, *names)
    if force:
        folder = folder.with_name(f"{folder.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    return folder


def run_names(study: str, variant: str, seed: int, config_hash: str,
              condition: str = "") -> tuple[str, ...]:
    """The folder names of a run under the save root: ``<study>/<variant>-seed<seed>-<hash>``,
    with the condition's folder between them in a study with conditions."""
    return (study, *([condition] if condition else []), f"{variant}-seed{seed}-{config_hash}")


def make_spec(study: Study, variant: str, seed: int, config: RunConfig, save_dir: Path,
              force: bool = False, condition: str = "") -> RunSpec:
    return RunSpec(study.name, variant, seed, study.variant(variant).label, config,
                   config.config_hash(), save_dir, force, condition)


def plan(study: Study, variants: list[str], seeds: list[int], extra: dict[str, Any],
         save_root: Path, force: bool = False, exact_save_dir: Path | None = None,
         conditions: list[str] | None = None,
         condition_extra: dict[str, dict[str, Any]] | None = None) -> list[RunSpec]:
    """Every (condition, variant, seed), seeds outer so that seed 0 of every variant comes
    first, with its config resolved and checked; raises before anything is claimed.

    ``conditions``: None for every condition of the study; ``condition_extra`` holds the
    overrides of one condition only (``--data-path NAME=PATH``), applied before ``extra``."""
    chosen = study.select_conditions(conditions)
    if exact_save_dir is not None and len(chosen) > 1:
        raise UsageError(f"--save-dir {exact_save_dir} is one run's folder, but "
                         f"{study.path} has {len(chosen)} conditions")
    specs = []
    for seed in seeds:
        for condition in chosen:
            given = {**(condition_extra or {}).get(condition, {}), **extra}
            for variant in variants:
                config = study.config(variant, seed, given, condition)
                check_runnable(config)
                names = run_names(study.name, variant, seed, config.config_hash(), condition)
                save_dir = choose_save_dir(save_root, names, force, exact_save_dir)
                specs.append(make_spec(study, variant, seed, config, save_dir, force, condition))
    return specs


def check_runnable(config: RunConfig) -> None:
    """What the config's own checks cannot know: this machine's device and weight files."""
    try:
        resolve_device(config.train.device)
        pretrained_path(config.model.backbone, config.model.pretrained)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def execute(store: RunStore, spec: RunSpec, hooks: Hooks | None = None,
            splits: SplitsCache | None = None) -> RunOutcome:
    """Claim ``spec``; train, record and report it if this worker got it. A done run with the
    same config is skipped, a run busy in another worker too; a failing run is recorded as
    failed and reported (the caller goes on), a pruned one as pruned."""
    hooks = hooks or Hooks()
    claim = store.claim(spec.study, spec.variant, spec.seed, spec.config.to_dict(),
                        spec.config_hash, label=spec.label, save_dir=str(spec.save_dir),
                        force=spec.force, condition=spec.condition)
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
    store.finish(run_id, result.val, result.test, result.best_epoch, rows)
    outcome.status, outcome.test = "done", result.test


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
