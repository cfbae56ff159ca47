"""In-memory store (tests, benchmarks): same semantics as SQLite, no durability."""

from __future__ import annotations

import copy
from typing import Any


class MemoryStore:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, dict[str, Any]]] = {}
        self.opened = False

    async def open(self) -> None:
        self.opened = True

    async def close(self) -> None:
        self.opened = False

    def put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        self.data.setdefault(kind, {})[key] = value

    def delete(self, kind: str, key: str) -> None:
        self.data.get(kind, {}).pop(key, None)

    async def load(self, kind: str) -> dict[str, dict[str, Any]]:
        return copy.deepcopy(self.data.get(kind, {}))

    async def flush(self) -> None:
        return None
