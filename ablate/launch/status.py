"""``ablate launch status``: every task of the launches recorded in a launch folder, its state
as the scheduler reports it, and the run it is training according to the runs database."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import submitit
from rich.console import Console
from rich.table import Table

from ablate.db import RunStore
from ablate.db.host import pid_alive
from ablate.errors import UsageError
from ablate.launch.jobs import WORKERS_DIR
from ablate.launch.slurm import LAUNCHES


@dataclass(frozen=True)
class Task:
    job_id: str
    cluster: str
    launched: str  # when its launch was submitted
    worker: dict | None  # {"host", "pid"} once the task has started


def tasks(folder: Path) -> list[Task]:
    """Every task of every launch recorded in ``folder``, oldest first."""
    path = folder.expanduser() / LAUNCHES
    if not path.is_file():
        raise UsageError(f"no launches recorded in {folder}: `ablate launch slurm` writes "
                         f"{path}; pass the --folder it was given")
    out = []
    for line in path.read_text().splitlines():
        launch = json.loads(line)
        for job_id in launch["job_ids"]:
            record = folder.expanduser() / WORKERS_DIR / f"{job_id}.json"
            worker = json.loads(record.read_text()) if record.is_file() else None
            out.append(Task(job_id, launch["cluster"], launch["submitted_at"], worker))
    return out


def state(task: Task, folder: Path) -> str:
    """The scheduler's word for the task (sacct for Slurm), UNKNOWN if it cannot say."""
    if task.cluster == "local":
        return "RUNNING" if task.job_id.isdigit() and pid_alive(int(task.job_id)) else "ENDED"
    try:  # squeue knows pending and running tasks even where accounting (sacct) is off
        queued = subprocess.run(["squeue", "-h", "-j", task.job_id, "-o", "%T"],
                                capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        queued = ""
    if queued:
        return queued.splitlines()[0]
    try:
        return submitit.SlurmJob(folder=folder.expanduser() / "%j", job_id=task.job_id).state
    except Exception:  # no sacct on this machine, or the scheduler forgot the job
        return "UNKNOWN"


def status_table(folder: Path, store: RunStore, console: Console | None = None) -> Table:
    """Print (and return) one row per task: job, state, worker, the run it trains."""
    running = {(r.host, r.pid): r for r in store.list_runs(status="running")}
    table = Table(title=f"Launches in {folder}")
    for column in ("job", "state", "worker", "run", "epochs"):
        table.add_column(column)
    for task in tasks(folder):
        worker = task.worker or {}
        run = running.get((worker.get("host"), worker.get("pid")))
        who = f"{worker['host']}:{worker['pid']}" if worker else "-"
        what = f"{run.id} {run.study}/{run.variant} seed {run.seed}" if run else "-"
        epochs = f"{run.epochs_done or 0}" if run else "-"
        table.add_row(task.job_id, state(task, folder), who, what, epochs)
    (console or Console()).print(table)
    return table
