"""The error root of :mod:`presence_ims.security`.

Every error the security cores raise on bad input derives from
:class:`SecurityError` and carries a short ``reason``; each module adds its own
subclass (``MilenageError``, ``AkaError``, ``EspError``, ``SecAgreeError``).
"""

from __future__ import annotations


class SecurityError(Exception):
    """Base class of every error raised by :mod:`presence_ims.security`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
