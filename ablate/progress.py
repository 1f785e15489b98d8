"""A rich progress display for studies: one bar for the runs, one for the current run's epochs."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ablate.runner import Reporter, RunOutcome


class RichReporter(Reporter):
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.study_task = None
        self.epoch_task = None

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def study_started(self, total: int) -> None:
        self.study_task = self.progress.add_task("study", total=total, status="")

    def run_started(self, variant: str, seed: int, action: str, epochs: int) -> None:
        if self.epoch_task is not None:
            self.progress.remove_task(self.epoch_task)
        verb = {"resume": "resuming", "rerun": "rerunning"}.get(action, "training")
        self.epoch_task = self.progress.add_task(
            f"{verb} {variant} seed {seed}", total=epochs, status="")

    def epoch_done(self, epoch: int, row: dict[str, float]) -> None:
        status = f"loss {row['loss']:.4g}"
        if "val_game0" in row:
            status += f"  val GAME0 {row['val_game0']:.2f}  GAME3 {row['val_game3']:.2f}"
        self.progress.update(self.epoch_task, completed=epoch + 1, status=status)

    def run_done(self, outcome: RunOutcome) -> None:
        if self.study_task is not None:
            self.progress.advance(self.study_task)
        if outcome.action.startswith("skip"):
            why = "already done" if outcome.action == "skip-done" else "running elsewhere"
            self.console.print(f"[dim]skip {outcome.variant} seed {outcome.seed}: {why}[/dim]")
        elif outcome.status == "pruned":
            self.console.print(f"[dim]pruned {outcome.variant} seed {outcome.seed}[/dim]")
        elif outcome.status == "failed":
            self.console.print(
                f"[red]failed {outcome.variant} seed {outcome.seed}: {outcome.error}[/red]")
        else:
            t = outcome.test
            self.console.print(
                f"done {outcome.variant}/{outcome.seed} (run {outcome.run_id}) test GAME0-3 "
                f"{t['game0']:.2f} {t['game1']:.2f} {t['game2']:.2f} {t['game3']:.2f} "
                f"RMSE {t['rmse']:.2f}")
