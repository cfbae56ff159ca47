"""The one error type of :mod:`presence_ims.nodes.pna`."""

from __future__ import annotations

__all__ = ["PnaError"]


class PnaError(Exception):
    """An input the PNA cannot use (unknown subscriber, unusable position ...).

    ``reason`` is for logs; ``kind`` is the snake_case counter label.
    """

    reason: str
    kind: str

    def __init__(self, reason: str, kind: str = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
