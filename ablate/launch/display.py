"""One progress display of every worker's run, read from the runs database: the workers are
other processes (or other machines), and the database already knows what each one trains.

``StudyWatch`` also turns the database's rows into the ``RunOutcome``s the study's summary
counts, so that a worker killed mid-run still leaves a true summary.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import Progress

from ablate.db import Run, RunStore
from ablate.live.progress import bars, outcome_line
from ablate.run.hooks import RunOutcome
from ablate.study.plan import RunSpec

Key = tuple[str, int, str]  # (variant, seed, config_hash) within one study
ENDED = ("done", "failed", "pruned")


def key_of(item: RunSpec | Run) -> Key:
    return item.variant, item.seed, item.config_hash


class StudyWatch:
    """Polls the runs of ``specs``: a bar per running run (named by its worker), a line per run
    that ends, and the outcomes once the workers are gone."""

    def __init__(self, store: RunStore, specs: list[RunSpec], console: Console | None = None,
                 enabled: bool = True) -> None:
        self.store, self.specs = store, specs
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self.epochs = {key_of(s): s.config.train.epochs for s in specs}
        self.before = self._latest()
        self.reported = {k: (r.id, r.status) for k, r in self.before.items() if r.status in ENDED}
        self.progress: Progress = bars(self.console, enabled)
        self.study_task = self.progress.add_task("study", total=len(specs), status="")
        self.run_tasks: dict[int, int] = {}  # run id -> its bar

    def __enter__(self) -> StudyWatch:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _latest(self) -> dict[Key, Run]:
        wanted = set(self.epochs)
        latest: dict[Key, Run] = {}
        for run in self.store.list_runs(self.specs[0].study if self.specs else None):
            key = key_of(run)
            if key in wanted and (key not in latest or run.generation > latest[key].generation):
                latest[key] = run
        return latest

    def poll(self) -> None:
        latest = self._latest()
        for key, run in latest.items():
            if run.status == "running":
                self._show_running(key, run)
            elif run.status in ENDED and self.reported.get(key) != (run.id, run.status):
                self.reported[key] = (run.id, run.status)
                self._drop(run.id)
                self.progress.advance(self.study_task)
                if self.enabled:
                    self.console.print(outcome_line(self._outcome(run)))

    def _show_running(self, key: Key, run: Run) -> None:
        text = f"{run.host}:{run.pid} {run.variant} seed {run.seed}"
        if run.id not in self.run_tasks:
            self.run_tasks[run.id] = self.progress.add_task(
                text, total=self.epochs[key], status="")
        self.progress.update(self.run_tasks[run.id], description=text,
                             completed=run.epochs_done or 0)

    def _drop(self, run_id: int) -> None:
        task = self.run_tasks.pop(run_id, None)
        if task is not None:
            self.progress.remove_task(task)

    def _outcome(self, run: Run) -> RunOutcome:
        first = self.before.get(key_of(run))
        unchanged = first is not None and first.id == run.id and first.status == run.status
        action = "skip-done" if unchanged and run.status == "done" else "new"
        error = (run.error or "").splitlines()[0] if run.error else None
        test = {n: run.metric("test", n) for n in run.metric_keys()} if run.status == "done" else {}
        return RunOutcome(run.variant, run.seed, action, run.id, run.status, error, test,
                          run.condition or "")

    def outcomes(self) -> list[RunOutcome]:
        """One per spec, from its latest row: not started yet or still running is
        "interrupted"."""
        latest = self._latest()
        out = []
        for spec in self.specs:
            run = latest.get(key_of(spec))
            if run is None or run.status not in ENDED:
                out.append(RunOutcome(spec.variant, spec.seed, "new", run.id if run else None,
                                      "interrupted", condition=spec.condition))
            else:
                out.append(self._outcome(run))
        return out
