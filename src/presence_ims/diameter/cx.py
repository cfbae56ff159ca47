"""Cx (and Px): typed commands of 3GPP TS 29.228 / TS 29.229 and the IMS
subscription XML (TS 29.228 annex E, ``CxDataType.xsd``).

Every command is a frozen dataclass: requests know how to become a
:class:`~presence_ims.diameter.codec.DiameterMessage` (``to_message``) and
answers are built from the request they answer (``to_message(request)``, which
copies Session-Id and the identifiers); both parse back with
``from_message``.  A message that lacks a mandatory AVP, or carries one of
the wrong shape, raises :class:`DiameterError`.

Commands (application 16777216, all proxiable)::

    300 UAR/UAA  User-Authorization     I-CSCF -> HSS  which S-CSCF may serve a REGISTER
    301 SAR/SAA  Server-Assignment      S-CSCF -> HSS  store the S-CSCF, fetch the profile
    302 LIR/LIA  Location-Info          I-CSCF -> HSS  which S-CSCF serves an IMPU (Px)
    303 MAR/MAA  Multimedia-Auth        S-CSCF -> HSS  authentication vectors, resync
    304 RTR/RTA  Registration-Termination HSS -> S-CSCF administrative de-registration
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from lxml import etree

from .codec import (
    APP_CX,
    AVP_AUTH_SESSION_STATE,
    AVP_CONFIDENTIALITY_KEY,
    AVP_CX_USER_DATA,
    AVP_DEREGISTRATION_REASON,
    AVP_DESTINATION_HOST,
    AVP_DESTINATION_REALM,
    AVP_DIGEST_ALGORITHM,
    AVP_DIGEST_HA1,
    AVP_DIGEST_QOP,
    AVP_DIGEST_REALM,
    AVP_INTEGRITY_KEY,
    AVP_MANDATORY_CAPABILITY,
    AVP_OPTIONAL_CAPABILITY,
    AVP_ORIGIN_HOST,
    AVP_ORIGIN_REALM,
    AVP_ORIGINATING_REQUEST,
    AVP_PUBLIC_IDENTITY,
    AVP_REASON_CODE,
    AVP_REASON_INFO,
    AVP_SERVER_ASSIGNMENT_TYPE,
    AVP_SERVER_CAPABILITIES,
    AVP_SERVER_NAME,
    AVP_SESSION_ID,
    AVP_SIP_AUTH_DATA_ITEM,
    AVP_SIP_AUTHENTICATE,
    AVP_SIP_AUTHENTICATION_CONTEXT,
    AVP_SIP_AUTHENTICATION_SCHEME,
    AVP_SIP_AUTHORIZATION,
    AVP_SIP_DIGEST_AUTHENTICATE,
    AVP_SIP_ITEM_NUMBER,
    AVP_SIP_NUMBER_AUTH_ITEMS,
    AVP_UAR_FLAGS,
    AVP_USER_AUTHORIZATION_TYPE,
    AVP_USER_DATA_ALREADY_AVAILABLE,
    AVP_USER_NAME,
    AVP_VISITED_NETWORK_IDENTIFIER,
    VENDOR_3GPP,
    Avp,
    DiameterError,
    DiameterMessage,
    Result,
    answer_for,
    grouped_avp,
    int32_avp,
    octets_avp,
    uint32_avp,
    utf8_avp,
    vendor_specific_application_id,
)

__all__ = [
    "AUTH_SCHEME_AKA",
    "AUTH_SCHEME_DIGEST",
    "AUTH_SCHEME_DIGEST_MD5",
    "AUTH_SCHEME_UNKNOWN",
    "CMD_LOCATION_INFO",
    "CMD_MULTIMEDIA_AUTH",
    "CMD_REGISTRATION_TERMINATION",
    "CMD_SERVER_ASSIGNMENT",
    "CMD_USER_AUTHORIZATION",
    "ApplicationServer",
    "DeregistrationReason",
    "ImsSubscription",
    "InitialFilterCriteria",
    "LocationInfoAnswer",
    "LocationInfoRequest",
    "MultimediaAuthAnswer",
    "MultimediaAuthRequest",
    "PublicIdentity",
    "ReasonCode",
    "RegistrationTerminationAnswer",
    "RegistrationTerminationRequest",
    "Routing",
    "ServerAssignmentAnswer",
    "ServerAssignmentRequest",
    "ServerAssignmentType",
    "ServerCapabilities",
    "ServicePointTrigger",
    "ServiceProfile",
    "SipAuthDataItem",
    "SipDigestAuthenticate",
    "TriggerPoint",
    "UserAuthorizationAnswer",
    "UserAuthorizationRequest",
    "UserAuthorizationType",
    "build_ims_subscription",
    "parse_ims_subscription",
    "parse_xml",
]

CMD_USER_AUTHORIZATION: Final = 300
CMD_SERVER_ASSIGNMENT: Final = 301
CMD_LOCATION_INFO: Final = 302
CMD_MULTIMEDIA_AUTH: Final = 303
CMD_REGISTRATION_TERMINATION: Final = 304

AUTH_SCHEME_AKA: Final = "Digest-AKAv1-MD5"
"""SIP-Authentication-Scheme for IMS AKA (TS 29.229 6.3.12)."""
AUTH_SCHEME_DIGEST: Final = "SIP Digest"
"""SIP-Authentication-Scheme for SIP Digest with SIP-Digest-Authenticate."""
AUTH_SCHEME_DIGEST_MD5: Final = "Digest-MD5"
"""Older spelling of SIP Digest some clients still send; answered like SIP Digest."""
AUTH_SCHEME_UNKNOWN: Final = "Unknown"
"""The S-CSCF lets the HSS choose the scheme."""

NO_STATE_MAINTAINED: Final = 1
"""Auth-Session-State on Cx and Sh (TS 29.229 6.1: no session state)."""


class UserAuthorizationType(IntEnum):
    """User-Authorization-Type (TS 29.229 6.3.24)."""

    REGISTRATION = 0
    DE_REGISTRATION = 1
    REGISTRATION_AND_CAPABILITIES = 2


class ServerAssignmentType(IntEnum):
    """Server-Assignment-Type (TS 29.229 6.3.15)."""

    NO_ASSIGNMENT = 0
    REGISTRATION = 1
    RE_REGISTRATION = 2
    UNREGISTERED_USER = 3
    TIMEOUT_DEREGISTRATION = 4
    USER_DEREGISTRATION = 5
    TIMEOUT_DEREGISTRATION_STORE_SERVER_NAME = 6
    USER_DEREGISTRATION_STORE_SERVER_NAME = 7
    ADMINISTRATIVE_DEREGISTRATION = 8
    AUTHENTICATION_FAILURE = 9
    AUTHENTICATION_TIMEOUT = 10
    DEREGISTRATION_TOO_MUCH_DATA = 11


class ReasonCode(IntEnum):
    """Reason-Code inside Deregistration-Reason (TS 29.229 6.3.17)."""

    PERMANENT_TERMINATION = 0
    NEW_SERVER_ASSIGNED = 1
    SERVER_CHANGE = 2
    REMOVE_S_CSCF = 3


def _v(code: int, value: str) -> Avp:
    return utf8_avp(code, value, VENDOR_3GPP)


def _vu(code: int, value: int) -> Avp:
    return uint32_avp(code, value, VENDOR_3GPP)


def _ve(code: int, value: int) -> Avp:
    return int32_avp(code, value, VENDOR_3GPP)


def _vo(code: int, value: bytes) -> Avp:
    return octets_avp(code, value, VENDOR_3GPP)


def _check_command(message: DiameterMessage, code: int, request: bool) -> None:
    if message.command_code != code or message.request != request:
        want = "request" if request else "answer"
        raise DiameterError(f"expected command {code} {want}, got {message.name}")


@dataclass(frozen=True, slots=True)
class Routing:
    """Origin and destination of a request (RFC 6733 routing AVPs)."""

    origin_host: str
    """Origin-Host of the sender (its Diameter identity)."""
    origin_realm: str
    """Origin-Realm of the sender."""
    destination_realm: str
    """Destination-Realm: the home network's realm."""
    destination_host: str | None = None
    """Destination-Host, when the request must reach one peer (RTR, PNR)."""

    def avps(self) -> list[Avp]:
        """Origin-Host, Origin-Realm, [Destination-Host], Destination-Realm."""
        out = [utf8_avp(AVP_ORIGIN_HOST, self.origin_host)]
        out.append(utf8_avp(AVP_ORIGIN_REALM, self.origin_realm))
        if self.destination_host is not None:
            out.append(utf8_avp(AVP_DESTINATION_HOST, self.destination_host))
        out.append(utf8_avp(AVP_DESTINATION_REALM, self.destination_realm))
        return out

    @classmethod
    def from_message(cls, message: DiameterMessage) -> Routing:
        """Read the routing AVPs of a request."""
        return cls(
            origin_host=message.require_str(AVP_ORIGIN_HOST),
            origin_realm=message.require_str(AVP_ORIGIN_REALM),
            destination_realm=message.require_str(AVP_DESTINATION_REALM),
            destination_host=message.destination_host,
        )


def request_message(
    command_code: int,
    application_id: int,
    session_id: str,
    routing: Routing,
    avps: Iterable[Avp],
    *,
    hop_by_hop: int = 0,
    end_to_end: int = 0,
) -> DiameterMessage:
    """A Cx/Sh request: Session-Id, Vendor-Specific-Application-Id,
    Auth-Session-State NO_STATE_MAINTAINED, routing AVPs, then ``avps``."""
    head = [
        utf8_avp(AVP_SESSION_ID, session_id),
        vendor_specific_application_id(application_id),
        int32_avp(AVP_AUTH_SESSION_STATE, NO_STATE_MAINTAINED),
    ]
    return DiameterMessage(
        command_code=command_code,
        application_id=application_id,
        request=True,
        avps=(*head, *routing.avps(), *avps),
        hop_by_hop=hop_by_hop,
        end_to_end=end_to_end,
    )


def answer_message(
    request: DiameterMessage,
    origin_host: str,
    origin_realm: str,
    result: Result,
    avps: Iterable[Avp] = (),
) -> DiameterMessage:
    """A Cx/Sh answer: Session-Id, result, Origin-*, Vendor-Specific-Application-Id,
    Auth-Session-State, then ``avps``."""
    head = [
        vendor_specific_application_id(request.application_id),
        int32_avp(AVP_AUTH_SESSION_STATE, NO_STATE_MAINTAINED),
    ]
    return answer_for(
        request,
        origin_host=origin_host,
        origin_realm=origin_realm,
        result=result,
        avps=(*head, *avps),
    )


def _session(message: DiameterMessage) -> str:
    return message.require_str(AVP_SESSION_ID)


def _opt_str(message: DiameterMessage | Avp, code: int, vendor: int = VENDOR_3GPP) -> str | None:
    avp = message.find(code, vendor)
    return None if avp is None else avp.as_str()


def _opt_uint(message: DiameterMessage | Avp, code: int, vendor: int = VENDOR_3GPP) -> int | None:
    avp = message.find(code, vendor)
    return None if avp is None else avp.as_uint32()


def _opt_int(message: DiameterMessage | Avp, code: int, vendor: int = VENDOR_3GPP) -> int | None:
    avp = message.find(code, vendor)
    return None if avp is None else avp.as_int32()


def _opt_bytes(message: DiameterMessage | Avp, code: int, vendor: int = VENDOR_3GPP) -> bytes | None:
    avp = message.find(code, vendor)
    return None if avp is None else avp.payload


def _req_str(message: DiameterMessage, code: int, what: str, vendor: int = VENDOR_3GPP) -> str:
    value = _opt_str(message, code, vendor)
    if value is None:
        raise DiameterError(f"{message.name}: missing {what}")
    return value


def _req_int(message: DiameterMessage, code: int, what: str, vendor: int = VENDOR_3GPP) -> int:
    value = _opt_int(message, code, vendor)
    if value is None:
        raise DiameterError(f"{message.name}: missing {what}")
    return value


@dataclass(frozen=True, slots=True)
class _AnswerHead:
    origin_host: str
    origin_realm: str
    result: Result


def _answer_head(message: DiameterMessage) -> _AnswerHead:
    return _AnswerHead(
        message.require_str(AVP_ORIGIN_HOST),
        message.require_str(AVP_ORIGIN_REALM),
        Result.of(message),
    )


# --- grouped values --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerCapabilities:
    """Server-Capabilities (TS 29.229 6.3.4): what an S-CSCF must/may offer."""

    mandatory: tuple[int, ...] = ()
    """Mandatory-Capability values (operator-defined numbers)."""
    optional: tuple[int, ...] = ()
    """Optional-Capability values."""
    server_names: tuple[str, ...] = ()
    """Server-Name values: candidate S-CSCF SIP URIs."""

    def to_avp(self) -> Avp:
        """The grouped AVP."""
        children = [_vu(AVP_MANDATORY_CAPABILITY, c) for c in self.mandatory]
        children += [_vu(AVP_OPTIONAL_CAPABILITY, c) for c in self.optional]
        children += [_v(AVP_SERVER_NAME, n) for n in self.server_names]
        return grouped_avp(AVP_SERVER_CAPABILITIES, children, VENDOR_3GPP)

    @classmethod
    def from_avp(cls, avp: Avp) -> ServerCapabilities:
        """Parse the grouped AVP."""
        return cls(
            tuple(a.as_uint32() for a in avp.find_all(AVP_MANDATORY_CAPABILITY, VENDOR_3GPP)),
            tuple(a.as_uint32() for a in avp.find_all(AVP_OPTIONAL_CAPABILITY, VENDOR_3GPP)),
            tuple(a.as_str() for a in avp.find_all(AVP_SERVER_NAME, VENDOR_3GPP)),
        )


@dataclass(frozen=True, slots=True)
class SipDigestAuthenticate:
    """SIP-Digest-Authenticate (TS 29.229 6.3.36): what the S-CSCF needs to
    challenge and check a SIP Digest client without seeing the password."""

    realm: str
    """Digest-Realm (RFC 4740): the realm of the challenge."""
    ha1: str
    """Digest-HA1: hex MD5(username ":" realm ":" password)."""
    qop: str | None = "auth"
    """Digest-QoP: quality of protection to offer."""
    algorithm: str | None = "MD5"
    """Digest-Algorithm."""

    def to_avp(self) -> Avp:
        """The grouped AVP (its Digest-* children are IETF AVPs, vendor 0)."""
        children = [utf8_avp(AVP_DIGEST_REALM, self.realm)]
        if self.algorithm is not None:
            children.append(utf8_avp(AVP_DIGEST_ALGORITHM, self.algorithm))
        if self.qop is not None:
            children.append(utf8_avp(AVP_DIGEST_QOP, self.qop))
        children.append(utf8_avp(AVP_DIGEST_HA1, self.ha1))
        return grouped_avp(AVP_SIP_DIGEST_AUTHENTICATE, children, VENDOR_3GPP)

    @classmethod
    def from_avp(cls, avp: Avp) -> SipDigestAuthenticate:
        """Parse the grouped AVP."""
        realm = _opt_str(avp, AVP_DIGEST_REALM, 0)
        ha1 = _opt_str(avp, AVP_DIGEST_HA1, 0)
        if realm is None or ha1 is None:
            raise DiameterError("SIP-Digest-Authenticate without Digest-Realm or Digest-HA1")
        return cls(realm, ha1, _opt_str(avp, AVP_DIGEST_QOP, 0), _opt_str(avp, AVP_DIGEST_ALGORITHM, 0))


@dataclass(frozen=True, slots=True)
class SipAuthDataItem:
    """SIP-Auth-Data-Item (TS 29.229 6.3.13).

    In a MAR it names the scheme wanted and, for an AKA resynchronisation,
    carries ``authorization`` = RAND || AUTS.  In a MAA it carries one
    vector: for AKA ``authenticate`` = RAND || AUTN, ``authorization`` = XRES,
    ``confidentiality_key`` = CK, ``integrity_key`` = IK; for SIP Digest a
    :class:`SipDigestAuthenticate`.
    """

    scheme: str
    """SIP-Authentication-Scheme (``Digest-AKAv1-MD5``, ``SIP Digest``, ``Unknown``)."""
    item_number: int | None = None
    """SIP-Item-Number: order of the vectors (1-based)."""
    authenticate: bytes | None = None
    """SIP-Authenticate: RAND (16) || AUTN (16) for AKA."""
    authorization: bytes | None = None
    """SIP-Authorization: XRES (4..16) in a MAA, RAND (16) || AUTS (14) in a resync MAR."""
    authentication_context: bytes | None = None
    """SIP-Authentication-Context: the SIP method etc. (unused here)."""
    confidentiality_key: bytes | None = None
    """Confidentiality-Key: CK (16)."""
    integrity_key: bytes | None = None
    """Integrity-Key: IK (16)."""
    digest: SipDigestAuthenticate | None = None
    """SIP-Digest-Authenticate, for the SIP Digest scheme."""

    def to_avp(self) -> Avp:
        """The grouped AVP."""
        children: list[Avp] = []
        if self.item_number is not None:
            children.append(_vu(AVP_SIP_ITEM_NUMBER, self.item_number))
        children.append(_v(AVP_SIP_AUTHENTICATION_SCHEME, self.scheme))
        if self.authenticate is not None:
            children.append(_vo(AVP_SIP_AUTHENTICATE, self.authenticate))
        if self.authorization is not None:
            children.append(_vo(AVP_SIP_AUTHORIZATION, self.authorization))
        if self.authentication_context is not None:
            children.append(_vo(AVP_SIP_AUTHENTICATION_CONTEXT, self.authentication_context))
        if self.confidentiality_key is not None:
            children.append(_vo(AVP_CONFIDENTIALITY_KEY, self.confidentiality_key))
        if self.integrity_key is not None:
            children.append(_vo(AVP_INTEGRITY_KEY, self.integrity_key))
        if self.digest is not None:
            children.append(self.digest.to_avp())
        return grouped_avp(AVP_SIP_AUTH_DATA_ITEM, children, VENDOR_3GPP)

    @classmethod
    def from_avp(cls, avp: Avp) -> SipAuthDataItem:
        """Parse the grouped AVP (a missing scheme reads as ``Unknown``)."""
        digest = avp.find(AVP_SIP_DIGEST_AUTHENTICATE, VENDOR_3GPP)
        return cls(
            scheme=_opt_str(avp, AVP_SIP_AUTHENTICATION_SCHEME) or AUTH_SCHEME_UNKNOWN,
            item_number=_opt_uint(avp, AVP_SIP_ITEM_NUMBER),
            authenticate=_opt_bytes(avp, AVP_SIP_AUTHENTICATE),
            authorization=_opt_bytes(avp, AVP_SIP_AUTHORIZATION),
            authentication_context=_opt_bytes(avp, AVP_SIP_AUTHENTICATION_CONTEXT),
            confidentiality_key=_opt_bytes(avp, AVP_CONFIDENTIALITY_KEY),
            integrity_key=_opt_bytes(avp, AVP_INTEGRITY_KEY),
            digest=None if digest is None else SipDigestAuthenticate.from_avp(digest),
        )

    @property
    def rand(self) -> bytes | None:
        """RAND: the first 16 bytes of SIP-Authenticate (or of a resync SIP-Authorization)."""
        source = self.authenticate if self.authenticate is not None else self.authorization
        return None if source is None or len(source) < 16 else source[:16]

    @property
    def autn(self) -> bytes | None:
        """AUTN: bytes 16..32 of SIP-Authenticate."""
        if self.authenticate is None or len(self.authenticate) < 32:
            return None
        return self.authenticate[16:32]

    @property
    def auts(self) -> bytes | None:
        """AUTS from a resync MAR: bytes 16..30 of SIP-Authorization."""
        if self.authorization is None or len(self.authorization) != 30:
            return None
        return self.authorization[16:30]


@dataclass(frozen=True, slots=True)
class DeregistrationReason:
    """Deregistration-Reason (TS 29.229 6.3.16)."""

    code: int
    """Reason-Code (:class:`ReasonCode`)."""
    info: str | None = None
    """Reason-Info: text the S-CSCF may pass to the UE."""

    def to_avp(self) -> Avp:
        """The grouped AVP."""
        children = [_ve(AVP_REASON_CODE, self.code)]
        if self.info is not None:
            children.append(_v(AVP_REASON_INFO, self.info))
        return grouped_avp(AVP_DEREGISTRATION_REASON, children, VENDOR_3GPP)

    @classmethod
    def from_avp(cls, avp: Avp) -> DeregistrationReason:
        """Parse the grouped AVP."""
        code = _opt_int(avp, AVP_REASON_CODE)
        if code is None:
            raise DiameterError("Deregistration-Reason without Reason-Code")
        return cls(code, _opt_str(avp, AVP_REASON_INFO))


# --- UAR / UAA -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserAuthorizationRequest:
    """UAR (TS 29.229 6.1.1): the I-CSCF asks whether a REGISTER may go on
    and to which S-CSCF."""

    session_id: str
    """Session-Id."""
    routing: Routing
    """Origin and destination."""
    user_name: str
    """User-Name: the IMPI."""
    public_identity: str
    """Public-Identity: the IMPU being registered."""
    visited_network_identifier: str
    """Visited-Network-Identifier (the P-CSCF's network, from P-Visited-Network-ID)."""
    authorization_type: int = UserAuthorizationType.REGISTRATION
    """User-Authorization-Type."""
    uar_flags: int | None = None
    """UAR-Flags (bit 0: IMS emergency registration)."""

    def to_message(self, *, hop_by_hop: int = 0, end_to_end: int = 0) -> DiameterMessage:
        """The UAR message."""
        avps = [
            utf8_avp(AVP_USER_NAME, self.user_name),
            _v(AVP_PUBLIC_IDENTITY, self.public_identity),
            _vo(AVP_VISITED_NETWORK_IDENTIFIER, self.visited_network_identifier.encode()),
            _ve(AVP_USER_AUTHORIZATION_TYPE, self.authorization_type),
        ]
        if self.uar_flags is not None:
            avps.append(_vu(AVP_UAR_FLAGS, self.uar_flags))
        return request_message(
            CMD_USER_AUTHORIZATION, APP_CX, self.session_id, self.routing, avps,
            hop_by_hop=hop_by_hop, end_to_end=end_to_end,
        )

    @classmethod
    def from_message(cls, message: DiameterMessage) -> UserAuthorizationRequest:
        """Parse a UAR."""
        _check_command(message, CMD_USER_AUTHORIZATION, True)
        visited = _opt_bytes(message, AVP_VISITED_NETWORK_IDENTIFIER)
        try:
            visited_text = "" if visited is None else visited.decode()
        except UnicodeDecodeError as exc:
            raise DiameterError("UAR: Visited-Network-Identifier not UTF-8") from exc
        return cls(
            session_id=_session(message),
            routing=Routing.from_message(message),
            user_name=_req_str(message, AVP_USER_NAME, "User-Name", 0),
            public_identity=_req_str(message, AVP_PUBLIC_IDENTITY, "Public-Identity"),
            visited_network_identifier=visited_text,
            authorization_type=_opt_int(message, AVP_USER_AUTHORIZATION_TYPE) or 0,
            uar_flags=_opt_uint(message, AVP_UAR_FLAGS),
        )


@dataclass(frozen=True, slots=True)
class UserAuthorizationAnswer:
    """UAA: DIAMETER_FIRST_REGISTRATION / SUBSEQUENT_REGISTRATION /
    UNREGISTERED_SERVICE (experimental) or DIAMETER_SUCCESS for
    de-registration, with the S-CSCF name or the capabilities to choose one."""

    origin_host: str
    """Origin-Host of the HSS."""
    origin_realm: str
    """Origin-Realm of the HSS."""
    result: Result
    """Result-Code or Experimental-Result."""
    server_name: str | None = None
    """Server-Name: the S-CSCF already assigned (or stored)."""
    server_capabilities: ServerCapabilities | None = None
    """Server-Capabilities: for the I-CSCF to select an S-CSCF."""

    def to_message(self, request: DiameterMessage) -> DiameterMessage:
        """The UAA answering ``request``."""
        avps = []
        if self.server_name is not None:
            avps.append(_v(AVP_SERVER_NAME, self.server_name))
        if self.server_capabilities is not None:
            avps.append(self.server_capabilities.to_avp())
        return answer_message(request, self.origin_host, self.origin_realm, self.result, avps)

    @classmethod
    def from_message(cls, message: DiameterMessage) -> UserAuthorizationAnswer:
        """Parse a UAA."""
        _check_command(message, CMD_USER_AUTHORIZATION, False)
        head = _answer_head(message)
        caps = message.find(AVP_SERVER_CAPABILITIES, VENDOR_3GPP)
        return cls(
            head.origin_host, head.origin_realm, head.result,
            message.server_name,
            None if caps is None else ServerCapabilities.from_avp(caps),
        )

    @property
    def selected_server_name(self) -> str | None:
        """Server-Name, else the first name the capabilities offer."""
        if self.server_name is not None:
            return self.server_name
        if self.server_capabilities is not None and self.server_capabilities.server_names:
            return self.server_capabilities.server_names[0]
        return None


# --- MAR / MAA -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MultimediaAuthRequest:
    """MAR (TS 29.229 6.1.7): the S-CSCF asks for authentication vectors."""

    session_id: str
    """Session-Id."""
    routing: Routing
    """Origin and destination."""
    user_name: str
    """User-Name: the IMPI."""
    public_identity: str
    """Public-Identity: the IMPU in the REGISTER."""
    server_name: str
    """Server-Name: the S-CSCF asking."""
    auth_data_item: SipAuthDataItem
    """The scheme wanted; RAND || AUTS in SIP-Authorization to resynchronise."""
    number_auth_items: int = 1
    """SIP-Number-Auth-Items: vectors wanted."""

    def to_message(self, *, hop_by_hop: int = 0, end_to_end: int = 0) -> DiameterMessage:
        """The MAR message."""
        avps = [
            utf8_avp(AVP_USER_NAME, self.user_name),
            _v(AVP_PUBLIC_IDENTITY, self.public_identity),
            self.auth_data_item.to_avp(),
            _vu(AVP_SIP_NUMBER_AUTH_ITEMS, self.number_auth_items),
            _v(AVP_SERVER_NAME, self.server_name),
        ]
        return request_message(
            CMD_MULTIMEDIA_AUTH, APP_CX, self.session_id, self.routing, avps,
            hop_by_hop=hop_by_hop, end_to_end=end_to_end,
        )

    @classmethod
    def from_message(cls, message: DiameterMessage) -> MultimediaAuthRequest:
        """Parse a MAR."""
        _check_command(message, CMD_MULTIMEDIA_AUTH, True)
        item = message.find(AVP_SIP_AUTH_DATA_ITEM, VENDOR_3GPP)
        if item is None:
            raise DiameterError("MAR: missing SIP-Auth-Data-Item")
        return cls(
            session_id=_session(message),
            routing=Routing.from_message(message),
            user_name=_req_str(message, AVP_USER_NAME, "User-Name", 0),
            public_identity=_req_str(message, AVP_PUBLIC_IDENTITY, "Public-Identity"),
            server_name=_req_str(message, AVP_SERVER_NAME, "Server-Name"),
            auth_data_item=SipAuthDataItem.from_avp(item),
            number_auth_items=_opt_uint(message, AVP_SIP_NUMBER_AUTH_ITEMS) or 1,
        )


@dataclass(frozen=True, slots=True)
class MultimediaAuthAnswer:
    """MAA: the vectors (one SIP-Auth-Data-Item each)."""

    origin_host: str
    """Origin-Host of the HSS."""
    origin_realm: str
    """Origin-Realm of the HSS."""
    result: Result
    """Result-Code or Experimental-Result."""
    user_name: str | None = None
    """User-Name: the IMPI."""
    public_identity: str | None = None
    """Public-Identity: the IMPU."""
    items: tuple[SipAuthDataItem, ...] = ()
    """The authentication vectors, SIP-Item-Number order."""

    def to_message(self, request: DiameterMessage) -> DiameterMessage:
        """The MAA answering ``request``."""
        avps = []
        if self.user_name is not None:
            avps.append(utf8_avp(AVP_USER_NAME, self.user_name))
        if self.public_identity is not None:
            avps.append(_v(AVP_PUBLIC_IDENTITY, self.public_identity))
        if self.items:
            avps.append(_vu(AVP_SIP_NUMBER_AUTH_ITEMS, len(self.items)))
        avps += [item.to_avp() for item in self.items]
        return answer_message(request, self.origin_host, self.origin_realm, self.result, avps)

    @classmethod
    def from_message(cls, message: DiameterMessage) -> MultimediaAuthAnswer:
        """Parse a MAA."""
        _check_command(message, CMD_MULTIMEDIA_AUTH, False)
        head = _answer_head(message)
        items = tuple(
            SipAuthDataItem.from_avp(a)
            for a in message.find_all(AVP_SIP_AUTH_DATA_ITEM, VENDOR_3GPP)
        )
        return cls(
            head.origin_host, head.origin_realm, head.result,
            message.user_name, message.public_identity, items,
        )


# --- SAR / SAA -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerAssignmentRequest:
    """SAR (TS 29.229 6.1.3): the S-CSCF stores itself as serving the user
    (or releases it) and fetches the user profile."""

    session_id: str
    """Session-Id."""
    routing: Routing
    """Origin and destination."""
    server_name: str
    """Server-Name: the S-CSCF SIP URI."""
    assignment_type: int
    """Server-Assignment-Type (:class:`ServerAssignmentType`)."""
    public_identities: tuple[str, ...] = ()
    """Public-Identity values (one, or none for a de-registration by IMPI)."""
    user_name: str | None = None
    """User-Name: the IMPI (required for REGISTRATION and RE_REGISTRATION)."""
    user_data_already_available: bool = False
    """User-Data-Already-Available: the S-CSCF already has the profile."""

    def to_message(self, *, hop_by_hop: int = 0, end_to_end: int = 0) -> DiameterMessage:
        """The SAR message."""
        avps: list[Avp] = []
        if self.user_name is not None:
            avps.append(utf8_avp(AVP_USER_NAME, self.user_name))
        avps += [_v(AVP_PUBLIC_IDENTITY, p) for p in self.public_identities]
        avps.append(_v(AVP_SERVER_NAME, self.server_name))
        avps.append(_ve(AVP_SERVER_ASSIGNMENT_TYPE, self.assignment_type))
        avps.append(_ve(AVP_USER_DATA_ALREADY_AVAILABLE, int(self.user_data_already_available)))
        return request_message(
            CMD_SERVER_ASSIGNMENT, APP_CX, self.session_id, self.routing, avps,
            hop_by_hop=hop_by_hop, end_to_end=end_to_end,
        )

    @classmethod
    def from_message(cls, message: DiameterMessage) -> ServerAssignmentRequest:
        """Parse a SAR."""
        _check_command(message, CMD_SERVER_ASSIGNMENT, True)
        return cls(
            session_id=_session(message),
            routing=Routing.from_message(message),
            server_name=_req_str(message, AVP_SERVER_NAME, "Server-Name"),
            assignment_type=_req_int(
                message, AVP_SERVER_ASSIGNMENT_TYPE, "Server-Assignment-Type"
            ),
            public_identities=message.public_identities,
            user_name=message.user_name,
            user_data_already_available=bool(
                _opt_int(message, AVP_USER_DATA_ALREADY_AVAILABLE) or 0
            ),
        )


@dataclass(frozen=True, slots=True)
class ServerAssignmentAnswer:
    """SAA: the result and, for registrations, the user profile (User-Data)."""

    origin_host: str
    """Origin-Host of the HSS."""
    origin_realm: str
    """Origin-Realm of the HSS."""
    result: Result
    """Result-Code or Experimental-Result."""
    user_name: str | None = None
    """User-Name: the IMPI."""
    user_data: bytes | None = None
    """User-Data: the IMS subscription XML (:func:`parse_ims_subscription`)."""

    def to_message(self, request: DiameterMessage) -> DiameterMessage:
        """The SAA answering ``request``."""
        avps = []
        if self.user_name is not None:
            avps.append(utf8_avp(AVP_USER_NAME, self.user_name))
        if self.user_data is not None:
            avps.append(_vo(AVP_CX_USER_DATA, self.user_data))
        return answer_message(request, self.origin_host, self.origin_realm, self.result, avps)

    @classmethod
    def from_message(cls, message: DiameterMessage) -> ServerAssignmentAnswer:
        """Parse a SAA."""
        _check_command(message, CMD_SERVER_ASSIGNMENT, False)
        head = _answer_head(message)
        return cls(
            head.origin_host, head.origin_realm, head.result,
            message.user_name, message.cx_user_data,
        )

    def subscription(self) -> ImsSubscription | None:
        """The parsed IMS subscription, when User-Data is present."""
        return None if self.user_data is None else parse_ims_subscription(self.user_data)


# --- LIR / LIA -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocationInfoRequest:
    """LIR (TS 29.229 6.1.5): which S-CSCF serves this IMPU (the Px query)."""

    session_id: str
    """Session-Id."""
    routing: Routing
    """Origin and destination."""
    public_identity: str
    """Public-Identity: the IMPU looked up."""
    originating_request: bool = False
    """Originating-Request: the request is an originating one."""
    authorization_type: int | None = None
    """User-Authorization-Type (only REGISTRATION_AND_CAPABILITIES is meaningful)."""

    def to_message(self, *, hop_by_hop: int = 0, end_to_end: int = 0) -> DiameterMessage:
        """The LIR message."""
        avps = []
        if self.originating_request:
            avps.append(_ve(AVP_ORIGINATING_REQUEST, 0))
        avps.append(_v(AVP_PUBLIC_IDENTITY, self.public_identity))
        if self.authorization_type is not None:
            avps.append(_ve(AVP_USER_AUTHORIZATION_TYPE, self.authorization_type))
        return request_message(
            CMD_LOCATION_INFO, APP_CX, self.session_id, self.routing, avps,
            hop_by_hop=hop_by_hop, end_to_end=end_to_end,
        )

    @classmethod
    def from_message(cls, message: DiameterMessage) -> LocationInfoRequest:
        """Parse a LIR."""
        _check_command(message, CMD_LOCATION_INFO, True)
        return cls(
            session_id=_session(message),
            routing=Routing.from_message(message),
            public_identity=_req_str(message, AVP_PUBLIC_IDENTITY, "Public-Identity"),
            originating_request=message.find(AVP_ORIGINATING_REQUEST, VENDOR_3GPP) is not None,
            authorization_type=_opt_int(message, AVP_USER_AUTHORIZATION_TYPE),
        )


@dataclass(frozen=True, slots=True)
class LocationInfoAnswer:
    """LIA: DIAMETER_SUCCESS with Server-Name, DIAMETER_UNREGISTERED_SERVICE
    with a name or capabilities, or 5003 IDENTITY_NOT_REGISTERED / 5001."""

    origin_host: str
    """Origin-Host of the HSS."""
    origin_realm: str
    """Origin-Realm of the HSS."""
    result: Result
    """Result-Code or Experimental-Result."""
    server_name: str | None = None
    """Server-Name: the S-CSCF serving the IMPU."""
    server_capabilities: ServerCapabilities | None = None
    """Server-Capabilities when no S-CSCF is stored."""

    def to_message(self, request: DiameterMessage) -> DiameterMessage:
        """The LIA answering ``request``."""
        avps = []
        if self.server_name is not None:
            avps.append(_v(AVP_SERVER_NAME, self.server_name))
        if self.server_capabilities is not None:
            avps.append(self.server_capabilities.to_avp())
        return answer_message(request, self.origin_host, self.origin_realm, self.result, avps)

    @classmethod
    def from_message(cls, message: DiameterMessage) -> LocationInfoAnswer:
        """Parse a LIA."""
        _check_command(message, CMD_LOCATION_INFO, False)
        head = _answer_head(message)
        caps = message.find(AVP_SERVER_CAPABILITIES, VENDOR_3GPP)
        return cls(
            head.origin_host, head.origin_realm, head.result,
            message.server_name,
            None if caps is None else ServerCapabilities.from_avp(caps),
        )


# --- RTR / RTA -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegistrationTerminationRequest:
    """RTR (TS 29.229 6.1.9): the HSS de-registers a user at its S-CSCF."""

    session_id: str
    """Session-Id."""
    routing: Routing
    """Origin (the HSS) and destination (the S-CSCF's host and realm)."""
    reason: DeregistrationReason
    """Deregistration-Reason."""
    user_name: str | None = None
    """User-Name: the IMPI."""
    public_identities: tuple[str, ...] = ()
    """Public-Identity values; none means every IMPU of the IMPI."""

    def to_message(self, *, hop_by_hop: int = 0, end_to_end: int = 0) -> DiameterMessage:
        """The RTR message."""
        avps: list[Avp] = []
        if self.user_name is not None:
            avps.append(utf8_avp(AVP_USER_NAME, self.user_name))
        avps += [_v(AVP_PUBLIC_IDENTITY, p) for p in self.public_identities]
        avps.append(self.reason.to_avp())
        return request_message(
            CMD_REGISTRATION_TERMINATION, APP_CX, self.session_id, self.routing, avps,
            hop_by_hop=hop_by_hop, end_to_end=end_to_end,
        )

    @classmethod
    def from_message(cls, message: DiameterMessage) -> RegistrationTerminationRequest:
        """Parse a RTR."""
        _check_command(message, CMD_REGISTRATION_TERMINATION, True)
        reason = message.find(AVP_DEREGISTRATION_REASON, VENDOR_3GPP)
        if reason is None:
            raise DiameterError("RTR: missing Deregistration-Reason")
        return cls(
            session_id=_session(message),
            routing=Routing.from_message(message),
            reason=DeregistrationReason.from_avp(reason),
            user_name=message.user_name,
            public_identities=message.public_identities,
        )


@dataclass(frozen=True, slots=True)
class RegistrationTerminationAnswer:
    """RTA: the S-CSCF's result."""

    origin_host: str
    """Origin-Host of the S-CSCF."""
    origin_realm: str
    """Origin-Realm of the S-CSCF."""
    result: Result
    """Result-Code or Experimental-Result."""

    def to_message(self, request: DiameterMessage) -> DiameterMessage:
        """The RTA answering ``request``."""
        return answer_message(request, self.origin_host, self.origin_realm, self.result)

    @classmethod
    def from_message(cls, message: DiameterMessage) -> RegistrationTerminationAnswer:
        """Parse a RTA."""
        _check_command(message, CMD_REGISTRATION_TERMINATION, False)
        head = _answer_head(message)
        return cls(head.origin_host, head.origin_realm, head.result)


# --- IMS subscription XML (TS 29.228 annex E) ------------------------------

MAX_XML_SIZE: Final = 256 * 1024
"""Largest User-Data document parsed, in bytes."""


def parse_xml(data: bytes, what: str) -> etree._Element:
    """Parse an XML document with entities, network access and DTDs off."""
    if not isinstance(data, bytes):
        raise DiameterError(f"{what}: expected bytes")
    if len(data) > MAX_XML_SIZE:
        raise DiameterError(f"{what}: document larger than {MAX_XML_SIZE} bytes")
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise DiameterError(f"{what}: not well-formed XML: {exc}") from exc
    if root is None:
        raise DiameterError(f"{what}: empty document")
    if getattr(root.getroottree().docinfo, "doctype", ""):
        raise DiameterError(f"{what}: DOCTYPE not allowed")
    return root


def child_text(element: etree._Element, tag: str) -> str | None:
    """Text of the first child called ``tag`` (stripped), or None."""
    child = element.find(tag)
    if child is None:
        return None
    return (child.text or "").strip()


def int_text(element: etree._Element, tag: str, what: str) -> int | None:
    """An integer child element, or None when absent."""
    text = child_text(element, tag)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError as exc:
        raise DiameterError(f"{what}: {tag} is not an integer: {text!r}") from exc


def bool_text(element: etree._Element, tag: str, what: str) -> bool | None:
    """An xs:boolean child element (``0 1 true false``), or None when absent."""
    text = child_text(element, tag)
    if text is None:
        return None
    if text in ("1", "true"):
        return True
    if text in ("0", "false"):
        return False
    raise DiameterError(f"{what}: {tag} is not a boolean: {text!r}")


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


@dataclass(frozen=True, slots=True)
class PublicIdentity:
    """``PublicIdentity`` of a service profile."""

    identity: str
    """``Identity``: the IMPU (sip: or tel: URI)."""
    barred: bool = False
    """``BarringIndication``: the IMPU may not be used for sessions."""
    identity_type: int = 0
    """``Extension/IdentityType``: 0 public user identity, 1 distinct PSI,
    2 wildcarded PSI, 3 wildcarded IMPU."""


@dataclass(frozen=True, slots=True)
class ServicePointTrigger:
    """``SPT``: one condition of a trigger point.  Exactly one of ``method``,
    ``header``, ``session_case`` and ``request_uri`` is set."""

    groups: tuple[int, ...] = (0,)
    """``Group`` numbers this SPT belongs to."""
    negated: bool = False
    """``ConditionNegated``."""
    method: str | None = None
    """``Method``: a SIP method (``PUBLISH``, ``SUBSCRIBE``)."""
    header: str | None = None
    """``SIPHeader/Header``: a header name (``Event``)."""
    content: str | None = None
    """``SIPHeader/Content``: a regular expression over the header value."""
    session_case: int | None = None
    """``SessionCase``: 0 originating, 1 terminating registered, 2 terminating
    unregistered, 3 originating unregistered, 4 originating CDIV."""
    request_uri: str | None = None
    """``RequestURI``: a regular expression over the Request-URI."""


@dataclass(frozen=True, slots=True)
class TriggerPoint:
    """``TriggerPoint``: SPTs combined in conjunctive (CNF) or disjunctive
    normal form by their groups."""

    cnf: bool
    """``ConditionTypeCNF``: true for CNF (groups ANDed, SPTs in a group ORed)."""
    spts: tuple[ServicePointTrigger, ...]
    """The SPTs."""


@dataclass(frozen=True, slots=True)
class ApplicationServer:
    """``ApplicationServer`` of a filter criterion."""

    server_name: str
    """``ServerName``: SIP URI of the AS (the presence server)."""
    default_handling: int = 0
    """``DefaultHandling``: 0 SESSION_CONTINUED, 1 SESSION_TERMINATED."""
    service_info: str | None = None
    """``ServiceInfo``: opaque text passed to the AS."""


@dataclass(frozen=True, slots=True)
class InitialFilterCriteria:
    """``InitialFilterCriteria``: when to route a request to an AS."""

    priority: int
    """``Priority``: lower numbers are evaluated first."""
    application_server: ApplicationServer
    """``ApplicationServer``."""
    trigger_point: TriggerPoint | None = None
    """``TriggerPoint``; absent means unconditional."""
    profile_part_indicator: int | None = None
    """``ProfilePartIndicator``: 0 registered, 1 unregistered; absent for both."""


@dataclass(frozen=True, slots=True)
class ServiceProfile:
    """``ServiceProfile``: IMPUs sharing one set of filter criteria."""

    public_identities: tuple[PublicIdentity, ...]
    """``PublicIdentity`` elements."""
    ifcs: tuple[InitialFilterCriteria, ...] = ()
    """``InitialFilterCriteria`` elements, in document order."""


@dataclass(frozen=True, slots=True)
class ImsSubscription:
    """``IMSSubscription``: the user profile of one IMPI."""

    private_id: str
    """``PrivateID``: the IMPI."""
    service_profiles: tuple[ServiceProfile, ...]
    """``ServiceProfile`` elements."""


def ifc_element(parent: etree._Element, ifc: InitialFilterCriteria) -> None:
    """Append an ``InitialFilterCriteria`` element (shared with Sh-Data's IFCs)."""
    element = _sub(parent, "InitialFilterCriteria")
    _sub(element, "Priority", str(ifc.priority))
    if ifc.trigger_point is not None:
        tp = _sub(element, "TriggerPoint")
        _sub(tp, "ConditionTypeCNF", "1" if ifc.trigger_point.cnf else "0")
        for spt in ifc.trigger_point.spts:
            spt_el = _sub(tp, "SPT")
            _sub(spt_el, "ConditionNegated", "1" if spt.negated else "0")
            for group in spt.groups:
                _sub(spt_el, "Group", str(group))
            if spt.request_uri is not None:
                _sub(spt_el, "RequestURI", spt.request_uri)
            elif spt.method is not None:
                _sub(spt_el, "Method", spt.method)
            elif spt.header is not None:
                header = _sub(spt_el, "SIPHeader")
                _sub(header, "Header", spt.header)
                if spt.content is not None:
                    _sub(header, "Content", spt.content)
            elif spt.session_case is not None:
                _sub(spt_el, "SessionCase", str(spt.session_case))
            else:
                raise DiameterError("SPT without a condition")
    server = _sub(element, "ApplicationServer")
    _sub(server, "ServerName", ifc.application_server.server_name)
    _sub(server, "DefaultHandling", str(ifc.application_server.default_handling))
    if ifc.application_server.service_info is not None:
        _sub(server, "ServiceInfo", ifc.application_server.service_info)
    if ifc.profile_part_indicator is not None:
        _sub(element, "ProfilePartIndicator", str(ifc.profile_part_indicator))


def parse_ifc(element: etree._Element) -> InitialFilterCriteria:
    """Parse an ``InitialFilterCriteria`` element."""
    what = "InitialFilterCriteria"
    priority = int_text(element, "Priority", what)
    server_el = element.find("ApplicationServer")
    if priority is None or server_el is None:
        raise DiameterError(f"{what} without Priority or ApplicationServer")
    server_name = child_text(server_el, "ServerName")
    if not server_name:
        raise DiameterError(f"{what}: ApplicationServer without ServerName")
    server = ApplicationServer(
        server_name,
        int_text(server_el, "DefaultHandling", what) or 0,
        child_text(server_el, "ServiceInfo"),
    )
    trigger: TriggerPoint | None = None
    tp_el = element.find("TriggerPoint")
    if tp_el is not None:
        spts = []
        for spt_el in tp_el.findall("SPT"):
            groups = []
            for group_el in spt_el.findall("Group"):
                try:
                    groups.append(int((group_el.text or "").strip()))
                except ValueError as exc:
                    raise DiameterError(f"{what}: bad SPT Group") from exc
            header_el = spt_el.find("SIPHeader")
            spt = ServicePointTrigger(
                groups=tuple(groups) or (0,),
                negated=bool(bool_text(spt_el, "ConditionNegated", what)),
                method=child_text(spt_el, "Method"),
                header=None if header_el is None else child_text(header_el, "Header"),
                content=None if header_el is None else child_text(header_el, "Content"),
                session_case=int_text(spt_el, "SessionCase", what),
                request_uri=child_text(spt_el, "RequestURI"),
            )
            if (spt.method, spt.header, spt.session_case, spt.request_uri) == (None,) * 4:
                raise DiameterError(f"{what}: SPT without a condition")
            spts.append(spt)
        trigger = TriggerPoint(bool(bool_text(tp_el, "ConditionTypeCNF", what)), tuple(spts))
    return InitialFilterCriteria(
        priority, server, trigger, int_text(element, "ProfilePartIndicator", what)
    )


def build_ims_subscription(subscription: ImsSubscription) -> bytes:
    """The ``IMSSubscription`` document (UTF-8, with XML declaration)."""
    root = etree.Element("IMSSubscription")
    _sub(root, "PrivateID", subscription.private_id)
    for profile in subscription.service_profiles:
        profile_el = _sub(root, "ServiceProfile")
        for identity in profile.public_identities:
            pid = _sub(profile_el, "PublicIdentity")
            _sub(pid, "BarringIndication", "1" if identity.barred else "0")
            _sub(pid, "Identity", identity.identity)
            extension = _sub(pid, "Extension")
            _sub(extension, "IdentityType", str(identity.identity_type))
        for ifc in profile.ifcs:
            ifc_element(profile_el, ifc)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def parse_ims_subscription(data: bytes) -> ImsSubscription:
    """Parse an ``IMSSubscription`` document."""
    what = "IMSSubscription"
    root = parse_xml(data, what)
    if root.tag != what:
        raise DiameterError(f"{what}: root element is {root.tag!r}")
    private_id = child_text(root, "PrivateID")
    if not private_id:
        raise DiameterError(f"{what} without PrivateID")
    profiles = []
    for profile_el in root.findall("ServiceProfile"):
        identities = []
        for pid in profile_el.findall("PublicIdentity"):
            identity = child_text(pid, "Identity")
            if not identity:
                raise DiameterError(f"{what}: PublicIdentity without Identity")
            identity_type = int_text(pid, "IdentityType", what)
            extension = pid.find("Extension")
            if identity_type is None and extension is not None:
                identity_type = int_text(extension, "IdentityType", what)
            identities.append(
                PublicIdentity(
                    identity,
                    bool(bool_text(pid, "BarringIndication", what)),
                    identity_type or 0,
                )
            )
        if not identities:
            raise DiameterError(f"{what}: ServiceProfile without PublicIdentity")
        ifcs = tuple(parse_ifc(el) for el in profile_el.findall("InitialFilterCriteria"))
        profiles.append(ServiceProfile(tuple(identities), ifcs))
    if not profiles:
        raise DiameterError(f"{what} without ServiceProfile")
    return ImsSubscription(private_id, tuple(profiles))
