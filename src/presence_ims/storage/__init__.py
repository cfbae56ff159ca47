"""Storage behind one interface: memory (tests) and SQLite (the embedded default)."""

from .base import Store, StoreError, open_store

__all__ = ["Store", "StoreError", "open_store"]
