"""Crashes and parallel workers, with real processes: a study killed with SIGKILL in the middle
of a run resumes that run on the next `ablate study run`, and two concurrent workers on one
SQLite file train every (variant, seed) exactly once."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ABLATE, VARIANTS, cli_env, ok, runs_json, tiny_study_text

from ablate.db import RunStore
from ablate.errors import AblateError
from ablate.run.execute import execute
from ablate.study.plan import plan
from ablate.study.study import load_study

pytestmark = pytest.mark.slow


def _query(db: Path, sql: str, *params) -> list[tuple]:
    """Read-only, so polling never takes a write lock; [] until the schema exists."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as con:
            return con.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise


def _epoch_times(db: Path, run_id: int) -> dict[int, str]:
    rows = _query(db, "SELECT epoch, recorded_at FROM ablate_epochs WHERE run_id = ?", run_id)
    return dict(rows)


def _wait_for_mid_run(proc: subprocess.Popen, db: Path, timeout: float = 180) -> None:
    """Until one run is done and another is running with at least one epoch recorded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the study ended before the kill:\n{proc.stderr.read()}"
        done = _query(db, "SELECT count(*) FROM ablate_runs WHERE status = 'done'")
        busy = _query(db, "SELECT id FROM ablate_runs WHERE status = 'running' "
                      "AND epochs_done >= 1")
        if done and done[0][0] >= 1 and busy:
            return
        time.sleep(0.02)
    raise AssertionError(f"no run reached its first epoch within {timeout} s")


def test_sigkill_mid_run_then_rerun_resumes_and_retrains_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # Bigger images than the tiny study, so an epoch lasts long enough to be killed inside.
    (tmp_path / "crash.toml").write_text(tiny_study_text(
        synth_n_train="synth_n_train = 32", synth_height="synth_height = 96",
        synth_width="synth_width = 96"))
    db = tmp_path / "runs.db"
    args = ["study", "run", "crash.toml", "--variants", "A,B,C", "--epochs", "4", "--quiet"]
    proc = subprocess.Popen([*ABLATE, *args], env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_mid_run(proc, db)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()  # reaped: a zombie would still look alive to the claim's pid check
    assert proc.returncode == -signal.SIGKILL

    before = {r["id"]: r for r in runs_json()}
    (killed,) = [r for r in before.values() if r["status"] == "running"]
    done_before = {i: r for i, r in before.items() if r["status"] == "done"}
    assert done_before and 1 <= killed["epochs_done"] < 4
    epochs_before = _epoch_times(db, killed["id"])
    assert sorted(epochs_before) == list(range(killed["epochs_done"]))

    result = ok(*args)
    n_new = 3 - len(before)
    assert f"{1 + n_new} trained, {len(done_before)} skipped, 0 failed" in result.stdout

    rows = runs_json()
    assert sorted((r["variant"], r["seed"]) for r in rows) == [(v, 0) for v in "ABC"]
    assert all(r["status"] == "done" for r in rows)
    for run_id, row in done_before.items():
        now = next(r for r in rows if r["id"] == run_id)
        assert now == row, f"done run {run_id} was touched"
    resumed = next(r for r in rows if r["id"] == killed["id"])
    assert resumed["save_dir"] == killed["save_dir"] and resumed["pid"] == os.getpid()
    epochs_after = _epoch_times(db, killed["id"])
    assert sorted(epochs_after) == [0, 1, 2, 3], "one row per epoch, no gap, no duplicate"
    for epoch, recorded in epochs_before.items():
        assert epochs_after[epoch] == recorded, f"epoch {epoch} was trained again"
    history = torch.load(Path(killed["save_dir"]) / "last.pt", weights_only=True)["history"]
    assert [row["epoch"] for row in history] == [0, 1, 2, 3]


def test_epoch_checkpointed_but_not_recorded_is_backfilled(tiny_study, in_tmp, monkeypatch):
    """A worker dying between saving last.pt and recording the epoch (the window a SIGKILL
    can hit) must not leave that epoch missing from the runs database after the resume."""
    study = load_study(tiny_study)
    original = RunStore.record_epoch

    def dies_at_epoch_1(self, run_id, epoch, metrics):
        if epoch == 1:
            raise AblateError("database went away")
        return original(self, run_id, epoch, metrics)

    (spec,) = plan(study, ["A"], [0], {"epochs": 3}, Path("runs"))
    with RunStore() as store:
        monkeypatch.setattr(RunStore, "record_epoch", dies_at_epoch_1)
        first = execute(store, spec)
        assert first.status == "failed"
        monkeypatch.setattr(RunStore, "record_epoch", original)
        second = execute(store, spec)
        assert (second.action, second.run_id, second.status) == ("resume", first.run_id, "done")
        assert [e["epoch"] for e in store.epochs(first.run_id)] == [0, 1, 2]


# `ablate` itself, entered only once a "go" file appears: both workers have finished importing
# torch by then, so they really run side by side however unevenly the machine starts them.
_ON_GO = (
    "import pathlib, sys, time\n"
    "from ablate.cli.app import main\n"
    "ready, go = pathlib.Path(sys.argv.pop(1)), pathlib.Path(sys.argv.pop(1))\n"
    "ready.touch()\n"
    "while not go.exists():\n"
    "    time.sleep(0.01)\n"
    "main()\n"
)


def test_two_concurrent_workers_train_each_run_once(tiny_study, in_tmp):
    args = ["study", "run", str(tiny_study), "--seeds", "2", "--quiet"]
    go = in_tmp / "go"
    ready = [in_tmp / f"ready{i}" for i in range(2)]
    procs = [subprocess.Popen([sys.executable, "-c", _ON_GO, str(flag), str(go), *args],
                              env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for flag in ready]
    deadline = time.monotonic() + 120
    while not all(flag.exists() for flag in ready):
        assert time.monotonic() < deadline, "workers did not start"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.05)
    go.touch()
    outs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, f"worker exited {proc.returncode}:\n{out}\n{err}"
        assert "Traceback" not in err and "locked" not in err, err
    trained = [int(re.search(r"(\d+) trained, (\d+) skipped, 0 failed", out)[1]) for out, _ in outs]
    assert sum(trained) == 2 * len(VARIANTS), f"workers trained {trained}: some run twice or not"
    rows = runs_json()
    assert len(rows) == 2 * len(VARIANTS)
    assert sorted((r["variant"], r["seed"]) for r in rows) == [
        (v, s) for v in VARIANTS for s in (0, 1)]
    assert all(r["status"] == "done" for r in rows)
    assert len({r["pid"] for r in rows}) == 2, "both workers took a share of the study"
