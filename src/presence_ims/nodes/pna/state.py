"""What the network knows about each presentity, sans-IO: the PNA's core.

Each input interface updates *facts* of a presentity:

========  ====================================  ===============================
fact      fed by                                holds
========  ====================================  ===============================
ims       Pi (reginfo), Ph (IMSUserState)       registered?, active contacts
cs        Pc (MSC/VLR feed), Ph (CS state/loc)  attached, reachable, busy, LAI, cell
ps        Pg (SGSN feed), Ph (PS state/loc)     attached, reachable, busy, RAI, cell
pdp       Pk (RADIUS accounting)                open IP sessions (address, id)
location  Pl (MLP)                              latitude, longitude, radius, method
========  ====================================  ===============================

Every fact remembers when it last changed (``since``, the PIDF timestamp) and
when it was last confirmed (``seen_at``); :meth:`PnaCore.expire` drops facts
not confirmed within ``stale_after[interface]`` seconds, so a source that
disappears stops influencing the presence.  :meth:`PnaCore.document` turns the
facts into PIDF (see :mod:`.mapping`).  No sockets, no clock: ``now`` is an
argument (wall-clock seconds).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ...diameter.sh import ImsUserState, LocationInformation, ShData
from ...documents import pidf
from ...documents.reginfo import RegInfo
from ...elements.feed import FeedEvent
from ...elements.mlp import Position
from ...elements.radius import AccountingRecord
from .errors import PnaError

__all__ = [
    "DomainFact",
    "ImsFact",
    "IpSession",
    "LocationFact",
    "PdpFact",
    "PnaCore",
    "UserDirectory",
    "UserEntry",
    "UserFacts",
]


# --- who is who ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserEntry:
    """A presentity the PNA publishes for and the identities that name it."""

    presentity: str
    """The canonical IMPU (the sip: URI of the implicit set)."""
    identities: tuple[str, ...] = ()
    """Other IMPUs (tel:) and MSISDNs naming the same user."""
    tel: str | None = None
    """A tel: IMPU, used as the contact of the circuit-switched tuple."""


def _key(identity: str) -> str:
    text = identity.strip()
    digits = text.removeprefix("+")
    if digits.isdigit():
        return f"tel:{digits}"
    key = pidf.presentity_key(text)
    if key[0] == "tel":
        return f"tel:{key[1].removeprefix('+')}"
    return "\x00".join(key)


class UserDirectory:
    """Resolves IMPUs, tel URIs and MSISDNs to the presentity they belong to."""

    def __init__(self, entries: Iterable[UserEntry]) -> None:
        self._entries: dict[str, UserEntry] = {}
        self._by_key: dict[str, str] = {}
        for entry in entries:
            self._entries[entry.presentity] = entry
            for identity in (entry.presentity, *entry.identities):
                self._by_key.setdefault(_key(identity), entry.presentity)

    @classmethod
    def from_subscribers(cls, subscribers: Iterable[Any], users: Iterable[str] | None = None) -> UserDirectory:
        """From HSS subscriber configs: one entry per implicit set (the anonymous IMPU excluded)."""
        wanted = None if users is None else {_key(u) for u in users}
        entries: list[UserEntry] = []
        for sub in subscribers:
            for group in sub.impus:
                canonical = next((u for u in group if u.startswith("sip")), group[0])
                if wanted is not None and not any(_key(u) in wanted for u in group):
                    continue
                tel = next((u for u in group if u.startswith("tel:")), None)
                others = [u for u in group if u != canonical]
                if getattr(sub, "msisdn", None):
                    others.append(sub.msisdn)
                entries.append(UserEntry(canonical, tuple(others), tel))
        return cls(entries)

    @property
    def presentities(self) -> tuple[str, ...]:
        """Every presentity, in configuration order."""
        return tuple(self._entries)

    def resolve(self, identity: str) -> str | None:
        """The presentity ``identity`` names, None when it is nobody we serve."""
        try:
            return self._by_key.get(_key(identity))
        except (ValueError, IndexError):
            return None

    def entry(self, presentity: str) -> UserEntry | None:
        """The entry of a presentity."""
        return self._entries.get(presentity)


# --- facts ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImsFact:
    """IMS registration state."""

    registered: bool
    """At least one contact is registered."""
    contacts: tuple[str, ...]
    """Active contact URIs (Pi only)."""
    since: float
    """When ``registered`` last changed."""
    seen_at: float
    """When a source last confirmed it."""
    interface: str
    """Pi or Ph."""


@dataclass(frozen=True, slots=True)
class DomainFact:
    """Circuit-switched (MSC/VLR) or packet-switched (SGSN) state."""

    attached: bool
    """Attached to the domain."""
    reachable: bool
    """Reachable for paging (Sh user state; always true from the feed while attached)."""
    busy: bool | None
    """In a call (CS) or transferring data (PS); None when unknown."""
    area: str | None
    """Location area (CS) or routing area (PS) identity."""
    cell: str | None
    """Cell identity."""
    since: float
    """When attached/reachable/busy last changed."""
    seen_at: float
    """When last confirmed."""
    interface: str
    """Pc, Pg or Ph."""


@dataclass(frozen=True, slots=True)
class IpSession:
    """One PDP context / IP session reported by a GGSN."""

    session_id: str
    """Acct-Session-Id."""
    address: str | None
    """Framed-IP-Address."""
    nas: str
    """The GGSN (NAS-Identifier or NAS-IP-Address)."""
    started_at: float
    """When the Start arrived."""


@dataclass(frozen=True, slots=True)
class PdpFact:
    """The IP sessions of a presentity (empty after the last Stop)."""

    sessions: tuple[IpSession, ...]
    """Open sessions."""
    since: float
    """When the set of sessions last changed."""
    seen_at: float
    """When last confirmed (Start, Interim-Update, Stop)."""


@dataclass(frozen=True, slots=True)
class LocationFact:
    """A geodetic position from the GMLC."""

    latitude: float
    """Degrees north."""
    longitude: float
    """Degrees east."""
    altitude: float | None
    """Metres."""
    radius: float | None
    """Uncertainty radius, metres."""
    method: str | None
    """Positioning method (GPS, Cell ...)."""
    measured_at: float
    """When the position was determined."""
    seen_at: float
    """When it arrived."""


@dataclass(slots=True)
class UserFacts:
    """Every fact about one presentity."""

    reg_contacts: dict[str, bool] = field(default_factory=dict)
    """Pi: contact URI -> active."""
    ims_pi: ImsFact | None = None
    ims_ph: ImsFact | None = None
    cs: DomainFact | None = None
    ps: DomainFact | None = None
    pdp: PdpFact | None = None
    location: LocationFact | None = None

    @property
    def ims(self) -> ImsFact | None:
        """The registration fact: Pi's when there is one (it knows contacts), else Ph's."""
        return self.ims_pi or self.ims_ph

    def empty(self) -> bool:
        return not any((self.ims_pi, self.ims_ph, self.cs, self.ps, self.pdp, self.location))


_DEFAULT_STALE: Mapping[str, float] = {
    "Pi": 7200.0, "Ph": 7200.0, "Pc": 3600.0, "Pg": 3600.0, "Pk": 86400.0, "Pl": 900.0,
}  # fmt: skip


class PnaCore:
    """The facts of every presentity and the rules that update and expire them."""

    def __init__(
        self,
        directory: UserDirectory,
        *,
        stale_after: Mapping[str, float] | None = None,
        location_retention: float = 900.0,
    ) -> None:
        self.directory = directory
        self.stale_after = {**_DEFAULT_STALE, **(stale_after or {})}
        """Interface -> seconds a fact lives without confirmation."""
        self.location_retention = location_retention
        self._facts: dict[str, UserFacts] = {}

    # -- access ------------------------------------------------------------------------
    def facts(self, presentity: str) -> UserFacts:
        """The facts of a presentity (an empty set when nothing is known)."""
        return self._facts.get(presentity) or UserFacts()

    def _user(self, presentity: str) -> UserFacts:
        return self._facts.setdefault(presentity, UserFacts())

    def resolve(self, identity: str, interface: str) -> str:
        """The presentity of ``identity``; PnaError (``unknown_user``) when none."""
        presentity = self.directory.resolve(identity)
        if presentity is None:
            raise PnaError(f"{interface}: no subscriber {identity[:60]!r}", "unknown_user")
        return presentity

    # -- Pi -------------------------------------------------------------------------------
    def on_reginfo(self, presentity: str, info: RegInfo, now: float) -> None:
        """A reg-event NOTIFY body for ``presentity``'s subscription."""
        mine = [r for r in info.registrations if self.directory.resolve(r.aor) == presentity]
        if not mine:
            raise PnaError("Pi: reginfo names none of the presentity's IMPUs", "foreign_aor")
        user = self._user(presentity)
        reported: dict[str, bool] = {}
        for reg in mine:  # the IMPUs of one implicit set share their contacts
            for c in reg.contacts:
                active = reg.state != "terminated" and c.state == "active"
                reported[c.uri] = reported.get(c.uri, False) or active
        contacts = {} if info.state == "full" else dict(user.reg_contacts)
        contacts.update(reported)
        user.reg_contacts = contacts
        active_uris = tuple(uri for uri, active in contacts.items() if active)
        registered = bool(active_uris)
        prev = user.ims_pi
        since = prev.since if prev is not None and prev.registered == registered else now
        user.ims_pi = ImsFact(registered, active_uris, since, now, "Pi")

    # -- Ph --------------------------------------------------------------------------------
    def on_sh(self, presentity: str, data: ShData, now: float) -> None:
        """Sh-Data from a UDA, SNA or PNR about ``presentity``."""
        user = self._user(presentity)
        if data.ims_user_state is not None:
            registered = data.ims_user_state == ImsUserState.REGISTERED
            prev = user.ims_ph
            since = prev.since if prev is not None and prev.registered == registered else now
            user.ims_ph = ImsFact(registered, (), since, now, "Ph")
        cs_state = _CS_STATES.get(data.cs_user_state) if data.cs_user_state is not None else None
        ps_state = _PS_STATES.get(data.ps_user_state) if data.ps_user_state is not None else None
        if cs_state is not None or data.cs_location is not None:
            user.cs = _domain_update(user.cs, cs_state, _area_cell(data.cs_location, "cs"), now, "Ph")
        if ps_state is not None or data.ps_location is not None:
            user.ps = _domain_update(user.ps, ps_state, _area_cell(data.ps_location, "ps"), now, "Ph")

    # -- Pc, Pg ------------------------------------------------------------------------------
    def on_feed(self, event: FeedEvent, now: float) -> str:
        """An authenticated feed event; returns the presentity it changed."""
        presentity = self.resolve(event.user, event.interface)
        user = self._user(presentity)
        prev = user.cs if event.type == "msc" else user.ps
        state: tuple[bool, bool, bool | None] | None
        if event.event == "attach":
            busy = prev.busy if prev is not None and prev.attached else False
            state = (True, True, busy)
        elif event.event == "detach":
            state = (False, False, None)
        elif event.event in ("busy", "idle"):
            state = (True, True, event.event == "busy")
        else:  # location: implies attached
            state = None if prev is not None and prev.attached else (True, True, False)
        place = (event.area, event.cell) if event.event != "detach" else ("", "")
        fact = _domain_update(prev, state, place, now, event.interface)
        if event.type == "msc":
            user.cs = fact
        else:
            user.ps = fact
        return presentity

    # -- Pk --------------------------------------------------------------------------------
    def on_accounting(self, record: AccountingRecord, now: float) -> list[str]:
        """An authenticated Accounting-Request; returns the presentities it changed."""
        if record.status in ("on", "off"):
            # the GGSN (re)started or stops: every session it reported is gone
            touched: list[str] = []
            for presentity, user in self._facts.items():
                if user.pdp is None:
                    continue
                kept = tuple(s for s in user.pdp.sessions if s.nas != record.nas)
                if kept != user.pdp.sessions:
                    user.pdp = PdpFact(kept, now, now)
                    touched.append(presentity)
            return touched
        identity = record.calling_station_id or record.user_name or ""
        presentity = self.resolve(identity, "Pk")
        user = self._user(presentity)
        sessions = {s.session_id: s for s in (user.pdp.sessions if user.pdp else ())}
        sid = record.session_id or ""
        before = dict(sessions)
        if record.status == "stop":
            sessions.pop(sid, None)
        else:
            old = sessions.get(sid)
            address = record.framed_ip or (old.address if old else None)
            started = old.started_at if old is not None else now
            sessions[sid] = IpSession(sid, address, record.nas, started)
        prev = user.pdp
        changed = prev is None or sessions != before
        since = now if changed or prev is None else prev.since
        user.pdp = PdpFact(tuple(sessions.values()), since, now)
        return [presentity]

    # -- Pl ---------------------------------------------------------------------------------
    def on_position(self, position: Position, now: float) -> str:
        """A position from an MLP report; returns the presentity it changed."""
        presentity = self.resolve(position.msid, "Pl")
        if position.error is not None or position.latitude is None or position.longitude is None:
            raise PnaError(f"Pl: no position ({position.error or 'empty'})", "position_error")
        measured = position.time.timestamp() if position.time is not None else now
        if measured + self.stale_after["Pl"] <= now:
            raise PnaError("Pl: position older than the location lifetime", "stale")
        measured = min(measured, now)
        self._user(presentity).location = LocationFact(
            position.latitude,
            position.longitude,
            position.altitude,
            position.radius,
            position.method,
            measured,
            now,
        )
        return presentity

    # -- staleness -----------------------------------------------------------------------------
    def _deadlines(self, user: UserFacts) -> list[tuple[float, str]]:
        out: list[tuple[float, str]] = []
        for name in ("ims_pi", "ims_ph", "cs", "ps"):
            fact = getattr(user, name)
            if fact is not None:
                out.append((fact.seen_at + self.stale_after.get(fact.interface, 3600.0), name))
        if user.pdp is not None:
            out.append((user.pdp.seen_at + self.stale_after["Pk"], "pdp"))
        if user.location is not None:
            out.append((user.location.seen_at + self.stale_after["Pl"], "location"))
        return out

    def next_expiry(self) -> float | None:
        """When the next fact goes stale."""
        times = [t for user in self._facts.values() for t, _ in self._deadlines(user)]
        return min(times) if times else None

    def expire(self, now: float) -> list[str]:
        """Drop stale facts; the presentities that changed."""
        changed: list[str] = []
        for presentity, user in list(self._facts.items()):
            gone = [name for t, name in self._deadlines(user) if t <= now]
            for name in gone:
                setattr(user, name, None)
                if name == "ims_pi":
                    user.reg_contacts = {}
            if gone:
                changed.append(presentity)
            if user.empty():
                del self._facts[presentity]
        return changed


# --- Sh user states ----------------------------------------------------------------------

_CS_STATES: Mapping[int, tuple[bool, bool, bool | None]] = {
    0: (True, True, True),  # CAMELBusy
    1: (True, False, None),  # NetworkDeterminedNotReachable
    2: (True, True, False),  # AssumedIdle
}
"""CSUserState (TS 29.328) -> (attached, reachable, busy); 3 NotProvidedFromVLR: unknown."""

_PS_STATES: Mapping[int, tuple[bool, bool, bool | None]] = {
    0: (False, False, None),  # Detached
    1: (True, False, False),  # AttachedNotReachableForPaging
    2: (True, True, False),  # AttachedReachableForPaging
    3: (True, False, True),  # ConnectedNotReachableForPaging
    4: (True, True, True),  # ConnectedReachableForPaging
}
"""PSUserState -> (attached, reachable, busy); 5 NotProvidedFromSGSN: unknown."""


def _area_cell(info: LocationInformation | None, domain: str) -> tuple[str | None, str | None]:
    if info is None:
        return (None, None)
    area = info.location_area_id if domain == "cs" else (info.routing_area_id or info.location_area_id)
    return (area, info.cell_global_id or info.service_area_id)


def _domain_update(
    prev: DomainFact | None,
    state: tuple[bool, bool, bool | None] | None,
    place: tuple[str | None, str | None],
    now: float,
    interface: str,
) -> DomainFact:
    """A new CS/PS fact: ``state`` None keeps the previous state, a place part None keeps
    the previous value and "" clears it."""
    if state is None:
        state = (prev.attached, prev.reachable, prev.busy) if prev is not None else (True, True, None)
    area, cell = place
    new_area = (prev.area if prev is not None else None) if area is None else (area or None)
    new_cell = (prev.cell if prev is not None else None) if cell is None else (cell or None)
    if not state[0]:
        new_area = new_cell = None
    changed = prev is None or (prev.attached, prev.reachable, prev.busy) != state
    since = now if changed or prev is None else prev.since
    fact = DomainFact(state[0], state[1], state[2], new_area, new_cell, since, now, interface)
    if prev is not None and not changed and (prev.area, prev.cell) != (new_area, new_cell):
        fact = replace(fact, since=now)
    return fact
