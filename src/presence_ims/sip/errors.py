"""Errors of the SIP core.

A :class:`SipParseError` carries what a server needs to answer: the status it
should send (400, 505, 416, 420 ...), a short reason naming the defect (used as
the reason phrase), and whatever part of the message was understood, so that a
response can be routed back.  Malformed *responses* are never answered; the
transport drops them (RFC 3261 section 18.1.2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .message import Message


class SipError(Exception):
    """Base class of every error raised by :mod:`presence_ims.sip`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SipParseError(SipError):
    """A message (or a header value) that does not follow the SIP grammar.

    ``status`` is what a server should answer with; ``partial`` is the message
    as far as it could be split into start line and header fields (``None``
    when not even that worked, in which case nothing can be answered).
    """

    def __init__(self, reason: str, *, status: int = 400, partial: Message | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.partial = partial


class SipFramingError(SipParseError):
    """A byte stream whose framing is lost (bad Content-Length on TCP, oversize).

    The connection that produced it must be closed after answering.
    """
