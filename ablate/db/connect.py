"""Opening a runs database from a URL or a path, and retrying when another worker holds it."""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.pool import StaticPool

from ablate.errors import DatabaseError

DEFAULT_URL = "sqlite:///runs.db"
# Long enough to outwait another worker's commit; a lock held longer than this is a bug.
SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_CONNECT_TIMEOUT_S = 10
# SQLite says "locked"/"busy"; PostgreSQL's serialization failure and deadlock are also
# "try the same transaction again" answers.
_RETRY_SQLSTATES = {"40001", "40P01"}
_RETRY_ATTEMPTS = 30
# A server restart (PostgreSQL comes back in seconds) is waited out this long; a worker that
# gives up sooner would fail a run a restart did not harm.
RECONNECT_S = 120.0
# What drivers say when the server is not there (psycopg, SQLite's "disk I/O" is not one).
_GONE = ("connection refused", "server closed the connection", "terminating connection",
         "the database system is starting up", "the database system is shutting down",
         "consuming input failed", "server login has been failing",
         "connection is closed", "connection has been closed", "ssl syscall error")

T = TypeVar("T")


def resolve_url(url: str | None) -> URL:
    """None -> ./runs.db, a bare path -> SQLite, anything else -> a SQLAlchemy URL."""
    text = DEFAULT_URL if url is None else url
    if not text.strip():
        # Path("") would be the current directory: say what was given instead.
        raise DatabaseError(f"database {url!r} is empty: give a file path or a SQLAlchemy URL "
                            "(default ./runs.db)")
    if "://" not in text:
        text = "sqlite:///" + str(Path(text).expanduser().resolve())
    try:
        parsed = make_url(text)
    except (ArgumentError, ValueError) as exc:
        reason = f"not a URL ({exc})" if isinstance(exc, ValueError) else "not a URL"
        raise DatabaseError(f"cannot open database {hide_password(text)}: {reason}") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        # Absolute, so that a runner that changes directory still finds the same file.
        parsed = parsed.set(database=str(Path(parsed.database).expanduser().resolve()))
    return parsed


def hide_password(text: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", text)


def display(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def open_engine(url: URL, readonly: bool = False) -> Engine:
    """An engine for ``url``; raises DatabaseError naming the URL when it cannot be made.

    ``readonly``: an SQLite file must already exist and be non-empty, and its connections
    are ``query_only`` and keep the file's journal mode (no switch to WAL), so that opening
    another program's file for reading leaves it byte for byte as it was.
    """
    shown = display(url)
    kwargs: dict = {}
    backend = url.get_backend_name()
    if backend == "sqlite":
        (_check_sqlite_file if readonly else _check_sqlite_path)(url, shown)
        kwargs["connect_args"] = {"check_same_thread": False}
        if url.database in (None, "", ":memory:"):
            kwargs["poolclass"] = StaticPool
    else:
        # A long training run leaves pooled connections idle for hours; servers drop them.
        kwargs["pool_pre_ping"] = True
        if backend == "postgresql" and "connect_timeout" not in url.query:
            kwargs["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    try:
        engine = create_engine(url, **kwargs)
    except NoSuchModuleError:
        raise DatabaseError(
            f"cannot open database {shown}: unknown scheme {url.drivername!r}"
        ) from None
    except (ArgumentError, ImportError) as exc:
        raise DatabaseError(f"cannot open database {shown}: {first_line(exc)}") from None
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_reader if readonly else _sqlite_on_connect)
    return engine


def _check_sqlite_file(url: URL, shown: str) -> None:
    """For reading: the file must exist (reading never creates one) and hold something."""
    if url.database in (None, "", ":memory:"):
        return
    path = Path(url.database)
    if not path.exists():
        raise DatabaseError(f"no runs database at {path}; `ablate study run FILE` creates "
                            "one, or pass --db")
    if not path.is_file():
        raise DatabaseError(f"{path} is not a file, so not an ablate runs database")
    if not os.access(path, os.R_OK):
        raise DatabaseError(f"cannot open database {shown}: {path} is not readable")
    if path.stat().st_size == 0:
        raise DatabaseError(f"{path} is not an ablate runs database (an empty file)")


def _check_sqlite_path(url: URL, shown: str) -> None:
    if url.database in (None, "", ":memory:"):
        return
    path = Path(url.database)
    parent = path.parent
    if not parent.exists():
        raise DatabaseError(f"cannot open database {shown}: directory {parent} does not exist")
    if not parent.is_dir():
        raise DatabaseError(f"cannot open database {shown}: {parent} is not a directory")
    if path.exists() and (path.is_dir() or not os.access(path, os.R_OK | os.W_OK)):
        raise DatabaseError(f"cannot open database {shown}: {path} is not a writable file")
    # WAL mode needs to create the -wal and -shm files next to the database.
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DatabaseError(f"cannot open database {shown}: directory {parent} is not writable")


def _sqlite_on_connect(dbapi_connection, connection_record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # The timeout first, so that switching to WAL waits for a concurrent writer.
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_reader(dbapi_connection, connection_record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA query_only = ON")
    finally:
        cursor.close()


def first_line(exc: BaseException) -> str:
    """The driver's message without SQLAlchemy's SQL echo and background link."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_transient(exc: BaseException) -> bool:
    """Whether the same transaction may succeed if simply tried again."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _RETRY_SQLSTATES:
        return True
    text = str(orig).lower()
    return "is locked" in text


# Answers from a server that is there and said no: waiting would not change them.
_REFUSED = ("password authentication failed", "does not exist", "no pg_hba.conf entry",
            "permission denied")


def is_disconnect(exc: BaseException) -> bool:
    """Whether the server went away (restarted, failed over, network cut): worth waiting for,
    unlike a wrong password or a missing database."""
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    if getattr(exc, "connection_invalidated", False):
        return True
    text = str(exc.orig if exc.orig is not None else exc).lower()
    return any(sign in text for sign in _GONE) and not any(sign in text for sign in _REFUSED)


def retrying(shown_url: str, work: Callable[[], T], attempts: int = _RETRY_ATTEMPTS) -> T:
    """Run ``work`` (one whole transaction), again after a short backoff when it hits a lock,
    and with a backoff of up to 5 s for ``RECONNECT_S`` when the server is gone.

    Any other database failure, a lock that never clears or a server that does not come back
    becomes a one-line AblateError.
    """
    locked, gone_since = 0, None
    while True:
        try:
            return work()
        except SQLAlchemyError as exc:
            if is_transient(exc) and locked + 1 < attempts:
                time.sleep(min(0.02 * 2**locked, 1.0) * (0.5 + random.random()))
                locked += 1
                continue
            if is_disconnect(exc):
                gone_since = gone_since or time.monotonic()
                waited = time.monotonic() - gone_since
                if waited < RECONNECT_S:
                    time.sleep(min(0.25 * 2 ** min(waited, 5), 5.0) * (0.5 + random.random()))
                    continue
            raise DatabaseError(f"database {shown_url}: {first_line(exc)}") from exc
