"""Sh (and Ph): typed commands of 3GPP TS 29.328 / TS 29.329 and the Sh-Data
XML (TS 29.328 annex D, ``ShDataType.xsd``).

Commands (application 16777217, all proxiable)::

    306 UDR/UDA  User-Data              AS/PNA -> HSS  read data about a user
    308 SNR/SNA  Subscribe-Notifications AS/PNA -> HSS  (un)subscribe to changes
    309 PNR/PNA  Push-Notification      HSS -> AS/PNA  the changed data

The presence network agent (PNA) uses Sh as the Ph reference point: it reads
and subscribes to the IMS user state and S-CSCF name of presentities.

``Expiry-Time`` is a Diameter Time (NTP seconds); the dataclasses carry Unix
seconds and convert at the edge.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from lxml import etree

from .codec import (
    APP_SH,
    AVP_CURRENT_LOCATION,
    AVP_DATA_REFERENCE,
    AVP_EXPIRY_TIME,
    AVP_IDENTITY_SET,
    AVP_MSISDN,
    AVP_ORIGIN_HOST,
    AVP_ORIGIN_REALM,
    AVP_PUBLIC_IDENTITY,
    AVP_REQUESTED_DOMAIN,
    AVP_SEND_DATA_INDICATION,
    AVP_SERVER_NAME,
    AVP_SERVICE_INDICATION,
    AVP_SESSION_ID,
    AVP_SH_USER_DATA,
    AVP_SUBS_REQ_TYPE,
    AVP_USER_IDENTITY,
    AVP_USER_NAME,
    VENDOR_3GPP,
    Avp,
    DiameterError,
    DiameterMessage,
    Result,
    grouped_avp,
    int32_avp,
    octets_avp,
    uint32_avp,
    utf8_avp,
)
from .cx import (
    InitialFilterCriteria,
    Routing,
    answer_message,
    child_text,
    ifc_element,
    int_text,
    parse_ifc,
    parse_xml,
    request_message,
)

__all__ = [
    "CMD_PUSH_NOTIFICATION",
    "CMD_SUBSCRIBE_NOTIFICATIONS",
    "CMD_USER_DATA",
    "DataReference",
    "IdentitySet",
    "ImsUserState",
    "LocationInformation",
    "PushNotificationAnswer",
    "PushNotificationRequest",
    "RepositoryData",
    "ShData",
    "SubsReqType",
    "SubscribeNotificationsAnswer",
    "SubscribeNotificationsRequest",
    "UserDataAnswer",
    "UserDataRequest",
    "UserIdentity",
    "build_sh_data",
    "parse_sh_data",
]

CMD_USER_DATA: Final = 306
CMD_SUBSCRIBE_NOTIFICATIONS: Final = 308
CMD_PUSH_NOTIFICATION: Final = 309

_NTP_UNIX_OFFSET: Final = 2208988800


class DataReference(IntEnum):
    """Data-Reference (TS 29.329 6.3.4): which part of the user data."""

    REPOSITORY_DATA = 0
    IMS_PUBLIC_IDENTITY = 10
    IMS_USER_STATE = 11
    S_CSCF_NAME = 12
    INITIAL_FILTER_CRITERIA = 13
    LOCATION_INFORMATION = 14
    USER_STATE = 15
    CHARGING_INFORMATION = 16
    MSISDN = 17


class SubsReqType(IntEnum):
    """Subs-Req-Type (TS 29.329 6.3.6)."""

    SUBSCRIBE = 0
    UNSUBSCRIBE = 1


class IdentitySet(IntEnum):
    """Identity-Set (TS 29.329 6.3.10)."""

    ALL_IDENTITIES = 0
    REGISTERED_IDENTITIES = 1
    IMPLICIT_IDENTITIES = 2
    ALIAS_IDENTITIES = 3


class ImsUserState(IntEnum):
    """``IMSUserState`` of Sh-Data (TS 29.328 7.6.4)."""

    NOT_REGISTERED = 0
    REGISTERED = 1
    REGISTERED_UNREG_SERVICES = 2
    AUTHENTICATION_PENDING = 3


def _ntp(unix_seconds: int) -> int:
    return (unix_seconds + _NTP_UNIX_OFFSET) & 0xFFFFFFFF


def _unix(ntp_seconds: int) -> int:
    # RFC 6733 4.3.1 / RFC 2030: values with the top bit clear are after 2036.
    if ntp_seconds & 0x80000000:
        return ntp_seconds - _NTP_UNIX_OFFSET
    return ntp_seconds + (1 << 32) - _NTP_UNIX_OFFSET


@dataclass(frozen=True, slots=True)
class UserIdentity:
    """User-Identity (TS 29.329 6.3.1): a Public-Identity or an MSISDN."""

    public_identity: str | None = None
    """Public-Identity: the IMPU."""
    msisdn: bytes | None = None
    """MSISDN (TBCD digits, as in TS 29.329 6.3.2)."""

    def to_avp(self) -> Avp:
        """The grouped AVP."""
        children = []
        if self.public_identity is not None:
            children.append(utf8_avp(AVP_PUBLIC_IDENTITY, self.public_identity, VENDOR_3GPP))
        if self.msisdn is not None:
            children.append(octets_avp(AVP_MSISDN, self.msisdn, VENDOR_3GPP))
        if not children:
            raise DiameterError("User-Identity needs a Public-Identity or an MSISDN")
        return grouped_avp(AVP_USER_IDENTITY, children, VENDOR_3GPP)

    @classmethod
    def from_message(cls, message: DiameterMessage) -> UserIdentity:
        """Read the User-Identity AVP of a request."""
        avp = message.find(AVP_USER_IDENTITY, VENDOR_3GPP)
        if avp is None:
            raise DiameterError(f"{message.name}: missing User-Identity")
        public = avp.find(AVP_PUBLIC_IDENTITY, VENDOR_3GPP)
        msisdn = avp.find(AVP_MSISDN, VENDOR_3GPP)
        if public is None and msisdn is None:
            raise DiameterError(f"{message.name}: empty User-Identity")
        return cls(
            None if public is None else public.as_str(),
            None if msisdn is None else msisdn.payload,
        )


def _check(message: DiameterMessage, code: int, request: bool) -> None:
    if message.command_code != code or message.request != request:
        want = "request" if request else "answer"
        raise DiameterError(f"expected command {code} {want}, got {message.name}")


def _session(message: DiameterMessage) -> str:
    return message.require_str(AVP_SESSION_ID)


def _ints(message: DiameterMessage, code: int) -> tuple[int, ...]:
    return tuple(a.as_int32() for a in message.find_all(code, VENDOR_3GPP))


def _opt_int(message: DiameterMessage, code: int) -> int | None:
    avp = message.find(code, VENDOR_3GPP)
    return None if avp is None else avp.as_int32()


def _common_avps(
    *,
    server_name: str | None,
    service_indications: Iterable[bytes],
    data_references: Iterable[int],
    identity_sets: Iterable[int],
) -> list[Avp]:
    avps: list[Avp] = []
    if server_name is not None:
        avps.append(utf8_avp(AVP_SERVER_NAME, server_name, VENDOR_3GPP))
    avps += [octets_avp(AVP_SERVICE_INDICATION, s, VENDOR_3GPP) for s in service_indications]
    avps += [int32_avp(AVP_DATA_REFERENCE, d, VENDOR_3GPP) for d in data_references]
    avps += [int32_avp(AVP_IDENTITY_SET, i, VENDOR_3GPP) for i in identity_sets]
    return avps


def _answer_head(message: DiameterMessage) -> tuple[str, str, Result]:
    return (
        message.require_str(AVP_ORIGIN_HOST),
        message.require_str(AVP_ORIGIN_REALM),
        Result.of(message),
    )


# --- UDR / UDA -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserDataRequest:
    """UDR (TS 29.329 6.1.1): read the user data named by Data-Reference."""

    session_id: str
    """Session-Id."""
    routing: Routing
    """Origin and destination."""
    user_identity: UserIdentity
    """The user asked about."""
    data_references: tuple[int, ...]
    """Data-Reference values (:class:`DataReference`), at least one."""
    service_indications: tuple[bytes, ...] = ()
    """Service-Indication values (for RepositoryData)."""
    identity_sets: tuple[int, ...] = ()
    """Identity-Set values (for IMSPublicIdentity)."""
    server_name: str | None = None
    """Server-Name (for initial filter criteria of one AS)."""
    requested_domain: int | None = None
    """Requested-Domain: 0 CS, 1 PS (for LocationInformation and UserState)."""
    current_location: int | None = None
    """Current-Location: 0 do not initiate active location retrieval."""

    def to_message(self, *, hop_by_hop: int = 0, end_to_end: int = 0) -> DiameterMessage:
        """The UDR message."""
        if not self.data_references:
            raise DiameterError("UDR needs at least one Data-Reference")
        avps = [self.user_identity.to_avp()]
        avps += _common_avps(
            server_name=self.server_name,
            service_indications=self.service_indications,
            data_references=self.data_references,
            identity_sets=self.identity_sets,
        )
        if self.requested_domain is not None:
            avps.append(int32_avp(AVP_REQUESTED_DOMAIN, self.requested_domain, VENDOR_3GPP))
        if self.current_location is not None:
            avps.append(int32_avp(AVP_CURRENT_LOCATION, self.current_location, VENDOR_3GPP))
        return request_message(
            CMD_USER_DATA, APP_SH, self.session_id, self.routing, avps,
            hop_by_hop=hop_by_hop, end_to_end=end_to_end,
        )

    @classmethod
    def from_message(cls, message: DiameterMessage) -> UserDataRequest:
        """Parse a UDR."""
        _check(message, CMD_USER_DATA, True)
        refs = _ints(message, AVP_DATA_REFERENCE)
        if not refs:
            raise DiameterError("UDR: missing Data-Reference")
        return cls(
            session_id=_session(message),
            routing=Routing.from_message(message),
            user_identity=UserIdentity.from_message(message),
            data_references=refs,
            service_indications=tuple(
                a.payload for a in message.find_all(AVP_SERVICE_INDICATION, VENDOR_3GPP)
            ),
            identity_sets=_ints(message, AVP_IDENTITY_SET),
            server_name=message.server_name,
            requested_domain=_opt_int(message, AVP_REQUESTED_DOMAIN),
            current_location=_opt_int(message, AVP_CURRENT_LOCATION),
        )


@dataclass(frozen=True, slots=True)
class UserDataAnswer:
    """UDA: the result and the Sh-Data XML."""

    origin_host: str
    """Origin-Host of the HSS."""
    origin_realm: str
    """Origin-Realm of the HSS."""
    result: Result
    """Result-Code or Experimental-Result."""
    user_data: bytes | None = None
    """User-Data: the Sh-Data XML (:func:`parse_sh_data`)."""

    def to_message(self, request: DiameterMessage) -> DiameterMessage:
        """The UDA answering ``request``."""
        avps = []
        if self.user_data is not None:
            avps.append(octets_avp(AVP_SH_USER_DATA, self.user_data, VENDOR_3GPP))
        return answer_message(request, self.origin_host, self.origin_realm, self.result, avps)

    @classmethod
    def from_message(cls, message: DiameterMessage) -> UserDataAnswer:
        """Parse a UDA."""
        _check(message, CMD_USER_DATA, False)
        host, realm, result = _answer_head(message)
        return cls(host, realm, result, message.sh_user_data)

    def sh_data(self) -> ShData | None:
        """The parsed Sh-Data, when User-Data is present."""
        return None if self.user_data is None else parse_sh_data(self.user_data)


# --- SNR / SNA -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubscribeNotificationsRequest:
    """SNR (TS 29.329 6.1.5): (un)subscribe to changes of user data."""

    session_id: str
    """Session-Id."""
    routing: Routing
    """Origin and destination."""
    user_identity: UserIdentity
    """The user watched."""
    subs_req_type: int
    """Subs-Req-Type (:class:`SubsReqType`)."""
    data_references: tuple[int, ...]
    """Data-Reference values watched, at least one."""
    service_indications: tuple[bytes, ...] = ()
    """Service-Indication values (for RepositoryData)."""
    identity_sets: tuple[int, ...] = ()
    """Identity-Set values."""
    server_name: str | None = None
    """Server-Name."""
    send_data_indication: bool = False
    """Send-Data-Indication: also return the current data in the SNA."""
    expiry_time: int | None = None
    """Expiry-Time wished, in Unix seconds."""
    user_name: str | None = None
    """User-Name."""

    def to_message(self, *, hop_by_hop: int = 0, end_to_end: int = 0) -> DiameterMessage:
        """The SNR message."""
        if not self.data_references:
            raise DiameterError("SNR needs at least one Data-Reference")
        avps = [self.user_identity.to_avp()]
        if self.send_data_indication:
            avps.append(int32_avp(AVP_SEND_DATA_INDICATION, 1, VENDOR_3GPP))
        avps.append(int32_avp(AVP_SUBS_REQ_TYPE, self.subs_req_type, VENDOR_3GPP))
        avps += _common_avps(
            server_name=self.server_name,
            service_indications=self.service_indications,
            data_references=self.data_references,
            identity_sets=self.identity_sets,
        )
        if self.expiry_time is not None:
            avps.append(uint32_avp(AVP_EXPIRY_TIME, _ntp(self.expiry_time), VENDOR_3GPP))
        if self.user_name is not None:
            avps.append(utf8_avp(AVP_USER_NAME, self.user_name))
        return request_message(
            CMD_SUBSCRIBE_NOTIFICATIONS, APP_SH, self.session_id, self.routing, avps,
            hop_by_hop=hop_by_hop, end_to_end=end_to_end,
        )

    @classmethod
    def from_message(cls, message: DiameterMessage) -> SubscribeNotificationsRequest:
        """Parse a SNR."""
        _check(message, CMD_SUBSCRIBE_NOTIFICATIONS, True)
        refs = _ints(message, AVP_DATA_REFERENCE)
        subs_type = _opt_int(message, AVP_SUBS_REQ_TYPE)
        if not refs or subs_type is None:
            raise DiameterError("SNR: missing Data-Reference or Subs-Req-Type")
        expiry = message.find(AVP_EXPIRY_TIME, VENDOR_3GPP)
        return cls(
            session_id=_session(message),
            routing=Routing.from_message(message),
            user_identity=UserIdentity.from_message(message),
            subs_req_type=subs_type,
            data_references=refs,
            service_indications=tuple(
                a.payload for a in message.find_all(AVP_SERVICE_INDICATION, VENDOR_3GPP)
            ),
            identity_sets=_ints(message, AVP_IDENTITY_SET),
            server_name=message.server_name,
            send_data_indication=bool(_opt_int(message, AVP_SEND_DATA_INDICATION)),
            expiry_time=None if expiry is None else _unix(expiry.as_uint32()),
            user_name=message.user_name,
        )


@dataclass(frozen=True, slots=True)
class SubscribeNotificationsAnswer:
    """SNA: the result, the data when asked for, the granted expiry."""

    origin_host: str
    """Origin-Host of the HSS."""
    origin_realm: str
    """Origin-Realm of the HSS."""
    result: Result
    """Result-Code or Experimental-Result."""
    user_data: bytes | None = None
    """User-Data: the Sh-Data XML (with Send-Data-Indication)."""
    expiry_time: int | None = None
    """Expiry-Time granted, in Unix seconds; None for no expiry."""

    def to_message(self, request: DiameterMessage) -> DiameterMessage:
        """The SNA answering ``request``."""
        avps = []
        if self.user_data is not None:
            avps.append(octets_avp(AVP_SH_USER_DATA, self.user_data, VENDOR_3GPP))
        if self.expiry_time is not None:
            avps.append(uint32_avp(AVP_EXPIRY_TIME, _ntp(self.expiry_time), VENDOR_3GPP))
        return answer_message(request, self.origin_host, self.origin_realm, self.result, avps)

    @classmethod
    def from_message(cls, message: DiameterMessage) -> SubscribeNotificationsAnswer:
        """Parse a SNA."""
        _check(message, CMD_SUBSCRIBE_NOTIFICATIONS, False)
        host, realm, result = _answer_head(message)
        expiry = message.find(AVP_EXPIRY_TIME, VENDOR_3GPP)
        return cls(
            host, realm, result, message.sh_user_data,
            None if expiry is None else _unix(expiry.as_uint32()),
        )

    def sh_data(self) -> ShData | None:
        """The parsed Sh-Data, when User-Data is present."""
        return None if self.user_data is None else parse_sh_data(self.user_data)


# --- PNR / PNA -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PushNotificationRequest:
    """PNR (TS 29.329 6.1.7): the HSS pushes changed data to a subscriber."""

    session_id: str
    """Session-Id."""
    routing: Routing
    """Origin (the HSS) and destination (the subscribed AS/PNA)."""
    user_identity: UserIdentity
    """The user whose data changed."""
    user_data: bytes
    """User-Data: the Sh-Data XML with the changed parts."""
    user_name: str | None = None
    """User-Name."""

    def to_message(self, *, hop_by_hop: int = 0, end_to_end: int = 0) -> DiameterMessage:
        """The PNR message."""
        avps = [self.user_identity.to_avp()]
        if self.user_name is not None:
            avps.append(utf8_avp(AVP_USER_NAME, self.user_name))
        avps.append(octets_avp(AVP_SH_USER_DATA, self.user_data, VENDOR_3GPP))
        return request_message(
            CMD_PUSH_NOTIFICATION, APP_SH, self.session_id, self.routing, avps,
            hop_by_hop=hop_by_hop, end_to_end=end_to_end,
        )

    @classmethod
    def from_message(cls, message: DiameterMessage) -> PushNotificationRequest:
        """Parse a PNR."""
        _check(message, CMD_PUSH_NOTIFICATION, True)
        data = message.sh_user_data
        if data is None:
            raise DiameterError("PNR: missing User-Data")
        return cls(
            session_id=_session(message),
            routing=Routing.from_message(message),
            user_identity=UserIdentity.from_message(message),
            user_data=data,
            user_name=message.user_name,
        )

    def sh_data(self) -> ShData:
        """The parsed Sh-Data."""
        return parse_sh_data(self.user_data)


@dataclass(frozen=True, slots=True)
class PushNotificationAnswer:
    """PNA: the subscriber's result."""

    origin_host: str
    """Origin-Host of the AS/PNA."""
    origin_realm: str
    """Origin-Realm of the AS/PNA."""
    result: Result
    """Result-Code or Experimental-Result."""

    def to_message(self, request: DiameterMessage) -> DiameterMessage:
        """The PNA answering ``request``."""
        return answer_message(request, self.origin_host, self.origin_realm, self.result)

    @classmethod
    def from_message(cls, message: DiameterMessage) -> PushNotificationAnswer:
        """Parse a PNA."""
        _check(message, CMD_PUSH_NOTIFICATION, False)
        host, realm, result = _answer_head(message)
        return cls(host, realm, result)


# --- Sh-Data XML (TS 29.328 annex D) ---------------------------------------


@dataclass(frozen=True, slots=True)
class RepositoryData:
    """``RepositoryData``: transparent data an AS stored for a user."""

    service_indication: str
    """``ServiceIndication``: which service's data."""
    sequence_number: int
    """``SequenceNumber``: 0..65535, increments on every update."""
    service_data: str = ""
    """``ServiceData``: the data, as text."""


_CS_FIELDS: Final = (
    ("location_number", "LocationNumber"),
    ("cell_global_id", "CellGlobalId"),
    ("service_area_id", "ServiceAreaId"),
    ("location_area_id", "LocationAreaId"),
    ("geographical_information", "GeographicalInformation"),
    ("vlr_number", "VLRNumber"),
    ("msc_number", "MSCNumber"),
    ("age_of_location_information", "AgeOfLocationInformation"),
)
_PS_FIELDS: Final = (
    ("cell_global_id", "CellGlobalId"),
    ("service_area_id", "ServiceAreaId"),
    ("location_area_id", "LocationAreaId"),
    ("routing_area_id", "RoutingAreaId"),
    ("geographical_information", "GeographicalInformation"),
    ("sgsn_number", "SGSNNumber"),
    ("age_of_location_information", "AgeOfLocationInformation"),
)


@dataclass(frozen=True, slots=True)
class LocationInformation:
    """``CSLocationInformation`` / ``PSLocationInformation`` (TS 29.328 7.6.6).

    Values are kept as the text of the XML elements (the hex or digit
    encodings of TS 29.002); a field the domain does not define is an error
    when building."""

    location_number: str | None = None
    """``LocationNumber`` (CS)."""
    cell_global_id: str | None = None
    """``CellGlobalId``."""
    service_area_id: str | None = None
    """``ServiceAreaId``."""
    location_area_id: str | None = None
    """``LocationAreaId``."""
    routing_area_id: str | None = None
    """``RoutingAreaId`` (PS)."""
    geographical_information: str | None = None
    """``GeographicalInformation``."""
    vlr_number: str | None = None
    """``VLRNumber`` (CS)."""
    msc_number: str | None = None
    """``MSCNumber`` (CS)."""
    sgsn_number: str | None = None
    """``SGSNNumber`` (PS)."""
    age_of_location_information: int | None = None
    """``AgeOfLocationInformation``, in minutes."""


@dataclass(frozen=True, slots=True)
class ShData:
    """``Sh-Data``: the parts of the user data that were asked for."""

    public_identities: tuple[str, ...] = ()
    """``PublicIdentifiers/IMSPublicIdentity``."""
    msisdns: tuple[str, ...] = ()
    """``PublicIdentifiers/MSISDN``."""
    repository_data: tuple[RepositoryData, ...] = ()
    """``RepositoryData`` elements."""
    scscf_name: str | None = None
    """``Sh-IMS-Data/S-CSCFName``."""
    ifcs: tuple[InitialFilterCriteria, ...] = ()
    """``Sh-IMS-Data/IFCs``."""
    ims_user_state: int | None = None
    """``Sh-IMS-Data/IMSUserState`` (:class:`ImsUserState`)."""
    cs_location: LocationInformation | None = None
    """``CSLocationInformation``."""
    ps_location: LocationInformation | None = None
    """``PSLocationInformation``."""
    cs_user_state: int | None = None
    """``CSUserState``: 0 CAMELBusy, 1 NetworkDeterminedNotReachable,
    2 AssumedIdle, 3 NotProvidedFromVLR."""
    ps_user_state: int | None = None
    """``PSUserState``: 0 Detached, 1 AttachedNotReachableForPaging,
    2 AttachedReachableForPaging, 3 ConnectedNotReachableForPaging,
    4 ConnectedReachableForPaging, 5 NotProvidedFromSGSN."""
    extra: tuple[str, ...] = ()
    """Names of top-level elements present but not modelled (ignored)."""


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def _location_element(
    parent: etree._Element, tag: str, location: LocationInformation, fields: tuple[tuple[str, str], ...]
) -> None:
    allowed = {name for name, _ in fields}
    for name, _ in _CS_FIELDS + _PS_FIELDS:
        if name not in allowed and getattr(location, name) is not None:
            raise DiameterError(f"{tag} has no {name}")
    element = _sub(parent, tag)
    for name, element_tag in fields:
        value = getattr(location, name)
        if value is not None:
            _sub(element, element_tag, str(value))


def _parse_location(
    element: etree._Element, fields: tuple[tuple[str, str], ...]
) -> LocationInformation:
    tags = dict(fields)

    def text(name: str) -> str | None:
        tag = tags.get(name)
        return None if tag is None else child_text(element, tag)

    return LocationInformation(
        location_number=text("location_number"),
        cell_global_id=text("cell_global_id"),
        service_area_id=text("service_area_id"),
        location_area_id=text("location_area_id"),
        routing_area_id=text("routing_area_id"),
        geographical_information=text("geographical_information"),
        vlr_number=text("vlr_number"),
        msc_number=text("msc_number"),
        sgsn_number=text("sgsn_number"),
        age_of_location_information=int_text(
            element, "AgeOfLocationInformation", "LocationInformation"
        ),
    )


def build_sh_data(data: ShData) -> bytes:
    """The ``Sh-Data`` document (UTF-8, with XML declaration)."""
    root = etree.Element("Sh-Data")
    if data.public_identities or data.msisdns:
        identifiers = _sub(root, "PublicIdentifiers")
        for impu in data.public_identities:
            _sub(identifiers, "IMSPublicIdentity", impu)
        for msisdn in data.msisdns:
            _sub(identifiers, "MSISDN", msisdn)
    for repo in data.repository_data:
        repo_el = _sub(root, "RepositoryData")
        _sub(repo_el, "ServiceIndication", repo.service_indication)
        _sub(repo_el, "SequenceNumber", str(repo.sequence_number))
        _sub(repo_el, "ServiceData", repo.service_data)
    if data.scscf_name is not None or data.ifcs or data.ims_user_state is not None:
        ims = _sub(root, "Sh-IMS-Data")
        if data.scscf_name is not None:
            _sub(ims, "S-CSCFName", data.scscf_name)
        if data.ifcs:
            ifcs = _sub(ims, "IFCs")
            for ifc in data.ifcs:
                ifc_element(ifcs, ifc)
        if data.ims_user_state is not None:
            _sub(ims, "IMSUserState", str(int(data.ims_user_state)))
    if data.cs_location is not None:
        _location_element(root, "CSLocationInformation", data.cs_location, _CS_FIELDS)
    if data.ps_location is not None:
        _location_element(root, "PSLocationInformation", data.ps_location, _PS_FIELDS)
    if data.cs_user_state is not None:
        _sub(root, "CSUserState", str(data.cs_user_state))
    if data.ps_user_state is not None:
        _sub(root, "PSUserState", str(data.ps_user_state))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


_KNOWN: Final = frozenset(
    {
        "PublicIdentifiers",
        "RepositoryData",
        "Sh-IMS-Data",
        "CSLocationInformation",
        "PSLocationInformation",
        "CSUserState",
        "PSUserState",
    }
)


def parse_sh_data(data: bytes) -> ShData:
    """Parse a ``Sh-Data`` document."""
    what = "Sh-Data"
    root = parse_xml(data, what)
    if root.tag != what:
        raise DiameterError(f"{what}: root element is {root.tag!r}")
    impus: list[str] = []
    msisdns: list[str] = []
    identifiers = root.find("PublicIdentifiers")
    if identifiers is not None:
        impus = [(e.text or "").strip() for e in identifiers.findall("IMSPublicIdentity")]
        msisdns = [(e.text or "").strip() for e in identifiers.findall("MSISDN")]
    repos = []
    for repo_el in root.findall("RepositoryData"):
        indication = child_text(repo_el, "ServiceIndication")
        sequence = int_text(repo_el, "SequenceNumber", what)
        if indication is None or sequence is None:
            raise DiameterError(f"{what}: RepositoryData without ServiceIndication or SequenceNumber")
        repos.append(RepositoryData(indication, sequence, child_text(repo_el, "ServiceData") or ""))
    scscf: str | None = None
    ifcs: tuple[InitialFilterCriteria, ...] = ()
    state: int | None = None
    ims = root.find("Sh-IMS-Data")
    if ims is not None:
        scscf = child_text(ims, "S-CSCFName")
        ifcs_el = ims.find("IFCs")
        if ifcs_el is not None:
            ifcs = tuple(parse_ifc(e) for e in ifcs_el.findall("InitialFilterCriteria"))
        state = int_text(ims, "IMSUserState", what)
    cs_el = root.find("CSLocationInformation")
    ps_el = root.find("PSLocationInformation")
    extra = tuple(
        str(child.tag) for child in root if isinstance(child.tag, str) and child.tag not in _KNOWN
    )
    return ShData(
        public_identities=tuple(impus),
        msisdns=tuple(msisdns),
        repository_data=tuple(repos),
        scscf_name=scscf,
        ifcs=ifcs,
        ims_user_state=state,
        cs_location=None if cs_el is None else _parse_location(cs_el, _CS_FIELDS),
        ps_location=None if ps_el is None else _parse_location(ps_el, _PS_FIELDS),
        cs_user_state=int_text(root, "CSUserState", what),
        ps_user_state=int_text(root, "PSUserState", what),
        extra=extra,
    )
