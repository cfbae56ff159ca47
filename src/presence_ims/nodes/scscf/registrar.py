"""S-CSCF registrar state, sans-IO: bindings, pending challenges, reg-event subscriptions.

Authentication itself needs the HSS (MAR) and so lives in the node; this
module keeps what the registrar knows and turns it into ``reginfo``
documents (RFC 3680) and 200 OK headers.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ...diameter.cx import ImsSubscription, InitialFilterCriteria
from ...documents import reginfo
from ...sip.dialog import Dialog

Scheme = Literal["aka", "digest"]


@dataclass(slots=True)
class PendingAuth:
    """A challenge sent and not yet answered."""

    impi: str
    impu: str
    scheme: Scheme
    nonce: str
    expires_at: float
    xres: bytes = b""
    ck: bytes = b""
    ik: bytes = b""
    rand: bytes = b""
    ha1: str = ""
    realm: str = ""


@dataclass(slots=True)
class Binding:
    contact: str
    """Contact URI text."""
    expires_at: float
    path: list[str]
    call_id: str
    cseq: int
    registered_at: float
    params: str = ""
    """Contact header parameters as received (``;+sip.instance=...``)."""


@dataclass(slots=True)
class Registration:
    """One IMPI's registration at this S-CSCF (all IMPUs of its implicit set)."""

    impi: str
    impus: list[str]
    """The implicit registration set; the first is the default IMPU."""
    scheme: Scheme
    profile: ImsSubscription | None = None
    bindings: dict[str, Binding] = field(default_factory=dict)
    """By contact URI."""

    def active(self, now: float) -> list[Binding]:
        return [b for b in self.bindings.values() if b.expires_at > now]

    def to_dict(self) -> dict[str, Any]:
        from ...diameter.cx import build_ims_subscription

        return {
            "impi": self.impi,
            "impus": self.impus,
            "scheme": self.scheme,
            "profile": build_ims_subscription(self.profile).decode() if self.profile else None,
            "bindings": [asdict(b) for b in self.bindings.values()],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Registration:
        from ...diameter.cx import parse_ims_subscription

        profile = parse_ims_subscription(d["profile"].encode()) if d.get("profile") else None
        reg = cls(d["impi"], list(d["impus"]), d["scheme"], profile)
        for b in d.get("bindings", ()):
            binding = Binding(**b)
            reg.bindings[binding.contact] = binding
        return reg


@dataclass(slots=True)
class RegSubscription:
    """A subscription to the reg event of an IMPU (the UE, its P-CSCF, the PNA)."""

    id: str
    impu: str
    watcher: str
    dialog: Dialog
    expires_at: float
    version: int = 0
    contact: str = ""
    ends_with_registration: bool = False
    """The UE itself or its P-CSCF (TS 24.229 5.4.2.1.2): the subscription ends,
    ``terminated;reason=noresource``, when every IMPU of the set is de-registered.
    A network watcher (the PNA) keeps watching across registrations."""


def reg_id(impu: str) -> str:
    return "reg" + hashlib.sha1(impu.encode()).hexdigest()[:10]


def contact_id(impu: str, contact: str) -> str:
    return "c" + hashlib.sha1(f"{impu}\x00{contact}".encode()).hexdigest()[:10]


ContactEvent = Literal[
    "registered", "created", "refreshed", "shortened", "expired", "deactivated", "probation",
    "unregistered", "rejected",
]  # fmt: skip


def build_reginfo(
    impus: list[str],
    bindings: list[Binding],
    *,
    version: int,
    now: float,
    events: dict[str, ContactEvent] | None = None,
    terminated: dict[str, ContactEvent] | None = None,
) -> bytes:
    """A full reginfo document for an implicit registration set.

    ``events`` gives the event of active contacts that changed (default
    ``registered``); ``terminated`` lists contacts that just went away with
    the reason (expired, unregistered, deactivated, rejected).
    """
    events = events or {}
    terminated = terminated or {}
    registrations = []
    for impu in impus:
        contacts = [
            reginfo.Contact(
                id=contact_id(impu, b.contact),
                state="active",
                event=events.get(b.contact, "registered"),
                uri=b.contact,
                expires=max(0, int(b.expires_at - now)),
                duration_registered=max(0, int(now - b.registered_at)),
            )
            for b in bindings
        ]
        contacts += [
            reginfo.Contact(
                id=contact_id(impu, uri), state="terminated", event=event, uri=uri, expires=0
            )
            for uri, event in terminated.items()
        ]
        state: Literal["init", "active", "terminated"] = "active" if bindings else "terminated"
        registrations.append(reginfo.Registration(impu, reg_id(impu), state, tuple(contacts)))
    return reginfo.build(reginfo.RegInfo(version, "full", tuple(registrations)))


# -- initial filter criteria ------------------------------------------------------------

SESSION_ORIGINATING = 0
SESSION_TERMINATING_REGISTERED = 1
SESSION_TERMINATING_UNREGISTERED = 2
SESSION_ORIGINATING_UNREGISTERED = 3

_PROFILE_PART = {
    SESSION_ORIGINATING: 0,
    SESSION_TERMINATING_REGISTERED: 0,
    SESSION_TERMINATING_UNREGISTERED: 1,
    SESSION_ORIGINATING_UNREGISTERED: 1,
}
"""Session case -> the ProfilePartIndicator that applies (0 registered, 1 unregistered)."""


def matching_ifcs(
    profile: ImsSubscription | None,
    impu: str,
    *,
    method: str,
    headers: dict[str, list[str]],
    request_uri: str,
    session_case: int,
) -> list[InitialFilterCriteria]:
    """The iFCs of the service profile holding ``impu`` that match, by priority.

    An iFC with a ProfilePartIndicator (0 registered, 1 unregistered) only
    applies in the session cases of that state (TS 29.228 B.2.2).
    """
    import re

    if profile is None:
        return []
    part = _PROFILE_PART.get(session_case)
    out: list[InitialFilterCriteria] = []
    for sp in profile.service_profiles:
        if not any(_same_impu(p.identity, impu) for p in sp.public_identities):
            continue
        for ifc in sp.ifcs:
            if part is not None and ifc.profile_part_indicator not in (None, part):
                continue
            tp = ifc.trigger_point
            if tp is None:
                out.append(ifc)
                continue
            groups: dict[int, list[bool]] = {}
            for spt in tp.spts:
                if spt.method is not None:
                    hit = spt.method.upper() == method.upper()
                elif spt.header is not None:
                    values = headers.get(spt.header.lower(), [])
                    hit = bool(values) and (
                        spt.content is None
                        or any(re.fullmatch(spt.content, v.split(";")[0].strip(), re.I) for v in values)
                    )
                elif spt.session_case is not None:
                    hit = spt.session_case == session_case
                elif spt.request_uri is not None:
                    hit = re.search(spt.request_uri, request_uri) is not None
                else:
                    hit = True
                if spt.negated:
                    hit = not hit
                for g in spt.groups:
                    groups.setdefault(g, []).append(hit)
            if tp.cnf:  # AND of ORed groups
                ok = all(any(v) for v in groups.values())
            else:  # OR of ANDed groups
                ok = any(all(v) for v in groups.values())
            if ok:
                out.append(ifc)
    return sorted(out, key=lambda i: i.priority)


def _same_impu(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()
