"""What a Slurm array task runs: a study worker or a tuning worker, each checkpointable.

submitit calls ``checkpoint`` when Slurm signals a preemption or the time limit (USR2): the
task is requeued with the same job, then the process exits. That exit unwinds the run being
trained, which is recorded as interrupted, so the requeued task (or any other worker) claims
it again and resumes it from its last checkpoint. A task killed outright (a dead node) leaves
its run to the heartbeat timeout: another worker takes it over after ``stale_after`` s.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import submitit
from rich.console import Console

from ablate.db.host import hostname
from ablate.launch.worker import run_job
from ablate.plugins import load_plugins
from ablate.study.study import Study
from ablate.tune.options import TuneOptions
from ablate.tune.session import search

WORKERS_DIR = "workers"  # in the launch folder: one file per task, who it is


def job_id() -> str:
    """This task's ``<array job>_<index>`` (what squeue shows), or the process id elsewhere."""
    array, index = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and index:
        return f"{array}_{index}"
    return os.environ.get("SLURM_JOB_ID") or submitit.JobEnvironment().job_id


def announce(folder: Path) -> None:
    """Record which host and process this task is, so ``ablate launch status`` can match the
    task to the run it is training."""
    record = {"job_id": job_id(), "host": hostname(), "pid": os.getpid()}
    path = folder / WORKERS_DIR / f"{record['job_id']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


class StudyWorker(submitit.helpers.Checkpointable):
    """One array task of ``ablate launch slurm FILE``: the worker loop over the study's runs."""

    def __init__(self, job: dict[str, Any], folder: str) -> None:
        self.job, self.folder = job, folder

    def __call__(self) -> dict[str, int]:
        announce(Path(self.folder))
        outcomes = run_job(self.job)
        return {status: sum(o.status == status for o in outcomes)
                for status in ("done", "failed", "pruned")}


class TuneWorker(submitit.helpers.Checkpointable):
    """One array task of ``ablate launch slurm FILE --tune``: trials until the study's cap."""

    def __init__(self, job: dict[str, Any], folder: str) -> None:
        self.job, self.folder = job, folder

    def __call__(self) -> int:
        announce(Path(self.folder))
        load_plugins(self.job["study"].get("plugins", ()))
        search(Study.from_record(self.job["study"]), TuneOptions.from_json(self.job["options"]),
               Console(stderr=True))
        return 0
