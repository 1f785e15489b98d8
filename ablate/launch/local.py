"""``--workers N`` / ``--gpus``: N worker processes on this machine, one study, one display.

The parent writes the job (every run spec as JSON) to a private file, starts the workers
with their slot's environment, and polls the runs database for the display. Ctrl-C reaches
the workers too (one process group); SIGTERM to the parent is passed on to them. Either way
each worker records its run as interrupted before it exits, so the next ``study run``
resumes it, and the parent raises a one-line error saying so.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ablate.errors import TrainingError
from ablate.launch.display import StudyWatch
from ablate.launch.slots import Slot
from ablate.launch.worker import ENTRY, write_job
from ablate.run.hooks import RunOutcome

POLL_S = 1.0
STOP_GRACE_S = 30.0  # for a worker to record its run as interrupted before it is killed
RESUME = "run the same command again to resume them from their last checkpoints"


class Stopped(Exception):
    """The parent was sent SIGTERM."""


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise Stopped(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave SIGTERM as it is
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_local(job: dict[str, Any], slots: list[Slot], watch: StudyWatch) -> list[RunOutcome]:
    """Start one worker per slot on ``job``, show their runs until they exit, return the
    outcomes; an interrupted study or a worker that died is a TrainingError."""
    with tempfile.TemporaryDirectory(prefix="ablate-workers-") as folder:
        path = write_job(job, Path(folder) / "job.json")
        command = [sys.executable, "-c", ENTRY, str(path)]
        procs: list[subprocess.Popen] = []
        try:
            with sigterm_raises(), watch:
                procs.extend(subprocess.Popen(command, env=slot.env()) for slot in slots)
                while any(p.poll() is None for p in procs):
                    watch.poll()
                    time.sleep(POLL_S)
                watch.poll()
        except (KeyboardInterrupt, Stopped):
            stop(procs)
            stopped = sum(o.status == "interrupted" for o in watch.outcomes())
            raise TrainingError(f"interrupted: {stopped} run(s) not finished; {RESUME}") from None
        except BaseException:
            stop(procs)  # the parent's own error must not orphan the workers
            raise
    outcomes = watch.outcomes()
    died = [f"{i} (pid {p.pid}, exit code {p.returncode})" for i, p in enumerate(procs)
            if p.returncode]
    if died:
        left = sum(o.status == "interrupted" for o in outcomes)
        raise TrainingError(f"worker {', '.join(died)} stopped early, {left} run(s) not "
                            f"finished; see its error above, then {RESUME}")
    return outcomes


def stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM every worker still running, then SIGKILL any that outlives the grace."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
