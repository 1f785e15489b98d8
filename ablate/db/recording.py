"""The writing half of ``RunStore``: heartbeats, epochs, the final result of a run, tuning
facts and the study's definition."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from ablate.db.heartbeat import KeepAlive
from ablate.db.host import HEARTBEAT_ENV, seconds_from_env
from ablate.db.models import (
    IMAGE_GAMES,
    IMAGE_KEYS,
    SPLITS,
    Epoch,
    ImageResult,
    MetricValue,
    Run,
    StudyRecord,
    finite,
)
from ablate.db.transactions import Transactions, jsonable, upsert
from model.metrics import ALIGN_KEYS, metric_names


class Recording(Transactions):
    def heartbeat(self, run_id: int) -> None:
        self._transaction(lambda s: self._touch(s, run_id, heartbeat_at=self._now(s)))

    def keep_alive(self, run_id: int, interval: float | None = None) -> KeepAlive:
        """A context manager that heartbeats ``run_id`` from a thread while training runs,
        every ``interval`` s (default ``$ABLATE_HEARTBEAT_S``, else 30)."""
        if interval is None:
            interval = seconds_from_env(HEARTBEAT_ENV, 30.0)
        return KeepAlive(self, run_id, interval)

    def record_epoch(self, run_id: int, epoch: int, metrics: dict[str, float]) -> None:
        """Store one epoch's metrics and loss terms (a redone epoch replaces its row), bump
        the heartbeat and ``epochs_done``."""
        values = {str(name): finite(value) for name, value in metrics.items()}

        def work(session: Session) -> None:
            now = self._now(session)
            self._touch(session, run_id, heartbeat_at=now)
            row = {"run_id": run_id, "epoch": int(epoch), "metrics": values, "recorded_at": now}
            upsert(session, Epoch, row, ("run_id", "epoch"))
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
        config: dict | None = None,
    ) -> None:
        """Mark a run done with its final metrics (every key that ``model.metrics`` registers;
        other keys, such as a loss or ``n_images``, are not stored) and its per-image results
        (replacing any earlier). ``config``: the config as it ran (the execution settings this
        machine chose, which the hash leaves out), recorded in place of the claimed one."""
        images = [_image_row(run_id, row) for row in image_results]
        metrics = _metric_rows(run_id, {"val": val, "test": test})

        def work(session: Session) -> None:
            now = self._now(session)
            ran = {} if config is None else {
                "config_json": json.dumps(jsonable(config), sort_keys=True, default=str)}
            self._touch(session, run_id, status="done", best_epoch=int(best_epoch), error=None,
                        ended_at=now, heartbeat_at=now, **ran)
            for table, rows in ((MetricValue, metrics), (ImageResult, images)):
                session.execute(delete(table).where(table.run_id == run_id))
                if rows:
                    session.execute(insert(table), rows)

        self._transaction(work)

    def fail(self, run_id: int, error: str) -> None:
        self._transaction(
            lambda s: self._touch(s, run_id, status="failed", error=error, ended_at=self._now(s))
        )

    def prune(self, run_id: int) -> None:
        self._transaction(lambda s: self._touch(s, run_id, status="pruned", ended_at=self._now(s)))

    def set_trial(self, run_id: int, tune_study: str, trial_number: int, params: dict) -> None:
        params_json = json.dumps(jsonable(params), sort_keys=True, default=str)
        self._transaction(
            lambda s: self._touch(
                s,
                run_id,
                tune_study=tune_study,
                trial_number=int(trial_number),
                params_json=params_json,
            )
        )

    def record_study(self, name: str, record: dict[str, Any]) -> None:
        """Store (or replace) the definition of study ``name``, ``Study.to_record()``, which
        ``ablate report`` reads instead of the study file."""
        data = json.loads(json.dumps(jsonable(record), default=str))

        def work(session: Session) -> None:
            row = {"name": str(name), "record": data, "updated_at": self._now(session)}
            upsert(session, StudyRecord, row, ("name",))

        self._transaction(work)


def _metric_rows(run_id: int, splits: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    registered = [*metric_names(), *ALIGN_KEYS]
    return [
        {"run_id": run_id, "split": split, "name": name, "value": finite(splits[split][name])}
        for split in SPLITS
        for name in registered
        if name in splits[split]
    ]


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
        "cells": jsonable(row.get("cells")),
    }
    out.update({name: finite(row.get(name)) for name in IMAGE_GAMES})
    return out
