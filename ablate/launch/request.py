"""What ``ablate launch slurm`` asks of the cluster, checked before anything is planned; no
submitit here, so the CLI builds its options without importing it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ablate.errors import UsageError


@dataclass(frozen=True)
class LaunchRequest:
    """What ``ablate launch slurm`` asks of the cluster."""

    workers: int
    gpus_per_worker: int = 1
    cpus_per_worker: int | None = None
    partition: str | None = None
    time: str = "24:00:00"
    account: str | None = None
    folder: Path = Path("slurm")
    cluster: str = "slurm"  # or "local": submitit's local executor
    name: str = "ablate"
    save_root: Path = Path("runs")  # the checkpoint folder every node sees
    tune: bool = False  # tuning workers on the study's [tune] table instead of its runs
    n_trials: int | None = None  # with tune: trials in all (None: the [tune] table's)

    def check(self) -> None:
        if self.workers < 1:
            raise UsageError(f"--workers {self.workers} is not valid; it must be >= 1")
        if self.gpus_per_worker < 0:
            raise UsageError(f"--gpus-per-worker {self.gpus_per_worker} is not valid; "
                             "it must be >= 0")
        if self.cpus_per_worker is not None and self.cpus_per_worker < 1:
            raise UsageError(f"--cpus-per-worker {self.cpus_per_worker} is not valid")
        if self.cluster not in ("slurm", "local"):
            raise UsageError(f"--cluster {self.cluster!r} is not valid; valid: slurm, local")
        minutes(self.time)


def minutes(text: str) -> int:
    """A Slurm time limit (``MM``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``) in whole minutes."""
    found = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not found:
        raise UsageError(f"--time {text!r} is not a Slurm time limit, e.g. 24:00:00 or 2-00:00")
    days, a, b, c = found.groups()
    if days is not None:
        hours, mins, secs = int(a), int(b or 0), int(c or 0)
    elif c is not None:
        hours, mins, secs = int(a), int(b), int(c)
    elif b is not None:
        hours, mins, secs = 0, int(a), int(b)
    else:
        hours, mins, secs = 0, int(a), 0
    total = int(days or 0) * 1440 + hours * 60 + mins + (secs > 0)
    if total < 1:
        raise UsageError(f"--time {text!r} is not valid; it must be at least a minute")
    return total
