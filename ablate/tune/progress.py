"""What ``ablate tune`` shows while it searches: a trials bar, the current run's epochs, and
one line per finished trial (from this process or, polled from the storage, from workers)."""

from __future__ import annotations

from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.markup import escape

from ablate.live.progress import EpochBars, bars
from ablate.run.hooks import RunOutcome
from ablate.study.plan import RunSpec


def trial_line(trial: FrozenTrial, objective: str) -> str:
    run = trial.user_attrs.get("run_id")
    where = f" (run {run})" if run is not None else ""
    if trial.state == TrialState.COMPLETE:
        values = ", ".join(f"{v:.4g}" for v in trial.values)
        return f"trial {trial.number} complete: val {objective} {values}{where}"
    if trial.state == TrialState.PRUNED:
        return f"trial {trial.number} pruned at epoch {trial.last_step}{where}"
    error = trial.user_attrs.get("error", "its worker stopped")
    return f"trial {trial.number} {trial.state.name.lower()}: {error}"


class TrialProgress(EpochBars):
    """Progress of ``total`` trials; without bars (``--quiet``) only the trial lines."""

    def __init__(self, total: int, objective: str, console: Console, bars_on: bool = True) -> None:
        super().__init__(bars(console, bars_on))
        self.objective, self.console = objective, console
        self.trials = self.progress.add_task("trials", total=total, status="")

    def describe(self, spec: RunSpec, outcome: RunOutcome) -> str:
        return "epochs"

    def trial_done(self, trial: FrozenTrial) -> None:
        self.progress.advance(self.trials)
        self.console.print(escape(trial_line(trial, self.objective)))
