"""What every ``RunStore`` method is made of: one short transaction, retried on a lock, with
the database server's clock where there is a server."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from ablate.db.connect import retrying
from ablate.db.models import Run, finite, utcnow
from ablate.errors import DatabaseError

T = TypeVar("T")


class Transactions:
    engine: Engine
    display_url: str
    _sessions: sessionmaker
    _server_clock: bool  # heartbeats written and judged by one clock: the server's, if any

    def _transaction(self, work: Callable[[Session], T]) -> T:
        def attempt() -> T:
            with self._sessions.begin() as session:
                return work(session)

        return retrying(self.display_url, attempt)

    def _now(self, session: Session) -> datetime:
        if self._server_clock:
            return session.scalar(select(func.now())).astimezone(UTC)
        return utcnow()

    @staticmethod
    def _touch(session: Session, run_id: int, **values: Any) -> None:
        result = session.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            raise DatabaseError(f"no run with id {run_id}")


def existing(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise DatabaseError(f"no run with id {run_id}")
    return run


def upsert(session: Session, table: type, row: dict[str, Any], keys: Sequence[str]) -> None:
    """Insert ``row`` into ``table``, or update the row with the same ``keys`` to it."""
    changes = {name: value for name, value in row.items() if name not in keys}
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        make = sqlite.insert if dialect == "sqlite" else postgresql.insert
        stmt = make(table).values(**row)
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=list(keys), set_={name: stmt.excluded[name] for name in changes}
            )
        )
        return
    result = session.execute(
        update(table)
        .where(*(getattr(table, name) == row[name] for name in keys))
        .values(**changes)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 0:
        session.execute(insert(table), [row])


def jsonable(value: Any) -> Any:
    """Plain JSON data: arrays and tensors as lists, NaN and infinities as null."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return finite(value)
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value
