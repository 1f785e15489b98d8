"""``ablate launch slurm``: N workers as one Slurm job array, through submitit.

Every task gets the same job (the study's run specs, or a tuning worker's options) and the
runs database decides who trains what, exactly as for local workers. ``--cluster local``
uses submitit's local executor instead (one machine, no Slurm: the tests, or a workstation).
The batch script ``--dry-run`` prints is the one submitit would submit.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit

from ablate.errors import UsageError
from ablate.launch.jobs import StudyWorker, TuneWorker

LAUNCHES = "launches.jsonl"  # in the launch folder: one line per submission
SIGNAL_DELAY_S = 120  # USR2 this long before the time limit: time to finish a checkpoint
MAX_REQUEUES = 20  # time-outs after which a task is not requeued again


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


def executor(request: LaunchRequest) -> submitit.Executor:
    folder = request.folder.expanduser().resolve() / "%j"
    minutes_ = minutes(request.time)
    if request.cluster == "local":
        ex = submitit.LocalExecutor(folder=folder, max_num_timeout=MAX_REQUEUES)
        ex.update_parameters(timeout_min=minutes_, gpus_per_node=0, tasks_per_node=1,
                             signal_delay_s=SIGNAL_DELAY_S)
        return ex
    ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=MAX_REQUEUES)
    params: dict[str, Any] = {
        "job_name": request.name, "time": minutes_, "nodes": 1, "ntasks_per_node": 1,
        "array_parallelism": request.workers, "signal_delay_s": SIGNAL_DELAY_S,
        # Each task trains one run at a time: its GPUs, and no other task's.
        "gpus_per_node": request.gpus_per_worker or None,
        "cpus_per_task": request.cpus_per_worker, "partition": request.partition,
        "account": request.account}
    ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return ex


def batch_script(request: LaunchRequest) -> str:
    """The sbatch script of the job array, as submitit writes it (nothing is submitted)."""
    ex = executor(request)
    if not isinstance(ex, submitit.SlurmExecutor):
        raise UsageError("--dry-run prints a Slurm batch script; it needs --cluster slurm")
    ex.parameters["map_count"] = request.workers  # what map_array sets for an array
    # submitit has no public "render only" call; this is the text its submit writes.
    return ex._make_submission_file_text(ex._submitit_command_str, "dry-run")


def submit(request: LaunchRequest, jobs: list[dict[str, Any]], tune: bool) -> list[str]:
    """Submit one task per job; record the launch in the folder; the task ids."""
    folder = request.folder.expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)  # the pickled jobs hold the database URL, password included
    kind = TuneWorker if tune else StudyWorker
    ex = executor(request)
    submitted = ex.submit_array([kind(job, str(folder)) for job in jobs])
    ids = [job.job_id for job in submitted]
    record = {"submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "cluster": request.cluster,
              "name": request.name, "tune": tune, "job_ids": ids}
    with (folder / LAUNCHES).open("a") as stream:
        stream.write(json.dumps(record) + "\n")
    if request.cluster == "local":
        for job in submitted:  # no scheduler keeps them: this command waits for them
            job.result()
    return ids
