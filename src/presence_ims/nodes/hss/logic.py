"""The HSS, sans-IO: subscriber data, registration state, Cx and Sh answers.

``HssLogic.handle(request, now)`` returns the answer and a list of
:class:`SendRequest` actions (PNR to Sh subscribers after a change, RTR to an
S-CSCF after an administrative de-registration) that the node sends over the
peers' existing connections.  No sockets, no clocks, no randomness here: AKA
vectors come from an injected :class:`VectorSource`.

Registration state follows TS 29.228 (Cx procedures, sections 6.1-6.3) per
implicit registration set; Sh follows TS 29.328 section 6.1.  Unknown users
get DIAMETER_ERROR_USER_UNKNOWN (5001), an IMPU of another IMPI
DIAMETER_ERROR_IDENTITIES_DONT_MATCH (5002); a malformed request gets a
protocol answer (5005/5004), never an exception.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from ...diameter.base import (
    DIAMETER_AUTHENTICATION_REJECTED,
    DIAMETER_AUTHORIZATION_REJECTED,
    DIAMETER_COMMAND_UNSUPPORTED,
    DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED,
    DIAMETER_ERROR_IDENTITIES_DONT_MATCH,
    DIAMETER_ERROR_IDENTITY_NOT_REGISTERED,
    DIAMETER_ERROR_IN_ASSIGNMENT_TYPE,
    DIAMETER_ERROR_SUBS_DATA_ABSENT,
    DIAMETER_ERROR_USER_DATA_CANNOT_BE_NOTIFIED,
    DIAMETER_ERROR_USER_DATA_CANNOT_BE_READ,
    DIAMETER_ERROR_USER_UNKNOWN,
    DIAMETER_FIRST_REGISTRATION,
    DIAMETER_INVALID_AVP_VALUE,
    DIAMETER_MISSING_AVP,
    DIAMETER_SUBSEQUENT_REGISTRATION,
    DIAMETER_SUCCESS,
    DIAMETER_UNABLE_TO_COMPLY,
    DIAMETER_UNREGISTERED_SERVICE,
)
from ...diameter.codec import (
    APP_CX,
    APP_SH,
    DiameterError,
    DiameterMessage,
    Result,
    SessionIdGenerator,
    answer_for,
)
from ...diameter.cx import (
    AUTH_SCHEME_AKA,
    AUTH_SCHEME_DIGEST,
    AUTH_SCHEME_DIGEST_MD5,
    AUTH_SCHEME_UNKNOWN,
    CMD_LOCATION_INFO,
    CMD_MULTIMEDIA_AUTH,
    CMD_SERVER_ASSIGNMENT,
    CMD_USER_AUTHORIZATION,
    ApplicationServer,
    DeregistrationReason,
    ImsSubscription,
    InitialFilterCriteria,
    LocationInfoAnswer,
    LocationInfoRequest,
    MultimediaAuthAnswer,
    MultimediaAuthRequest,
    PublicIdentity,
    ReasonCode,
    RegistrationTerminationRequest,
    Routing,
    ServerAssignmentAnswer,
    ServerAssignmentRequest,
    ServerAssignmentType,
    ServerCapabilities,
    ServicePointTrigger,
    ServiceProfile,
    SipAuthDataItem,
    SipDigestAuthenticate,
    TriggerPoint,
    UserAuthorizationAnswer,
    UserAuthorizationRequest,
    UserAuthorizationType,
    answer_message,
    build_ims_subscription,
)
from ...diameter.sh import (
    CMD_SUBSCRIBE_NOTIFICATIONS,
    CMD_USER_DATA,
    DataReference,
    IdentitySet,
    ImsUserState,
    LocationInformation,
    PushNotificationRequest,
    RepositoryData,
    ShData,
    SubscribeNotificationsAnswer,
    SubscribeNotificationsRequest,
    SubsReqType,
    UserDataAnswer,
    UserDataRequest,
    UserIdentity,
    build_sh_data,
)
from .model import HssConfig, IfcConfig, SubscriberConfig

__all__ = [
    "AuthVectorLike",
    "HssError",
    "HssLogic",
    "Registration",
    "SendRequest",
    "ShSubscription",
    "VectorSource",
    "ifc_from_config",
]

_DIGEST_SCHEMES: Final = (AUTH_SCHEME_DIGEST, AUTH_SCHEME_DIGEST_MD5, "Digest")

NOTIFIABLE: Final = frozenset(
    {
        DataReference.REPOSITORY_DATA,
        DataReference.IMS_USER_STATE,
        DataReference.S_CSCF_NAME,
        DataReference.INITIAL_FILTER_CRITERIA,
        # Not notifiable in TS 29.328; offered here so the PNA can follow
        # location and user state changes the element simulators feed in.
        DataReference.LOCATION_INFORMATION,
        DataReference.USER_STATE,
    }
)
"""Data-Reference values an SNR may subscribe to."""

_REGISTRATION_REFS: Final = (DataReference.IMS_USER_STATE, DataReference.S_CSCF_NAME)


class HssError(Exception):
    """The error of :mod:`presence_ims.nodes.hss`: unknown user in an admin
    call, a vector source failure (bad AUTS, missing keys)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AuthVectorLike(Protocol):
    """What the HSS needs of an AKA vector (``security.aka.AuthVector`` fits)."""

    @property
    def rand(self) -> bytes:
        """RAND (16 bytes)."""

    @property
    def autn(self) -> bytes:
        """AUTN (16 bytes)."""

    @property
    def xres(self) -> bytes:
        """XRES."""

    @property
    def ck(self) -> bytes:
        """CK (16 bytes)."""

    @property
    def ik(self) -> bytes:
        """IK (16 bytes)."""


class VectorSource(Protocol):
    """Where AKA vectors come from (the AuC)."""

    def vector(self, sub: SubscriberConfig, now: float) -> AuthVectorLike:
        """A fresh vector for ``sub`` (advances its SQN); HssError on failure."""

    def resync(self, sub: SubscriberConfig, rand: bytes, auts: bytes) -> int:
        """Resynchronise from the UE's AUTS; the SQN_MS recovered.  HssError
        when MAC-S does not verify."""


@dataclass(frozen=True, slots=True)
class SendRequest:
    """An action: send ``message`` to the peer with Origin-Host ``peer``."""

    peer: str
    """Diameter Origin-Host of the destination (it holds a connection to us)."""
    message: DiameterMessage
    """The request (RTR or PNR)."""
    interface: str
    """Reference interface for logs: ``Cx`` or ``Sh``."""


@dataclass(frozen=True, slots=True)
class Registration:
    """Registration state of one IMPU, as the HSS keeps it."""

    state: ImsUserState
    """NOT_REGISTERED, REGISTERED, REGISTERED_UNREG_SERVICES (unregistered
    state with an S-CSCF keeping the profile) or AUTHENTICATION_PENDING."""
    server_name: str | None = None
    """SIP URI of the assigned (or stored) S-CSCF."""
    scscf_host: str | None = None
    """Diameter Origin-Host of that S-CSCF (where RTR goes)."""
    scscf_realm: str | None = None
    """Diameter Origin-Realm of that S-CSCF."""


_UNREGISTERED: Final = Registration(ImsUserState.NOT_REGISTERED)


@dataclass(frozen=True, slots=True)
class ShSubscription:
    """One Sh subscription (SNR) to changes of one IMPU's data."""

    impu: str
    """The IMPU watched."""
    data_reference: int
    """The Data-Reference watched."""
    service_indication: bytes | None
    """Service-Indication, for RepositoryData."""
    host: str
    """Origin-Host of the subscriber (where PNR goes)."""
    realm: str
    """Origin-Realm of the subscriber."""
    expires_at: float
    """Expiry, Unix seconds."""


@dataclass(slots=True)
class _UserData:
    """Sh data an HSS holds beside the profile (fed by the network elements)."""

    repository: dict[str, RepositoryData] = field(default_factory=dict)
    cs_location: LocationInformation | None = None
    ps_location: LocationInformation | None = None
    cs_user_state: int | None = None
    ps_user_state: int | None = None


def ifc_from_config(ifc: IfcConfig) -> InitialFilterCriteria:
    """An iFC in CNF: (method OR method...) AND (Event matches) AND (session case OR ...)."""
    spts: list[ServicePointTrigger] = []
    group = 0
    if ifc.methods:
        spts += [ServicePointTrigger(groups=(group,), method=m) for m in ifc.methods]
        group += 1
    if ifc.event is not None:
        spts.append(ServicePointTrigger(groups=(group,), header="Event", content=ifc.event))
        group += 1
    if ifc.session_cases:
        spts += [ServicePointTrigger(groups=(group,), session_case=c) for c in ifc.session_cases]
    part = {None: None, "registered": 0, "unregistered": 1}[ifc.profile_part]
    return InitialFilterCriteria(
        priority=ifc.priority,
        application_server=ApplicationServer(
            ifc.server_name, 0 if ifc.default_handling == "continue" else 1
        ),
        trigger_point=TriggerPoint(True, tuple(spts)) if spts else None,
        profile_part_indicator=part,
    )


class HssLogic:
    """Subscriber data, registration state and Sh subscriptions of one HSS."""

    def __init__(
        self,
        config: HssConfig,
        vectors: VectorSource,
        *,
        session_high: int = 0,
        logger: Any = None,
    ) -> None:
        self._config = config
        self._vectors = vectors
        self._log = logger
        self._sessions = SessionIdGenerator(config.origin_host, session_high)
        self._by_impi: dict[str, SubscriberConfig] = {s.impi: s for s in config.subscribers}
        self._by_impu: dict[str, SubscriberConfig] = {}
        self._set_of: dict[str, tuple[str, ...]] = {}
        self._by_msisdn: dict[str, str] = {}
        for sub in config.subscribers:
            for group in sub.implicit_sets:
                for impu in group:
                    self._by_impu[impu] = sub
                    self._set_of[impu] = group
            if sub.msisdn is not None:
                self._by_msisdn[sub.msisdn] = sub.default_impu
        self._registrations: dict[str, Registration] = {}
        self._user_data: dict[str, _UserData] = {}
        self._subscriptions: dict[tuple[str, int, bytes | None, str], ShSubscription] = {}
        self._cx: dict[int, Callable[[DiameterMessage, float], _Outcome]] = {
            CMD_USER_AUTHORIZATION: self._uar,
            CMD_MULTIMEDIA_AUTH: self._mar,
            CMD_SERVER_ASSIGNMENT: self._sar,
            CMD_LOCATION_INFO: self._lir,
        }
        self._sh: dict[int, Callable[[DiameterMessage, float], _Outcome]] = {
            CMD_USER_DATA: self._udr,
            CMD_SUBSCRIBE_NOTIFICATIONS: self._snr,
        }

    # -- inspection --------------------------------------------------------------

    def registration(self, impu: str) -> Registration:
        """Registration state of ``impu`` (NOT_REGISTERED when unknown)."""
        return self._registrations.get(impu, _UNREGISTERED)

    def subscriptions(self, now: float | None = None) -> tuple[ShSubscription, ...]:
        """Sh subscriptions held (those not expired at ``now`` when given)."""
        return tuple(
            s for s in self._subscriptions.values() if now is None or s.expires_at > now
        )

    def subscriber(self, identity: str) -> SubscriberConfig | None:
        """The subscriber owning an IMPI or IMPU."""
        return self._by_impi.get(identity) or self._by_impu.get(identity)

    # -- entry point ---------------------------------------------------------------

    def handle(
        self, request: DiameterMessage, now: float, peer: str | None = None
    ) -> tuple[DiameterMessage, list[SendRequest]]:
        """Answer a Cx or Sh request; ``peer`` is the Origin-Host of the
        connection it came over (checked against ``sh_allowed_hosts``).
        An answer is not a request: DiameterError."""
        if not request.request:
            raise DiameterError(f"handle() takes requests, got {request.name}")
        self._expire(now)
        table = {APP_CX: self._cx, APP_SH: self._sh}.get(request.application_id, {})
        handler = table.get(request.command_code)
        if handler is None:
            return self._plain(request, DIAMETER_COMMAND_UNSUPPORTED), []
        if request.application_id == APP_SH and not self._sh_allowed(request, peer):
            code = (
                DIAMETER_ERROR_USER_DATA_CANNOT_BE_NOTIFIED
                if request.command_code == CMD_SUBSCRIBE_NOTIFICATIONS
                else DIAMETER_ERROR_USER_DATA_CANNOT_BE_READ
            )
            return self._answer(request, Result(code, True)), []
        try:
            outcome = handler(request, now)
        except DiameterError as exc:
            code = DIAMETER_MISSING_AVP if "missing" in exc.reason else DIAMETER_INVALID_AVP_VALUE
            self._debug("hss_bad_request", command=request.name, reason=exc.reason)
            answer = answer_for(
                request,
                origin_host=self._config.origin_host,
                origin_realm=self._config.realm,
                result_code=code,
                error_message=exc.reason,
            )
            return answer, []
        return outcome.answer, outcome.actions

    # -- helpers -------------------------------------------------------------------

    def _debug(self, event: str, **fields: Any) -> None:
        if self._log is not None:
            self._log.debug(event, **fields)

    def _answer(self, request: DiameterMessage, result: Result) -> DiameterMessage:
        return answer_message(request, self._config.origin_host, self._config.realm, result)

    def _plain(self, request: DiameterMessage, code: int) -> DiameterMessage:
        return answer_for(
            request,
            origin_host=self._config.origin_host,
            origin_realm=self._config.realm,
            result_code=code,
        )

    def _sh_allowed(self, request: DiameterMessage, peer: str | None) -> bool:
        allowed = self._config.sh_allowed_hosts
        if allowed is None:
            return True
        try:
            origin = request.origin_host
        except DiameterError:
            return False
        return peer in allowed if peer is not None else origin in allowed

    def _routing_to(self, host: str, realm: str) -> Routing:
        return Routing(self._config.origin_host, self._config.realm, realm, host)

    def _set_registration(self, impus: Iterable[str], registration: Registration) -> list[str]:
        """Store ``registration`` for ``impus``; the IMPUs whose state or name changed."""
        changed = []
        for impu in impus:
            old = self.registration(impu)
            if registration == _UNREGISTERED:
                self._registrations.pop(impu, None)
            else:
                self._registrations[impu] = registration
            if (old.state, old.server_name) != (registration.state, registration.server_name):
                changed.append(impu)
        return changed

    def _profile(self, sub: SubscriberConfig, impus: Iterable[str]) -> bytes:
        identities = tuple(PublicIdentity(impu, sub.barred) for impu in impus)
        ifcs = tuple(ifc_from_config(ifc) for ifc in sorted(sub.ifc, key=lambda i: i.priority))
        subscription = ImsSubscription(sub.impi, (ServiceProfile(identities, ifcs),))
        return build_ims_subscription(subscription)

    # -- Cx: UAR ---------------------------------------------------------------------

    def _uar(self, request: DiameterMessage, now: float) -> _Outcome:
        uar = UserAuthorizationRequest.from_message(request)
        checked = self._pair(uar.user_name, uar.public_identity)
        if isinstance(checked, Result):
            return _Outcome(self._answer(request, checked))
        sub = checked
        host, realm = self._config.origin_host, self._config.realm
        kind = uar.authorization_type
        if kind != UserAuthorizationType.DE_REGISTRATION and sub.barred:
            return _Outcome(self._answer(request, Result(DIAMETER_AUTHORIZATION_REJECTED)))
        reg = self.registration(uar.public_identity)
        capabilities = ServerCapabilities(server_names=(self._config.scscf_name,))
        if kind == UserAuthorizationType.DE_REGISTRATION:
            if reg.server_name is None:
                answer = UserAuthorizationAnswer(
                    host, realm, Result(DIAMETER_ERROR_IDENTITY_NOT_REGISTERED, True)
                )
            else:
                answer = UserAuthorizationAnswer(
                    host, realm, Result(DIAMETER_SUCCESS), server_name=reg.server_name
                )
        elif kind == UserAuthorizationType.REGISTRATION_AND_CAPABILITIES:
            answer = UserAuthorizationAnswer(
                host, realm, Result(DIAMETER_FIRST_REGISTRATION, True),
                server_capabilities=capabilities,
            )
        elif reg.state in (ImsUserState.REGISTERED, ImsUserState.REGISTERED_UNREG_SERVICES):
            answer = UserAuthorizationAnswer(
                host, realm, Result(DIAMETER_SUBSEQUENT_REGISTRATION, True),
                server_name=reg.server_name,
            )
        elif reg.server_name is not None:
            answer = UserAuthorizationAnswer(
                host, realm, Result(DIAMETER_FIRST_REGISTRATION, True),
                server_name=reg.server_name,
            )
        else:
            answer = UserAuthorizationAnswer(
                host, realm, Result(DIAMETER_FIRST_REGISTRATION, True),
                server_capabilities=capabilities,
            )
        return _Outcome(answer.to_message(request))

    def _pair(self, impi: str, impu: str) -> SubscriberConfig | Result:
        """The subscriber when IMPI and IMPU exist and belong together."""
        by_impi = self._by_impi.get(impi)
        by_impu = self._by_impu.get(impu)
        if by_impi is None or by_impu is None:
            return Result(DIAMETER_ERROR_USER_UNKNOWN, True)
        if by_impi is not by_impu:
            return Result(DIAMETER_ERROR_IDENTITIES_DONT_MATCH, True)
        return by_impi

    # -- Cx: MAR ---------------------------------------------------------------------

    def _mar(self, request: DiameterMessage, now: float) -> _Outcome:
        mar = MultimediaAuthRequest.from_message(request)
        checked = self._pair(mar.user_name, mar.public_identity)
        if isinstance(checked, Result):
            return _Outcome(self._answer(request, checked))
        sub = checked
        scheme = mar.auth_data_item.scheme
        if scheme == AUTH_SCHEME_UNKNOWN:
            scheme = AUTH_SCHEME_AKA if sub.auth_schemes[0] == "aka" else AUTH_SCHEME_DIGEST
        if scheme == AUTH_SCHEME_AKA and "aka" in sub.auth_schemes:
            outcome = self._aka_items(request, mar, sub, now)
            if isinstance(outcome, Result):
                return _Outcome(self._answer(request, outcome))
            items = outcome
        elif scheme in _DIGEST_SCHEMES and "digest" in sub.auth_schemes:
            items = (self._digest_item(sub, scheme),)
        else:
            result = Result(DIAMETER_ERROR_AUTH_SCHEME_NOT_SUPPORTED, True)
            return _Outcome(self._answer(request, result))
        group = self._set_of[mar.public_identity]
        if self.registration(mar.public_identity).state == ImsUserState.NOT_REGISTERED:
            pending = Registration(ImsUserState.AUTHENTICATION_PENDING, mar.server_name)
            self._set_registration(group, pending)
        answer = MultimediaAuthAnswer(
            self._config.origin_host,
            self._config.realm,
            Result(DIAMETER_SUCCESS),
            user_name=sub.impi,
            public_identity=mar.public_identity,
            items=items,
        )
        return _Outcome(answer.to_message(request))

    def _aka_items(
        self,
        request: DiameterMessage,
        mar: MultimediaAuthRequest,
        sub: SubscriberConfig,
        now: float,
    ) -> tuple[SipAuthDataItem, ...] | Result:
        item = mar.auth_data_item
        if item.authorization is not None:
            rand, auts = item.rand, item.auts
            if rand is None or auts is None:
                self._debug("hss_bad_resync", impi=sub.impi)
                return Result(DIAMETER_INVALID_AVP_VALUE)
            try:
                sqn = self._vectors.resync(sub, rand, auts)
            except HssError as exc:
                self._debug("hss_resync_failed", impi=sub.impi, reason=exc.reason)
                return Result(DIAMETER_AUTHENTICATION_REJECTED)
            self._debug("hss_resync", impi=sub.impi, sqn=sqn)
        count = min(max(mar.number_auth_items, 1), self._config.max_auth_items)
        items = []
        try:
            for number in range(1, count + 1):
                vector = self._vectors.vector(sub, now)
                items.append(
                    SipAuthDataItem(
                        scheme=AUTH_SCHEME_AKA,
                        item_number=number,
                        authenticate=bytes(vector.rand) + bytes(vector.autn),
                        authorization=bytes(vector.xres),
                        confidentiality_key=bytes(vector.ck),
                        integrity_key=bytes(vector.ik),
                    )
                )
        except HssError as exc:
            self._debug("hss_vector_failed", impi=sub.impi, reason=exc.reason)
            return Result(DIAMETER_UNABLE_TO_COMPLY)
        return tuple(items)

    def _digest_item(self, sub: SubscriberConfig, scheme: str) -> SipAuthDataItem:
        realm = self._config.realm
        password = sub.digest_password or ""
        ha1 = hashlib.md5(f"{sub.impi}:{realm}:{password}".encode(), usedforsecurity=False)
        return SipAuthDataItem(
            scheme=scheme,
            item_number=1,
            digest=SipDigestAuthenticate(realm=realm, ha1=ha1.hexdigest()),
        )

    # -- Cx: SAR ---------------------------------------------------------------------

    def _sar(self, request: DiameterMessage, now: float) -> _Outcome:
        sar = ServerAssignmentRequest.from_message(request)
        kind = sar.assignment_type
        impi = sar.user_name
        impus = sar.public_identities
        if impus:
            sub = self._by_impu.get(impus[0])
        else:
            sub = self._by_impi.get(impi) if impi is not None else None
        if sub is None or (impi is not None and impi not in self._by_impi):
            return _Outcome(self._answer(request, Result(DIAMETER_ERROR_USER_UNKNOWN, True)))
        if impi is not None and self._by_impi[impi] is not sub:
            result = Result(DIAMETER_ERROR_IDENTITIES_DONT_MATCH, True)
            return _Outcome(self._answer(request, result))
        targets = self._set_of[impus[0]] if impus else sub.all_impus
        scscf = Registration(
            ImsUserState.REGISTERED,
            sar.server_name,
            sar.routing.origin_host,
            sar.routing.origin_realm,
        )
        send_profile = False
        sat = ServerAssignmentType
        if kind in (sat.REGISTRATION, sat.RE_REGISTRATION):
            if impi is None:
                raise DiameterError("SAR: missing User-Name for a registration")
            changed = self._set_registration(targets, scscf)
            send_profile = True
        elif kind == sat.UNREGISTERED_USER:
            unreg = Registration(
                ImsUserState.REGISTERED_UNREG_SERVICES,
                scscf.server_name,
                scscf.scscf_host,
                scscf.scscf_realm,
            )
            changed = self._set_registration(targets, unreg)
            send_profile = True
        elif kind == sat.NO_ASSIGNMENT:
            stored = self.registration(targets[0]).server_name
            if stored is not None and stored != sar.server_name:
                return _Outcome(self._answer(request, Result(DIAMETER_UNABLE_TO_COMPLY)))
            changed = []
            send_profile = True
        elif kind in (
            sat.TIMEOUT_DEREGISTRATION,
            sat.USER_DEREGISTRATION,
            sat.ADMINISTRATIVE_DEREGISTRATION,
            sat.DEREGISTRATION_TOO_MUCH_DATA,
        ):
            changed = self._set_registration(targets, _UNREGISTERED)
        elif kind in (
            sat.TIMEOUT_DEREGISTRATION_STORE_SERVER_NAME,
            sat.USER_DEREGISTRATION_STORE_SERVER_NAME,
        ):
            kept = Registration(ImsUserState.NOT_REGISTERED, sar.server_name)
            changed = self._set_registration(targets, kept)
        elif kind in (sat.AUTHENTICATION_FAILURE, sat.AUTHENTICATION_TIMEOUT):
            pending = [
                i
                for i in targets
                if self.registration(i).state == ImsUserState.AUTHENTICATION_PENDING
            ]
            changed = self._set_registration(pending, _UNREGISTERED)
        else:
            result = Result(DIAMETER_ERROR_IN_ASSIGNMENT_TYPE, True)
            return _Outcome(self._answer(request, result))
        profile_impus = targets if impus else sub.impus[0]
        user_data = (
            self._profile(sub, profile_impus)
            if send_profile and not sar.user_data_already_available
            else None
        )
        answer = ServerAssignmentAnswer(
            self._config.origin_host,
            self._config.realm,
            Result(DIAMETER_SUCCESS),
            user_name=sub.impi,
            user_data=user_data,
        )
        actions = self._notify(changed, _REGISTRATION_REFS, now)
        return _Outcome(answer.to_message(request), actions)

    # -- Cx: LIR ---------------------------------------------------------------------

    def _lir(self, request: DiameterMessage, now: float) -> _Outcome:
        lir = LocationInfoRequest.from_message(request)
        sub = self._by_impu.get(lir.public_identity)
        host, realm = self._config.origin_host, self._config.realm
        if sub is None:
            return _Outcome(self._answer(request, Result(DIAMETER_ERROR_USER_UNKNOWN, True)))
        reg = self.registration(lir.public_identity)
        if reg.state in (ImsUserState.REGISTERED, ImsUserState.REGISTERED_UNREG_SERVICES):
            answer = LocationInfoAnswer(
                host, realm, Result(DIAMETER_SUCCESS), server_name=reg.server_name
            )
        elif sub.unregistered_services:
            if reg.server_name is not None:
                answer = LocationInfoAnswer(
                    host, realm, Result(DIAMETER_UNREGISTERED_SERVICE, True),
                    server_name=reg.server_name,
                )
            else:
                answer = LocationInfoAnswer(
                    host, realm, Result(DIAMETER_UNREGISTERED_SERVICE, True),
                    server_capabilities=ServerCapabilities(
                        server_names=(self._config.scscf_name,)
                    ),
                )
        else:
            answer = LocationInfoAnswer(
                host, realm, Result(DIAMETER_ERROR_IDENTITY_NOT_REGISTERED, True)
            )
        return _Outcome(answer.to_message(request))

    # -- administrative de-registration (RTR) ------------------------------------------

    def deregister(
        self,
        impi: str,
        now: float,
        *,
        reason: int = ReasonCode.PERMANENT_TERMINATION,
        info: str | None = None,
    ) -> list[SendRequest]:
        """De-register every IMPU of ``impi``: RTR to each serving S-CSCF and
        PNR to Sh subscribers of the state.  HssError for an unknown IMPI."""
        sub = self._by_impi.get(impi)
        if sub is None:
            raise HssError(f"unknown IMPI {impi!r}")
        by_scscf: dict[tuple[str, str], list[str]] = {}
        for impu in sub.all_impus:
            reg = self.registration(impu)
            if reg.scscf_host is not None and reg.state in (
                ImsUserState.REGISTERED,
                ImsUserState.REGISTERED_UNREG_SERVICES,
            ):
                key = (reg.scscf_host, reg.scscf_realm or self._config.realm)
                by_scscf.setdefault(key, []).append(impu)
        actions: list[SendRequest] = []
        for (host, realm), impus in by_scscf.items():
            rtr = RegistrationTerminationRequest(
                session_id=self._sessions.next(),
                routing=self._routing_to(host, realm),
                reason=DeregistrationReason(reason, info),
                user_name=impi,
                public_identities=tuple(impus),
            )
            actions.append(SendRequest(host, rtr.to_message(), "Cx"))
        changed = self._set_registration(sub.all_impus, _UNREGISTERED)
        actions += self._notify(changed, _REGISTRATION_REFS, now)
        return actions

    # -- Sh: UDR -----------------------------------------------------------------------

    def _impu_of(self, identity: UserIdentity) -> str | None:
        if identity.public_identity is not None:
            return identity.public_identity if identity.public_identity in self._by_impu else None
        if identity.msisdn is not None:
            try:
                return self._by_msisdn.get(identity.msisdn.decode("ascii"))
            except UnicodeDecodeError:
                return None
        return None

    def _udr(self, request: DiameterMessage, now: float) -> _Outcome:
        udr = UserDataRequest.from_message(request)
        impu = self._impu_of(udr.user_identity)
        if impu is None:
            return _Outcome(self._answer(request, Result(DIAMETER_ERROR_USER_UNKNOWN, True)))
        if any(ref not in _READABLE for ref in udr.data_references):
            result = Result(DIAMETER_ERROR_USER_DATA_CANNOT_BE_READ, True)
            return _Outcome(self._answer(request, result))
        if DataReference.REPOSITORY_DATA in udr.data_references and not udr.service_indications:
            raise DiameterError("UDR: missing Service-Indication for RepositoryData")
        data = self._sh_data(
            impu,
            udr.data_references,
            service_indications=udr.service_indications,
            identity_sets=udr.identity_sets,
            server_name=udr.server_name,
            requested_domain=udr.requested_domain,
        )
        answer = UserDataAnswer(
            self._config.origin_host,
            self._config.realm,
            Result(DIAMETER_SUCCESS),
            user_data=build_sh_data(data),
        )
        return _Outcome(answer.to_message(request))

    def _sh_data(
        self,
        impu: str,
        refs: Iterable[int],
        *,
        service_indications: Iterable[bytes] = (),
        identity_sets: Iterable[int] = (),
        server_name: str | None = None,
        requested_domain: int | None = None,
    ) -> ShData:
        sub = self._by_impu[impu]
        reg = self.registration(impu)
        stored = self._user_data.get(impu, _UserData())
        refs = set(refs)
        impus: tuple[str, ...] = ()
        msisdns: tuple[str, ...] = ()
        if DataReference.IMS_PUBLIC_IDENTITY in refs:
            impus = self._public_identities(sub, impu, set(identity_sets))
        if DataReference.MSISDN in refs and sub.msisdn is not None:
            msisdns = (sub.msisdn,)
        repos: tuple[RepositoryData, ...] = ()
        if DataReference.REPOSITORY_DATA in refs:
            wanted = []
            for indication in service_indications:
                key = indication.decode("utf-8", "replace")
                if key in stored.repository:
                    wanted.append(stored.repository[key])
            repos = tuple(wanted)
        ifcs: tuple[InitialFilterCriteria, ...] = ()
        if DataReference.INITIAL_FILTER_CRITERIA in refs:
            ifcs = tuple(
                ifc_from_config(i)
                for i in sorted(sub.ifc, key=lambda i: i.priority)
                if server_name is None or i.server_name == server_name
            )
        cs = requested_domain in (None, 0)
        ps = requested_domain in (None, 1)
        location = DataReference.LOCATION_INFORMATION in refs
        user_state = DataReference.USER_STATE in refs
        return ShData(
            public_identities=impus,
            msisdns=msisdns,
            repository_data=repos,
            scscf_name=reg.server_name if DataReference.S_CSCF_NAME in refs else None,
            ifcs=ifcs,
            ims_user_state=reg.state if DataReference.IMS_USER_STATE in refs else None,
            cs_location=stored.cs_location if location and cs else None,
            ps_location=stored.ps_location if location and ps else None,
            cs_user_state=stored.cs_user_state if user_state and cs else None,
            ps_user_state=stored.ps_user_state if user_state and ps else None,
        )

    def _public_identities(
        self, sub: SubscriberConfig, impu: str, identity_sets: set[int]
    ) -> tuple[str, ...]:
        if impu == sub.anonymous_impu:
            # The anonymous IMPU is never linked to the user's other identities.
            return (impu,)
        candidates = [i for group in sub.impus for i in group]
        if not identity_sets or IdentitySet.ALL_IDENTITIES in identity_sets:
            return tuple(candidates)
        chosen: list[str] = []
        if IdentitySet.IMPLICIT_IDENTITIES in identity_sets:
            chosen += list(self._set_of[impu])
        if IdentitySet.REGISTERED_IDENTITIES in identity_sets:
            chosen += [
                i for i in candidates if self.registration(i).state == ImsUserState.REGISTERED
            ]
        if IdentitySet.ALIAS_IDENTITIES in identity_sets:
            chosen += [impu]
        return tuple(dict.fromkeys(chosen))

    # -- Sh: SNR -----------------------------------------------------------------------

    def _snr(self, request: DiameterMessage, now: float) -> _Outcome:
        snr = SubscribeNotificationsRequest.from_message(request)
        impu = self._impu_of(snr.user_identity)
        if impu is None:
            return _Outcome(self._answer(request, Result(DIAMETER_ERROR_USER_UNKNOWN, True)))
        if any(ref not in NOTIFIABLE for ref in snr.data_references):
            result = Result(DIAMETER_ERROR_USER_DATA_CANNOT_BE_NOTIFIED, True)
            return _Outcome(self._answer(request, result))
        indications: tuple[bytes | None, ...] = (None,)
        if DataReference.REPOSITORY_DATA in snr.data_references:
            if not snr.service_indications:
                raise DiameterError("SNR: missing Service-Indication for RepositoryData")
            indications = snr.service_indications
        origin = snr.routing
        keys = [
            (impu, ref, indication if ref == DataReference.REPOSITORY_DATA else None)
            for ref in snr.data_references
            for indication in indications
        ]
        if snr.subs_req_type == SubsReqType.UNSUBSCRIBE:
            for sub_impu, ref, indication in keys:
                self._subscriptions.pop((sub_impu, ref, indication, origin.origin_host), None)
            answer = SubscribeNotificationsAnswer(
                self._config.origin_host, self._config.realm, Result(DIAMETER_SUCCESS)
            )
            return _Outcome(answer.to_message(request))
        if snr.subs_req_type != SubsReqType.SUBSCRIBE:
            raise DiameterError(f"SNR: bad Subs-Req-Type {snr.subs_req_type}")
        stored = self._user_data.get(impu, _UserData())
        for _, ref, indication in keys:
            if ref == DataReference.REPOSITORY_DATA and indication is not None:
                if indication.decode("utf-8", "replace") not in stored.repository:
                    result = Result(DIAMETER_ERROR_SUBS_DATA_ABSENT, True)
                    return _Outcome(self._answer(request, result))
        limit = now + self._config.sh_max_expiry
        expires = limit if snr.expiry_time is None else min(float(snr.expiry_time), limit)
        if expires <= now:
            expires = limit
        for sub_impu, ref, indication in keys:
            self._subscriptions[(sub_impu, ref, indication, origin.origin_host)] = ShSubscription(
                sub_impu, ref, indication, origin.origin_host, origin.origin_realm, expires
            )
        user_data = None
        if snr.send_data_indication:
            user_data = build_sh_data(
                self._sh_data(
                    impu,
                    snr.data_references,
                    service_indications=snr.service_indications,
                    identity_sets=snr.identity_sets,
                    server_name=snr.server_name,
                )
            )
        answer = SubscribeNotificationsAnswer(
            self._config.origin_host,
            self._config.realm,
            Result(DIAMETER_SUCCESS),
            user_data=user_data,
            expiry_time=int(expires),
        )
        return _Outcome(answer.to_message(request))

    def _expire(self, now: float) -> None:
        for key, subscription in list(self._subscriptions.items()):
            if subscription.expires_at <= now:
                del self._subscriptions[key]

    # -- Sh: changes and PNR -------------------------------------------------------------

    def update_user_data(
        self,
        impu: str,
        now: float,
        *,
        service_indication: str | None = None,
        service_data: str | None = None,
        cs_location: LocationInformation | None = None,
        ps_location: LocationInformation | None = None,
        cs_user_state: int | None = None,
        ps_user_state: int | None = None,
    ) -> list[SendRequest]:
        """Change the Sh data of ``impu`` (arguments left None stay as they
        are) and return the PNRs for its subscribers.  Repository data gets
        the next sequence number.  HssError for an unknown IMPU."""
        if impu not in self._by_impu:
            raise HssError(f"unknown IMPU {impu!r}")
        self._expire(now)
        stored = self._user_data.setdefault(impu, _UserData())
        changed_refs: list[int] = []
        indication_changed: str | None = None
        if service_indication is not None:
            previous = stored.repository.get(service_indication)
            sequence = 0 if previous is None else (previous.sequence_number + 1) % 65536
            stored.repository[service_indication] = RepositoryData(
                service_indication, sequence, service_data or ""
            )
            changed_refs.append(DataReference.REPOSITORY_DATA)
            indication_changed = service_indication
        if cs_location is not None or ps_location is not None:
            stored.cs_location = cs_location or stored.cs_location
            stored.ps_location = ps_location or stored.ps_location
            changed_refs.append(DataReference.LOCATION_INFORMATION)
        if cs_user_state is not None or ps_user_state is not None:
            stored.cs_user_state = cs_user_state if cs_user_state is not None else stored.cs_user_state
            stored.ps_user_state = ps_user_state if ps_user_state is not None else stored.ps_user_state
            changed_refs.append(DataReference.USER_STATE)
        return self._notify([impu], changed_refs, now, indication_changed)

    def _notify(
        self,
        impus: Iterable[str],
        refs: Iterable[int],
        now: float,
        service_indication: str | None = None,
    ) -> list[SendRequest]:
        """PNR for every live subscription to one of ``refs`` of one of ``impus``."""
        impus = set(impus)
        refs = set(refs)
        wanted = None if service_indication is None else service_indication.encode()
        grouped: dict[tuple[str, str], tuple[str, set[int], list[bytes]]] = {}
        for subscription in self._subscriptions.values():
            if subscription.impu not in impus or subscription.data_reference not in refs:
                continue
            if subscription.expires_at <= now:
                continue
            if subscription.data_reference == DataReference.REPOSITORY_DATA and (
                subscription.service_indication != wanted
            ):
                continue
            key = (subscription.impu, subscription.host)
            entry = grouped.setdefault(key, (subscription.realm, set(), []))
            entry[1].add(subscription.data_reference)
            if subscription.service_indication is not None:
                entry[2].append(subscription.service_indication)
        actions = []
        for (impu, host), (realm, sub_refs, indications) in sorted(grouped.items()):
            data = self._sh_data(impu, sub_refs, service_indications=indications)
            pnr = PushNotificationRequest(
                session_id=self._sessions.next(),
                routing=self._routing_to(host, realm),
                user_identity=UserIdentity(public_identity=impu),
                user_data=build_sh_data(data),
            )
            actions.append(SendRequest(host, pnr.to_message(), "Sh"))
        if actions:
            self._debug("hss_notify", count=len(actions), refs=sorted(refs))
        return actions


_READABLE: Final = frozenset(
    {
        DataReference.REPOSITORY_DATA,
        DataReference.IMS_PUBLIC_IDENTITY,
        DataReference.IMS_USER_STATE,
        DataReference.S_CSCF_NAME,
        DataReference.INITIAL_FILTER_CRITERIA,
        DataReference.LOCATION_INFORMATION,
        DataReference.USER_STATE,
        DataReference.MSISDN,
    }
)


@dataclass(frozen=True, slots=True)
class _Outcome:
    answer: DiameterMessage
    actions: list[SendRequest] = field(default_factory=list)
