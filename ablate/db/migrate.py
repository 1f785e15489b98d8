"""The steps between schema versions; each runs inside the transaction that opens the database.

Version 1 -> 2: final metrics move from twelve wide ``val_``/``test_`` columns of
``ablate_runs`` into the long table ``ablate_metrics``; studies get ``ablate_studies``; and
every ``config_hash`` is recomputed with today's ``RunConfig.config_hash`` (which leaves out
execution settings), so that a rerun of an old study finds its done runs.

Version 2 -> 3: runs record the study condition they belong to (``condition``, "" for every
run made before conditions existed, as for a study without any).

Version 3 -> 4: every switchable part is a registry name (``stn = "bounded"`` for
``stn = true, stn_mode = "bounded"``, ``aligner`` for ``offset_align``/``offset_mode``,
``domain_head`` for ``grl``, ``multiscale_head`` for ``multiscale``): each stored config is
rewritten in today's keys and every hash recomputed, so a study run of the same experiment
finds its done runs.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict

from sqlalchemy import Connection, text

from ablate.db.models import MetricValue, StudyRecord
from model.config import RunConfig

# The metric columns of schema version 1, as they were: a fact about old files, not a list of
# today's metrics (those come from ``model.metrics``).
V1_METRICS = ("game0", "game1", "game2", "game3", "rmse", "mae")
V1_SPLITS = ("val", "test")


def v1_to_v2(conn: Connection) -> None:
    for table in (MetricValue.__table__, StudyRecord.__table__):
        table.create(conn, checkfirst=True)
    _move_metrics(conn)
    _drop_metric_columns(conn)
    rehash(conn)


def v2_to_v3(conn: Connection) -> None:
    # Quoted: CONDITION is a reserved word in standard SQL (and MySQL).
    conn.execute(text("ALTER TABLE ablate_runs ADD COLUMN \"condition\" VARCHAR(64) "
                      "NOT NULL DEFAULT ''"))


def v3_to_v4(conn: Connection) -> None:
    rows = conn.execute(text("SELECT id, config_json FROM ablate_runs")).all()
    for row in rows:
        try:
            config = RunConfig.from_record(json.loads(row.config_json))
        except (ValueError, TypeError):
            continue  # a field since removed: left as it was, as rehash leaves its hash
        conn.execute(text("UPDATE ablate_runs SET config_json = :c WHERE id = :id"),
                     {"c": json.dumps(config.to_dict(), sort_keys=True, default=str),
                      "id": row.id})
    rehash(conn)


def _move_metrics(conn: Connection) -> None:
    for split in V1_SPLITS:
        for name in V1_METRICS:
            column = f"{split}_{name}"
            conn.execute(
                text(
                    "INSERT INTO ablate_metrics (run_id, split, name, value) "
                    f"SELECT id, :split, :name, {column} FROM ablate_runs "
                    f"WHERE {column} IS NOT NULL"
                ),
                {"split": split, "name": name},
            )


def _drop_metric_columns(conn: Connection) -> None:
    """SQLite before 3.35 has no DROP COLUMN, and rebuilding ``ablate_runs`` there would
    cascade-delete its epochs (a dropped parent table deletes its rows first): on such an old
    SQLite the columns stay, unmapped and unread."""
    if conn.dialect.name == "sqlite" and sqlite3.sqlite_version_info < (3, 35, 0):
        return
    for split in V1_SPLITS:
        for name in V1_METRICS:
            conn.execute(text(f"ALTER TABLE ablate_runs DROP COLUMN {split}_{name}"))


def rehash(conn: Connection) -> None:
    """Recompute every run's ``config_hash`` from its stored config. Rows whose keys now
    coincide (two configs that differed only in an execution setting) become generations of
    one key, numbered in id order, so the newest stays the one a claim looks at."""
    rows = conn.execute(
        text("SELECT id, study, variant, seed, config_json, config_hash, generation "
             "FROM ablate_runs ORDER BY id")
    ).all()
    keys: dict[tuple, list[int]] = defaultdict(list)
    target: dict[int, tuple[str, int]] = {}
    for row in rows:
        new_hash = _hash(row.config_json, row.config_hash)
        group = keys[(row.study, row.variant, row.seed, new_hash)]
        target[row.id] = (new_hash, len(group))
        group.append(row.id)
    changed = [row for row in rows if target[row.id] != (row.config_hash, row.generation)]
    # Park the changed rows on generations no final key uses (-id) first, so that no UPDATE
    # meets the unique (study, variant, seed, config_hash, generation) key half-way.
    for row in changed:
        conn.execute(text("UPDATE ablate_runs SET generation = :g WHERE id = :id"),
                     {"g": -row.id, "id": row.id})
    for row in changed:
        new_hash, generation = target[row.id]
        conn.execute(
            text("UPDATE ablate_runs SET config_hash = :h, generation = :g WHERE id = :id"),
            {"h": new_hash, "g": generation, "id": row.id},
        )


def _hash(config_json: str, old: str) -> str:
    """Today's hash of a stored config; the old hash when the config no longer parses (a
    field since removed): that run cannot match a new claim either way."""
    try:
        return RunConfig.from_record(json.loads(config_json)).config_hash()
    except (ValueError, TypeError):
        return old
