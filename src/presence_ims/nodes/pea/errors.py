"""The one error type of :mod:`presence_ims.nodes.pea`."""

from __future__ import annotations

__all__ = ["PeaError"]


class PeaError(Exception):
    """A submission the PEA refuses.

    ``status`` is the HTTP status to answer (401 unauthenticated, 403
    over-reaching, 400 invalid, 404 unknown presentity, 413 too large);
    ``kind`` is the snake_case counter label; ``reason`` is for logs and the
    answer body.
    """

    reason: str
    status: int
    kind: str

    def __init__(self, status: int, kind: str, reason: str) -> None:
        cleaned = "".join(ch if " " <= ch <= "~" else "?" for ch in reason)[:200]
        super().__init__(cleaned)
        self.reason = cleaned
        self.status = status
        self.kind = kind
