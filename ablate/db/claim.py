"""The claim rules: which worker trains a (study, variant, seed, condition, config_hash) key.

The database is the only lock. A new row is inserted under a unique (key, generation)
constraint, so of two workers inserting the same generation one gets an IntegrityError; a
failed, pending or stale row is taken over with an UPDATE that only matches the row as it
was seen, so of two workers taking it over one updates nothing. The loser decides again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ablate.db.host import code_version, hostname, pid_alive
from ablate.db.models import Run, utcnow

ClaimAction = Literal["new", "resume", "skip-done", "skip-busy", "rerun"]
KEY = ("study", "variant", "seed", "condition", "config_hash")
# The columns of the unique (..., generation) constraint: the key without its condition.
UNIQUE = ("study", "variant", "seed", "config_hash")


@dataclass(frozen=True)
class ClaimSpec:
    """The run a worker asks to train: its key, what is recorded with it, and whether a done
    run of the same key is trained again. ``ablate.study.plan.RunSpec`` is one (its config a
    ``RunConfig``); tools and tests that hold a plain config dict build this."""

    study: str
    variant: str
    seed: int
    config: Any  # a RunConfig, or its to_dict()
    config_hash: str
    label: str | None = None
    save_dir: Any = None
    force: bool = False
    condition: str = ""


@dataclass(frozen=True)
class ClaimResult:
    """What ``RunStore.claim`` decided. For the skip actions ``run`` is the row that caused
    the skip (the done or the busy run); the caller must not train it."""

    run: Run | None
    action: ClaimAction

    @property
    def claimed(self) -> bool:
        return self.action in ("new", "resume", "rerun")


def is_stale(run: Run, stale_after: float, now: datetime | None = None) -> bool:
    """Whether a running row's worker is gone: its heartbeat is older than ``stale_after``
    seconds, or it ran on this host and its process no longer exists."""
    if run.status != "running":
        return False
    now = now or utcnow()
    if run.heartbeat_at is None or (now - run.heartbeat_at).total_seconds() > stale_after:
        return True
    return run.host == hostname() and run.pid is not None and not pid_alive(run.pid)


def decide(
    session: Session, fresh: dict[str, Any], force: bool, stale_after: float, now: datetime
) -> ClaimResult | None:
    """One look at the key's latest row and at most one atomic write.

    Returns None when another worker changed the row first; raises IntegrityError when
    another worker inserted the same generation first.
    """
    latest = session.scalars(
        select(Run)
        .where(*(getattr(Run, name) == fresh[name] for name in KEY))
        .order_by(Run.generation.desc())
        .limit(1)
    ).first()
    if latest is None:
        return ClaimResult(_insert(session, fresh, next_generation(session, fresh, -1), now), "new")
    if latest.status == "done" and not force:
        return ClaimResult(latest, "skip-done")
    if latest.status in ("done", "pruned"):
        # A pruned run was stopped on purpose: its key starts over rather than resumes.
        action = "rerun" if latest.status == "done" else "new"
        generation = next_generation(session, fresh, latest.generation)
        return ClaimResult(_insert(session, fresh, generation, now), action)
    if latest.status == "running" and not is_stale(latest, stale_after, now):
        return ClaimResult(latest, "skip-busy")
    return _take_over(session, latest, fresh, now)


def next_generation(session: Session, fresh: dict[str, Any], latest: int) -> int:
    """One past ``latest`` (the key's newest generation in its own condition, -1: none) and
    past every generation other conditions hold for the same config, which share the unique
    constraint (``UNIQUE``). Rows of the key's own condition are not re-read: two workers
    inserting for one key must race for the same number, so that one of them fails."""
    others = session.scalar(
        select(func.max(Run.generation)).where(
            *(getattr(Run, n) == fresh[n] for n in UNIQUE), Run.condition != fresh["condition"])
    )
    return max(latest, -1 if others is None else others) + 1


def _worker(now: datetime) -> dict[str, Any]:
    return {
        "status": "running",
        "host": hostname(),
        "pid": os.getpid(),
        "started_at": now,
        "heartbeat_at": now,
        "code_version": code_version(),
    }


def _insert(session: Session, fresh: dict[str, Any], generation: int, now: datetime) -> Run:
    run = Run(**fresh, **_worker(now), generation=generation, created_at=now, epochs_done=0,
              metric_values=[])  # known empty: readable after the session closes
    session.add(run)
    session.flush()  # the unique (key, generation) constraint fires here
    return run


def _take_over(
    session: Session, seen: Run, fresh: dict[str, Any], now: datetime
) -> ClaimResult | None:
    """Resume a failed, pending or stale row, unless someone changed it since we looked."""
    same_heartbeat = (
        Run.heartbeat_at.is_(None)
        if seen.heartbeat_at is None
        else Run.heartbeat_at == seen.heartbeat_at
    )
    values = {**_worker(now), "ended_at": None, "error": None}
    if seen.save_dir is None and fresh["save_dir"] is not None:
        values["save_dir"] = fresh["save_dir"]  # else keep it: the checkpoint lives there
    if fresh["label"] is not None:
        values["label"] = fresh["label"]
    result = session.execute(
        update(Run)
        .where(Run.id == seen.id, Run.status == seen.status, same_heartbeat)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    session.refresh(seen)
    return ClaimResult(seen, "resume")
