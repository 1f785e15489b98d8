"""``RunStore``: the one object the CLI, the runner and the tuner use to record runs.

Every method is one short transaction. The database is the only lock: a run is claimed with
a conditional UPDATE or a uniquely keyed INSERT, so workers on several machines that share
a PostgreSQL server split the work as safely as processes that share a SQLite file.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ablate.db.claim import ClaimResult, decide
from ablate.db.connect import display, open_engine, resolve_url, retrying
from ablate.db.heartbeat import KeepAlive
from ablate.db.models import METRICS, STATUSES, Epoch, ImageResult, Run, finite, utcnow
from ablate.db.schema import ensure_schema
from ablate.errors import AblateError

IMAGE_KEYS = (
    "split",
    "image_id",
    "true_count",
    "pred_count",
    "game0",
    "game1",
    "game2",
    "game3",
    "cells",
)
# Every claim that loses a race looks again; this many losses in a row means a bug.
_CLAIM_ATTEMPTS = 50

T = TypeVar("T")


class RunStore:
    """The runs database at ``url``: None -> ./runs.db, a bare path -> SQLite, else any
    SQLAlchemy URL (``postgresql+psycopg://user:pw@host/db``)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = resolve_url(url)
        self.display_url = display(self.url)
        self.engine = open_engine(self.url)
        try:
            ensure_schema(self.engine, self.display_url)
        except BaseException:
            self.engine.dispose()
            raise
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Heartbeats written and judged by one clock: the server's where there is a server.
        self._server_clock = self.engine.dialect.name == "postgresql"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunStore({self.display_url!r})"

    # -- claiming -------------------------------------------------------------------------

    def claim(
        self,
        study: str,
        variant: str,
        seed: int,
        config: dict,
        config_hash: str,
        label: str | None = None,
        save_dir: str | None = None,
        force: bool = False,
        stale_after: float = 120.0,
    ) -> ClaimResult:
        """Decide, atomically across processes and machines, whether this worker trains the
        run keyed (study, variant, seed, config_hash); see ``ClaimResult`` for the actions."""
        if stale_after <= 0:
            raise ValueError(f"stale_after must be positive, got {stale_after}")
        fresh = {
            "study": study,
            "variant": variant,
            "seed": int(seed),
            "config_hash": config_hash,
            "label": label,
            "save_dir": None if save_dir is None else str(save_dir),
            "config_json": json.dumps(_jsonable(config), sort_keys=True, default=str),
        }
        for _ in range(_CLAIM_ATTEMPTS):
            result = retrying(self.display_url, lambda: self._claim_once(fresh, force, stale_after))
            if result is not None:
                return result
            time.sleep(0.005 * (1 + random.random()))
        raise AblateError(f"could not claim {study}/{variant}/seed {seed}: too much contention")

    def _claim_once(self, fresh: dict, force: bool, stale_after: float) -> ClaimResult | None:
        try:
            with self._sessions.begin() as session:
                return decide(session, fresh, force, stale_after, self._now(session))
        except IntegrityError:
            return None  # another worker inserted this generation first

    # -- recording ------------------------------------------------------------------------

    def heartbeat(self, run_id: int) -> None:
        self._transaction(lambda s: self._touch(s, run_id, heartbeat_at=self._now(s)))

    def keep_alive(self, run_id: int, interval: float = 30.0) -> KeepAlive:
        """A context manager that heartbeats ``run_id`` from a thread while training runs."""
        return KeepAlive(self, run_id, interval)

    def record_epoch(self, run_id: int, epoch: int, metrics: dict[str, float]) -> None:
        """Store one epoch's metrics and loss terms (a redone epoch replaces its row), bump
        the heartbeat and ``epochs_done``."""
        values = {str(name): finite(value) for name, value in metrics.items()}

        def work(session: Session) -> None:
            now = self._now(session)
            self._touch(session, run_id, heartbeat_at=now)
            _upsert_epoch(session, run_id, int(epoch), values, now)
            count = select(func.count()).where(Epoch.run_id == run_id).scalar_subquery()
            session.execute(update(Run).where(Run.id == run_id).values(epochs_done=count))

        self._transaction(work)

    def finish(
        self,
        run_id: int,
        val: dict[str, float],
        test: dict[str, float],
        best_epoch: int,
        image_results: list[dict],
    ) -> None:
        """Mark a run done with its final metrics (keys game0..game3, rmse, mae; other keys,
        such as a loss, are not stored) and its per-image results (replacing any earlier)."""
        rows = [_image_row(run_id, row) for row in image_results]
        values: dict[str, Any] = {"status": "done", "best_epoch": int(best_epoch), "error": None}
        for split, metrics in (("val", val), ("test", test)):
            values.update({f"{split}_{m}": finite(metrics.get(m)) for m in METRICS})

        def work(session: Session) -> None:
            now = self._now(session)
            self._touch(session, run_id, ended_at=now, heartbeat_at=now, **values)
            session.execute(delete(ImageResult).where(ImageResult.run_id == run_id))
            if rows:
                session.execute(insert(ImageResult), rows)

        self._transaction(work)

    def fail(self, run_id: int, error: str) -> None:
        self._transaction(
            lambda s: self._touch(s, run_id, status="failed", error=error, ended_at=self._now(s))
        )

    def prune(self, run_id: int) -> None:
        self._transaction(lambda s: self._touch(s, run_id, status="pruned", ended_at=self._now(s)))

    def set_trial(self, run_id: int, tune_study: str, trial_number: int, params: dict) -> None:
        params_json = json.dumps(_jsonable(params), sort_keys=True, default=str)
        self._transaction(
            lambda s: self._touch(
                s,
                run_id,
                tune_study=tune_study,
                trial_number=int(trial_number),
                params_json=params_json,
            )
        )

    # -- queries --------------------------------------------------------------------------

    def list_runs(self, study: str | None = None, status: str | None = None) -> list[Run]:
        if status is not None and status not in STATUSES:
            raise AblateError(f"unknown status {status!r}; valid: {', '.join(STATUSES)}")
        query = select(Run).order_by(Run.id)
        if study is not None:
            query = query.where(Run.study == study)
        if status is not None:
            query = query.where(Run.status == status)
        return self._transaction(lambda s: list(s.scalars(query)))

    def get_run(self, run_id: int) -> Run:
        return self._transaction(lambda s: _existing(s, run_id))

    def epochs(self, run_id: int) -> list[dict[str, Any]]:
        """``[{"epoch": n, **metrics}, ...]`` in epoch order."""

        def work(session: Session) -> list[dict[str, Any]]:
            _existing(session, run_id)
            rows = session.scalars(
                select(Epoch).where(Epoch.run_id == run_id).order_by(Epoch.epoch)
            )
            return [{**row.metrics, "epoch": row.epoch} for row in rows]

        return self._transaction(work)

    def image_results(self, run_id: int, split: str = "test") -> list[dict[str, Any]]:
        def work(session: Session) -> list[dict[str, Any]]:
            _existing(session, run_id)
            rows = session.scalars(
                select(ImageResult)
                .where(ImageResult.run_id == run_id, ImageResult.split == split)
                .order_by(ImageResult.id)
            )
            return [{key: getattr(row, key) for key in IMAGE_KEYS} for row in rows]

        return self._transaction(work)

    def run_dicts(self, study: str | None = None) -> list[dict[str, Any]]:
        return [run.as_dict() for run in self.list_runs(study)]

    # -- plumbing -------------------------------------------------------------------------

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
            raise AblateError(f"no run with id {run_id}")


def _existing(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise AblateError(f"no run with id {run_id}")
    return run


def _upsert_epoch(session: Session, run_id: int, epoch: int, metrics: dict, now: datetime) -> None:
    dialect = session.get_bind().dialect.name
    row = {"run_id": run_id, "epoch": epoch, "metrics": metrics, "recorded_at": now}
    if dialect in ("sqlite", "postgresql"):
        make = sqlite.insert if dialect == "sqlite" else postgresql.insert
        stmt = make(Epoch).values(**row)
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["run_id", "epoch"],
                set_={"metrics": stmt.excluded.metrics, "recorded_at": stmt.excluded.recorded_at},
            )
        )
        return
    result = session.execute(
        update(Epoch)
        .where(Epoch.run_id == run_id, Epoch.epoch == epoch)
        .values(metrics=metrics, recorded_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 0:
        session.execute(insert(Epoch), [row])


def _image_row(run_id: int, row: dict) -> dict[str, Any]:
    unknown = sorted(set(row) - set(IMAGE_KEYS))
    if unknown:
        raise ValueError(f"unknown image result keys {unknown}; valid: {', '.join(IMAGE_KEYS)}")
    missing = [key for key in ("image_id", "true_count", "pred_count") if key not in row]
    if missing:
        raise ValueError(f"image result is missing {', '.join(missing)}")
    out: dict[str, Any] = {
        "run_id": run_id,
        "split": str(row.get("split", "test")),
        "image_id": str(row["image_id"]),
        "true_count": float(row["true_count"]),
        "pred_count": finite(row["pred_count"]),
        "cells": _jsonable(row.get("cells")),
    }
    out.update({f"game{level}": finite(row.get(f"game{level}")) for level in range(4)})
    return out


def _jsonable(value: Any) -> Any:
    """Plain JSON data: arrays and tensors as lists, NaN and infinities as null."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return finite(value)
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value
