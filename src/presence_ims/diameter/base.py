"""RFC 6733 base protocol: result codes, CER/CEA, DWR/DWA, DPR/DPA.

Also the 3GPP experimental result codes of Cx (TS 29.229 section 6.2) and Sh
(TS 29.329 section 6.2), which travel in Experimental-Result with Vendor-Id
10415 (Cx's 2001 DIAMETER_FIRST_REGISTRATION is *not* the base 2001
DIAMETER_SUCCESS: the AVP they arrive in tells them apart).

Capabilities exchange (RFC 6733 section 5.3)::

    CER ::= < Diameter Header: 257, REQ >
            { Origin-Host } { Origin-Realm } 1* { Host-IP-Address }
            { Vendor-Id } { Product-Name } [ Origin-State-Id ]
            * [ Supported-Vendor-Id ] * [ Auth-Application-Id ]
            * [ Inband-Security-Id ] * [ Acct-Application-Id ]
            * [ Vendor-Specific-Application-Id ] [ Firmware-Revision ]
    CEA ::= < Diameter Header: 257 > { Result-Code } + the same capability AVPs
    DWR ::= < Diameter Header: 280, REQ > { Origin-Host } { Origin-Realm } [ Origin-State-Id ]
    DPR ::= < Diameter Header: 282, REQ > { Origin-Host } { Origin-Realm } { Disconnect-Cause }
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from .codec import (
    APP_BASE,
    APP_CX,
    APP_SH,
    AVP_ACCT_APPLICATION_ID,
    AVP_AUTH_APPLICATION_ID,
    AVP_DISCONNECT_CAUSE,
    AVP_FIRMWARE_REVISION,
    AVP_HOST_IP_ADDRESS,
    AVP_INBAND_SECURITY_ID,
    AVP_ORIGIN_HOST,
    AVP_ORIGIN_REALM,
    AVP_ORIGIN_STATE_ID,
    AVP_PRODUCT_NAME,
    AVP_SUPPORTED_VENDOR_ID,
    AVP_VENDOR_ID,
    AVP_VENDOR_SPECIFIC_APPLICATION_ID,
    VENDOR_3GPP,
    Avp,
    DiameterError,
    DiameterMessage,
    address_avp,
    answer_for,
    int32_avp,
    uint32_avp,
    utf8_avp,
    vendor_specific_application_id,
)

__all__ = [
    "CMD_CAPABILITIES_EXCHANGE",
    "CMD_DEVICE_WATCHDOG",
    "CMD_DISCONNECT_PEER",
    "CX_APPLICATION",
    "RELAY_APPLICATION_ID",
    "SH_APPLICATION",
    "ApplicationId",
    "Capabilities",
    "as_application",
    "build_cea",
    "build_cer",
    "build_dpa",
    "build_dpr",
    "build_dwa",
    "build_dwr",
    "common_applications",
    "disconnect_cause",
    "is_base_command",
    "parse_capabilities",
    "result_name",
]

CMD_CAPABILITIES_EXCHANGE: Final = 257
CMD_DEVICE_WATCHDOG: Final = 280
CMD_DISCONNECT_PEER: Final = 282

RELAY_APPLICATION_ID: Final = 0xFFFFFFFF
"""The relay application: a peer advertising it supports every application."""

# --- RFC 6733 section 7.1: Result-Code values ------------------------------
DIAMETER_MULTI_ROUND_AUTH: Final = 1001
DIAMETER_SUCCESS: Final = 2001
DIAMETER_LIMITED_SUCCESS: Final = 2002
DIAMETER_COMMAND_UNSUPPORTED: Final = 3001
DIAMETER_UNABLE_TO_DELIVER: Final = 3002
DIAMETER_REALM_NOT_SERVED: Final = 3003
DIAMETER_TOO_BUSY: Final = 3004
DIAMETER_LOOP_DETECTED: Final = 3005
DIAMETER_REDIRECT_INDICATION: Final = 3006
DIAMETER_APPLICATION_UNSUPPORTED: Final = 3007
DIAMETER_INVALID_HDR_BITS: Final = 3008
DIAMETER_INVALID_AVP_BITS: Final = 3009
DIAMETER_UNKNOWN_PEER: Final = 3010
DIAMETER_AUTHENTICATION_REJECTED: Final = 4001
DIAMETER_OUT_OF_SPACE: Final = 4002
DIAMETER_ELECTION_LOST: Final = 4003
DIAMETER_AVP_UNSUPPORTED: Final = 5001
DIAMETER_UNKNOWN_SESSION_ID: Final = 5002
DIAMETER_AUTHORIZATION_REJECTED: Final = 5003
DIAMETER_INVALID_AVP_VALUE: Final = 5004
DIAMETER_MISSING_AVP: Final = 5005
DIAMETER_RESOURCES_EXCEEDED: Final = 5006
DIAMETER_CONTRADICTING_AVPS: Final = 5007
DIAMETER_AVP_NOT_ALLOWED: Final = 5008
DIAMETER_AVP_OCCURS_TOO_MANY_TIMES: Final = 5009
DIAMETER_NO_COMMON_APPLICATION: Final = 5010
DIAMETER_UNSUPPORTED_VERSION: Final = 5011
DIAMETER_UNABLE_TO_COMPLY: Final = 5012
DIAMETER_INVALID_BIT_IN_HEADER: Final = 5013
DIAMETER_INVALID_AVP_LENGTH: Final = 5014
DIAMETER_INVALID_MESSAGE_LENGTH: Final = 5015
DIAMETER_INVALID_AVP_BIT_COMBO: Final = 5016
DIAMETER_NO_COMMON_SECURITY: Final = 5017

# --- TS 29.229 section 6.2: Cx Experimental-Result-Code values -------------
DIAMETER_FIRST_REGISTRATION: Final = 2001
DIAMETER_SUBSEQUENT_REGISTRATION: Final = 2002
DIAMETER_UNREGISTERED_SERVICE: Final = 2003
DIAMETER_SUCCESS_SERVER_NAME_NOT_STORED: Final = 2004
DIAMETER_ERROR_USER_UNKNOWN: Final = 5001
DIAMETER_ERROR_IDENTITIES_DONT_MATCH: Final = 5002
DIAMETER_ERROR_IDENTITY_NOT_REGISTERED: Final = 5003
DIAMETER_ERROR_ROAMING_NOT_ALLOWED: Final = 5004
DIAMETER_ERROR_IDENTITY_ALREADY_REGISTERED: Final = 5005
DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED: Final = 5006
DIAMETER_ERROR_IN_ASSIGNMENT_TYPE: Final = 5007
DIAMETER_ERROR_TOO_MUCH_DATA: Final = 5008
DIAMETER_ERROR_NOT_SUPPORTED_USER_DATA: Final = 5009
DIAMETER_ERROR_FEATURE_UNSUPPORTED: Final = 5011
DIAMETER_ERROR_SERVING_NODE_FEATURE_UNSUPPORTED: Final = 5012

# --- TS 29.329 section 6.2: Sh Experimental-Result-Code values -------------
DIAMETER_USER_DATA_NOT_AVAILABLE: Final = 4100
DIAMETER_PRIOR_UPDATE_IN_PROGRESS: Final = 4101
DIAMETER_ERROR_USER_DATA_NOT_RECOGNIZED: Final = 5100
DIAMETER_ERROR_OPERATION_NOT_ALLOWED: Final = 5101
DIAMETER_ERROR_USER_DATA_CANNOT_BE_READ: Final = 5102
DIAMETER_ERROR_USER_DATA_CANNOT_BE_MODIFIED: Final = 5103
DIAMETER_ERROR_USER_DATA_CANNOT_BE_NOTIFIED: Final = 5104
DIAMETER_ERROR_TRANSPARENT_DATA_OUT_OF_SYNC: Final = 5105
DIAMETER_ERROR_SUBS_DATA_ABSENT: Final = 5106
DIAMETER_ERROR_NO_SUBSCRIPTION_TO_DATA: Final = 5107
DIAMETER_ERROR_DSAI_NOT_AVAILABLE: Final = 5108
DIAMETER_ERROR_UNKNOWN_SERVICE_INDICATION: Final = 5112

# --- RFC 6733 section 5.4.3: Disconnect-Cause -----------------------------
DISCONNECT_REBOOTING: Final = 0
DISCONNECT_BUSY: Final = 1
DISCONNECT_DO_NOT_WANT_TO_TALK_TO_YOU: Final = 2

NO_INBAND_SECURITY: Final = 0
"""Inband-Security-Id: TLS, when used, is set up before CER (RFC 6733 section 2.2)."""

_RESULT_NAMES: Final[dict[int, str]] = {
    1001: "DIAMETER_MULTI_ROUND_AUTH",
    2001: "DIAMETER_SUCCESS",
    2002: "DIAMETER_LIMITED_SUCCESS",
    3001: "DIAMETER_COMMAND_UNSUPPORTED",
    3002: "DIAMETER_UNABLE_TO_DELIVER",
    3003: "DIAMETER_REALM_NOT_SERVED",
    3004: "DIAMETER_TOO_BUSY",
    3005: "DIAMETER_LOOP_DETECTED",
    3006: "DIAMETER_REDIRECT_INDICATION",
    3007: "DIAMETER_APPLICATION_UNSUPPORTED",
    3008: "DIAMETER_INVALID_HDR_BITS",
    3009: "DIAMETER_INVALID_AVP_BITS",
    3010: "DIAMETER_UNKNOWN_PEER",
    4001: "DIAMETER_AUTHENTICATION_REJECTED",
    4002: "DIAMETER_OUT_OF_SPACE",
    4003: "DIAMETER_ELECTION_LOST",
    5001: "DIAMETER_AVP_UNSUPPORTED",
    5002: "DIAMETER_UNKNOWN_SESSION_ID",
    5003: "DIAMETER_AUTHORIZATION_REJECTED",
    5004: "DIAMETER_INVALID_AVP_VALUE",
    5005: "DIAMETER_MISSING_AVP",
    5006: "DIAMETER_RESOURCES_EXCEEDED",
    5007: "DIAMETER_CONTRADICTING_AVPS",
    5008: "DIAMETER_AVP_NOT_ALLOWED",
    5009: "DIAMETER_AVP_OCCURS_TOO_MANY_TIMES",
    5010: "DIAMETER_NO_COMMON_APPLICATION",
    5011: "DIAMETER_UNSUPPORTED_VERSION",
    5012: "DIAMETER_UNABLE_TO_COMPLY",
    5013: "DIAMETER_INVALID_BIT_IN_HEADER",
    5014: "DIAMETER_INVALID_AVP_LENGTH",
    5015: "DIAMETER_INVALID_MESSAGE_LENGTH",
    5016: "DIAMETER_INVALID_AVP_BIT_COMBO",
    5017: "DIAMETER_NO_COMMON_SECURITY",
}
_EXPERIMENTAL_NAMES: Final[dict[int, str]] = {
    2001: "DIAMETER_FIRST_REGISTRATION",
    2002: "DIAMETER_SUBSEQUENT_REGISTRATION",
    2003: "DIAMETER_UNREGISTERED_SERVICE",
    2004: "DIAMETER_SUCCESS_SERVER_NAME_NOT_STORED",
    4100: "DIAMETER_USER_DATA_NOT_AVAILABLE",
    4101: "DIAMETER_PRIOR_UPDATE_IN_PROGRESS",
    5001: "DIAMETER_ERROR_USER_UNKNOWN",
    5002: "DIAMETER_ERROR_IDENTITIES_DONT_MATCH",
    5003: "DIAMETER_ERROR_IDENTITY_NOT_REGISTERED",
    5004: "DIAMETER_ERROR_ROAMING_NOT_ALLOWED",
    5005: "DIAMETER_ERROR_IDENTITY_ALREADY_REGISTERED",
    5006: "DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED",
    5007: "DIAMETER_ERROR_IN_ASSIGNMENT_TYPE",
    5008: "DIAMETER_ERROR_TOO_MUCH_DATA",
    5009: "DIAMETER_ERROR_NOT_SUPPORTED_USER_DATA",
    5011: "DIAMETER_ERROR_FEATURE_UNSUPPORTED",
    5012: "DIAMETER_ERROR_SERVING_NODE_FEATURE_UNSUPPORTED",
    5100: "DIAMETER_ERROR_USER_DATA_NOT_RECOGNIZED",
    5101: "DIAMETER_ERROR_OPERATION_NOT_ALLOWED",
    5102: "DIAMETER_ERROR_USER_DATA_CANNOT_BE_READ",
    5103: "DIAMETER_ERROR_USER_DATA_CANNOT_BE_MODIFIED",
    5104: "DIAMETER_ERROR_USER_DATA_CANNOT_BE_NOTIFIED",
    5105: "DIAMETER_ERROR_TRANSPARENT_DATA_OUT_OF_SYNC",
    5106: "DIAMETER_ERROR_SUBS_DATA_ABSENT",
    5107: "DIAMETER_ERROR_NO_SUBSCRIPTION_TO_DATA",
    5108: "DIAMETER_ERROR_DSAI_NOT_AVAILABLE",
    5112: "DIAMETER_ERROR_UNKNOWN_SERVICE_INDICATION",
}


def result_name(code: int, experimental: bool = False) -> str:
    """The symbolic name of a (plain or 3GPP experimental) result code."""
    table = _EXPERIMENTAL_NAMES if experimental else _RESULT_NAMES
    return table.get(code, str(code))


@dataclass(frozen=True, slots=True)
class ApplicationId:
    """One application a peer supports, as advertised in CER/CEA."""

    application_id: int
    """Auth-Application-Id (16777216 Cx, 16777217 Sh)."""
    vendor_id: int = 0
    """Vendor-Id of Vendor-Specific-Application-Id; 0 for a plain Auth-Application-Id."""


CX_APPLICATION: Final = ApplicationId(APP_CX, VENDOR_3GPP)
SH_APPLICATION: Final = ApplicationId(APP_SH, VENDOR_3GPP)


def as_application(app: ApplicationId | int) -> ApplicationId:
    """Accept a bare application id: Cx and Sh become 3GPP vendor-specific."""
    if isinstance(app, ApplicationId):
        return app
    return ApplicationId(app, VENDOR_3GPP if app in (APP_CX, APP_SH) else 0)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a peer says about itself in CER or CEA."""

    origin_host: str
    """Origin-Host: the peer's Diameter identity (an FQDN)."""
    origin_realm: str
    """Origin-Realm."""
    host_ip_addresses: tuple[str, ...]
    """Host-IP-Address values (IPv4/IPv6 text)."""
    vendor_id: int
    """Vendor-Id of the implementation (0 here)."""
    product_name: str
    """Product-Name."""
    applications: tuple[ApplicationId, ...] = ()
    """Supported auth applications (plain and vendor-specific)."""
    supported_vendor_ids: tuple[int, ...] = ()
    """Supported-Vendor-Id values."""
    origin_state_id: int | None = None
    """Origin-State-Id: changes when the peer restarts."""
    firmware_revision: int | None = None
    """Firmware-Revision."""


def _capability_avps(caps: Capabilities) -> list[Avp]:
    if not caps.host_ip_addresses:
        raise DiameterError("CER/CEA need at least one Host-IP-Address")
    avps = [
        utf8_avp(AVP_ORIGIN_HOST, caps.origin_host),
        utf8_avp(AVP_ORIGIN_REALM, caps.origin_realm),
    ]
    avps += [address_avp(AVP_HOST_IP_ADDRESS, ip) for ip in caps.host_ip_addresses]
    avps.append(uint32_avp(AVP_VENDOR_ID, caps.vendor_id))
    avps.append(utf8_avp(AVP_PRODUCT_NAME, caps.product_name, mandatory=False))
    if caps.origin_state_id is not None:
        avps.append(uint32_avp(AVP_ORIGIN_STATE_ID, caps.origin_state_id))
    avps += [uint32_avp(AVP_SUPPORTED_VENDOR_ID, v) for v in caps.supported_vendor_ids]
    for app in caps.applications:
        if app.vendor_id:
            avps.append(vendor_specific_application_id(app.application_id, app.vendor_id))
        else:
            avps.append(uint32_avp(AVP_AUTH_APPLICATION_ID, app.application_id))
    avps.append(int32_avp(AVP_INBAND_SECURITY_ID, NO_INBAND_SECURITY))
    if caps.firmware_revision is not None:
        avps.append(uint32_avp(AVP_FIRMWARE_REVISION, caps.firmware_revision, mandatory=False))
    return avps


def build_cer(caps: Capabilities, *, hop_by_hop: int = 0, end_to_end: int = 0) -> DiameterMessage:
    """Capabilities-Exchange-Request advertising ``caps``."""
    return DiameterMessage(
        command_code=CMD_CAPABILITIES_EXCHANGE,
        application_id=APP_BASE,
        request=True,
        avps=tuple(_capability_avps(caps)),
        hop_by_hop=hop_by_hop,
        end_to_end=end_to_end,
        proxiable=False,
    )


def build_cea(
    request: DiameterMessage, caps: Capabilities, result_code: int = DIAMETER_SUCCESS
) -> DiameterMessage:
    """Capabilities-Exchange-Answer to ``request`` (no Session-Id in CE)."""
    avps = _capability_avps(caps)
    # answer_for() adds Origin-Host/Realm itself; keep the rest of the capabilities.
    rest = [a for a in avps if a.code not in (AVP_ORIGIN_HOST, AVP_ORIGIN_REALM)]
    answer = answer_for(
        request,
        origin_host=caps.origin_host,
        origin_realm=caps.origin_realm,
        result_code=result_code,
        avps=rest,
    )
    return answer


def parse_capabilities(message: DiameterMessage) -> Capabilities:
    """The capabilities carried by a CER or CEA."""
    if message.command_code != CMD_CAPABILITIES_EXCHANGE:
        raise DiameterError(f"{message.name} is not a capabilities exchange")
    apps: list[ApplicationId] = [
        ApplicationId(a.as_uint32()) for a in message.find_all(AVP_AUTH_APPLICATION_ID)
    ]
    apps += [ApplicationId(a.as_uint32()) for a in message.find_all(AVP_ACCT_APPLICATION_ID)]
    for vsai in message.find_all(AVP_VENDOR_SPECIFIC_APPLICATION_ID):
        vendor = vsai.find(AVP_VENDOR_ID)
        auth = vsai.find(AVP_AUTH_APPLICATION_ID) or vsai.find(AVP_ACCT_APPLICATION_ID)
        if auth is None:
            raise DiameterError("Vendor-Specific-Application-Id without an application id")
        apps.append(ApplicationId(auth.as_uint32(), vendor.as_uint32() if vendor else 0))
    state = message.get_uint32(AVP_ORIGIN_STATE_ID)
    firmware = message.get_uint32(AVP_FIRMWARE_REVISION)
    return Capabilities(
        origin_host=message.require_str(AVP_ORIGIN_HOST),
        origin_realm=message.require_str(AVP_ORIGIN_REALM),
        host_ip_addresses=tuple(a.as_address() for a in message.find_all(AVP_HOST_IP_ADDRESS)),
        vendor_id=message.get_uint32(AVP_VENDOR_ID) or 0,
        product_name=message.get_str(AVP_PRODUCT_NAME) or "",
        applications=tuple(apps),
        supported_vendor_ids=tuple(
            a.as_uint32() for a in message.find_all(AVP_SUPPORTED_VENDOR_ID)
        ),
        origin_state_id=state,
        firmware_revision=firmware,
    )


def common_applications(
    local: Iterable[ApplicationId], remote: Iterable[ApplicationId]
) -> tuple[ApplicationId, ...]:
    """The local applications the remote peer also supports (by application id;
    a remote relay, 0xffffffff, supports all)."""
    remote_ids = {app.application_id for app in remote}
    if RELAY_APPLICATION_ID in remote_ids:
        return tuple(local)
    return tuple(app for app in local if app.application_id in remote_ids)


def build_dwr(
    origin_host: str,
    origin_realm: str,
    *,
    origin_state_id: int | None = None,
    hop_by_hop: int = 0,
    end_to_end: int = 0,
) -> DiameterMessage:
    """Device-Watchdog-Request."""
    avps = [utf8_avp(AVP_ORIGIN_HOST, origin_host), utf8_avp(AVP_ORIGIN_REALM, origin_realm)]
    if origin_state_id is not None:
        avps.append(uint32_avp(AVP_ORIGIN_STATE_ID, origin_state_id))
    return DiameterMessage(
        CMD_DEVICE_WATCHDOG, APP_BASE, True, tuple(avps), hop_by_hop, end_to_end, proxiable=False
    )


def build_dwa(
    request: DiameterMessage,
    origin_host: str,
    origin_realm: str,
    result_code: int = DIAMETER_SUCCESS,
) -> DiameterMessage:
    """Device-Watchdog-Answer."""
    return answer_for(
        request, origin_host=origin_host, origin_realm=origin_realm, result_code=result_code
    )


def build_dpr(
    origin_host: str,
    origin_realm: str,
    cause: int = DISCONNECT_REBOOTING,
    *,
    hop_by_hop: int = 0,
    end_to_end: int = 0,
) -> DiameterMessage:
    """Disconnect-Peer-Request with a Disconnect-Cause."""
    avps = (
        utf8_avp(AVP_ORIGIN_HOST, origin_host),
        utf8_avp(AVP_ORIGIN_REALM, origin_realm),
        int32_avp(AVP_DISCONNECT_CAUSE, cause),
    )
    return DiameterMessage(
        CMD_DISCONNECT_PEER, APP_BASE, True, avps, hop_by_hop, end_to_end, proxiable=False
    )


def disconnect_cause(message: DiameterMessage) -> int | None:
    """The Disconnect-Cause of a DPR (None when absent)."""
    avp = message.find(AVP_DISCONNECT_CAUSE)
    return None if avp is None else avp.as_int32()


def build_dpa(
    request: DiameterMessage,
    origin_host: str,
    origin_realm: str,
    result_code: int = DIAMETER_SUCCESS,
) -> DiameterMessage:
    """Disconnect-Peer-Answer."""
    return answer_for(
        request, origin_host=origin_host, origin_realm=origin_realm, result_code=result_code
    )


def is_base_command(message: DiameterMessage) -> bool:
    """True for the peer-level commands CE, DW and DP."""
    return message.command_code in (
        CMD_CAPABILITIES_EXCHANGE,
        CMD_DEVICE_WATCHDOG,
        CMD_DISCONNECT_PEER,
    )
