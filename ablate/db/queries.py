"""The reading half of ``RunStore``: runs, their epochs and per-image results, and studies."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ablate.db.models import IMAGE_KEYS, STATUSES, Epoch, ImageResult, Run, StudyRecord
from ablate.db.transactions import Transactions, existing
from ablate.errors import StudyError, UsageError


class Queries(Transactions):
    def list_runs(self, study: str | None = None, status: str | None = None,
                  condition: str | None = None) -> list[Run]:
        """Runs in id order; ``condition`` "" selects the runs of no condition."""
        if status is not None and status not in STATUSES:
            raise UsageError(f"unknown status {status!r}; valid: {', '.join(STATUSES)}")
        query = select(Run).order_by(Run.id)
        if study is not None:
            query = query.where(Run.study == study)
        if status is not None:
            query = query.where(Run.status == status)
        if condition is not None:
            query = query.where(Run.condition == condition)
        return self._transaction(lambda s: list(s.scalars(query)))

    def get_run(self, run_id: int) -> Run:
        return self._transaction(lambda s: existing(s, run_id))

    def epochs(self, run_id: int) -> list[dict[str, Any]]:
        """``[{"epoch": n, **metrics}, ...]`` in epoch order."""

        def work(session: Session) -> list[dict[str, Any]]:
            existing(session, run_id)
            rows = session.scalars(
                select(Epoch).where(Epoch.run_id == run_id).order_by(Epoch.epoch)
            )
            return [{**row.metrics, "epoch": row.epoch} for row in rows]

        return self._transaction(work)

    def image_results(self, run_id: int, split: str = "test") -> list[dict[str, Any]]:
        def work(session: Session) -> list[dict[str, Any]]:
            existing(session, run_id)
            rows = session.scalars(
                select(ImageResult)
                .where(ImageResult.run_id == run_id, ImageResult.split == split)
                .order_by(ImageResult.id)
            )
            return [{key: getattr(row, key) for key in IMAGE_KEYS} for row in rows]

        return self._transaction(work)

    def run_dicts(self, study: str | None = None,
                  condition: str | None = None) -> list[dict[str, Any]]:
        return [run.as_dict() for run in self.list_runs(study, condition=condition)]

    def study_record(self, name: str) -> dict[str, Any] | None:
        """The definition ``record_study`` stored for ``name``, or None."""
        return self._transaction(
            lambda s: s.scalar(select(StudyRecord.record).where(StudyRecord.name == name))
        )

    def study_names(self) -> list[str]:
        """Every study with runs or a recorded definition, sorted."""

        def work(session: Session) -> list[str]:
            with_runs = session.scalars(select(Run.study).distinct())
            recorded = session.scalars(select(StudyRecord.name))
            return sorted({*with_runs, *recorded})

        return self._transaction(work)

    def check_study(self, name: str) -> None:
        """A StudyError naming the known studies when ``name`` has no runs and no record."""
        names = self.study_names()
        if name not in names:
            raise StudyError(f"no study {name!r} in {self.display_url}; recorded: "
                             f"{', '.join(names) or 'none'}")
