"""``ablate launch slurm``: N workers as one Slurm job array, through submitit.

Every task gets the same job (the study's run specs, or a tuning worker's options) and the
runs database decides who trains what, exactly as for local workers. ``--cluster local``
uses submitit's local executor instead (one machine, no Slurm: the tests, or a workstation).
The batch script ``--dry-run`` prints is the one submitit would submit.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import submitit

from ablate.errors import UsageError
from ablate.launch.jobs import StudyWorker, TuneWorker
from ablate.launch.request import LaunchRequest, minutes

__all__ = ["LaunchRequest", "batch_script", "executor", "minutes", "submit"]

LAUNCHES = "launches.jsonl"  # in the launch folder: one line per submission
SIGNAL_DELAY_S = 120  # USR2 this long before the time limit: time to finish a checkpoint
MAX_REQUEUES = 20  # time-outs after which a task is not requeued again


def executor(request: LaunchRequest) -> submitit.Executor:
    folder = request.folder.expanduser().resolve() / "%j"
    minutes_ = minutes(request.time)
    if request.cluster == "local":
        ex = submitit.LocalExecutor(folder=folder, max_num_timeout=MAX_REQUEUES)
        ex.update_parameters(timeout_min=minutes_, gpus_per_node=0, tasks_per_node=1,
                             signal_delay_s=SIGNAL_DELAY_S)
        return ex
    ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=MAX_REQUEUES)
    ex.update_parameters(**slurm_parameters(request))
    return ex


def slurm_parameters(request: LaunchRequest) -> dict[str, Any]:
    params: dict[str, Any] = {
        "job_name": request.name, "time": minutes(request.time), "nodes": 1,
        "ntasks_per_node": 1, "array_parallelism": request.workers,
        "signal_delay_s": SIGNAL_DELAY_S,
        # Each task trains one run at a time: its GPUs, and no other task's.
        "gpus_per_node": request.gpus_per_worker or None,
        "cpus_per_task": request.cpus_per_worker, "partition": request.partition,
        "account": request.account}
    return {k: v for k, v in params.items() if v is not None}


class _Renderer(submitit.SlurmExecutor):
    """submitit's Slurm executor on a machine without Slurm: it refuses to start where
    ``srun`` is missing, but rendering the script needs neither srun nor sbatch."""

    @classmethod
    def affinity(cls) -> int:
        return 1


def batch_script(request: LaunchRequest) -> str:
    """The sbatch script of the job array, as submitit writes it (nothing is submitted, no
    folder is made, no Slurm command is run: it works on a laptop without Slurm)."""
    if request.cluster != "slurm":
        raise UsageError("--dry-run prints a Slurm batch script; it needs --cluster slurm")
    ex = _Renderer(folder=request.folder.expanduser().resolve() / "%j",
                   max_num_timeout=MAX_REQUEUES)
    ex.update_parameters(**slurm_parameters(request))
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
