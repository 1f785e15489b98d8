"""What a run tells its caller while it executes: its outcome and the hooks that hear it.

``ablate.run.execute`` calls ``Hooks`` as a run is claimed, at every epoch and when it ends;
progress displays, live logging and a tuner's pruning are hooks. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ablate.study.plan import RunSpec


class Pruned(Exception):
    """Raised by an ``on_epoch`` hook to stop a run early (a tuner's pruner said so)."""


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
    warnings: list[str] = field(default_factory=list)  # a degenerate run, one line each
    execution: dict[str, object] = field(default_factory=dict)  # the settings it ran with

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

