"""What clusters do to workers, each survived: a worker killed on another "node", the
database server restarted, a damaged last.pt, a GPU out of memory."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import ABLATE, VARIANTS, cli_env, invoke, runs_json
from test_workers import rows_of, slow_plugin, start_study, wait_for

from ablate.db import RunStore
from ablate.run.execute import execute
from ablate.run.hooks import Hooks
from ablate.study.plan import plan
from ablate.study.study import load_study
from model.engine.checkpoint import LAST, PREVIOUS, load_resumable

# Imported by every worker: the run of variant B runs out of GPU memory at its first step.
OOM_PLUGIN = """
import torch
from model.engine import trainer

_epoch = trainer.Trainer._train_epoch

def _oom(self, epoch):
    if self.out_dir.name.startswith("B-seed"):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    return _epoch(self, epoch)

trainer.Trainer._train_epoch = _oom
"""


def epoch_stamps(db: Path, run_id: int) -> dict[int, float]:
    """When each epoch row of a run was last written (a retrained epoch is rewritten)."""
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT epoch, recorded_at FROM ablate_epochs WHERE run_id=?",
                           (run_id,)).fetchall()
    return {e: datetime.fromisoformat(s).replace(tzinfo=UTC).timestamp() for e, s in rows}


@pytest.mark.slow
def test_killed_worker_is_taken_over_on_another_node(tiny_study, in_tmp):
    plugin, db = slow_plugin(in_tmp), in_tmp / "runs.db"
    args = [str(tiny_study), "--variants", "A,B", "--epochs", "4", "--plugin", str(plugin),
            "--quiet"]
    node_a = {**cli_env(), "SLOW_EPOCH_S": "0.7", "ABLATE_HOST": "node-a",
              "ABLATE_HEARTBEAT_S": "0.5"}
    first = start_study(*args, env=node_a)
    wait_for(lambda: any(r["epochs_done"] >= 2 for r in rows_of(db)), "two epochs of A",
             procs=(first,))
    os.killpg(first.pid, signal.SIGKILL)  # the node dies: no chance to record anything
    killed_at = time.time()
    first.wait()
    (victim,) = [r for r in rows_of(db) if r["status"] == "running"]
    assert victim["worker"] == f"node-a:{first.pid}"
    before = epoch_stamps(db, victim["id"])
    node_b = {**cli_env(), "SLOW_EPOCH_S": "0.7", "ABLATE_HOST": "node-b",
              "ABLATE_STALE_AFTER_S": "3", "ABLATE_HEARTBEAT_S": "0.5"}
    second = subprocess.run([*ABLATE, "study", "run", *args, "--workers", "2"], env=node_b,
                            capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    rows = rows_of(db)
    assert sorted((r["variant"], r["seed"], r["status"]) for r in rows) == [
        ("A", 0, "done"), ("B", 0, "done")], "exactly one done row per (variant, seed)"
    taken = next(r for r in rows if r["id"] == victim["id"])
    assert taken["host"] == "node-b" and taken["epochs_done"] == 4
    # Taken over only once its heartbeat was 3 s old, not at once: node-b cannot see
    # node-a's processes, only the silence.
    started = datetime.fromisoformat(taken["started_at"]).replace(tzinfo=UTC).timestamp()
    assert started - killed_at > 1.5
    after = epoch_stamps(db, victim["id"])
    resumed_at = min(e for e in after if after[e] > killed_at)
    assert resumed_at >= len(before) - 1, "resumed from the last checkpoint, not epoch 0"
    assert all(after[e] == before[e] for e in range(resumed_at)), "checkpointed epochs kept"


def _interrupt_at(epoch_to_stop: int) -> Hooks:
    class Interrupt(Hooks):
        def on_epoch(self, epoch, row):
            if epoch == epoch_to_stop:
                raise KeyboardInterrupt

    return Interrupt()


def _half_trained(tiny_study: Path) -> tuple[int, Path]:
    """Variant A of the tiny study, 3 epochs, stopped after epoch 1: (run id, its folder)."""
    spec, = plan(load_study(tiny_study), ["A"], [0], {"epochs": 3}, Path("runs"))
    with RunStore("runs.db") as store:
        with pytest.raises(KeyboardInterrupt):
            execute(store, spec, _interrupt_at(1))
        (run,) = store.list_runs()
    assert (spec.save_dir / PREVIOUS).is_file() and (spec.save_dir / LAST).is_file()
    return run.id, spec.save_dir


def _study_again(tiny_study: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*ABLATE, "study", "run", str(tiny_study), "--variants", "A,B",
                           "--epochs", "3", "--quiet"], env=cli_env(), capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_truncated_last_checkpoint_resumes_from_the_previous_one(tiny_study, in_tmp):
    run_id, folder = _half_trained(tiny_study)
    before = epoch_stamps(in_tmp / "runs.db", run_id)
    data = (folder / LAST).read_bytes()
    (folder / LAST).write_bytes(data[: len(data) // 2])  # the node died during the write
    done = _study_again(tiny_study)
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if LAST in line]
    assert len(notes) == 1, done.stderr
    assert notes[0].startswith(f"{folder.resolve() / LAST} is not a readable checkpoint")
    assert notes[0].endswith(f"; resuming from {PREVIOUS}, at epoch 1")
    after = epoch_stamps(in_tmp / "runs.db", run_id)
    assert after[0] == before[0] and after[1] > before[1], "epoch 1 trained again, 0 kept"
    assert "2 trained, 0 skipped, 0 failed" in done.stdout, "the study went on"
    assert [r["status"] for r in runs_json()] == ["done", "done"]


@pytest.mark.slow
def test_no_readable_checkpoint_restarts_the_run(tiny_study, in_tmp):
    run_id, folder = _half_trained(tiny_study)
    before = epoch_stamps(in_tmp / "runs.db", run_id)
    for name in (LAST, PREVIOUS):
        (folder / name).write_bytes(b"PK\x03\x04 not a zip any more")
    done = _study_again(tiny_study)
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if LAST in line]
    assert len(notes) == 1 and notes[0].endswith(
        "and no earlier checkpoint is readable; restarting from epoch 0"), done.stderr
    after = epoch_stamps(in_tmp / "runs.db", run_id)
    assert sorted(after) == [0, 1, 2] and all(after[e] > before[e] for e in before)
    assert [r["status"] for r in runs_json()] == ["done", "done"]
    assert runs_json()[0]["epochs_done"] == 3


def test_resumable_checkpoint_choice(tmp_path):
    import torch

    assert load_resumable(tmp_path) == (None, None)
    torch.save({"model": {}, "config": {}, "epoch": 4}, tmp_path / PREVIOUS)
    state, note = load_resumable(tmp_path)  # died between the two renames of a save
    assert state["epoch"] == 4 and note == (f"{tmp_path / LAST} is missing; resuming from "
                                            f"{PREVIOUS}, at epoch 5")
    torch.save({"model": {}, "config": {}, "epoch": 5}, tmp_path / LAST)
    assert load_resumable(tmp_path) == ({"model": {}, "config": {}, "epoch": 5}, None)


@pytest.mark.slow
def test_out_of_memory_fails_the_run_and_the_worker_moves_on(tiny_study, in_tmp):
    plugin = in_tmp / "oom.py"
    plugin.write_text(OOM_PLUGIN)
    result = invoke("study", "run", str(tiny_study), "--workers", "2", "--plugin", str(plugin),
                    env=cli_env())
    assert result.exit_code == 1
    assert f"{len(VARIANTS) - 1} trained, 0 skipped, 1 failed" in result.stdout
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "OutOfMemoryError" in errors[0]
    rows = runs_json()
    (oom,) = [r for r in rows if r["status"] == "failed"]
    assert oom["variant"] == "B" and oom["error"].startswith(
        "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (lower --batch-size")
    assert sorted(r["variant"] for r in rows if r["status"] == "done") == sorted(
        v for v in VARIANTS if v != "B")
    later = [r for r in rows if r["worker"] == oom["worker"] and r["status"] == "done"
             and r["started_at"] > oom["ended_at"]]
    assert later, "the worker whose run ran out of memory trained another run after it"


def _pg_restart_command() -> list[str] | None:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not versions or os.geteuid() != 0:
        return None
    return ["pg_ctlcluster", versions[-1].parts[-3], "main", "restart"]


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("ABLATE_TEST_PG_URL"), reason="ABLATE_TEST_PG_URL unset")
@pytest.mark.skipif(_pg_restart_command() is None, reason="cannot restart PostgreSQL here")
def test_postgres_restart_mid_study_loses_nothing(tiny_study, in_tmp):
    from test_launch import _empty_pg

    url = os.environ["ABLATE_TEST_PG_URL"]
    _empty_pg(url)
    plugin = slow_plugin(in_tmp)
    env = {**cli_env(), "SLOW_EPOCH_S": "1.0", "ABLATE_HEARTBEAT_S": "0.5"}
    study = start_study(str(tiny_study), "--workers", "2", "--epochs", "4", "--variants",
                        "A,B,C", "--plugin", str(plugin), "--db", url, "--quiet", env=env)
    with RunStore(url) as store:
        def mid_run() -> bool:
            return sum((r.epochs_done or 0) >= 1 for r in store.list_runs("tiny")) == 2

        wait_for(mid_run, "both workers past epoch 0", procs=(study,))
        started = {r.id: r.started_at for r in store.list_runs("tiny")}
    subprocess.run(_pg_restart_command(), check=True, timeout=120)
    out, err = study.communicate(timeout=300)
    assert study.returncode == 0, err
    assert "3 trained, 0 skipped, 0 failed" in out
    with RunStore(url) as store:
        runs = store.list_runs("tiny")
        assert sorted((r.variant, r.status, r.generation) for r in runs) == [
            ("A", "done", 0), ("B", "done", 0), ("C", "done", 0)]
        for run in runs:
            assert [e["epoch"] for e in store.epochs(run.id)] == [0, 1, 2, 3]
            # Never handed to another worker (which would restart it at its checkpoint).
            assert started.get(run.id, run.started_at) == run.started_at
