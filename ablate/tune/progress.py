"""What ``ablate tune`` shows while it searches: a trials bar, the current run's epochs, and
one line per finished trial (from this process or, polled from the storage, from workers)."""

from __future__ import annotations

from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ablate.runner import Reporter


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


class TrialProgress(Reporter):
    """Progress of ``total`` trials; without bars (``--quiet``) only the trial lines."""

    def __init__(self, total: int, objective: str, console: Console, bars: bool = True) -> None:
        self.objective, self.console = objective, console
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
            console=console, disable=not bars,
        )
        self.trials = self.progress.add_task("trials", total=total, status="")
        self.epochs = None

    def __enter__(self) -> TrialProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def run_started(self, variant: str, seed: int, action: str, epochs: int) -> None:
        if self.epochs is not None:
            self.progress.remove_task(self.epochs)
        self.epochs = self.progress.add_task("epochs", total=epochs, status="")

    def epoch_done(self, epoch: int, row: dict[str, float]) -> None:
        status = f"loss {row['loss']:.4g}" if "loss" in row else ""
        if "val_game3" in row:
            status += f"  val GAME0 {row['val_game0']:.2f}  GAME3 {row['val_game3']:.2f}"
        self.progress.update(self.epochs, completed=epoch + 1, status=status)

    def trial_done(self, trial: FrozenTrial) -> None:
        self.progress.advance(self.trials)
        self.console.print(escape(trial_line(trial, self.objective)))
