"""Where Optuna keeps a search: next to the runs database, a journal file, or a given URL.

* one process, no ``--storage``: Optuna's RDB storage in the runs database itself (its tables
  sit beside the ``ablate_`` ones), with a heartbeat so a killed worker's trial is failed and
  retried;
* several processes, no ``--storage``, SQLite runs database: a journal file next to it
  (``runs.db`` -> ``runs.optuna.journal``), which many writers share safely on one machine;
* ``--storage URL``: ``sqlite:///...``, ``postgresql+psycopg://...`` (the scale-out path) or a
  path ending in ``.journal``/``.log``, used as given.

Journal storage has no Optuna heartbeat, so ``fail_dead_trials`` does that job from what each
trial records: its worker's host and pid, and its run's heartbeat in the runs database.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState
from sqlalchemy.engine import URL, make_url

from ablate.db import RunStore, is_stale
from ablate.db.connect import PG_CONNECT_TIMEOUT_S, first_line, hide_password, resolve_url
from ablate.db.host import hostname, pid_alive
from ablate.errors import AblateError, DatabaseError, UsageError

HEARTBEAT_S = 60  # how often a running trial says it is alive
GRACE_S = 180  # silence after which it is failed (and retried)
MAX_RETRY = 2  # retries of a trial whose worker died
JOURNAL_SUFFIXES = (".journal", ".log")
JOURNAL_SUFFIX = ".optuna.journal"  # of the journal next to a runs database
SQLITE_TIMEOUT_S = 30  # wait out another worker's write instead of failing "database is locked"


@dataclass(frozen=True)
class StorageTarget:
    """A resolved storage: ``url`` is what Optuna (and a worker process) is given."""

    kind: str  # "rdb" or "journal"
    url: str  # an SQLAlchemy URL, or the journal file's absolute path

    @property
    def shown(self) -> str:
        return hide_password(self.url)


def resolve_storage(storage: str | None, db: str | None, n_workers: int = 1) -> StorageTarget:
    """Pick the storage for ``--storage``, ``--db`` and ``--n-workers`` (see the module doc)."""
    if storage is not None:
        if "://" not in storage and storage.endswith(JOURNAL_SUFFIXES):
            return StorageTarget("journal", str(Path(storage).expanduser().resolve()))
        try:
            return StorageTarget("rdb", _render(resolve_url(storage)))
        except AblateError as exc:  # resolve_url speaks of "database": say which one
            raise type(exc)(str(exc).replace("cannot open database",
                                               "cannot open Optuna storage", 1)) from None
    db_url = resolve_url(db)
    if n_workers > 1 and db_url.get_backend_name() == "sqlite":
        journal = journal_path(db_url)
        if journal is None:
            raise UsageError("--n-workers needs a runs database file or --storage; "
                             "an in-memory database is not shared between processes")
        return StorageTarget("journal", str(journal))
    return StorageTarget("rdb", _render(db_url))


def checked(target: StorageTarget) -> StorageTarget:
    """``target``, if its file (a journal or an SQLite database) can be created and written;
    a search checks this before it writes anything, to the runs database included."""
    url = None if target.kind == "journal" else make_url(target.url)
    if url is not None and (url.get_backend_name() != "sqlite"
                            or url.database in (None, "", ":memory:")):
        return target
    path = Path(target.url if url is None else url.database)
    folder = path.parent
    reason = (f"{path} is a directory, not a file" if path.is_dir()
              else f"directory {folder} does not exist" if not folder.is_dir()
              else f"directory {folder} is not writable" if not os.access(folder, os.W_OK | os.X_OK)
              else None)
    if reason is not None:
        raise DatabaseError(f"cannot open Optuna storage {target.shown}: {reason}")
    return target


def journal_path(db: str | URL | None) -> Path | None:
    """The journal file ``ablate tune --n-workers`` keeps next to a SQLite runs database
    (``runs.db`` -> ``runs.optuna.journal``); None for an in-memory or server database."""
    url = db if isinstance(db, URL) else resolve_url(db)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    path = Path(url.database)
    return path.with_name(f"{path.stem}{JOURNAL_SUFFIX}")


def open_storage(target: StorageTarget, heartbeat: bool = True) -> optuna.storages.BaseStorage:
    """Open (creating if needed) the storage; any failure is one AblateError line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if target.kind == "journal":
                return _open_journal(Path(target.url))
            return _open_rdb(target.url, heartbeat)
    except AblateError:
        raise
    except Exception as exc:  # the driver's, SQLAlchemy's or the file system's reason
        raise DatabaseError(
            f"cannot open Optuna storage {target.shown}: {first_line(exc)}") from None


def fail_dead_trials(study: optuna.Study, store: RunStore, stale_after: float = 120.0) -> list[int]:
    """Fail (and queue a retry of) the running trials whose worker is gone.

    Only for storages without an Optuna heartbeat (journal files); RDB storages do this
    themselves before every trial. Returns the numbers of the trials failed here.
    """
    if is_heartbeat_enabled(study._storage):
        return []
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not _worker_gone(trial, store, stale_after):
            continue
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError):
            continue  # another worker failed it first
        failed.append(trial.number)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
            retry(study, study.get_trials(deepcopy=False)[trial.number])
    return failed


def _worker_gone(trial: optuna.trial.FrozenTrial, store: RunStore, stale_after: float) -> bool:
    attrs = trial.user_attrs
    if attrs.get("trial") != trial.number:
        return False  # not started yet, or a retry still holding its failed original's attrs
    if attrs.get("host") == hostname() and attrs.get("pid") not in (None, os.getpid()):
        if not pid_alive(int(attrs["pid"])):
            return True
    if attrs.get("run_id") is None:
        return False
    try:
        run = store.get_run(int(attrs["run_id"]))
    except AblateError:
        return False
    return is_stale(run, stale_after)


def _open_journal(path: Path) -> JournalStorage:
    if not path.parent.is_dir():
        raise DatabaseError(f"cannot open Optuna storage {path}: directory {path.parent} "
                          "does not exist")
    return JournalStorage(JournalFileBackend(str(path)))


def _open_rdb(url: str, heartbeat: bool) -> RDBStorage:
    backend = url.split(":", 1)[0].split("+", 1)[0]
    engine_kwargs: dict = {}
    if backend == "sqlite":
        engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
    elif backend == "postgresql":
        engine_kwargs = {"pool_pre_ping": True,
                         "connect_args": {"connect_timeout": PG_CONNECT_TIMEOUT_S}}
    beat: dict = {}
    if heartbeat:
        beat = {"heartbeat_interval": HEARTBEAT_S, "grace_period": GRACE_S,
                "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(MAX_RETRY)}
    return RDBStorage(url, engine_kwargs=engine_kwargs, **beat)


def _render(url: URL) -> str:
    return url.render_as_string(hide_password=False)
