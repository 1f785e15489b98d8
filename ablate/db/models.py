"""The runs database's tables, prefixed ``ablate_`` so they share a database with Optuna's."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from ablate.db.host import worker_id
from model.metrics import GAME_LEVELS, metric_names
from model.registry import unknown_choice

# Bump when a table changes, and add the step from the old version to ``schema._MIGRATIONS``.
SCHEMA_VERSION = 4

STATUSES = ("pending", "running", "done", "failed", "pruned")
SPLITS = ("val", "test")  # the splits whose final metrics a run records
# Per-image values fixed by the evaluation protocol (set-level metrics are open: see
# ``model.metrics.metric``), so they stay columns of ``ablate_image_results``.
IMAGE_GAMES = tuple(f"game{level}" for level in GAME_LEVELS)
IMAGE_KEYS = ("split", "image_id", "true_count", "pred_count", *IMAGE_GAMES, "cells")


def utcnow() -> datetime:
    return datetime.now(UTC)


def finite(value: Any) -> float | None:
    """A metric as a float, None when missing, NaN or infinite (JSON and SQLite have neither)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class UTCDateTime(TypeDecorator):
    """Stored as naive UTC (SQLite has no time zones), read back as aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


class Base(DeclarativeBase):
    pass


class Meta(Base):
    """Key/value facts about the database itself; ``schema_version`` is the one that matters."""

    __tablename__ = "ablate_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class Run(Base):
    """One training of one variant with one seed and one resolved config."""

    __tablename__ = "ablate_runs"
    # A rerun of a done key gets the next generation, so at most one row per generation can
    # ever be inserted: the unique constraint is what makes two workers' inserts atomic. The
    # claim key also holds the condition, but the constraint does not (SQLite cannot change
    # a table's constraint in place): rows of two conditions with one config take different
    # generations instead (see ``claim.next_generation``).
    __table_args__ = (
        UniqueConstraint(
            "study", "variant", "seed", "config_hash", "generation", name="uq_ablate_runs_claim"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study: Mapped[str] = mapped_column(String(200), index=True)
    variant: Mapped[str] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(200))
    seed: Mapped[int] = mapped_column(Integer)
    # The study's condition ("registered", "rgbtcc"); "" in a study without conditions.
    condition: Mapped[str] = mapped_column(String(64), default="", server_default="")
    config_json: Mapped[str] = mapped_column(Text)
    config_hash: Mapped[str] = mapped_column(String(64))
    generation: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), index=True)

    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    code_version: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    save_dir: Mapped[str | None] = mapped_column(Text)
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    epochs_done: Mapped[int] = mapped_column(Integer, default=0)

    trial_number: Mapped[int | None] = mapped_column(Integer)
    tune_study: Mapped[str | None] = mapped_column(String(200))
    params_json: Mapped[str | None] = mapped_column(Text)

    # The final metrics, one row per (split, name); loaded with the run in one extra query.
    metric_values: Mapped[list[MetricValue]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self.config_json)

    @property
    def params(self) -> dict[str, Any] | None:
        return json.loads(self.params_json) if self.params_json is not None else None

    def metric(self, split: str, name: str) -> float | None:
        """The final ``split`` ("val" or "test") value of metric ``name``; None when the run
        did not record it (not done, a NaN, or a metric registered after it ran)."""
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not valid; choose one of {', '.join(SPLITS)}")
        for row in self.metric_values:
            if row.split == split and row.name == name:
                return finite(row.value)
        known = self.metric_keys()
        if name not in known:
            raise KeyError(unknown_choice("metric", name, list(known)))
        return None

    def metric_keys(self) -> tuple[str, ...]:
        """Every registered metric, then any other the run recorded (a plugin's that is not
        loaded now), so that nothing stored is hidden."""
        registered = metric_names()
        extra = sorted({row.name for row in self.metric_values} - set(registered))
        return (*registered, *extra)

    def metrics(self, split: str) -> dict[str, float | None]:
        """The final metrics of ``split`` ("val" or "test"), keyed as ``metric_keys``."""
        return {name: self.metric(split, name) for name in self.metric_keys()}

    def __getattr__(self, name: str) -> Any:
        # The attribute names of schema version 1 (``run.val_game3``, ``run.test_rmse``) keep
        # working for any metric; new code calls ``run.metric("val", "game3")``.
        split, _, metric = name.partition("_")
        if split in SPLITS and metric and not name.startswith("_"):
            try:
                return self.metric(split, metric)
            except KeyError:
                pass
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready form ``ablate runs list --json`` prints; ``game0``.. (every metric
        by its name) are TEST metrics, ``val_game0``.. the val ones; null unless done."""
        done = self.status == "done"
        row: dict[str, Any] = {
            "id": self.id,
            "study": self.study,
            "variant": self.variant,
            "label": self.label,
            "seed": self.seed,
            "condition": self.condition or "",
            "status": self.status,
            "config_hash": self.config_hash,
        }
        keys = self.metric_keys()
        row.update({name: self.metric("test", name) if done else None for name in keys})
        row.update({f"val_{name}": self.metric("val", name) if done else None for name in keys})
        row.update(
            host=self.host,
            pid=self.pid,
            worker=worker_id(self.host, self.pid),
            code_version=self.code_version,
            created_at=_iso(self.created_at),
            started_at=_iso(self.started_at),
            ended_at=_iso(self.ended_at),
            heartbeat_at=_iso(self.heartbeat_at),
            epochs_done=self.epochs_done,
            best_epoch=self.best_epoch,
            error=self.error,
            save_dir=self.save_dir,
            trial_number=self.trial_number,
            tune_study=self.tune_study,
            params=self.params,
        )
        return row

    def __repr__(self) -> str:
        return (
            f"Run(id={self.id}, study={self.study!r}, variant={self.variant!r}, "
            f"seed={self.seed}, status={self.status!r})"
        )


class MetricValue(Base):
    """One final metric of a run: any name ``model.metrics`` registers, so a new metric is
    stored with no schema change."""

    __tablename__ = "ablate_metrics"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("ablate_runs.id", ondelete="CASCADE"), primary_key=True
    )
    split: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)  # None for a NaN or infinite value


class StudyRecord(Base):
    """A study's definition (``Study.to_record()``), so that reports need no study file."""

    __tablename__ = "ablate_studies"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Epoch(Base):
    """Metrics and loss terms of one epoch; a resumed run that redoes an epoch overwrites it."""

    __tablename__ = "ablate_epochs"
    __table_args__ = (UniqueConstraint("run_id", "epoch", name="uq_ablate_epochs_run_epoch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("ablate_runs.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ImageResult(Base):
    """The final model's count and GAME errors on one image."""

    __tablename__ = "ablate_image_results"
    __table_args__ = (
        UniqueConstraint("run_id", "split", "image_id", name="uq_ablate_image_results_image"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("ablate_runs.id", ondelete="CASCADE"), index=True
    )
    split: Mapped[str] = mapped_column(String(16))
    image_id: Mapped[str] = mapped_column(String(255))
    true_count: Mapped[float] = mapped_column(Float)
    pred_count: Mapped[float | None] = mapped_column(Float)  # None when the model gave NaN
    # One column per level of IMAGE_GAMES (game0..game3), the protocol's per-image values.
    game0: Mapped[float | None] = mapped_column(Float)
    game1: Mapped[float | None] = mapped_column(Float)
    game2: Mapped[float | None] = mapped_column(Float)
    game3: Mapped[float | None] = mapped_column(Float)
    # Per-cell absolute errors at each GAME level, for error maps in reports.
    cells: Mapped[Any | None] = mapped_column(JSON)
