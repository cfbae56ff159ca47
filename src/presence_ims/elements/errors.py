"""The one error type of :mod:`presence_ims.elements`."""

from __future__ import annotations

__all__ = ["ElementError"]

_REASON_MAX = 160


class ElementError(Exception):
    """Input from a network element that cannot be accepted.

    ``reason`` is a short, printable description for logs and answers;
    ``kind`` is a stable snake_case label used as a counter key
    (``malformed``, ``bad_mac``, ``replay``, ``stale``, ``unknown_element``,
    ``bad_authenticator`` ...).
    """

    reason: str
    kind: str

    def __init__(self, reason: str, kind: str = "malformed") -> None:
        cleaned = "".join(ch if " " <= ch <= "~" else "?" for ch in reason)
        if len(cleaned) > _REASON_MAX:
            cleaned = cleaned[: _REASON_MAX - 3] + "..."
        super().__init__(cleaned)
        self.reason = cleaned
        self.kind = kind
