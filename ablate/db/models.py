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
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Bump when a table changes, and add the step from the old version to ``schema._MIGRATIONS``.
SCHEMA_VERSION = 1

STATUSES = ("pending", "running", "done", "failed", "pruned")
METRICS = ("game0", "game1", "game2", "game3", "rmse", "mae")


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
    # ever be inserted: the unique constraint is what makes two workers' inserts atomic.
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

    val_game0: Mapped[float | None] = mapped_column(Float)
    val_game1: Mapped[float | None] = mapped_column(Float)
    val_game2: Mapped[float | None] = mapped_column(Float)
    val_game3: Mapped[float | None] = mapped_column(Float)
    val_rmse: Mapped[float | None] = mapped_column(Float)
    val_mae: Mapped[float | None] = mapped_column(Float)
    test_game0: Mapped[float | None] = mapped_column(Float)
    test_game1: Mapped[float | None] = mapped_column(Float)
    test_game2: Mapped[float | None] = mapped_column(Float)
    test_game3: Mapped[float | None] = mapped_column(Float)
    test_rmse: Mapped[float | None] = mapped_column(Float)
    test_mae: Mapped[float | None] = mapped_column(Float)

    @property
    def config(self) -> dict[str, Any]:
        return json.loads(self.config_json)

    @property
    def params(self) -> dict[str, Any] | None:
        return json.loads(self.params_json) if self.params_json is not None else None

    def metrics(self, split: str) -> dict[str, float | None]:
        """The final metrics of ``split`` ("val" or "test") keyed game0..game3, rmse, mae."""
        return {name: getattr(self, f"{split}_{name}") for name in METRICS}

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready form ``ablate runs list --json`` prints; game0..mae are TEST metrics,
        null unless the run is done."""
        done = self.status == "done"
        row: dict[str, Any] = {
            "id": self.id,
            "study": self.study,
            "variant": self.variant,
            "label": self.label,
            "seed": self.seed,
            "status": self.status,
            "config_hash": self.config_hash,
        }
        row.update(
            {name: finite(getattr(self, f"test_{name}")) if done else None for name in METRICS}
        )
        row.update(
            {
                f"val_{name}": finite(getattr(self, f"val_{name}")) if done else None
                for name in METRICS
            }
        )
        row.update(
            host=self.host,
            pid=self.pid,
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
    game0: Mapped[float | None] = mapped_column(Float)
    game1: Mapped[float | None] = mapped_column(Float)
    game2: Mapped[float | None] = mapped_column(Float)
    game3: Mapped[float | None] = mapped_column(Float)
    # Per-cell absolute errors at each GAME level, for error maps in reports.
    cells: Mapped[Any | None] = mapped_column(JSON)
