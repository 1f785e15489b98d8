"""Schema versions: the version is stored, a newer one is refused, an older one is migrated.
A runs database written by schema version 1 (wide val_/test_ metric columns, hashes that
covered execution settings) opens, keeps its runs, metrics, epochs and per-image results,
and a rerun of its study finds the done runs instead of training them again."""

from __future__ import annotations

import json
import sqlite3
import types
from pathlib import Path

import pytest
from sqlalchemy import select, update

from ablate.db import SCHEMA_VERSION, ClaimSpec, RunStore
from ablate.db import migrate as db_migrate
from ablate.db import schema as db_schema
from ablate.db.models import Meta
from ablate.errors import AblateError
from model.config import RunConfig

# The tables as ablate with schema version 1 created them (``sqlite3 runs.db .schema``).
V1_SCHEMA = """
CREATE TABLE ablate_meta (
    "key" VARCHAR(64) NOT NULL, value VARCHAR(256) NOT NULL, PRIMARY KEY ("key"));
CREATE TABLE ablate_runs (
    id INTEGER NOT NULL, study VARCHAR(200) NOT NULL, variant VARCHAR(64) NOT NULL,
    label VARCHAR(200), seed INTEGER NOT NULL, config_json TEXT NOT NULL,
    config_hash VARCHAR(64) NOT NULL, generation INTEGER NOT NULL, status VARCHAR(16) NOT NULL,
    host VARCHAR(255), pid INTEGER, created_at DATETIME NOT NULL, started_at DATETIME,
    ended_at DATETIME, heartbeat_at DATETIME, code_version VARCHAR(64), error TEXT,
    save_dir TEXT, best_epoch INTEGER, epochs_done INTEGER NOT NULL, trial_number INTEGER,
    tune_study VARCHAR(200), params_json TEXT,
    val_game0 FLOAT, val_game1 FLOAT, val_game2 FLOAT, val_game3 FLOAT, val_rmse FLOAT,
    val_mae FLOAT, test_game0 FLOAT, test_game1 FLOAT, test_game2 FLOAT, test_game3 FLOAT,
    test_rmse FLOAT, test_mae FLOAT,
    PRIMARY KEY (id),
    CONSTRAINT uq_ablate_runs_claim UNIQUE (study, variant, seed, config_hash, generation));
CREATE INDEX ix_ablate_runs_status ON ablate_runs (status);
CREATE INDEX ix_ablate_runs_study ON ablate_runs (study);
CREATE TABLE ablate_epochs (
    id INTEGER NOT NULL, run_id INTEGER NOT NULL, epoch INTEGER NOT NULL,
    metrics JSON NOT NULL, recorded_at DATETIME NOT NULL, PRIMARY KEY (id),
    CONSTRAINT uq_ablate_epochs_run_epoch UNIQUE (run_id, epoch),
    FOREIGN KEY(run_id) REFERENCES ablate_runs (id) ON DELETE CASCADE);
CREATE TABLE ablate_image_results (
    id INTEGER NOT NULL, run_id INTEGER NOT NULL, split VARCHAR(16) NOT NULL,
    image_id VARCHAR(255) NOT NULL, true_count FLOAT NOT NULL, pred_count FLOAT,
    game0 FLOAT, game1 FLOAT, game2 FLOAT, game3 FLOAT, cells JSON, PRIMARY KEY (id),
    CONSTRAINT uq_ablate_image_results_image UNIQUE (run_id, split, image_id),
    FOREIGN KEY(run_id) REFERENCES ablate_runs (id) ON DELETE CASCADE);
CREATE INDEX ix_ablate_image_results_run_id ON ablate_image_results (run_id);
INSERT INTO ablate_meta VALUES ('schema_version', '1');
"""
V1_METRIC_COLUMNS = [f"{split}_{name}" for split in ("val", "test")
                     for name in ("game0", "game1", "game2", "game3", "rmse", "mae")]
TEST = {"game0": 2.5, "game1": 4.0, "game2": 6.25, "game3": 9.0, "rmse": 3.5, "mae": 2.5}
VAL = {name: value + 1.0 for name, value in TEST.items()}
CELLS = {"1": [0.5, -0.5, 1.0, 0.0]}
NOW = "2026-11-26 10:00:00.000000"


def config(**overrides) -> RunConfig:
    return RunConfig().with_overrides({"seed": 0, **overrides})


def _insert_run(con, run_id: int, cfg_json: str, old_hash: str, status: str = "done") -> None:
    values = [*VAL.values(), *TEST.values()] if status == "done" else [None] * 12
    con.execute(
        "INSERT INTO ablate_runs (id, study, variant, label, seed, config_json, config_hash, "
        "generation, status, created_at, started_at, ended_at, epochs_done, best_epoch, "
        f"{', '.join(V1_METRIC_COLUMNS)}) VALUES "
        f"(?, 'demo', 'A', 'baseline', 0, ?, ?, 0, ?, ?, ?, ?, 2, 1, {', '.join('?' * 12)})",
        [run_id, cfg_json, old_hash, status, NOW, NOW, NOW, *values])


def build_v1(path: Path) -> None:
    """Three runs of demo/A/seed 0 as version 1 left them: run 1 done with 2 workers, run 2
    done again with 4 workers (a new hash then, the same experiment now), run 3 a config that
    no longer parses. Run 1 has two epochs and two per-image results."""
    con = sqlite3.connect(path)
    con.executescript(V1_SCHEMA)
    _insert_run(con, 1, json.dumps(config(num_workers=2).to_dict()), "old-hash-workers-2")
    _insert_run(con, 2, json.dumps(config(num_workers=4).to_dict()), "old-hash-workers-4")
    _insert_run(con, 3, json.dumps({"model": {"removed_field": 1}}), "old-hash-gone", "failed")
    for epoch in (0, 1):
        con.execute("INSERT INTO ablate_epochs (run_id, epoch, metrics, recorded_at) "
                    "VALUES (1, ?, ?, ?)", [epoch, json.dumps({"loss": 2.0 - epoch}), NOW])
    for image, pred in (("img1", 9.0), ("img2", None)):
        con.execute("INSERT INTO ablate_image_results (run_id, split, image_id, true_count, "
                    "pred_count, game0, game1, game2, game3, cells) "
                    "VALUES (1, 'test', ?, 10.0, ?, 1.0, 2.0, 3.0, 4.0, ?)",
                    [image, pred, json.dumps(CELLS)])
    con.commit()
    con.close()


@pytest.fixture
def v1_db(tmp_path) -> Path:
    path = tmp_path / "runs.db"
    build_v1(path)
    return path


def _columns(path: Path) -> list[str]:
    with sqlite3.connect(path) as con:
        return [row[1] for row in con.execute("PRAGMA table_info(ablate_runs)")]


def test_v1_database_keeps_runs_metrics_epochs_and_images(v1_db):
    with RunStore(str(v1_db)) as store:
        runs = store.list_runs("demo")
        assert [(r.id, r.status) for r in runs] == [(1, "done"), (2, "done"), (3, "failed")]
        row = store.run_dicts("demo")[0]
        assert {k: row[k] for k in TEST} == TEST
        assert {k: row[f"val_{k}"] for k in VAL} == VAL
        assert runs[0].metric("val", "game3") == VAL["game3"]
        assert store.run_dicts("demo")[2]["game0"] is None  # failed: no metrics
        assert store.epochs(1) == [{"epoch": 0, "loss": 2.0}, {"epoch": 1, "loss": 1.0}]
        images = store.image_results(1)
        assert [(i["image_id"], i["pred_count"], i["game3"]) for i in images] == [
            ("img1", 9.0, 4.0), ("img2", None, 4.0)]
        assert images[0]["cells"] == CELLS
        assert store.study_names() == ["demo"] and store.study_record("demo") is None
    assert not set(V1_METRIC_COLUMNS) & set(_columns(v1_db))
    with sqlite3.connect(v1_db) as con:
        assert con.execute("SELECT value FROM ablate_meta").fetchone() == (str(SCHEMA_VERSION),)


def test_hashes_are_recomputed_and_merged_keys_renumbered(v1_db):
    cfg = config()
    with RunStore(str(v1_db)) as store:
        runs = {r.id: r for r in store.list_runs()}
        # Runs 1 and 2 differ only in the worker count: now one key, generations in id order.
        assert (runs[1].config_hash, runs[1].generation) == (cfg.config_hash(), 0)
        assert (runs[2].config_hash, runs[2].generation) == (cfg.config_hash(), 1)
        assert (runs[3].config_hash, runs[3].generation) == ("old-hash-gone", 0)
        claim = store.claim(ClaimSpec("demo", "A", 0, cfg.to_dict(), cfg.config_hash()))
        assert (claim.action, claim.run.id) == ("skip-done", 2)
        assert len(store.list_runs()) == 3


def test_a_reading_command_migrates_an_old_database(v1_db):
    """ablate's own file of an older version is brought up to date even by `runs list`."""
    with RunStore(str(v1_db), readonly=True) as store:
        assert store.run_dicts("demo")[0]["game3"] == TEST["game3"]
    assert "val_game0" not in _columns(v1_db)
    with RunStore(str(v1_db), readonly=True) as store:  # already current: nothing to do
        assert len(store.list_runs()) == 3


def _schema_version(store: RunStore) -> str:
    with store.engine.connect() as conn:
        return conn.scalar(select(Meta.value).where(Meta.key == "schema_version"))


def _set_schema_version(store: RunStore, version: int) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(Meta).where(Meta.key == "schema_version").values(value=str(version)))


def test_schema_version_stored_and_newer_refused(tmp_path):
    path = tmp_path / "runs.db"
    with RunStore(str(path)) as store:
        assert _schema_version(store) == str(SCHEMA_VERSION)
        _set_schema_version(store, SCHEMA_VERSION + 1)
    with pytest.raises(AblateError) as info:
        RunStore(str(path))
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "newer" in message


def test_old_schema_is_migrated(tmp_path, monkeypatch):
    path = str(tmp_path / "runs.db")
    with RunStore(path) as store:
        _set_schema_version(store, SCHEMA_VERSION - 1)
    steps = []
    monkeypatch.setitem(db_schema._MIGRATIONS, SCHEMA_VERSION - 1, lambda conn: steps.append(1))
    with RunStore(path) as store:
        assert steps == [1] and _schema_version(store) == str(SCHEMA_VERSION)


def test_sqlite_without_drop_column_keeps_the_old_columns_unused(v1_db, monkeypatch):
    """SQLite before 3.35 cannot drop a column: the v1 columns stay, unread, and new runs
    are still written (the columns are nullable)."""
    monkeypatch.setattr(db_migrate, "sqlite3", types.SimpleNamespace(sqlite_version_info=(3, 34)))
    with RunStore(str(v1_db)) as store:
        assert store.run_dicts("demo")[0]["game3"] == TEST["game3"]
        run_id = store.claim(ClaimSpec("demo", "B", 0, {"v": 1}, "h")).run.id
        store.finish(run_id, VAL, TEST, 0, [])
        assert store.get_run(run_id).metric("test", "rmse") == TEST["rmse"]
    assert set(V1_METRIC_COLUMNS) <= set(_columns(v1_db))
    with sqlite3.connect(v1_db) as con:
        assert con.execute("SELECT count(*) FROM ablate_epochs").fetchone() == (2,)
