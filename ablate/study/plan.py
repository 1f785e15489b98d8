"""Planning a study into runs: every (condition, variant, seed) resolved to one ``RunSpec``.

``plan`` resolves every config exactly once and checks everything that can be checked without
the database (values, device, pretrained weights, save folder), so a bad input claims nothing.
``ablate.run.execute`` then executes each specification alone. Nothing here prints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.errors import ConfigError, UsageError
from ablate.paths import inside
from ablate.study.study import Study
from model.config import RunConfig

LAST = "last.pt"  # model.engine.checkpoint.LAST, without importing torch


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


@dataclass(frozen=True)
class PlanOptions:
    """How a plan places and selects its runs, beyond what and which seeds."""

    force: bool = False  # train again even where a run of the same config is done
    exact_save_dir: Path | None = None  # ``ablate run --save-dir``: one run's own folder
    conditions: list[str] | None = None  # None: every condition of the study
    # the overrides of one condition only (``--data-path NAME=PATH``), applied before extra
    condition_extra: dict[str, dict[str, Any]] | None = None


def make_spec(study: Study, variant: str, seed: int, config: RunConfig, save_dir: Path,
              force: bool = False, condition: str = "", config_hash: str = "") -> RunSpec:
    """The run of ``variant``; ``config_hash`` when the caller has it already."""
    return RunSpec(study.name, variant, seed, study.variant(variant).label, config,
                   config_hash or config.config_hash(), save_dir, force, condition)


def _planned(study: Study, variant: str, seed: int, config: RunConfig, save_root: Path,
             options: PlanOptions, condition: str) -> RunSpec:
    """The run of ``variant`` with ``config``, its hash computed once, its folder chosen."""
    config_hash = config.config_hash()
    names = run_names(study.name, variant, seed, config_hash, condition)
    save_dir = choose_save_dir(save_root, names, options.force, options.exact_save_dir)
    return make_spec(study, variant, seed, config, save_dir, options.force, condition,
                     config_hash)


def plan(study: Study, variants: list[str], seeds: list[int], extra: dict[str, Any],
         save_root: Path, options: PlanOptions = PlanOptions()) -> list[RunSpec]:
    """Every (condition, variant, seed), seeds outer so that seed 0 of every variant comes
    first, with its config resolved once and checked; raises before anything is claimed."""
    chosen = study.select_conditions(options.conditions)
    if options.exact_save_dir is not None and len(chosen) > 1:
        raise UsageError(f"--save-dir {options.exact_save_dir} is one run's folder, but "
                         f"{study.path} has {len(chosen)} conditions")
    specs = []
    for seed in seeds:
        for condition in chosen:
            given = {**(options.condition_extra or {}).get(condition, {}), **extra}
            for variant in variants:
                config = study.config(variant, seed, given, condition)
                check_runnable(config)
                specs.append(_planned(study, variant, seed, config, save_root, options,
                                      condition))
    return specs


def check_runnable(config: RunConfig) -> None:
    """What the config's own checks cannot know: this machine's device and weight files."""
    from model.backbones import pretrained_path  # torch: only when runs are planned to train
    from model.engine.device import resolve_device

    try:
        resolve_device(config.train.device)
        pretrained_path(config.model.backbone, config.model.pretrained)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(str(exc)) from None

