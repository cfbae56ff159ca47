"""SQLite store, the embedded default: durable across restarts, group commit.

Writes are coalesced per ``(kind, key)`` in memory and committed in one
transaction by ``flush()``, which a node calls from a periodic task (every few
milliseconds under load) and at shutdown.  The file is opened and checked at
``open()``: a corrupt or unwritable database stops the node with a clear
:class:`StoreError` instead of a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .base import StoreError

_DELETE = object()
# A rowid table: each record is appended where the rows end and only the small
# (kind, key) index entry goes in key order. Keys are random (ETags, subscription
# ids), and with the records themselves kept in key order (WITHOUT ROWID, the
# first schema) every commit rewrote one page per record written: 34 us of CPU per
# 1 KB publication against 10 us now (docs/performance.md, "PUBLISH path").
SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
"""
_MIGRATE = """
CREATE TABLE records_rowid (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
INSERT INTO records_rowid (kind, key, value) SELECT kind, key, value FROM records;
DROP TABLE records;
ALTER TABLE records_rowid RENAME TO records;
"""


def _migrate(db: sqlite3.Connection) -> None:
    """Move the records of a database made with the first schema (WITHOUT ROWID) into
    the current one, in one transaction: every record is kept, or nothing changes."""
    row = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'records'"
    ).fetchone()
    if row is None or "WITHOUT ROWID" not in " ".join(str(row[0]).upper().split()):
        return
    with _transaction(db, "BEGIN IMMEDIATE"):
        for statement in _MIGRATE.split(";"):
            if statement.strip():
                db.execute(statement)


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection, begin: str = "BEGIN") -> Iterator[None]:
    """All or nothing: COMMIT at the end, ROLLBACK (then the error) on a database error."""
    db.execute(begin)
    try:
        yield
        db.execute("COMMIT")
    except sqlite3.DatabaseError:
        with contextlib.suppress(sqlite3.DatabaseError):
            db.execute("ROLLBACK")
        raise


def _commit(db: sqlite3.Connection, puts: list[tuple[str, str, str]], dels: list[tuple[str, str]]) -> None:
    with _transaction(db):
        if puts:
            db.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?)", puts)
        if dels:
            db.executemany("DELETE FROM records WHERE kind = ? AND key = ?", dels)


class SqliteStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._pending: dict[tuple[str, str], object] = {}
        self._lock = asyncio.Lock()
        """One user of the connection at a time: commits run in a worker thread."""
        self._committing: asyncio.Future[None] | None = None
        """The commit in its thread, while a flush waits for it (or after it was cancelled)."""

    async def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            result = db.execute("PRAGMA quick_check").fetchone()
            if not result or result[0] != "ok":
                raise StoreError(f"database {self.path} is corrupt: {result}")
            _migrate(db)
            db.executescript(SCHEMA)
            db.execute("BEGIN IMMEDIATE")
            # a write rolled back at once: a read-only file fails here, not at the first flush
            db.execute("INSERT OR REPLACE INTO records VALUES ('', '', '')")
            db.execute("ROLLBACK")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot use database {self.path}: {exc}") from None
        except OSError as exc:
            raise StoreError(f"cannot create database {self.path}: {exc.strerror or exc}") from None
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            await self.flush()
            self._db.close()
            self._db = None

    def put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        self._pending[(kind, key)] = value

    def delete(self, kind: str, key: str) -> None:
        self._pending[(kind, key)] = _DELETE

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def load(self, kind: str) -> dict[str, dict[str, Any]]:
        async with self._lock:
            await self._settle()
            return self._load(kind)

    def _load(self, kind: str) -> dict[str, dict[str, Any]]:
        db = self._require()
        out: dict[str, dict[str, Any]] = {}
        try:
            for key, value in db.execute(
                "SELECT key, value FROM records WHERE kind = ? ORDER BY key", (kind,)
            ):
                out[key] = json.loads(value)
        except (sqlite3.DatabaseError, ValueError) as exc:
            raise StoreError(f"cannot read database {self.path}: {exc}") from None
        for (k, key), value in self._pending.items():
            if k != kind:
                continue
            if value is _DELETE:
                out.pop(key, None)
            else:
                out[key] = copy.deepcopy(value)  # type: ignore[arg-type]
        return out

    async def flush(self) -> None:
        """Commit what is pending, in one transaction, in a worker thread.

        SQLite does its work (and a WAL checkpoint's fsync) without the GIL, so the
        event loop goes on reading and answering meanwhile; writes made during the
        commit wait for the next one. A flush cancelled meanwhile (a node stopping)
        leaves the commit running in its thread: the next flush, load or close waits
        for it before using the connection again (one transaction at a time).
        """
        async with self._lock:
            await self._settle()
            if not self._pending:
                return
            db = self._require()
            batch, self._pending = self._pending, {}
            task = self._committing = asyncio.ensure_future(self._commit(db, batch))
            try:
                await asyncio.shield(task)
            finally:
                if task.done():
                    self._committing = None

    async def _commit(self, db: sqlite3.Connection, batch: dict[tuple[str, str], object]) -> None:
        puts = [(k, key, json.dumps(v)) for (k, key), v in batch.items() if v is not _DELETE]
        dels = [(k, key) for (k, key), v in batch.items() if v is _DELETE]
        try:
            await asyncio.to_thread(_commit, db, puts, dels)
        except sqlite3.DatabaseError as exc:
            # keep the batch so nothing is lost; newer writes win
            batch.update(self._pending)
            self._pending = batch
            raise StoreError(f"cannot write database {self.path}: {exc}") from None

    async def _settle(self) -> None:
        """Wait for a commit left running by a cancelled flush (its failure put its
        batch back in the pending writes: the caller's flush retries it)."""
        task = self._committing
        if task is None:
            return
        try:
            await asyncio.shield(task)
        except StoreError:
            pass
        self._committing = None

    def _require(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("store is not open")
        return self._db
