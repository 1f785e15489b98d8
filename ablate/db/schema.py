"""Creating the tables of a fresh database and migrating an old one to ``SCHEMA_VERSION``."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine, insert, inspect, select, update
from sqlalchemy.exc import IntegrityError, ProgrammingError, SQLAlchemyError

from ablate.db.connect import first_line, is_transient
from ablate.db.migrate import v1_to_v2, v2_to_v3, v3_to_v4
from ablate.db.models import SCHEMA_VERSION, Base, Meta
from ablate.errors import DatabaseError

# _MIGRATIONS[n] upgrades a database at schema version n to n + 1, inside one transaction.
_MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: v1_to_v2, 2: v2_to_v3,
                                                        3: v3_to_v4}

_ATTEMPTS = 5


def ensure_schema(engine: Engine, shown_url: str) -> int:
    """Create or migrate the ablate_ tables; returns the version found (0 for a fresh db).

    Several workers may open a fresh database at once: the loser of a CREATE TABLE race
    gets an error and simply looks again.
    """
    for attempt in range(_ATTEMPTS):
        try:
            with engine.begin() as conn:
                return _ensure(conn, shown_url)
        except SQLAlchemyError as exc:
            if _lost_race(exc) and attempt + 1 < _ATTEMPTS:
                time.sleep(0.05 * (attempt + 1) * (0.5 + random.random()))
                continue
            raise DatabaseError(f"cannot open database {shown_url}: {first_line(exc)}") from None
    raise AssertionError("unreachable")


def _lost_race(exc: SQLAlchemyError) -> bool:
    return (
        isinstance(exc, IntegrityError | ProgrammingError)
        or is_transient(exc)
        or "already exists" in first_line(exc)
    )


def read_version(conn: Connection) -> int | None:
    if not inspect(conn).has_table(Meta.__tablename__):
        return None
    value = conn.scalar(select(Meta.value).where(Meta.key == "schema_version"))
    return int(value) if value is not None else None


def existing_version(engine: Engine, shown_url: str) -> int:
    """The schema version of an ablate database, for opening it read-only: anything else (no
    ``ablate_meta``, not SQLite at all, a newer ablate's file) is a one-line DatabaseError."""
    try:
        with engine.connect() as conn:
            version = read_version(conn)
    except SQLAlchemyError as exc:
        raise DatabaseError(
            f"{shown_url} is not an ablate runs database ({first_line(exc)})"
        ) from None
    if version is None:
        raise DatabaseError(f"{shown_url} is not an ablate runs database (no ablate tables)")
    _check_not_newer(version, shown_url)
    return version


def _check_not_newer(version: int, shown_url: str) -> None:
    if version > SCHEMA_VERSION:
        raise DatabaseError(
            f"database {shown_url} has schema version {version}, newer than this ablate's "
            f"{SCHEMA_VERSION}: upgrade ablate to open it"
        )


def _ensure(conn: Connection, shown_url: str) -> int:
    version = read_version(conn)
    if version is None:
        Base.metadata.create_all(conn)
        conn.execute(insert(Meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
        return 0
    _check_not_newer(version, shown_url)
    for step in range(version, SCHEMA_VERSION):
        if step not in _MIGRATIONS:
            raise DatabaseError(f"database {shown_url}: no migration from schema version {step}")
        _MIGRATIONS[step](conn)
        conn.execute(update(Meta).where(Meta.key == "schema_version").values(value=str(step + 1)))
    return version
