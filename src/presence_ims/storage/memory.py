"""In-memory store (tests, benchmarks): same semantics as SQLite, no durability.

Records are kept compact: a dict becomes one tuple of its values behind a shared
tuple of its keys, a list a tuple, and ``load`` builds fresh dicts and lists from
them (so a loaded record is a copy, as from SQLite, and lists come back as lists
whatever sequence was put, as JSON would give them). Strings, numbers, booleans
and None are kept as they are, shared with the caller. A subscription record
takes about a third of the memory its dicts would.
"""

from __future__ import annotations

from typing import Any


class _Dict(tuple):  # type: ignore[type-arg]
    """A stored dict: ``(keys, value, value, ...)``."""

    __slots__ = ()


class _List(tuple):  # type: ignore[type-arg]
    """A stored list (or tuple)."""

    __slots__ = ()


def _unpack(value: Any) -> Any:
    if isinstance(value, _Dict):
        return dict(zip(value[0], (_unpack(v) for v in value[1:]), strict=True))
    if isinstance(value, _List):
        return [_unpack(v) for v in value]
    return value


_SCALARS = frozenset({str, int, float, bool, type(None), bytes})
"""Kept as they are (immutable), without a look inside."""


class MemoryStore:
    def __init__(self) -> None:
        self._records: dict[str, dict[str, Any]] = {}
        self._keys: dict[tuple[str, ...], tuple[str, ...]] = {}
        """One tuple object per distinct key set (the records of a kind share theirs)."""
        self.opened = False

    def _pack(self, value: Any) -> Any:
        if isinstance(value, dict):
            keys = tuple(value)
            shared = self._keys.get(keys)
            if shared is None:
                shared = keys
                if len(self._keys) < 1024:
                    self._keys[keys] = keys
            packed: list[Any] = [shared]
            for item in value.values():
                if type(item) not in _SCALARS:
                    item = self._pack(item)
                packed.append(item)
            return _Dict(packed)
        if isinstance(value, list | tuple):
            return _List(item if type(item) in _SCALARS else self._pack(item) for item in value)
        return value

    @property
    def data(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every record, as dicts (a copy; for tests and tools)."""
        return {kind: {key: _unpack(v) for key, v in records.items()}
                for kind, records in self._records.items()}

    async def open(self) -> None:
        self.opened = True

    async def close(self) -> None:
        self.opened = False

    def put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        records = self._records.get(kind)
        if records is None:
            records = self._records[kind] = {}
        records[key] = self._pack(value)

    def delete(self, kind: str, key: str) -> None:
        self._records.get(kind, {}).pop(key, None)

    async def load(self, kind: str) -> dict[str, dict[str, Any]]:
        return {key: _unpack(v) for key, v in self._records.get(kind, {}).items()}

    async def flush(self) -> None:
        return None
