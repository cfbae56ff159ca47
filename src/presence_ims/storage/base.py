"""One storage interface for every node that keeps state across restarts.

Writes are synchronous calls that enqueue (the hot path never waits on disk);
``flush()`` makes everything enqueued durable.  Backends: :mod:`.memory` for
tests, :mod:`.sqlite` as the embedded default.  Records are JSON-able dicts
keyed by ``(kind, key)``: the store knows nothing of presence.
"""

from __future__ import annotations

from typing import Any, Protocol


class StoreError(Exception):
    """The store cannot be opened or written (corrupt file, no permission ...)."""


class Store(Protocol):
    async def open(self) -> None:
        """Open (and create) the store; raises :class:`StoreError` with a clear reason."""
        ...

    async def close(self) -> None:
        """Flush and close."""
        ...

    def put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        """Insert or replace a record (durable after the next flush)."""
        ...

    def delete(self, kind: str, key: str) -> None: ...

    async def load(self, kind: str) -> dict[str, dict[str, Any]]:
        """Every record of a kind (pending writes included)."""
        ...

    async def flush(self) -> None: ...


def open_store(spec: str) -> Store:
    """``memory`` or ``sqlite:PATH``."""
    if spec == "memory":
        from .memory import MemoryStore

        return MemoryStore()
    if spec.startswith("sqlite:"):
        from .sqlite import SqliteStore

        path = spec.removeprefix("sqlite:")
        if not path:
            raise StoreError("sqlite store needs a path: sqlite:PATH")
        return SqliteStore(path)
    raise StoreError(f"unknown store {spec!r}: memory or sqlite:PATH")
