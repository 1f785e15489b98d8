"""The runs database: round trips, the claim rules, schema versions, bad URLs, and several
worker processes claiming the same work on one SQLite file (and on PostgreSQL when
``ABLATE_TEST_PG_URL`` names a server)."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, update
from sqlalchemy.exc import OperationalError

import ablate.db
from ablate.db import ClaimResult, ClaimSpec, Run, RunStore, code_version, is_stale
from ablate.db.claim import _take_over
from ablate.db.connect import retrying
from ablate.db.models import Base
from ablate.errors import AblateError

PG_URL = os.environ.get("ABLATE_TEST_PG_URL")
BACKENDS = [
    "sqlite",
    pytest.param(
        "postgresql", marks=pytest.mark.skipif(not PG_URL, reason="ABLATE_TEST_PG_URL not set")
    ),
]
VARIANTS = "ABCDEFG"
CONFIG = {"model": {"backbone": "tiny", "fusion": "sum"}, "train": {"lr": 1e-4, "epochs": 2}}
METRICS = {"game0": 10.5, "game1": 12.0, "game2": 14.25, "game3": 17.0, "rmse": 15.5, "mae": 10.5}
REQUIRED_JSON_KEYS = {
    "id", "study", "variant", "seed", "status", "config_hash",
    "game0", "game1", "game2", "game3", "rmse", "mae",
    "label", "host", "started_at", "ended_at", "error", "trial_number", "worker",
}  # fmt: skip


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "runs.db")
    engine = create_engine(PG_URL)
    Base.metadata.drop_all(engine)  # only the ablate_ tables; Optuna's are left alone
    engine.dispose()
    return PG_URL


@pytest.fixture
def store(db_url):
    with RunStore(db_url) as opened:
        yield opened


def _claim(store: RunStore, variant: str = "A", seed: int = 0, **kwargs) -> ClaimResult:
    return store.claim(ClaimSpec("demo", variant, seed, CONFIG, "hash-1", **kwargs))


def _set(store: RunStore, run_id: int, **values) -> None:
    """Edit a row behind the store's back, as a crashed or remote worker would have left it."""
    with store.engine.begin() as conn:
        conn.execute(update(Run).where(Run.id == run_id).values(**values))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_round_trip(store):
    result = _claim(store, label="A: concat", save_dir="ckpt/A")
    assert result.action == "new" and result.claimed
    run = result.run
    assert (run.status, run.host, run.pid) == ("running", os.uname().nodename, os.getpid())
    assert run.config == CONFIG and run.code_version == code_version()
    assert run.heartbeat_at.tzinfo is not None
    store.record_epoch(run.id, 1, {"loss": 2.0, "game0": 20.0})
    store.record_epoch(run.id, 2, {"loss": 1.0, "game0": 12.0})
    images = [
        {"split": "test", "image_id": "img1", "true_count": 10.0, "pred_count": 9.0,
         "game0": 1.0, "game1": 1.5, "game2": 2.0, "game3": 3.0, "cells": [[0.5, 0.5]]},
        {"split": "val", "image_id": "img2", "true_count": 3.0, "pred_count": 4.0},
    ]  # fmt: skip
    store.finish(run.id, {**METRICS, "loss": 0.7}, METRICS, 2, images)

    done = store.get_run(run.id)
    assert (done.status, done.best_epoch, done.epochs_done) == ("done", 2, 2)
    assert done.metrics("test") == METRICS and done.metrics("val") == METRICS
    assert done.ended_at >= done.started_at
    assert [r.id for r in store.list_runs("demo", "done")] == [run.id]
    assert store.list_runs("other") == []
    assert store.epochs(run.id) == [
        {"epoch": 1, "loss": 2.0, "game0": 20.0},
        {"epoch": 2, "loss": 1.0, "game0": 12.0},
    ]
    assert store.image_results(run.id) == [images[0]]
    assert store.image_results(run.id, "val")[0]["pred_count"] == 4.0

    [row] = store.run_dicts("demo")
    assert REQUIRED_JSON_KEYS <= set(row)
    assert {k: row[k] for k in METRICS} == METRICS
    assert (row["variant"], row["seed"], row["label"]) == ("A", 0, "A: concat")
    assert datetime.fromisoformat(row["ended_at"]).tzinfo is not None
    json.dumps(store.run_dicts(), allow_nan=False)


def test_metrics_are_null_until_done_and_nan_is_null(store):
    run = _claim(store).run
    assert all(store.run_dicts()[0][k] is None for k in METRICS)
    store.finish(run.id, METRICS, {**METRICS, "game3": float("nan")}, 1, [])
    row = store.run_dicts()[0]
    assert row["game3"] is None and row["game0"] == METRICS["game0"]
    json.dumps(row, allow_nan=False)


def test_skip_done_then_force_reruns(store):
    first = _claim(store).run
    store.finish(first.id, METRICS, METRICS, 1, [])
    again = _claim(store)
    assert (again.action, again.run.id, again.claimed) == ("skip-done", first.id, False)
    other_config = store.claim(ClaimSpec("demo", "A", 0, CONFIG, "hash-2"))
    assert other_config.action == "new"
    rerun = _claim(store, force=True)
    assert rerun.action == "rerun" and rerun.run.id not in (first.id, other_config.run.id)
    assert _claim(store).action == "skip-busy"  # the rerun is ours and alive
    assert store.get_run(first.id).status == "done"


def test_live_worker_is_skipped(store):
    run = _claim(store).run
    busy = _claim(store)
    assert (busy.action, busy.run.id) == ("skip-busy", run.id)


def test_dead_pid_on_this_host_is_resumed(store):
    run = _claim(store, save_dir="ckpt/A").run
    store.record_epoch(run.id, 1, {"loss": 1.0})
    _set(store, run.id, pid=_dead_pid())
    resumed = _claim(store, save_dir="elsewhere")
    assert (resumed.action, resumed.run.id) == ("resume", run.id)
    assert (resumed.run.pid, resumed.run.status) == (os.getpid(), "running")
    assert resumed.run.save_dir == "ckpt/A"  # where the checkpoint to resume from lives
    assert resumed.run.epochs_done == 1


def test_other_host_is_judged_by_heartbeat_only(store):
    run = _claim(store).run
    _set(store, run.id, host="elsewhere", pid=_dead_pid())
    assert _claim(store).action == "skip-busy"  # that pid means nothing on this host
    _set(store, run.id, heartbeat_at=datetime.now(UTC) - timedelta(hours=1))
    resumed = _claim(store)
    assert (resumed.action, resumed.run.id) == ("resume", run.id)
    assert resumed.run.host == os.uname().nodename


def test_failed_and_pending_rows_are_resumed(store):
    run = _claim(store).run
    store.fail(run.id, "CUDA out of memory")
    assert store.get_run(run.id).error == "CUDA out of memory"
    resumed = _claim(store)
    assert (resumed.action, resumed.run.id, resumed.run.error) == ("resume", run.id, None)
    _set(store, run.id, status="pending", heartbeat_at=None, host=None, pid=None)
    assert _claim(store).action == "resume"


def test_pruned_run_starts_over(store):
    run = _claim(store).run
    store.prune(run.id)
    fresh = _claim(store)
    assert fresh.action == "new" and fresh.run.id != run.id
    assert store.get_run(run.id).status == "pruned"


def test_take_over_loses_to_a_faster_worker(store):
    run = _claim(store).run
    _set(store, run.id, pid=_dead_pid())
    seen = store.get_run(run.id)
    assert _claim(store).action == "resume"  # the faster worker
    fresh = {"save_dir": None, "label": None}
    with store._sessions.begin() as session:
        assert _take_over(session, seen, fresh, datetime.now(UTC)) is None


def test_is_stale():
    now = datetime.now(UTC)
    here = {"status": "running", "host": os.uname().nodename, "heartbeat_at": now}
    assert not is_stale(Run(**here, pid=os.getpid()), 60, now)
    assert is_stale(Run(**here, pid=_dead_pid()), 60, now)
    assert is_stale(Run(**{**here, "heartbeat_at": now - timedelta(seconds=61)}), 60, now)
    assert not is_stale(Run(**{**here, "status": "failed"}, pid=_dead_pid()), 60, now)


def test_record_epoch_upserts_and_bumps_heartbeat(store):
    run = _claim(store).run
    store.record_epoch(run.id, 0, {"loss": 3.0})
    store.record_epoch(run.id, 1, {"loss": 2.0})
    before = store.get_run(run.id).heartbeat_at
    store.record_epoch(run.id, 1, {"loss": 1.5, "tv": 0.1})  # redone after a resume
    assert store.epochs(run.id) == [{"epoch": 0, "loss": 3.0}, {"epoch": 1, "loss": 1.5, "tv": 0.1}]
    after = store.get_run(run.id)
    assert after.epochs_done == 2 and after.heartbeat_at >= before
    store.heartbeat(run.id)
    assert store.get_run(run.id).heartbeat_at >= after.heartbeat_at


def test_keep_alive_beats_in_the_background(store):
    run = _claim(store).run
    old = datetime.now(UTC) - timedelta(hours=1)
    _set(store, run.id, heartbeat_at=old)
    with store.keep_alive(run.id, interval=0.05):
        deadline = time.monotonic() + 10
        while store.get_run(run.id).heartbeat_at == old and time.monotonic() < deadline:
            time.sleep(0.02)
    assert store.get_run(run.id).heartbeat_at > old
    store.stale_after = 60
    assert _claim(store).action == "skip-busy"


def test_set_trial(store):
    run = _claim(store, variant="G").run
    store.set_trial(run.id, "tune-demo", 3, {"lr": 1e-4, "offset_stage": 2})
    got = store.get_run(run.id)
    assert (got.tune_study, got.trial_number) == ("tune-demo", 3)
    assert got.params == {"lr": 1e-4, "offset_stage": 2}
    assert store.run_dicts()[0]["trial_number"] == 3


def test_missing_run_and_bad_input(store):
    for call in (
        lambda: store.get_run(999),
        lambda: store.heartbeat(999),
        lambda: store.record_epoch(999, 1, {"loss": 1.0}),
        lambda: store.finish(999, METRICS, METRICS, 1, []),
        lambda: store.fail(999, "boom"),
        lambda: store.epochs(999),
    ):
        with pytest.raises(AblateError, match="^no run with id 999$"):
            call()
    with pytest.raises(AblateError, match="valid: pending, running, done, failed, pruned"):
        store.list_runs(status="finished")
    run = _claim(store).run
    image = {"image_id": "a", "true_count": 1, "pred_count": 1, "path": "x.jpg"}
    with pytest.raises(ValueError, match="unknown image result keys"):
        store.finish(run.id, METRICS, METRICS, 1, [image])
    assert store.get_run(run.id).status == "running"


def test_locked_database_is_retried():
    calls = []

    def work():
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("UPDATE", {}, sqlite3.OperationalError("database is locked"))
        return "ok"

    assert retrying("sqlite:///x.db", work) == "ok" and len(calls) == 3
    calls.clear()
    with pytest.raises(AblateError, match="^database sqlite:///x.db: database is locked$"):
        retrying("sqlite:///x.db", work, attempts=1)


def _gone(message: str) -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception(message))


def test_a_server_that_went_away_is_waited_for(monkeypatch):
    """A restarted PostgreSQL: the same transaction again, with backoff, until it is back."""
    monkeypatch.setattr(time, "sleep", lambda s: None)
    calls = []

    def work():
        calls.append(1)
        if len(calls) < 4:
            raise _gone('connection to server at "db" (10.0.0.5), port 5432 failed: '
                        "Connection refused")
        return "ok"

    assert retrying("postgresql://db/x", work) == "ok" and len(calls) == 4


@pytest.mark.parametrize(("message", "waited"), [
    ("server closed the connection unexpectedly", True),
    ("terminating connection due to administrator command", True),
    ("FATAL:  the database system is starting up", True),
    ('connection to server at "db", port 5432 failed: FATAL:  password authentication failed '
     'for user "me"', False),
    ('FATAL:  database "nope" does not exist', False),
    ("syntax error at or near SELEC", False),
])
def test_only_a_missing_server_is_waited_for(monkeypatch, message, waited):
    monkeypatch.setattr(ablate.db.connect, "RECONNECT_S", 0.05)
    calls = []

    def work():
        calls.append(1)
        raise _gone(message)

    with pytest.raises(AblateError, match="^database postgresql://db/x: "):
        retrying("postgresql://db/x", work)
    assert (len(calls) > 1) == waited


def test_host_id_and_timings_from_the_environment(monkeypatch, store):
    from ablate.db.host import hostname, seconds_from_env

    monkeypatch.setenv("ABLATE_HOST", "node-7")
    assert hostname() == "node-7"
    claim = store.claim(ClaimSpec("s", "A", 0, CONFIG, "h"))
    row = store.run_dicts()[0]
    assert (row["host"], row["worker"]) == ("node-7", f"node-7:{os.getpid()}")
    assert claim.run.host == "node-7"
    monkeypatch.setenv("ABLATE_STALE_AFTER_S", "2.5")
    assert seconds_from_env("ABLATE_STALE_AFTER_S", 120.0) == 2.5
    monkeypatch.setenv("ABLATE_STALE_AFTER_S", "-1")
    with pytest.raises(ValueError, match="ABLATE_STALE_AFTER_S='-1' is not a positive"):
        seconds_from_env("ABLATE_STALE_AFTER_S", 120.0)
    monkeypatch.delenv("ABLATE_STALE_AFTER_S")
    assert seconds_from_env("ABLATE_STALE_AFTER_S", 120.0) == 120.0


def test_code_version_is_the_checkout_commit():
    if shutil.which("git") is None:
        pytest.skip("git is not installed: code_version() is None by design")
    repo = Path(ablate.db.__file__).parent

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)

    head = git("rev-parse", "--short", "HEAD")
    if head.returncode != 0:
        pytest.skip("the package is not in a git checkout: code_version() is None by design")
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{4,40}", head.stdout.strip())
    assert code_version() == head.stdout.strip() + ("-dirty" if dirty else "")


def test_study_records_upsert(store):
    assert store.study_names() == [] and store.study_record("demo") is None
    store.record_study("demo", {"name": "demo", "variants": [{"name": "A"}], "n": (1, 2)})
    store.record_study("demo", {"name": "demo", "variants": [{"name": "B"}]})
    store.claim(ClaimSpec("other", "A", 0, CONFIG, "h"))
    assert store.study_record("demo") == {"name": "demo", "variants": [{"name": "B"}]}
    assert store.study_names() == ["demo", "other"]
    store.check_study("other")
    with pytest.raises(AblateError, match="^no study 'x' in .*; recorded: demo, other$"):
        store.check_study("x")


def _worker(url: str, out_path: str) -> None:
    """One `ablate study run` in miniature: claim each (variant, seed), train, finish."""
    claimed = []
    with RunStore(url) as store:
        for variant in VARIANTS:
            for seed in (0, 1):
                spec = ClaimSpec("conc", variant, seed, {"v": variant}, f"h-{variant}")
                result = store.claim(spec)
                if not result.claimed:
                    continue
                claimed.append([variant, seed, result.action])
                store.record_epoch(result.run.id, 1, {"loss": 1.0})
                time.sleep(0.005)
                store.finish(result.run.id, METRICS, METRICS, 1, [])
    Path(out_path).write_text(json.dumps(claimed))


def test_parallel_workers_split_the_work(db_url, tmp_path):
    context = multiprocessing.get_context("spawn")
    outs = [tmp_path / f"worker{i}.json" for i in range(3)]
    workers = [context.Process(target=_worker, args=(db_url, str(out))) for out in outs]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    claimed = [tuple(item) for out in outs for item in json.loads(out.read_text())]
    expected = {(v, s) for v in VARIANTS for s in (0, 1)}
    assert sorted((v, s) for v, s, _ in claimed) == sorted(expected)  # each exactly once
    assert {action for *_, action in claimed} == {"new"}
    with RunStore(db_url) as store:
        runs = store.list_runs("conc")
    assert sorted((r.variant, r.seed) for r in runs) == sorted(expected)
    assert {r.status for r in runs} == {"done"}
