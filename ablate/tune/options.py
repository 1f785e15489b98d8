"""``TuneOptions``: everything ``ablate tune`` was asked, as one frozen value that a worker
process receives as JSON (never as ``--set`` strings to parse again)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.errors import UsageError


@dataclass(frozen=True)
class TuneOptions:
    n_trials: int | None = None  # None: the [tune] table's n_trials
    timeout: float | None = None  # seconds after which no new trial starts
    storage: str | None = None  # Optuna storage URL or journal path; None: next to --db
    study_name: str | None = None  # Optuna study name; None: <study>-<variant>-tune
    pruner: str | None = None
    sampler: str | None = None
    n_workers: int = 1
    gpus: tuple[str, ...] = ()  # --gpus: worker i sees gpus[i]; () = round robin over all
    confirm_seeds: int = 0
    save_root: Path = Path("runs")
    db: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # config overrides (named options, --set)
    quiet: bool = False
    worker: bool = False  # one of --n-workers' processes: search only, no summary
    # Complete or pruned trials after which every worker stops (a Slurm launch: tasks that
    # are requeued, or finish early, still add up to the trials asked for). None: no cap.
    max_trials: int | None = None

    def check(self) -> None:
        if self.n_trials is not None and self.n_trials < 1:
            raise UsageError(f"--n-trials {self.n_trials} is not valid; it must be >= 1")
        if self.timeout is not None and not self.timeout > 0:
            raise UsageError(f"--timeout {self.timeout:g} is not valid; it must be > 0 seconds")
        if self.n_workers < 1:
            raise UsageError(f"--n-workers {self.n_workers} is not valid; it must be >= 1")
        if self.confirm_seeds < 0:
            raise UsageError(f"--confirm-seeds {self.confirm_seeds} is not valid; "
                             "it must be >= 0")

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["save_root"] = str(self.save_root)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TuneOptions:
        return cls(**{**data, "save_root": Path(data["save_root"]),
                      "gpus": tuple(data.get("gpus", ()))})
