"""`--workers N` / `--gpus`: N worker processes on one runs database, one display, stopped
together by a signal and resumable; the slot planning (GPU and threads per worker)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ABLATE, VARIANTS, cli_env, invoke, ok, runs_json

from ablate.db import RunStore
from ablate.errors import UsageError
from ablate.launch.slots import Slot, parse_gpus, plan_slots
from ablate.launch.worker import make_job

# Imported by every worker (the study's plugins travel with the job): each epoch sleeps
# $SLOW_EPOCH_S first, so a test can act in the middle of a run on a fast machine.
SLOW_PLUGIN = """
import os, time
from model.engine import trainer

_epoch = trainer.Trainer._train_epoch

def _slow(self, epoch):
    time.sleep(float(os.environ.get("SLOW_EPOCH_S", "0")))
    return _epoch(self, epoch)

trainer.Trainer._train_epoch = _slow
"""


def slow_plugin(folder: Path) -> Path:
    path = folder / "slow_epochs.py"
    path.write_text(SLOW_PLUGIN)
    return path


def wait_for(condition: Callable[[], object], what: str, timeout: float = 120.0,
             procs: tuple[subprocess.Popen, ...] = ()) -> object:
    """Poll ``condition`` until it returns something true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        for proc in procs:
            assert proc.poll() is None, f"exited {proc.returncode} before {what}: " \
                f"{proc.communicate()}"
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def rows_of(db: Path) -> list[dict]:
    if not db.exists():
        return []
    with RunStore(str(db), readonly=True) as store:
        return store.run_dicts()


def start_study(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    # A session of its own, as a terminal gives a command: Ctrl-C (SIGINT to the process
    # group) then reaches the study and its workers, not the test runner.
    return subprocess.Popen([*ABLATE, "study", "run", *args], env=env or cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


# -- slots -------------------------------------------------------------------------------


def test_workers_share_the_cores():
    assert plan_slots(None, None, [], cores=4) == [Slot(None, 4)]
    assert plan_slots(2, None, [], cores=4) == [Slot(None, 2)] * 2
    assert plan_slots(3, None, [], cores=2) == [Slot(None, 1)] * 3


def test_one_worker_per_listed_gpu():
    visible = ["0", "1", "2", "3"]
    assert plan_slots(None, "0,1,3", visible, cores=12) == [Slot(g, 4) for g in ("0", "1", "3")]
    assert plan_slots(None, "all", visible, cores=8) == [Slot(g, 2) for g in visible]
    assert plan_slots(2, "3, 1", visible, cores=8) == [Slot("3", 4), Slot("1", 4)]
    env = Slot("3", 4).env({"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0,1,2,3"})
    assert env == {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "3", "OMP_NUM_THREADS": "4"}
    # A thread count the user chose wins; no GPU leaves the parent's devices as they are.
    assert Slot(None, 4).env({"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "2"}) == {
        "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "2"}


@pytest.mark.parametrize(("workers", "gpus", "visible", "message"), [
    (0, None, [], "--workers 0 is not valid"),
    (None, "all", [], "--gpus all: no GPU is visible"),
    (None, "0,0", ["0", "1"], "names a GPU twice"),
    (None, "0,,1", ["0", "1"], "not a comma-separated list"),
    (None, "2", ["0", "1"], "GPU 2 is not visible (visible: 0, 1)"),
    (3, "0,1", ["0", "1"], "--workers 3 and --gpus 0,1 disagree"),
])
def test_bad_worker_options(workers, gpus, visible, message):
    with pytest.raises(UsageError) as info:
        plan_slots(workers, gpus, visible, cores=2)
    assert message in str(info.value)


def test_parse_gpus_keeps_the_given_order():
    assert parse_gpus("3,0", ["0", "3"]) == ["3", "0"]


@pytest.mark.parametrize("args", [["--workers", "0"], ["--gpus", "7"], ["--gpus", "all"]])
def test_bad_worker_options_are_one_error_line(tiny_study, in_tmp, args):
    for command in (["study", "run", str(tiny_study)], ["tune", str(tiny_study)]):
        result = invoke(*command, *args)
        assert result.exit_code == 1, result.output
        assert result.output.count("Error:") == 1 and "--" in result.output
        assert not (in_tmp / "runs.db").exists(), "refused before the database is touched"


def test_workers_need_a_shared_database(tiny_study, in_tmp):
    result = invoke("study", "run", str(tiny_study), "--workers", "2", "--db", "sqlite://")
    assert result.exit_code == 1
    assert "Error: --workers needs a runs database file or server" in result.output


def test_job_is_json_and_private(tiny_study, in_tmp):
    from ablate.launch.worker import load_specs, write_job
    from ablate.study.plan import plan
    from ablate.study.study import load_study

    study = load_study(tiny_study)
    specs = plan(study, ["A", "G"], [0, 1], {}, Path("runs"))
    with RunStore("j.db") as store:
        job = make_job(study, specs, store)
    path = write_job(job, in_tmp / "job.json")
    assert path.stat().st_mode & 0o777 == 0o600
    back = load_specs(json.loads(path.read_text()))
    assert back == specs


# -- real worker processes -----------------------------------------------------------------


@pytest.mark.slow
def test_study_with_two_workers_trains_each_run_once(tiny_study, in_tmp):
    """The done criterion of issue 14 on the tiny demo study."""
    result = ok("study", "run", str(tiny_study), "--workers", "2", env=cli_env())
    assert f"{len(VARIANTS)} trained, 0 skipped, 0 failed" in result.stdout
    # One display for both workers: a line per finished run, whichever worker trained it.
    shown = re.findall(r"^done (\w+)/0 \(run \d+\) test GAME0-3", result.stderr, re.M)
    assert sorted(shown) == sorted(VARIANTS)
    rows = runs_json()
    assert sorted(r["variant"] for r in rows) == sorted(VARIANTS)
    assert all(r["status"] == "done" and r["epochs_done"] == 1 for r in rows)
    workers = {r["worker"] for r in rows}
    assert len(workers) == 2, f"two worker processes shared the study: {workers}"
    assert all(r["worker"] == f"{r['host']}:{r['pid']}" for r in rows)
    assert os.getpid() not in {r["pid"] for r in rows}, "the parent trains nothing itself"
    # Again: everything is done, each worker skips every run.
    again = ok("study", "run", str(tiny_study), "--workers", "2", env=cli_env())
    assert f"0 trained, {len(VARIANTS)} skipped, 0 failed" in again.stdout
    assert len(runs_json()) == len(VARIANTS)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_every_worker_and_the_runs_resume(tiny_study, in_tmp, signum):
    plugin = slow_plugin(in_tmp)
    args = [str(tiny_study), "--workers", "2", "--epochs", "3", "--plugin", str(plugin),
            "--variants", "A,B,C", "--quiet"]
    env = {**cli_env(), "SLOW_EPOCH_S": "0.7"}
    parent = start_study(*args, env=env)
    db = in_tmp / "runs.db"
    wait_for(lambda: sum(r["epochs_done"] >= 1 and r["status"] == "running"
                         for r in rows_of(db)) == 2, "both workers mid-run", procs=(parent,))
    stopped_at = time.time()
    # Ctrl-C in a terminal reaches the whole process group; SIGTERM only the parent.
    os.killpg(parent.pid, signum) if signum == signal.SIGINT else parent.send_signal(signum)
    out, err = parent.communicate(timeout=60)
    assert parent.returncode == 1, err
    assert "Error: interrupted:" in err and "run the same command again to resume" in err
    rows = rows_of(db)
    workers = {r["pid"] for r in rows}
    assert all(not _alive(pid) for pid in workers), "no worker outlives the study command"
    interrupted = [r for r in rows if r["status"] == "failed"]
    assert len(interrupted) == 2 and all("interrupted" in r["error"] for r in interrupted)
    resumed = ok("study", "run", *args, env=env)
    assert "3 trained, 0 skipped, 0 failed" in resumed.stdout
    after = {r["id"]: r for r in rows_of(db)}
    assert len(after) == 3 and all(r["status"] == "done" for r in after.values())
    for run in interrupted:  # resumed in place, its first epoch not trained again
        assert after[run["id"]]["status"] == "done"
        with RunStore(str(db), readonly=True) as store:
            first = store.get_run(run["id"])
            epoch0 = [e for e in store.epochs(run["id"]) if e["epoch"] == 0]
        assert epoch0 and first.generation == 0
        assert _recorded_before(db, run["id"], 0, stopped_at)


def _recorded_before(db: Path, run_id: int, epoch: int, when: float) -> bool:
    import sqlite3

    with sqlite3.connect(db) as con:
        (stamp,) = con.execute("SELECT recorded_at FROM ablate_epochs WHERE run_id=? AND epoch=?",
                               (run_id, epoch)).fetchone()
    from datetime import UTC, datetime

    return datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp() < when


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_worker_entry_reports_a_bad_job_in_one_line(in_tmp):
    job = in_tmp / "job.json"
    job.write_text(json.dumps({"db": "w.db", "plugins": ["no_such_plugin_module"], "specs": [],
                               "study": "x"}))
    done = subprocess.run([sys.executable, "-c",
                           "from ablate.launch.worker import main; main()", str(job)],
                          capture_output=True, text=True, env=cli_env(), timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("Error:") and done.stderr.count("\n") == 1, done.stderr


def test_scheduler_benchmark_trains_each_stub_run_once(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.bench_scheduler import simulate, table

    result = simulate(str(tmp_path / "b.db"), workers=3, runs=6, epochs=2)
    assert (result["rows"], result["done"]) == (6, 6), "every run claimed by exactly one worker"
    assert result["claim_ms"]["n"] == 18, "each of 3 workers claimed or skipped all 6 runs"
    assert result["record_epoch_ms"]["n"] == 12 and result["finish_ms"]["n"] == 6
    assert "| SQLite | 3 | 6 |" in table([{"database": "SQLite", **result}])
