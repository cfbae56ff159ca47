"""Pk: RADIUS accounting (RFC 2866) from the GGSN, over the ``pyrad`` packet codec.

The GGSN reports PDP contexts (IP sessions) as Accounting-Request packets
(``Acct-Status-Type`` Start, Interim-Update, Stop; Accounting-On/Off when it
restarts), with the subscriber in ``Calling-Station-Id`` (the MSISDN, TS
29.061 section 16) or ``User-Name``, the address in ``Framed-IP-Address`` and
the session in ``Acct-Session-Id``.  The PNA is the accounting server:

* :func:`parse_accounting_request` decodes a datagram, checks it is an
  Accounting-Request and verifies its Request Authenticator (MD5 over the
  packet with a zero authenticator and the shared secret, RFC 2866 section 3)
  and any Message-Authenticator; every failure is an :class:`ElementError`;
* :func:`build_accounting_response` makes the Accounting-Response (Response
  Authenticator over the request's authenticator, RFC 2866 section 3);
* :func:`build_accounting_request` and :func:`verify_accounting_response` are
  the GGSN side (the simulator).

Sans-IO: bytes in, bytes out; pyrad does the attribute encoding with the
small dictionary :data:`DICTIONARY`.
"""

from __future__ import annotations

import io
import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Literal

from pyrad import packet as rp
from pyrad.dictionary import Dictionary

from .errors import ElementError

__all__ = [
    "DICTIONARY",
    "AccountingRecord",
    "AccountingRequest",
    "StatusType",
    "build_accounting_request",
    "build_accounting_response",
    "dictionary",
    "parse_accounting_request",
    "verify_accounting_response",
]

DICTIONARY: Final = """\
# RFC 2865 / RFC 2866 attributes the PNA reads, plus the 3GPP IMSI (TS 29.061)
ATTRIBUTE User-Name 1 string
ATTRIBUTE NAS-IP-Address 4 ipaddr
ATTRIBUTE NAS-Port 5 integer
ATTRIBUTE Service-Type 6 integer
ATTRIBUTE Framed-Protocol 7 integer
ATTRIBUTE Framed-IP-Address 8 ipaddr
ATTRIBUTE Class 25 octets
ATTRIBUTE Called-Station-Id 30 string
ATTRIBUTE Calling-Station-Id 31 string
ATTRIBUTE NAS-Identifier 32 string
ATTRIBUTE Proxy-State 33 octets
ATTRIBUTE Acct-Status-Type 40 integer
ATTRIBUTE Acct-Delay-Time 41 integer
ATTRIBUTE Acct-Input-Octets 42 integer
ATTRIBUTE Acct-Output-Octets 43 integer
ATTRIBUTE Acct-Session-Id 44 string
ATTRIBUTE Acct-Authentic 45 integer
ATTRIBUTE Acct-Session-Time 46 integer
ATTRIBUTE Acct-Input-Packets 47 integer
ATTRIBUTE Acct-Output-Packets 48 integer
ATTRIBUTE Acct-Terminate-Cause 49 integer
ATTRIBUTE Event-Timestamp 55 date
ATTRIBUTE NAS-Port-Type 61 integer
VALUE Acct-Status-Type Start 1
VALUE Acct-Status-Type Stop 2
VALUE Acct-Status-Type Interim-Update 3
VALUE Acct-Status-Type Accounting-On 7
VALUE Acct-Status-Type Accounting-Off 8
VENDOR 3GPP 10415
BEGIN-VENDOR 3GPP
ATTRIBUTE 3GPP-IMSI 1 string
END-VENDOR 3GPP
"""
"""The RADIUS dictionary (FreeRADIUS format) used on Pk."""

StatusType = Literal["start", "stop", "interim", "on", "off"]
_STATUS: Final[dict[str, StatusType]] = {
    "Start": "start",
    "Stop": "stop",
    "Interim-Update": "interim",
    "Accounting-On": "on",
    "Accounting-Off": "off",
}
_STATUS_CODE: Final[dict[StatusType, int]] = {
    "start": 1, "stop": 2, "interim": 3, "on": 7, "off": 8,
}  # fmt: skip
_TEXT = re.compile(r"[ -~]{1,253}\Z")


@lru_cache(maxsize=1)
def dictionary() -> Dictionary:
    """The pyrad dictionary built from :data:`DICTIONARY` (made once)."""
    return Dictionary(io.StringIO(DICTIONARY))


@dataclass(frozen=True, slots=True)
class AccountingRecord:
    """What one Accounting-Request says."""

    status: StatusType
    """start | stop | interim | on (Accounting-On) | off (Accounting-Off)."""
    session_id: str | None = None
    """Acct-Session-Id (required except for on/off)."""
    calling_station_id: str | None = None
    """Calling-Station-Id: the subscriber's MSISDN."""
    user_name: str | None = None
    """User-Name."""
    framed_ip: str | None = None
    """Framed-IP-Address: the address given to the PDP context."""
    nas_ip: str | None = None
    """NAS-IP-Address: the GGSN."""
    nas_identifier: str | None = None
    """NAS-Identifier: the GGSN's name."""
    session_time: int | None = None
    """Acct-Session-Time, seconds."""
    terminate_cause: int | None = None
    """Acct-Terminate-Cause (RFC 2866 5.10)."""
    imsi: str | None = None
    """3GPP-IMSI."""
    event_timestamp: int | None = None
    """Event-Timestamp, Unix seconds."""

    @property
    def nas(self) -> str:
        """The GGSN that sent it (NAS-Identifier, else NAS-IP-Address, else ``-``)."""
        return self.nas_identifier or self.nas_ip or "-"


@dataclass(frozen=True, slots=True)
class AccountingRequest:
    """A verified Accounting-Request."""

    identifier: int
    """RADIUS Identifier (0-255)."""
    authenticator: bytes
    """Request Authenticator (16 bytes)."""
    record: AccountingRecord
    """Its content."""
    raw: bytes
    """The packet as received (up to its Length)."""


def _one(pkt: Any, name: str) -> Any:
    values = pkt.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise ElementError(f"{name} repeated")
    return values[0]


def _text(pkt: Any, name: str) -> str | None:
    value = _one(pkt, name)
    if value is None:
        return None
    if isinstance(value, bytes) or not _TEXT.match(str(value)):
        raise ElementError(f"bad {name}")
    return str(value)


def _int(pkt: Any, name: str) -> int | None:
    value = _one(pkt, name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ElementError(f"bad {name}")
    return value


def _decode(data: bytes, secret: bytes) -> Any:
    try:
        return rp.AcctPacket(packet=bytes(data), secret=secret, dict=dictionary())
    except Exception as exc:  # pyrad raises PacketError, struct.error, KeyError ...
        raise ElementError(f"undecodable RADIUS packet: {type(exc).__name__}") from None


def _record(pkt: Any) -> AccountingRecord:
    try:
        raw_status = _one(pkt, "Acct-Status-Type")
        status = _STATUS.get(raw_status) if isinstance(raw_status, str) else None
        if status is None:
            raise ElementError(f"unsupported Acct-Status-Type {raw_status!r}")
        framed = _one(pkt, "Framed-IP-Address")
        nas_ip = _one(pkt, "NAS-IP-Address")
        record = AccountingRecord(
            status=status,
            session_id=_text(pkt, "Acct-Session-Id"),
            calling_station_id=_text(pkt, "Calling-Station-Id"),
            user_name=_text(pkt, "User-Name"),
            framed_ip=None if framed is None else str(ipaddress.IPv4Address(framed)),
            nas_ip=None if nas_ip is None else str(ipaddress.IPv4Address(nas_ip)),
            nas_identifier=_text(pkt, "NAS-Identifier"),
            session_time=_int(pkt, "Acct-Session-Time"),
            terminate_cause=_int(pkt, "Acct-Terminate-Cause"),
            imsi=_text(pkt, "3GPP-IMSI"),
            event_timestamp=_int(pkt, "Event-Timestamp"),
        )
    except ElementError:
        raise
    except Exception as exc:  # value decoding inside pyrad
        raise ElementError(f"bad RADIUS attribute: {type(exc).__name__}") from None
    if status in ("start", "stop", "interim") and record.session_id is None:
        raise ElementError("Acct-Session-Id missing")
    if status == "start" and record.calling_station_id is None and record.user_name is None:
        raise ElementError("neither Calling-Station-Id nor User-Name")
    return record


def parse_accounting_request(data: bytes, secret: bytes) -> AccountingRequest:
    """Decode and authenticate an Accounting-Request (``kind`` of errors:
    ``malformed``, ``not_accounting``, ``bad_authenticator``)."""
    pkt = _decode(data, secret)
    if pkt.code != rp.AccountingRequest:
        raise ElementError(f"RADIUS code {pkt.code} is not Accounting-Request", "not_accounting")
    try:
        authentic = pkt.VerifyAcctRequest()
        if authentic and pkt.message_authenticator:
            authentic = pkt.verify_message_authenticator()
    except Exception:
        authentic = False
    if not authentic:
        raise ElementError("Request Authenticator does not verify", "bad_authenticator")
    record = _record(pkt)
    return AccountingRequest(pkt.id, bytes(pkt.authenticator), record, bytes(pkt.raw_packet))


def build_accounting_response(request: AccountingRequest, secret: bytes) -> bytes:
    """The Accounting-Response to ``request`` (Proxy-State copied, RFC 2866 section 4.2)."""
    pkt = _decode(request.raw, secret)
    reply = pkt.CreateReply()
    return bytes(reply.ReplyPacket())


def build_accounting_request(record: AccountingRecord, secret: bytes, identifier: int) -> bytes:
    """An Accounting-Request for ``record`` (the GGSN side)."""
    if not 0 <= identifier <= 255:
        raise ElementError("RADIUS identifier out of range", "invalid")
    pkt = rp.AcctPacket(code=rp.AccountingRequest, id=identifier, secret=secret, dict=dictionary())
    try:
        pkt["Acct-Status-Type"] = _STATUS_CODE[record.status]
        texts = (
            ("Acct-Session-Id", record.session_id),
            ("Calling-Station-Id", record.calling_station_id),
            ("User-Name", record.user_name),
            ("NAS-Identifier", record.nas_identifier),
            ("3GPP-IMSI", record.imsi),
        )
        for name, value in texts:
            if value is not None:
                if not _TEXT.match(value):
                    raise ElementError(f"bad {name}", "invalid")
                pkt[name] = value
        if record.framed_ip is not None:
            pkt["Framed-IP-Address"] = str(ipaddress.IPv4Address(record.framed_ip))
        if record.nas_ip is not None:
            pkt["NAS-IP-Address"] = str(ipaddress.IPv4Address(record.nas_ip))
        for name, number in (
            ("Acct-Session-Time", record.session_time),
            ("Acct-Terminate-Cause", record.terminate_cause),
            ("Event-Timestamp", record.event_timestamp),
        ):
            if number is not None:
                pkt[name] = number
        return bytes(pkt.RequestPacket())
    except ElementError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise ElementError(f"cannot build Accounting-Request: {exc}", "invalid") from None


def verify_accounting_response(request: bytes, response: bytes, secret: bytes) -> bool:
    """Whether ``response`` is a valid Accounting-Response to the request bytes."""
    try:
        sent = rp.AcctPacket(packet=bytes(request), secret=secret, dict=dictionary())
        reply = rp.AcctPacket(packet=bytes(response), secret=secret, dict=dictionary())
        return bool(reply.code == rp.AccountingResponse and sent.VerifyReply(reply, bytes(response)))
    except Exception:
        return False
