"""The one error type of :mod:`presence_ims.nodes.sim`."""

from __future__ import annotations

__all__ = ["SimError"]


class SimError(Exception):
    """A bad scenario, an unknown user, or a PNA that did not answer; ``reason`` says which."""

    reason: str

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
