"""Rich progress displays: a bar for the runs (or trials), one for the current run's epochs,
and one line per finished run. ``reporter(quiet)`` picks the display or silence."""

from __future__ import annotations

import contextlib
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ablate.run.hooks import Reporter, RunOutcome
from ablate.study.plan import RunSpec

VERBS = {"resume": "resuming", "rerun": "rerunning"}


def bars(console: Console, enabled: bool = True) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                    console=console, disable=not enabled)


def epoch_status(row: dict[str, float]) -> str:
    status = f"loss {row['loss']:.4g}" if "loss" in row else ""
    if "val_game0" in row and "val_game3" in row:
        status += f"  val GAME0 {row['val_game0']:.2f}  GAME3 {row['val_game3']:.2f}"
    return status


def reporter(quiet: bool, console: Console | None = None) -> Any:
    """A context manager giving the rich display, or a silent ``Reporter`` with --quiet."""
    return contextlib.nullcontext(Reporter()) if quiet else RichReporter(console)


class EpochBars(Reporter):
    """A ``Progress`` with one bar per current run's epochs, replaced at every claim."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.epoch_task = None

    def __enter__(self) -> EpochBars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def describe(self, spec: RunSpec, outcome: RunOutcome) -> str:
        return f"{VERBS.get(outcome.action, 'training')} {spec.variant} seed {spec.seed}"

    def on_claimed(self, spec: RunSpec, outcome: RunOutcome) -> None:
        if self.epoch_task is not None:
            self.progress.remove_task(self.epoch_task)
        self.epoch_task = self.progress.add_task(
            self.describe(spec, outcome), total=spec.config.train.epochs, status="")

    def on_epoch(self, epoch: int, row: dict[str, float]) -> None:
        self.progress.update(self.epoch_task, completed=epoch + 1, status=epoch_status(row))


class RichReporter(EpochBars):
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        super().__init__(bars(self.console))
        self.study_task = None

    def study_started(self, total: int) -> None:
        self.study_task = self.progress.add_task("study", total=total, status="")

    def on_finished(self, outcome: RunOutcome) -> None:
        if self.study_task is not None:
            self.progress.advance(self.study_task)
        self.console.print(outcome_line(outcome))


def outcome_line(outcome: RunOutcome) -> str:
    """One line (rich markup) saying what happened to a run."""
    who = f"{outcome.variant} seed {outcome.seed}"
    if outcome.skipped:
        why = "already done" if outcome.action == "skip-done" else "running elsewhere"
        return f"[dim]skip {who}: {why}[/dim]"
    if outcome.status == "pruned":
        return f"[dim]pruned {who}[/dim]"
    if outcome.status == "failed":
        return f"[red]failed {who}: {outcome.error}[/red]"
    t = outcome.test
    warned = "".join(f"\n[yellow]warning {who}: {escape(w)}[/yellow]" for w in outcome.warnings)
    return (f"done {outcome.variant}/{outcome.seed} (run {outcome.run_id}) test GAME0-3 "
            f"{t['game0']:.2f} {t['game1']:.2f} {t['game2']:.2f} {t['game3']:.2f} "
            f"RMSE {t['rmse']:.2f}{warned}")
