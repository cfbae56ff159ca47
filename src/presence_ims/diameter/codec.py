"""Sans-IO Diameter codec (RFC 6733 section 3 and 4) over python-diameter.

python-diameter (import name ``diameter``) packs and unpacks the 20-byte
header and each AVP, knows the AVP dictionary (names, base types, 3GPP Cx/Sh
codes) and converts values (UTF8String, Unsigned32, Address...).  This module
adds what a network node needs around it:

- frozen, comparable values: :class:`Avp` keeps the raw payload of one AVP and
  reads it as a typed value on demand; :class:`DiameterMessage` is one whole
  message with its header fields and a tuple of AVPs;
- strict decoding: :func:`decode` checks the version, the length fields of the
  message and of every AVP (grouped AVPs recursively, depth capped) and turns
  every failure, whatever python-diameter raised, into :class:`DiameterError`;
- :class:`DiameterFramer`, which cuts a TCP byte stream into messages using the
  header's Message Length (partial reads, several messages per read, size cap);
- answers built from requests (:func:`answer_for`) and Session-Id values
  (:class:`SessionIdGenerator`).

Message layout (RFC 6733 section 3)::

    version(1) | message length(3) | flags(1) R P E T | command code(3)
    application id(4) | hop-by-hop id(4) | end-to-end id(4) | AVPs...

AVP layout (section 4.1)::

    code(4) | flags(1) V M P | length(3) | [vendor id(4)] | data | padding to 4
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Final

from diameter.message import Message as _LibMessage
from diameter.message import MessageHeader as _LibHeader
from diameter.message.avp import Avp as _LibAvp
from diameter.message.avp import AvpAddress as _LibAddress
from diameter.message.avp import AvpGrouped as _LibGrouped
from diameter.message.avp import AvpInteger32 as _LibInt32
from diameter.message.avp import AvpUnsigned32 as _LibUint32
from diameter.message.avp import AvpUnsigned64 as _LibUint64
from diameter.message.avp import AvpUtf8String as _LibUtf8
from diameter.message.avp.avp import get_avp_dictionary_entry as _lib_dictionary_entry
from diameter.message.commands import all_commands as _lib_commands
from diameter.message.packer import Unpacker as _LibUnpacker

__all__ = [
    "APP_BASE",
    "APP_CX",
    "APP_SH",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "HEADER_LENGTH",
    "MAX_AVP_DEPTH",
    "VENDOR_3GPP",
    "Avp",
    "DiameterError",
    "DiameterFramer",
    "DiameterMessage",
    "ExperimentalResult",
    "Result",
    "SessionIdGenerator",
    "address_avp",
    "answer_for",
    "command_name",
    "decode",
    "dump",
    "encode",
    "grouped_avp",
    "int32_avp",
    "interface_name",
    "octets_avp",
    "uint32_avp",
    "uint64_avp",
    "utf8_avp",
    "vendor_specific_application_id",
]


class DiameterError(Exception):
    """The one error of :mod:`presence_ims.diameter`: bad bytes, a bad value,
    a message that does not fit its command.  ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- identifiers -----------------------------------------------------------

VENDOR_3GPP: Final = 10415
"""3GPP's IANA enterprise number, the Vendor-Id of every Cx/Sh AVP."""

APP_BASE: Final = 0
"""Diameter common messages (CER/CEA, DWR/DWA, DPR/DPA)."""
APP_CX: Final = 16777216
"""3GPP Cx/Dx (TS 29.229); Px uses it too."""
APP_SH: Final = 16777217
"""3GPP Sh/Dh (TS 29.329); Ph uses it too."""

HEADER_LENGTH: Final = 20
"""Bytes in a Diameter header."""
DEFAULT_MAX_MESSAGE_SIZE: Final = 1 << 20
"""Largest message the framer accepts by default, in bytes (1 MiB)."""
MAX_AVP_DEPTH: Final = 8
"""How deep grouped AVPs may nest before decoding gives up."""

# Base protocol AVP codes (RFC 6733 section 4.5, RFC 4740 for Digest-*).
AVP_USER_NAME: Final = 1
AVP_DIGEST_REALM: Final = 104
AVP_DIGEST_QOP: Final = 110
AVP_DIGEST_ALGORITHM: Final = 111
AVP_DIGEST_HA1: Final = 121
AVP_HOST_IP_ADDRESS: Final = 257
AVP_AUTH_APPLICATION_ID: Final = 258
AVP_ACCT_APPLICATION_ID: Final = 259
AVP_VENDOR_SPECIFIC_APPLICATION_ID: Final = 260
AVP_SESSION_ID: Final = 263
AVP_ORIGIN_HOST: Final = 264
AVP_SUPPORTED_VENDOR_ID: Final = 265
AVP_VENDOR_ID: Final = 266
AVP_FIRMWARE_REVISION: Final = 267
AVP_RESULT_CODE: Final = 268
AVP_PRODUCT_NAME: Final = 269
AVP_DISCONNECT_CAUSE: Final = 273
AVP_AUTH_SESSION_STATE: Final = 277
AVP_ORIGIN_STATE_ID: Final = 278
AVP_FAILED_AVP: Final = 279
AVP_PROXY_INFO: Final = 284
AVP_ERROR_MESSAGE: Final = 281
AVP_ROUTE_RECORD: Final = 282
AVP_DESTINATION_REALM: Final = 283
AVP_DESTINATION_HOST: Final = 293
AVP_ORIGIN_REALM: Final = 296
AVP_EXPERIMENTAL_RESULT: Final = 297
AVP_EXPERIMENTAL_RESULT_CODE: Final = 298
AVP_INBAND_SECURITY_ID: Final = 299

# 3GPP AVP codes, vendor 10415 (TS 29.229 section 6.3, TS 29.329 section 6.3).
AVP_VISITED_NETWORK_IDENTIFIER: Final = 600
AVP_PUBLIC_IDENTITY: Final = 601
AVP_SERVER_NAME: Final = 602
AVP_SERVER_CAPABILITIES: Final = 603
AVP_MANDATORY_CAPABILITY: Final = 604
AVP_OPTIONAL_CAPABILITY: Final = 605
AVP_CX_USER_DATA: Final = 606
AVP_SIP_NUMBER_AUTH_ITEMS: Final = 607
AVP_SIP_AUTHENTICATION_SCHEME: Final = 608
AVP_SIP_AUTHENTICATE: Final = 609
AVP_SIP_AUTHORIZATION: Final = 610
AVP_SIP_AUTHENTICATION_CONTEXT: Final = 611
AVP_SIP_AUTH_DATA_ITEM: Final = 612
AVP_SIP_ITEM_NUMBER: Final = 613
AVP_SERVER_ASSIGNMENT_TYPE: Final = 614
AVP_DEREGISTRATION_REASON: Final = 615
AVP_REASON_CODE: Final = 616
AVP_REASON_INFO: Final = 617
AVP_USER_AUTHORIZATION_TYPE: Final = 623
AVP_USER_DATA_ALREADY_AVAILABLE: Final = 624
AVP_CONFIDENTIALITY_KEY: Final = 625
AVP_INTEGRITY_KEY: Final = 626
AVP_SUPPORTED_FEATURES: Final = 628
AVP_FEATURE_LIST_ID: Final = 629
AVP_FEATURE_LIST: Final = 630
AVP_ASSOCIATED_IDENTITIES: Final = 632
AVP_ORIGINATING_REQUEST: Final = 633
AVP_SIP_DIGEST_AUTHENTICATE: Final = 635
AVP_UAR_FLAGS: Final = 637
AVP_USER_IDENTITY: Final = 700
AVP_MSISDN: Final = 701
AVP_SH_USER_DATA: Final = 702
AVP_DATA_REFERENCE: Final = 703
AVP_SERVICE_INDICATION: Final = 704
AVP_SUBS_REQ_TYPE: Final = 705
AVP_REQUESTED_DOMAIN: Final = 706
AVP_CURRENT_LOCATION: Final = 707
AVP_IDENTITY_SET: Final = 708
AVP_EXPIRY_TIME: Final = 709
AVP_SEND_DATA_INDICATION: Final = 710

_FLAG_R, _FLAG_P, _FLAG_E, _FLAG_T = 0x80, 0x40, 0x20, 0x10
_AVP_V, _AVP_M, _AVP_P = 0x80, 0x40, 0x20
_MAX_AVP_LENGTH = 0xFFFFFF

# (request, answer) abbreviations for logs, keyed by command code.
_ABBREVIATIONS: Final[dict[int, tuple[str, str]]] = {
    257: ("CER", "CEA"),
    280: ("DWR", "DWA"),
    282: ("DPR", "DPA"),
    300: ("UAR", "UAA"),
    301: ("SAR", "SAA"),
    302: ("LIR", "LIA"),
    303: ("MAR", "MAA"),
    304: ("RTR", "RTA"),
    305: ("PPR", "PPA"),
    306: ("UDR", "UDA"),
    307: ("PUR", "PUA"),
    308: ("SNR", "SNA"),
    309: ("PNR", "PNA"),
}

_INTERFACES: Final[dict[int, str]] = {APP_BASE: "base", APP_CX: "Cx", APP_SH: "Sh"}


def command_name(command_code: int, request: bool) -> str:
    """Short name of a command for logs: ``UAR``, ``PNA``, or the dictionary name."""
    pair = _ABBREVIATIONS.get(command_code)
    if pair is not None:
        return pair[0] if request else pair[1]
    cls = _lib_commands.get(command_code)
    base = str(cls.name) if cls is not None else f"Command-{command_code}"
    return f"{base}-{'Request' if request else 'Answer'}"


def interface_name(application_id: int) -> str:
    """Reference interface of an application id: ``Cx``, ``Sh`` or ``base``."""
    return _INTERFACES.get(application_id, f"app-{application_id}")


# --- AVPs ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Avp:
    """One AVP as raw bytes, read as a typed value on demand."""

    code: int
    """AVP code (32 bits)."""
    payload: bytes
    """The AVP data without header and padding."""
    vendor_id: int = 0
    """Vendor-Id, 0 for IETF AVPs (the V flag is set exactly when non-zero)."""
    mandatory: bool = True
    """The M flag: a receiver that does not know the AVP must reject the message."""
    private: bool = False
    """The P flag (end-to-end security, historic; always false here)."""

    @property
    def name(self) -> str:
        """The dictionary name (``Public-Identity``) or ``AVP-<code>``."""
        entry = _lib_dictionary_entry(self.code, self.vendor_id)
        if entry is None:
            return f"AVP-{self.code}" + (f"/{self.vendor_id}" if self.vendor_id else "")
        return str(entry["name"])

    def as_str(self) -> str:
        """The payload as UTF8String / DiameterIdentity text."""
        try:
            return self.payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DiameterError(f"{self.name}: not UTF-8") from exc

    def as_uint32(self) -> int:
        """The payload as Unsigned32 (also Enumerated values, which are never negative here)."""
        return self._unpack("!I", "Unsigned32")

    def as_int32(self) -> int:
        """The payload as Integer32 / Enumerated."""
        return self._unpack("!i", "Integer32")

    def as_uint64(self) -> int:
        """The payload as Unsigned64."""
        return self._unpack("!Q", "Unsigned64")

    def as_address(self) -> str:
        """The payload as an Address (IPv4 or IPv6 text; E.164 digits for family 8)."""
        lib = _LibAddress(self.code, self.vendor_id, self.payload)
        try:
            family, text = lib.value
        except (struct.error, ValueError, OSError, UnicodeDecodeError) as exc:
            raise DiameterError(f"{self.name}: not an Address") from exc
        if family not in (1, 2, 8):
            raise DiameterError(f"{self.name}: unsupported address family {family}")
        return str(text)

    def as_grouped(self) -> tuple[Avp, ...]:
        """The payload as a list of AVPs (Grouped)."""
        return _decode_avps(self.payload, 1)

    def find(self, code: int, vendor_id: int = 0) -> Avp | None:
        """The first child AVP with this code and vendor (Grouped only)."""
        for child in self.as_grouped():
            if child.code == code and child.vendor_id == vendor_id:
                return child
        return None

    def find_all(self, code: int, vendor_id: int = 0) -> tuple[Avp, ...]:
        """Every child AVP with this code and vendor (Grouped only)."""
        return tuple(a for a in self.as_grouped() if a.code == code and a.vendor_id == vendor_id)

    def _unpack(self, fmt: str, kind: str) -> int:
        try:
            (value,) = struct.unpack(fmt, self.payload)
        except struct.error as exc:
            raise DiameterError(f"{self.name}: not {kind}") from exc
        return int(value)


def _lib_payload(lib_type: Any, value: object, what: str) -> bytes:
    """Let python-diameter encode a value the way its AVP type defines."""
    lib = lib_type()
    try:
        lib.value = value
    except Exception as exc:  # python-diameter raises AvpEncodeError or struct errors
        raise DiameterError(f"cannot encode {what}: {value!r}") from exc
    return bytes(lib.payload)


def utf8_avp(code: int, value: str, vendor_id: int = 0, *, mandatory: bool = True) -> Avp:
    """A UTF8String or DiameterIdentity AVP."""
    if not isinstance(value, str):
        raise DiameterError(f"AVP {code}: expected text, got {type(value).__name__}")
    return Avp(code, _lib_payload(_LibUtf8, value, f"AVP {code}"), vendor_id, mandatory)


def octets_avp(code: int, value: bytes, vendor_id: int = 0, *, mandatory: bool = True) -> Avp:
    """An OctetString AVP."""
    if not isinstance(value, bytes | bytearray):
        raise DiameterError(f"AVP {code}: expected bytes, got {type(value).__name__}")
    return Avp(code, bytes(value), vendor_id, mandatory)


def uint32_avp(code: int, value: int, vendor_id: int = 0, *, mandatory: bool = True) -> Avp:
    """An Unsigned32 AVP."""
    return Avp(code, _lib_payload(_LibUint32, value, f"AVP {code}"), vendor_id, mandatory)


def int32_avp(code: int, value: int, vendor_id: int = 0, *, mandatory: bool = True) -> Avp:
    """An Integer32 or Enumerated AVP."""
    return Avp(code, _lib_payload(_LibInt32, value, f"AVP {code}"), vendor_id, mandatory)


def uint64_avp(code: int, value: int, vendor_id: int = 0, *, mandatory: bool = True) -> Avp:
    """An Unsigned64 AVP."""
    return Avp(code, _lib_payload(_LibUint64, value, f"AVP {code}"), vendor_id, mandatory)


def address_avp(code: int, value: str, vendor_id: int = 0, *, mandatory: bool = True) -> Avp:
    """An Address AVP holding an IPv4 or IPv6 address."""
    if not isinstance(value, str) or ("." not in value and ":" not in value):
        raise DiameterError(f"AVP {code}: not an IP address: {value!r}")
    return Avp(code, _lib_payload(_LibAddress, value, f"AVP {code}"), vendor_id, mandatory)


def grouped_avp(
    code: int, children: Iterable[Avp], vendor_id: int = 0, *, mandatory: bool = True
) -> Avp:
    """A Grouped AVP made of ``children`` (each padded to 4 bytes)."""
    lib = _LibGrouped(code, vendor_id)
    try:
        lib.value = [_to_lib(child) for child in children]
    except Exception as exc:  # AvpEncodeError from python-diameter
        raise DiameterError(f"cannot encode grouped AVP {code}") from exc
    return Avp(code, bytes(lib.payload), vendor_id, mandatory)


def vendor_specific_application_id(application_id: int, vendor_id: int = VENDOR_3GPP) -> Avp:
    """Vendor-Specific-Application-Id { Vendor-Id } [ Auth-Application-Id ]."""
    return grouped_avp(
        AVP_VENDOR_SPECIFIC_APPLICATION_ID,
        (
            uint32_avp(AVP_VENDOR_ID, vendor_id),
            uint32_avp(AVP_AUTH_APPLICATION_ID, application_id),
        ),
    )


def _flags_of(avp: Avp) -> int:
    return (_AVP_V if avp.vendor_id else 0) | (_AVP_M if avp.mandatory else 0) | (
        _AVP_P if avp.private else 0
    )


def _to_lib(avp: Avp) -> Any:
    if not isinstance(avp, Avp):
        raise DiameterError(f"not an Avp: {avp!r}")
    if not 0 <= avp.code <= 0xFFFFFFFF or not 0 <= avp.vendor_id <= 0xFFFFFFFF:
        raise DiameterError(f"AVP code or vendor out of range: {avp.code}/{avp.vendor_id}")
    if len(avp.payload) + 12 > _MAX_AVP_LENGTH:
        raise DiameterError(f"AVP {avp.code} too long")
    return _LibAvp(avp.code, avp.vendor_id, avp.payload, _flags_of(avp))


def _decode_avps(data: bytes, depth: int) -> tuple[Avp, ...]:
    """Decode a run of AVPs, checking every length field against ``data``."""
    if depth > MAX_AVP_DEPTH:
        raise DiameterError("grouped AVPs nested too deep")
    avps: list[Avp] = []
    unpacker = _LibUnpacker(data)
    position = 0
    total = len(data)
    while position < total:
        if total - position < 8:
            raise DiameterError("truncated AVP header")
        flags = data[position + 4]
        length = int.from_bytes(data[position + 5 : position + 8], "big")
        minimum = 12 if flags & _AVP_V else 8
        if length < minimum:
            raise DiameterError(f"AVP length {length} shorter than its header")
        end = position + ((length + 3) & ~3)
        if end > total:
            raise DiameterError("AVP runs past the end of its container")
        unpacker.set_position(position)
        try:
            lib = _LibAvp.from_unpacker(unpacker)
        except Exception as exc:  # ConversionError and friends from python-diameter
            raise DiameterError(f"malformed AVP: {exc}") from exc
        avp = Avp(
            code=int(lib.code),
            payload=bytes(lib.payload),
            vendor_id=int(lib.vendor_id),
            mandatory=bool(flags & _AVP_M),
            private=bool(flags & _AVP_P),
        )
        if isinstance(lib, _LibGrouped):
            # Validate nested AVPs now so that a bad message fails at decode().
            _decode_avps(avp.payload, depth + 1)
        avps.append(avp)
        position = end
    return tuple(avps)


# --- messages --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExperimentalResult:
    """Experimental-Result { Vendor-Id } { Experimental-Result-Code }."""

    vendor_id: int
    """Vendor that defines the code (10415 for 3GPP)."""
    code: int
    """The Experimental-Result-Code (e.g. 2001 DIAMETER_FIRST_REGISTRATION)."""


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome an answer carries: a Result-Code, or a vendor's
    Experimental-Result-Code when ``experimental`` is set."""

    code: int
    """The numeric code (2001, 5001...)."""
    experimental: bool = False
    """True for Experimental-Result (3GPP codes), false for Result-Code."""
    vendor_id: int = VENDOR_3GPP
    """Vendor-Id inside Experimental-Result (ignored for Result-Code)."""

    @property
    def is_success(self) -> bool:
        """2xxx codes succeed, plain or experimental."""
        return 2000 <= self.code < 3000

    @classmethod
    def of(cls, message: DiameterMessage) -> Result:
        """The result of an answer; DiameterError when it carries none."""
        code = message.result_code
        if code is not None:
            return cls(code)
        experimental = message.experimental_result
        if experimental is None:
            raise DiameterError(f"{message.name} carries no Result-Code or Experimental-Result")
        return cls(experimental.code, True, experimental.vendor_id)


@dataclass(frozen=True, slots=True)
class DiameterMessage:
    """One Diameter message: header fields and its AVPs in wire order."""

    command_code: int
    """Command code (24 bits), e.g. 300 for User-Authorization."""
    application_id: int
    """Application id of the header: 0 base, 16777216 Cx, 16777217 Sh."""
    request: bool
    """The R flag: true for a request, false for an answer."""
    avps: tuple[Avp, ...] = ()
    """The AVPs, in order."""
    hop_by_hop: int = 0
    """Hop-by-Hop Identifier: matches an answer to its request on one connection."""
    end_to_end: int = 0
    """End-to-End Identifier: detects duplicates across agents."""
    proxiable: bool = True
    """The P flag."""
    error: bool = False
    """The E flag: the answer carries a protocol error (3xxx)."""
    retransmit: bool = False
    """The T flag: a possibly retransmitted request."""

    # -- generic access --

    @property
    def name(self) -> str:
        """Short command name for logs (``UAR``, ``SAA``...)."""
        return command_name(self.command_code, self.request)

    @property
    def interface(self) -> str:
        """Reference interface label derived from the application id."""
        return interface_name(self.application_id)

    def find(self, code: int, vendor_id: int = 0) -> Avp | None:
        """The first top-level AVP with this code and vendor."""
        for avp in self.avps:
            if avp.code == code and avp.vendor_id == vendor_id:
                return avp
        return None

    def find_all(self, code: int, vendor_id: int = 0) -> tuple[Avp, ...]:
        """Every top-level AVP with this code and vendor."""
        return tuple(a for a in self.avps if a.code == code and a.vendor_id == vendor_id)

    def get_str(self, code: int, vendor_id: int = 0) -> str | None:
        """A text AVP's value, or None when absent."""
        avp = self.find(code, vendor_id)
        return None if avp is None else avp.as_str()

    def get_uint32(self, code: int, vendor_id: int = 0) -> int | None:
        """An Unsigned32/Enumerated AVP's value, or None when absent."""
        avp = self.find(code, vendor_id)
        return None if avp is None else avp.as_uint32()

    def get_bytes(self, code: int, vendor_id: int = 0) -> bytes | None:
        """An OctetString AVP's value, or None when absent."""
        avp = self.find(code, vendor_id)
        return None if avp is None else avp.payload

    def require_str(self, code: int, vendor_id: int = 0) -> str:
        """A mandatory text AVP's value; DiameterError when absent."""
        value = self.get_str(code, vendor_id)
        if value is None:
            raise DiameterError(f"{self.name}: missing AVP {code}")
        return value

    # -- well-known AVPs --

    @property
    def session_id(self) -> str | None:
        """Session-Id (263)."""
        return self.get_str(AVP_SESSION_ID)

    @property
    def origin_host(self) -> str | None:
        """Origin-Host (264)."""
        return self.get_str(AVP_ORIGIN_HOST)

    @property
    def origin_realm(self) -> str | None:
        """Origin-Realm (296)."""
        return self.get_str(AVP_ORIGIN_REALM)

    @property
    def destination_host(self) -> str | None:
        """Destination-Host (293)."""
        return self.get_str(AVP_DESTINATION_HOST)

    @property
    def destination_realm(self) -> str | None:
        """Destination-Realm (283)."""
        return self.get_str(AVP_DESTINATION_REALM)

    @property
    def result_code(self) -> int | None:
        """Result-Code (268)."""
        return self.get_uint32(AVP_RESULT_CODE)

    @property
    def experimental_result(self) -> ExperimentalResult | None:
        """Experimental-Result (297), grouped: Vendor-Id + Experimental-Result-Code."""
        group = self.find(AVP_EXPERIMENTAL_RESULT)
        if group is None:
            return None
        vendor = group.find(AVP_VENDOR_ID)
        code = group.find(AVP_EXPERIMENTAL_RESULT_CODE)
        if code is None:
            raise DiameterError("Experimental-Result without Experimental-Result-Code")
        return ExperimentalResult(vendor.as_uint32() if vendor is not None else 0, code.as_uint32())

    @property
    def result(self) -> int | None:
        """Result-Code if present, else the Experimental-Result-Code, else None."""
        code = self.result_code
        if code is not None:
            return code
        experimental = self.experimental_result
        return None if experimental is None else experimental.code

    @property
    def is_success(self) -> bool:
        """True when the answer's result (plain or experimental) is 2xxx."""
        code = self.result
        return code is not None and 2000 <= code < 3000

    @property
    def user_name(self) -> str | None:
        """User-Name (1): the IMPI on Cx."""
        return self.get_str(AVP_USER_NAME)

    @property
    def public_identity(self) -> str | None:
        """The first Public-Identity (601/10415)."""
        return self.get_str(AVP_PUBLIC_IDENTITY, VENDOR_3GPP)

    @property
    def public_identities(self) -> tuple[str, ...]:
        """Every top-level Public-Identity (601/10415)."""
        return tuple(a.as_str() for a in self.find_all(AVP_PUBLIC_IDENTITY, VENDOR_3GPP))

    @property
    def server_name(self) -> str | None:
        """Server-Name (602/10415): the S-CSCF SIP URI."""
        return self.get_str(AVP_SERVER_NAME, VENDOR_3GPP)

    @property
    def cx_user_data(self) -> bytes | None:
        """Cx User-Data (606/10415): the IMS subscription XML."""
        return self.get_bytes(AVP_CX_USER_DATA, VENDOR_3GPP)

    @property
    def sh_user_data(self) -> bytes | None:
        """Sh User-Data (702/10415): the Sh-Data XML."""
        return self.get_bytes(AVP_SH_USER_DATA, VENDOR_3GPP)

    @property
    def auth_application_id(self) -> int | None:
        """Auth-Application-Id, top level or inside Vendor-Specific-Application-Id."""
        direct = self.get_uint32(AVP_AUTH_APPLICATION_ID)
        if direct is not None:
            return direct
        vsai = self.find(AVP_VENDOR_SPECIFIC_APPLICATION_ID)
        if vsai is None:
            return None
        inner = vsai.find(AVP_AUTH_APPLICATION_ID)
        return None if inner is None else inner.as_uint32()

    def with_ids(self, hop_by_hop: int, end_to_end: int | None = None) -> DiameterMessage:
        """A copy with new identifiers (end-to-end kept when None)."""
        return replace(
            self,
            hop_by_hop=hop_by_hop,
            end_to_end=self.end_to_end if end_to_end is None else end_to_end,
        )


def encode(message: DiameterMessage) -> bytes:
    """The wire bytes of ``message`` (python-diameter packs header and AVPs)."""
    if not 0 <= message.command_code <= 0xFFFFFF:
        raise DiameterError(f"command code out of range: {message.command_code}")
    for name, value in (
        ("application id", message.application_id),
        ("hop-by-hop id", message.hop_by_hop),
        ("end-to-end id", message.end_to_end),
    ):
        if not 0 <= value <= 0xFFFFFFFF:
            raise DiameterError(f"{name} out of range: {value}")
    flags = (
        (_FLAG_R if message.request else 0)
        | (_FLAG_P if message.proxiable else 0)
        | (_FLAG_E if message.error else 0)
        | (_FLAG_T if message.retransmit else 0)
    )
    header = _LibHeader(
        version=1,
        command_flags=flags,
        command_code=message.command_code,
        application_id=message.application_id,
        hop_by_hop_identifier=message.hop_by_hop,
        end_to_end_identifier=message.end_to_end,
    )
    lib_message = _LibMessage(header, [_to_lib(avp) for avp in message.avps])
    try:
        data = bytes(lib_message.as_bytes())
    except Exception as exc:  # ConversionError from python-diameter's packer
        raise DiameterError(f"cannot encode {message.name}: {exc}") from exc
    if len(data) > _MAX_AVP_LENGTH:
        raise DiameterError(f"{message.name}: message longer than 16 MiB")
    return data


def decode(data: bytes) -> DiameterMessage:
    """Parse one whole message; every defect raises :class:`DiameterError`."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DiameterError("decode() takes bytes")
    data = bytes(data)
    if len(data) < HEADER_LENGTH:
        raise DiameterError("shorter than a Diameter header")
    if data[0] != 1:
        raise DiameterError(f"unsupported Diameter version {data[0]}")
    length = int.from_bytes(data[1:4], "big")
    if length != len(data):
        raise DiameterError(f"message length {length} but {len(data)} bytes given")
    if length % 4:
        raise DiameterError("message length not a multiple of 4")
    try:
        header = _LibHeader.from_bytes(data[:HEADER_LENGTH])
    except Exception as exc:  # ConversionError from python-diameter
        raise DiameterError(f"malformed header: {exc}") from exc
    flags = int(header.command_flags)
    if flags & _FLAG_R and flags & _FLAG_E:
        raise DiameterError("E flag set on a request")
    avps = _decode_avps(data[HEADER_LENGTH:], 0)
    return DiameterMessage(
        command_code=int(header.command_code),
        application_id=int(header.application_id),
        request=bool(flags & _FLAG_R),
        avps=avps,
        hop_by_hop=int(header.hop_by_hop_identifier),
        end_to_end=int(header.end_to_end_identifier),
        proxiable=bool(flags & _FLAG_P),
        error=bool(flags & _FLAG_E),
        retransmit=bool(flags & _FLAG_T),
    )


def answer_for(
    request: DiameterMessage,
    *,
    origin_host: str,
    origin_realm: str,
    result_code: int | None = None,
    experimental_result_code: int | None = None,
    experimental_vendor_id: int = VENDOR_3GPP,
    result: Result | None = None,
    avps: Iterable[Avp] = (),
    error_message: str | None = None,
) -> DiameterMessage:
    """The answer to ``request``: same command, application and identifiers,
    Session-Id copied first, then the result, Origin-Host/Realm, ``avps`` and
    the request's Proxy-Info AVPs (RFC 6733 section 6.2).  The E flag is set
    for protocol errors (3xxx).  ``result`` is a shorthand for either code."""
    if not request.request:
        raise DiameterError("answer_for() needs a request")
    if result is not None:
        if result.experimental:
            experimental_result_code = result.code
            experimental_vendor_id = result.vendor_id
        else:
            result_code = result.code
    out: list[Avp] = []
    session = request.find(AVP_SESSION_ID)
    if session is not None:
        out.append(session)
    if result_code is not None:
        out.append(uint32_avp(AVP_RESULT_CODE, result_code))
    if experimental_result_code is not None:
        out.append(
            grouped_avp(
                AVP_EXPERIMENTAL_RESULT,
                (
                    uint32_avp(AVP_VENDOR_ID, experimental_vendor_id),
                    uint32_avp(AVP_EXPERIMENTAL_RESULT_CODE, experimental_result_code),
                ),
            )
        )
    out.append(utf8_avp(AVP_ORIGIN_HOST, origin_host))
    out.append(utf8_avp(AVP_ORIGIN_REALM, origin_realm))
    if error_message is not None:
        out.append(utf8_avp(AVP_ERROR_MESSAGE, error_message, mandatory=False))
    out.extend(avps)
    out.extend(request.find_all(AVP_PROXY_INFO))
    return DiameterMessage(
        command_code=request.command_code,
        application_id=request.application_id,
        request=False,
        avps=tuple(out),
        hop_by_hop=request.hop_by_hop,
        end_to_end=request.end_to_end,
        proxiable=request.proxiable,
        error=result_code is not None and 3000 <= result_code < 4000,
    )


class SessionIdGenerator:
    """Session-Id values ``<origin-host>;<high 32 bits>;<low 32 bits>`` (RFC 6733 8.8).

    ``high`` should differ per boot (the node passes its start time in
    seconds); the low part counts up.  No clock is read here.
    """

    def __init__(self, origin_host: str, high: int = 0) -> None:
        self._origin_host = origin_host
        self._high = high & 0xFFFFFFFF
        self._low = 0

    def next(self, suffix: str | None = None) -> str:
        """A new Session-Id, with an optional trailing ``;suffix``."""
        self._low = (self._low + 1) & 0xFFFFFFFF
        value = f"{self._origin_host};{self._high};{self._low}"
        return value if suffix is None else f"{value};{suffix}"


class DiameterFramer:
    """Cuts a TCP/TLS byte stream into whole Diameter messages.

    ``feed(data)`` returns the complete messages (as bytes) that ``data``
    finished, keeping any partial message for later.  A header that cannot
    start a Diameter message (version other than 1, length under 20, not a
    multiple of 4, over ``max_message_size``) raises :class:`DiameterError`;
    the stream cannot be resynchronised, so the framer stays failed and the
    connection should be closed.
    """

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if max_message_size < HEADER_LENGTH:
            raise DiameterError("max_message_size below the header size")
        self._max = max_message_size
        self._buffer = bytearray()
        self._failed: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every message now complete, in order."""
        if self._failed is not None:
            raise DiameterError(f"framer already failed: {self._failed}")
        self._buffer += data
        frames: list[bytes] = []
        while True:
            if len(self._buffer) >= 1 and self._buffer[0] != 1:
                self._fail(f"unsupported Diameter version {self._buffer[0]}")
            if len(self._buffer) < 4:
                return frames
            length = int.from_bytes(self._buffer[1:4], "big")
            if length < HEADER_LENGTH:
                self._fail(f"message length {length} below the header size")
            if length % 4:
                self._fail(f"message length {length} not a multiple of 4")
            if length > self._max:
                self._fail(f"message length {length} over the cap {self._max}")
            if len(self._buffer) < length:
                return frames
            frames.append(bytes(self._buffer[:length]))
            del self._buffer[:length]

    def _fail(self, reason: str) -> None:
        self._failed = reason
        self._buffer.clear()
        raise DiameterError(reason)


def dump(message: DiameterMessage) -> str:
    """A readable multi-line rendering of a message (for traces and docs)."""
    lines = [
        f"{message.name} app={message.application_id} hbh=0x{message.hop_by_hop:08x} "
        f"e2e=0x{message.end_to_end:08x}"
        + (" E" if message.error else "")
    ]

    def walk(avps: tuple[Avp, ...], indent: str) -> None:
        for avp in avps:
            entry = _lib_dictionary_entry(avp.code, avp.vendor_id)
            if entry is not None and entry["type"] is _LibGrouped:
                lines.append(f"{indent}{avp.name}")
                walk(avp.as_grouped(), indent + "  ")
                continue
            try:
                if entry is not None and entry["type"] is _LibInt32:
                    text = str(avp.as_int32())
                elif entry is not None and entry["type"] is _LibUint32:
                    text = str(avp.as_uint32())
                elif all(32 <= byte < 127 for byte in avp.payload):
                    text = avp.as_str()
                else:
                    text = avp.payload.hex()
            except DiameterError:
                text = avp.payload.hex()
            lines.append(f"{indent}{avp.name}: {text}")

    walk(message.avps, "  ")
    return "\n".join(lines)
