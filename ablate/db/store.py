"""``RunStore``: the one object the CLI, the runner and the tuner use to record runs.

Every method is one short transaction. The database is the only lock: a run is claimed with
a conditional UPDATE or a uniquely keyed INSERT, so workers on several machines that share
a PostgreSQL server split the work as safely as processes that share a SQLite file. Writing
methods live in ``recording``, reading ones in ``queries``.
"""

from __future__ import annotations

import json
import random
import time

from sqlalchemy import Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from ablate.db.claim import ClaimResult, ClaimSpec, decide
from ablate.db.connect import display, open_engine, resolve_url, retrying
from ablate.db.host import STALE_ENV, seconds_from_env
from ablate.db.models import IMAGE_KEYS, SCHEMA_VERSION
from ablate.db.queries import Queries
from ablate.db.recording import Recording
from ablate.db.schema import ensure_schema, existing_version
from ablate.db.transactions import jsonable
from ablate.errors import DatabaseError

__all__ = ["IMAGE_KEYS", "RunStore"]

# Every claim that loses a race looks again; this many losses in a row means a bug.
_CLAIM_ATTEMPTS = 50


class RunStore(Recording, Queries):
    """The runs database at ``url``: None -> ./runs.db, a bare path -> SQLite, else any
    SQLAlchemy URL (``postgresql+psycopg://user:pw@host/db``).

    ``readonly=True`` (the reading commands) never creates a file or a table and never
    switches an SQLite file to WAL: a missing, empty or non-ablate database is a one-line
    DatabaseError naming it.
    """

    def __init__(self, url: str | None = None, readonly: bool = False) -> None:
        self.url = resolve_url(url)
        self.display_url = display(self.url)
        self.readonly = readonly
        self.engine = _open(self.url, self.display_url, readonly)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._server_clock = self.engine.dialect.name == "postgresql"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunStore({self.display_url!r})"

    # Seconds without a heartbeat after which another worker takes a running row over: the
    # heartbeat thread beats every 30 s, so this spans several missed beats. A cluster whose
    # nodes should be given up on sooner (or later) sets ABLATE_STALE_AFTER_S.
    stale_after: float = seconds_from_env(STALE_ENV, 120.0)

    def claim(self, spec: ClaimSpec) -> ClaimResult:
        """Decide, atomically across processes and machines, whether this worker trains
        ``spec`` (a ``ClaimSpec`` or a ``RunSpec``), keyed (study, variant, seed, condition,
        config_hash); see ``ClaimResult`` for the actions. Results are reused within a
        condition only: two conditions whose configs coincide train a run each, so every
        condition's report has its own rows. A running row whose heartbeat is older than
        ``self.stale_after`` s is taken over."""
        stale_after = self.stale_after
        if stale_after <= 0:
            raise ValueError(f"stale_after must be positive, got {stale_after}")
        config = spec.config.to_dict() if hasattr(spec.config, "to_dict") else spec.config
        fresh = {
            "study": spec.study,
            "variant": spec.variant,
            "seed": int(spec.seed),
            "condition": spec.condition or "",
            "config_hash": spec.config_hash,
            "label": spec.label,
            "save_dir": None if spec.save_dir is None else str(spec.save_dir),
            "config_json": json.dumps(jsonable(config), sort_keys=True, default=str),
        }
        for _ in range(_CLAIM_ATTEMPTS):
            result = retrying(self.display_url,
                              lambda: self._claim_once(fresh, spec.force, stale_after))
            if result is not None:
                return result
            time.sleep(0.005 * (1 + random.random()))
        condition = f"{spec.condition}/" if spec.condition else ""
        where = f"{spec.study}/{condition}{spec.variant}/seed {spec.seed}"
        raise DatabaseError(f"could not claim {where}: too much contention")

    def _claim_once(self, fresh: dict, force: bool, stale_after: float) -> ClaimResult | None:
        try:
            with self._sessions.begin() as session:
                return decide(session, fresh, force, stale_after, self._now(session))
        except IntegrityError:
            return None  # another worker inserted this generation first


def _open(url: URL, shown: str, readonly: bool) -> Engine:
    engine = open_engine(url, readonly)
    try:
        if not readonly:
            ensure_schema(engine, shown)
        elif existing_version(engine, shown) < SCHEMA_VERSION:
            # An older ablate's database is still ablate's own file, and this version cannot
            # read its old layout: it is migrated even by a reading command.
            writer = open_engine(url)
            try:
                ensure_schema(writer, shown)
            finally:
                writer.dispose()
    except BaseException:
        engine.dispose()
        raise
    return engine
