"""WAL checkpoints on a thread of their own, off the event loop.

SQLite in WAL mode copies the log back into the database file (a checkpoint) by itself every
1,000 pages, inside whichever COMMIT crosses the mark, and a checkpoint fsyncs: 5–17 ms on the
event loop's thread, the manager's p99 under a fleet's reports (issue 18). So the manager's
connection never checkpoints (`wal_autocheckpoint=0`) and this thread, on its own connection,
runs a PASSIVE checkpoint once a second when something was committed since the last one:
PASSIVE waits for no reader and blocks no writer, so the loop keeps committing while the pages
are copied and synced, and the WAL holds about a second of writes. The sqlite3 module lets go
of the GIL while SQLite works, so the loop runs meanwhile.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("syncopate.manager")

# Seconds between checkpoints while writes come: the WAL holds about this much of them.
CHECKPOINT_INTERVAL = 1.0


class Checkpointer:
    """A daemon thread that checkpoints the database's WAL when `commits()` has grown."""

    def __init__(
        self, db_path: Path, commits: Callable[[], int], interval: float = CHECKPOINT_INTERVAL
    ) -> None:
        self.db_path = db_path
        self.commits = commits
        self.interval = interval
        self.checkpoints = 0  # done so far (the tests read it)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"checkpoint {db_path.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """End the thread (the store is closing); it finishes a checkpoint under way first."""
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout=5000")
            done = self.commits()
            while not self._stop.wait(self.interval):
                now = self.commits()
                if now != done:
                    done = now
                    self._checkpoint(db)
        except sqlite3.Error:
            # The store goes on without checkpoints: the WAL grows, nothing is lost.
            log.warning("WAL checkpoints stopped for %s", self.db_path, exc_info=True)
        finally:
            if db is not None:
                db.close()

    def _checkpoint(self, db: sqlite3.Connection) -> None:
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checkpoints += 1
        except sqlite3.Error as exc:
            # A full disk or a lock held too long: the next look tries again.
            log.debug("WAL checkpoint of %s failed: %s", self.db_path, exc)
