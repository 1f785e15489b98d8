"""A background heartbeat, so that a run whose epoch outlasts ``stale_after`` still looks alive."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ablate.errors import DatabaseError

if TYPE_CHECKING:
    from ablate.db.store import RunStore


class KeepAlive:
    """``with store.keep_alive(run_id):`` beats every ``interval`` seconds until the block ends.

    ``record_epoch`` also beats, but one epoch on real data can take longer than the 120 s
    after which another worker would take the run over.
    """

    def __init__(self, store: RunStore, run_id: int, interval: float) -> None:
        if interval <= 0:
            raise ValueError(f"heartbeat interval must be positive, got {interval}")
        self.store = store
        self.run_id = run_id
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_id}", daemon=True)

    def __enter__(self) -> KeepAlive:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.store.heartbeat(self.run_id)
            except DatabaseError:
                pass  # a missed beat is tried again next interval; stale_after spans several
