"""One worker: the study's run specs, serialised, executed in order against the shared runs
database until every one is done, failed or pruned.

A worker that finds a run busy in another worker comes back to it: if that worker dies (a
node lost, a job killed), its heartbeat stops and this worker takes the run over after
``RunStore.stale_after`` s, resuming it from its last checkpoint. SIGTERM (what the local
launcher sends) and Ctrl-C are turned into one KeyboardInterrupt, so the run being trained
is recorded as interrupted and the next worker resumes it at once.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from ablate.db import RunStore
from ablate.errors import AblateError, UsageError
from ablate.plugins import load_plugins
from ablate.run.execute import SplitsCache, execute
from ablate.run.hooks import Hooks, RunOutcome
from ablate.study.plan import RunSpec
from ablate.study.study import Study

ENTRY = "from ablate.launch.worker import main; main()"
EXIT_INTERRUPTED = 130


def make_job(study: Study, specs: list[RunSpec], store: RunStore) -> dict[str, Any]:
    """What every worker is given; holds the database password, so it is written privately."""
    if store.url.get_backend_name() == "sqlite" and store.url.database in (None, "", ":memory:"):
        raise UsageError("--workers needs a runs database file or server; an in-memory "
                         "database is not shared between processes")
    return {"db": store.url.render_as_string(hide_password=False),
            "plugins": list(study.plugins), "study": study.name,
            "specs": [spec.to_json() for spec in specs],
            "poll_s": min(5.0, store.stale_after / 4)}


def write_job(job: dict[str, Any], path: Path) -> Path:
    path.touch(mode=0o600)
    path.write_text(json.dumps(job))
    return path


def load_specs(job: dict[str, Any]) -> list[RunSpec]:
    load_plugins(job["plugins"])  # before any config is built: it may name a plugin's part
    return [RunSpec.from_json(data) for data in job["specs"]]


def work(store: RunStore, specs: list[RunSpec], hooks: Hooks | None = None,
         poll_s: float = 5.0) -> list[RunOutcome]:
    """Execute every spec; the busy ones again every ``poll_s`` s until none is left.

    A busy run that its worker then records as failed is not tried again here: it failed
    once in this launch already (out of memory, a bad value), and the next launch retries it.
    """
    cache, finished = SplitsCache(), {}
    pending: list[tuple[RunSpec, int | None]] = [(spec, None) for spec in specs]
    while pending:
        busy = []
        for spec, seen in pending:
            ended = _ended_elsewhere(store, seen)
            outcome = ended or execute(store, spec, hooks, cache)
            if outcome.status == "busy":
                busy.append((spec, outcome.run_id))
            else:
                finished[(spec.condition, spec.variant, spec.seed)] = outcome
        pending = busy
        if pending:
            time.sleep(poll_s)
    return [finished[(s.condition, s.variant, s.seed)] for s in specs]


def _ended_elsewhere(store: RunStore, run_id: int | None) -> RunOutcome | None:
    """The outcome of a run another worker held and has since failed or pruned."""
    if run_id is None:
        return None
    run = store.get_run(run_id)
    if run.status not in ("failed", "pruned") or (run.error or "").startswith("interrupted"):
        return None  # running, done (skipped by the claim) or interrupted (resumable now)
    return RunOutcome(run.variant, run.seed, "skip-busy", run.id, run.status,
                      (run.error or "").splitlines()[0] or None, condition=run.condition)


def interrupt_once() -> None:
    """SIGINT or SIGTERM raises KeyboardInterrupt once; later ones are ignored, so that Ctrl-C
    followed by the parent's SIGTERM cannot cut short the recording of the interrupted run."""
    def handler(signum: int, frame: object) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


def run_job(job: dict[str, Any]) -> list[RunOutcome]:
    specs = load_specs(job)
    live = None
    if job.get("log"):
        from ablate.live.tensorboard import live_logging  # the viz stack, only when asked for

        live = live_logging(tuple(job["log"]), Path(job["log_dir"]))
    with RunStore(job["db"]) as store:
        return work(store, specs, live, poll_s=float(job.get("poll_s", 5.0)))


def main() -> None:
    """Entry of a local worker process: ``python -c ENTRY JOB.json``."""
    interrupt_once()
    try:
        run_job(json.loads(Path(sys.argv[1]).read_text()))
    except AblateError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
