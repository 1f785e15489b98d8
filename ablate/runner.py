"""Run a planned study: execute its run specifications in order, one progress display.

The pipeline itself (``RunSpec``, ``plan``, ``execute``, the hooks) is ``ablate.pipeline``;
its names are re-exported here for the code that imported them from this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablate.db import RunStore
from ablate.pipeline import (
    Hooks,
    Pruned,
    Reporter,
    RunOutcome,
    RunSpec,
    SplitsCache,
    execute,
    plan,
)
from ablate.study import Study

__all__ = ["Hooks", "Pruned", "Reporter", "RunOutcome", "RunSpec", "SplitsCache", "execute",
           "plan", "run_specs", "run_study"]


def run_specs(store: RunStore, specs: list[RunSpec],
              reporter: Reporter | None = None) -> list[RunOutcome]:
    """Execute every specification in order, decoding each dataset once."""
    reporter = reporter or Reporter()
    reporter.study_started(len(specs))
    cache = SplitsCache()
    return [execute(store, spec, reporter, cache) for spec in specs]


def run_study(store: RunStore, study: Study, variants: list[str], seeds: list[int],
              extra: dict[str, Any], save_root: Path, force: bool = False,
              reporter: Reporter | None = None) -> list[RunOutcome]:
    """Plan and run (variant, seed) pairs of ``study``; recorded in ``store``."""
    specs = plan(study, variants, seeds, extra, save_root, force)
    return run_specs(store, specs, reporter)
