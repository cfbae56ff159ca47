"""The Presence Server's logic, sans-IO: PUBLISH, SUBSCRIBE, NOTIFY, rules, timers.

Every entry point takes the parsed request, where it came from (an
:class:`Origin` the node established from the transport) and ``now`` (wall
clock seconds: expiry times survive a restart), and returns an
:class:`Outcome`: the response to send, the NOTIFYs to send, and the changes
to persist.  The node does the I/O.

The PUBLISH handler reads as the RFC 3903 section 6 checklist, each step an
early return; SUBSCRIBE follows RFC 6665 section 4.2.1 and RFC 3856.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import re
import secrets
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from ...documents import compose as composer
from ...documents import pidf, presrules, winfo
from ...documents.xml import DocumentError
from ...sip import Request, SipParseError
from ...sip.dialog import Dialog, dialog_id_of_request
from ...sip.headers import NameAddr, parse_name_addr
from ...sip.message import Headers
from ...sip.uri import URI, SipURI, TelURI, parse_uri
from .model import PublicationRecord, SourceClass, SubscriptionRecord
from .packages import PACKAGES, EventPackage
from .shard import dialog_tag

PIDF = "application/pidf+xml"
WINFO = winfo.CONTENT_TYPE
ANONYMOUS_URI = "sip:anonymous@anonymous.invalid"


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """Limits and policies of the presence core (seconds)."""

    min_expires: int = 60
    default_publish_expires: int = 3600
    max_expires: int = 86400
    default_subscribe_expires: int = 3600
    min_notify_interval: float = 0.0
    """RFC 6446 rate control: minimum seconds between two NOTIFYs of one subscription."""
    default_sub_handling: presrules.SubHandling = "confirm"
    """What applies when no rule matches (RFC 5025 says confirm)."""
    compose_policy: composer.ComposePolicy = composer.DEFAULT_POLICY
    expose_provenance_to_owner: bool = True


@dataclass(frozen=True, slots=True)
class Origin:
    """Who sent a request, as the node established it (never from the message alone)."""

    interface: str
    """Reference interface it arrived on: Peu, Pw, Pen, Pex (or ISC)."""
    source_class: SourceClass
    source_id: str
    """Peer name (``scscf``, ``pna``, ``pea``) or ``open``."""
    trusted: bool
    """The sender is in the trust domain: its P-Asserted-Identity is believed."""
    may_publish: Callable[[str], bool] | None = None
    """Publisher policy: may this peer publish for that presentity? (None: any)."""
    allowed_elements: frozenset[str] | None = None
    """Element kinds this source may publish (tuple, person, device); None: all."""
    destination: dict[str, Any] | None = None
    """Where answers and NOTIFYs go when no route set says (transport, host, port)."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    to_tag: str | None = None


@dataclass(frozen=True, slots=True)
class OutgoingNotify:
    subscription_id: str
    request: Request
    destination: dict[str, Any] | None
    terminal: bool
    """This NOTIFY ends the subscription (it is already removed from the core)."""


@dataclass(slots=True)
class Outcome:
    reply: Reply | None = None
    notifies: list[OutgoingNotify] = field(default_factory=list)
    save_publications: list[PublicationRecord] = field(default_factory=list)
    delete_publications: list[str] = field(default_factory=list)
    save_subscriptions: list[SubscriptionRecord] = field(default_factory=list)
    delete_subscriptions: list[str] = field(default_factory=list)

    def merge(self, other: Outcome) -> Outcome:
        self.notifies.extend(other.notifies)
        self.save_publications.extend(other.save_publications)
        self.delete_publications.extend(other.delete_publications)
        self.save_subscriptions.extend(other.save_subscriptions)
        self.delete_subscriptions.extend(other.delete_subscriptions)
        return self


def aor_key(uri: str) -> str:
    """Normalised presentity key: ``sip:user@host`` (pres: and sips: folded into sip:)."""
    key = pidf.presentity_key(uri)
    if key[0] == "sip":
        user = f"{key[1]}@" if key[1] else ""
        port = f":{key[3]}" if key[3] else ""
        return f"sip:{user}{key[2]}{port}"
    if key[0] == "tel":
        return f"tel:{key[1]}"
    return uri.strip()


def canonical_key(uri: str, aliases: dict[str, str]) -> str:
    """The presentity a URI names: its :func:`aor_key`, through the alias table (a tel URI
    of an implicit registration set -> the set's SIP URI)."""
    key = aor_key(uri)
    return aliases.get(key, key)


def _reply(status: int, reason: str | None = None, *headers: tuple[str, str]) -> Outcome:
    return Outcome(Reply(status, reason, tuple(headers)))


class PresenceCore:
    """Publications, subscriptions and rules of one Presence Server."""

    def __init__(
        self,
        config: CoreConfig,
        *,
        contact: str,
        aliases: dict[str, str] | None = None,
        known_user: Callable[[str], bool] | None = None,
        secret: bytes | None = None,
    ) -> None:
        self.config = config
        self.contact = contact
        """Our Contact header value for dialogs (``<sip:ps@host:port;transport=tcp>``)."""
        self.aliases = {aor_key(k): aor_key(v) for k, v in (aliases or {}).items()}
        """Alias -> canonical presentity (tel: IMPU -> sip: IMPU of the same set)."""
        self.known_user = known_user
        self.secret = secret or secrets.token_bytes(32)
        self.publications: dict[str, PublicationRecord] = {}
        self.pubs_of: dict[str, set[str]] = {}
        self.subscriptions: dict[str, SubscriptionRecord] = {}
        self.by_dialog: dict[tuple[str, str, str], str] = {}
        self.watchers_of: dict[str, set[str]] = {}
        self.winfo_of: dict[str, set[str]] = {}
        self.rules: dict[str, presrules.Ruleset] = {}
        self._docs: dict[str, pidf.PresenceDocument] = {}
        self._composed: dict[str, composer.ComposedPresence] = {}
        self._bodies: dict[str, dict[tuple[Any, ...], bytes]] = {}
        """Presentity -> (permissions, resource URI) -> the PIDF body built for them from
        the current composed document (watchers with the same rights share one)."""
        self._unpublished: dict[presrules.Permissions | None, bytes] = {}
        """Permissions -> the body of a presentity without publications, for a
        placeholder entity (see :meth:`_unpublished_body`); b"": not applicable."""
        self._timers: list[tuple[float, int, str, str]] = []
        self._seq = 0
        self._inflight: set[str] = set()
        self._dirty: set[str] = set()
        self.stats: dict[str, int] = {}
        self._canonical: dict[str, str] = {}
        self._uris: dict[str, URI] = {}
        self._routes: dict[str, NameAddr] = {}
        self._etag_pool: list[str] = []

    # -- helpers --------------------------------------------------------------------
    def canonical(self, uri: str) -> str:
        cached = self._canonical.get(uri)
        if cached is not None:
            return cached
        result = canonical_key(uri, self.aliases)
        if len(self._canonical) > 100_000:
            self._canonical.clear()
        self._canonical[uri] = result
        return result

    def _changed(self, presentity: str) -> None:
        """The presentity's publications changed: forget what was composed and built."""
        self._composed.pop(presentity, None)
        self._bodies.pop(presentity, None)

    def _count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1

    def _schedule(self, when: float, kind: str, ident: str) -> None:
        self._seq += 1
        heapq.heappush(self._timers, (when, self._seq, kind, ident))

    def next_deadline(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    @staticmethod
    def _package(request: Request) -> EventPackage | Outcome:
        plain = _PLAIN_EVENTS.get(request.headers.get("event") or "")
        if plain is not None:
            return plain  # "Event: presence" as nearly every request has it, unparsed
        try:
            event = request.event
        except SipParseError:
            return _reply(400, "malformed Event header")
        allow = ("Allow-Events", ", ".join(PACKAGES))
        if event is None:
            return _reply(489, "Event header missing", allow)
        package = PACKAGES.get(event.value.lower())
        if package is None:
            return _reply(489, "Bad Event", allow)
        return package

    def _expires(self, request: Request, default: int) -> int | Outcome:
        try:
            value = request.expires
        except SipParseError:
            return _reply(400, "malformed Expires header")
        if value is None:
            return default
        if value != 0 and value < self.config.min_expires:
            return _reply(423, None, ("Min-Expires", str(self.config.min_expires)))
        return min(value, self.config.max_expires)

    # -- PUBLISH (RFC 3903 section 6) ------------------------------------------------
    def publish(self, request: Request, origin: Origin, now: float) -> Outcome:
        self._count("publish")
        package = self._package(request)
        if isinstance(package, Outcome):
            return package
        if package.name != "presence":
            return _reply(489, "PUBLISH is only taken for presence", ("Allow-Events", "presence"))
        presentity = self.canonical(str(request.ruri))
        if self.known_user is not None and not self.known_user(presentity):
            return _reply(404, "No such presentity")
        publisher = self._publisher_identity(request, origin)
        if isinstance(publisher, Outcome):
            return publisher
        if origin.may_publish is not None and not origin.may_publish(presentity):
            self._count("publish_forbidden")
            return _reply(403, "Publisher may not publish for this presentity")
        if origin.source_class == "ue" and self.canonical(publisher) != presentity:
            self._count("publish_forbidden")
            return _reply(403, "Asserted identity is not the presentity")
        if_match = request.headers.get("sip-if-match")
        existing: PublicationRecord | None = None
        if if_match is not None:
            existing = self.publications.get(if_match.strip())
            if existing is None or existing.presentity != presentity or existing.expires_at <= now:
                return _reply(412, "Unknown entity tag")
            if existing.source_id not in (origin.source_id, publisher, self.canonical(publisher)):
                return _reply(412, "Entity tag of another publisher")
        expires = self._expires(request, self.config.default_publish_expires)
        if isinstance(expires, Outcome):
            return expires
        body = request.body
        if existing is None and not body:
            return _reply(400, "Initial PUBLISH without a body")
        if expires == 0:
            if existing is None:
                return _reply(400, "Removal without SIP-If-Match")
            out = Outcome(Reply(200, None, (("Expires", "0"),)))
            return out.merge(self._remove_publication(existing.etag, now))
        document: pidf.PresenceDocument | None = None
        """The body's model, when it is needed now (watched presentity, element policy)."""
        if body:
            if request.headers.get("content-type") != PIDF:  # else the plain type, unparsed
                ctype = request.content_type
                if ctype is None or ctype.mime != PIDF:
                    return _reply(415, None, ("Accept", PIDF))
            try:
                if origin.allowed_elements is not None or presentity in self.watchers_of:
                    document = pidf.parse(body)
                    entity = document.entity
                else:
                    # checked as parse checks it; the model is built once it is composed
                    entity = pidf.validate(body)
            except DocumentError as exc:
                self._count("publish_bad_body")
                return _reply(400, exc.reason)
            if self.canonical(entity) != presentity:
                self._count("publish_bad_body")
                return _reply(400, "PIDF entity does not match presentity")
            if origin.allowed_elements is not None:
                assert document is not None
                bad = _element_kinds(document) - origin.allowed_elements
                if bad:
                    return _reply(403, f"Publisher may not publish {', '.join(sorted(bad))}")
        etag = self._new_etag()
        record = PublicationRecord(
            etag=etag,
            presentity=presentity,
            event=package.name,
            # a UE publishes only for itself: canonical(publisher) == presentity (checked above)
            source_id=presentity if origin.source_class == "ue" else origin.source_id,
            source_class=origin.source_class,
            interface=_publish_interface(origin),
            asserted_identity=publisher,
            received_at=now if existing is None or body else existing.received_at,
            expires_at=now + expires,
            content_type=PIDF,
            body=body if body else existing.body if existing else b"",
        )
        out = Outcome(Reply(200, None, (("SIP-ETag", etag), ("Expires", str(expires)))))
        if existing is not None:
            previous = self._docs.get(existing.etag)
            self._drop_publication(existing.etag)
            out.delete_publications.append(existing.etag)
            if not body and previous is not None:
                self._docs[etag] = previous
        self.publications[etag] = record
        self.pubs_of.setdefault(presentity, set()).add(etag)
        if document is not None and presentity in self.watchers_of:
            # kept parsed only while someone watches: else parsed again when composed
            self._docs[etag] = document
        self._schedule(record.expires_at, "pub", etag)
        out.save_publications.append(record)
        if body or existing is None:
            self._changed(presentity)
            self._notify_presentity(presentity, now, out)
        return out

    def _new_etag(self) -> str:
        """A fresh entity-tag: 64 random bits from the system's CSPRNG, as 16 hex digits
        (``secrets.token_hex(8)``), drawn 64 at a time."""
        pool = self._etag_pool
        if not pool:
            block = secrets.token_hex(8 * _ETAG_BATCH)
            pool.extend(block[i : i + 16] for i in range(0, len(block), 16))
        return pool.pop()

    def _publisher_identity(self, request: Request, origin: Origin) -> str | Outcome:
        if origin.trusted:
            pai = request.headers.get_all("p-asserted-identity")
            if pai:
                try:
                    return str(parse_name_addr(pai[0], "P-Asserted-Identity").uri)
                except SipParseError:
                    return _reply(400, "malformed P-Asserted-Identity header")
            if origin.source_class == "ue":
                return _reply(403, "No asserted identity")
        try:
            return str(request.from_.uri)
        except SipParseError:
            return _reply(400, "malformed From header")

    def _drop_publication(self, etag: str) -> PublicationRecord | None:
        record = self.publications.pop(etag, None)
        self._docs.pop(etag, None)
        if record is not None:
            etags = self.pubs_of.get(record.presentity)
            if etags is not None:
                etags.discard(etag)
                if not etags:
                    del self.pubs_of[record.presentity]
        return record

    def _remove_publication(self, etag: str, now: float) -> Outcome:
        record = self._drop_publication(etag)
        out = Outcome(delete_publications=[etag])
        if record is not None:
            self._changed(record.presentity)
            self._notify_presentity(record.presentity, now, out)
        return out

    # -- composition and per-watcher documents -----------------------------------------
    def composed(self, presentity: str) -> composer.ComposedPresence:
        cached = self._composed.get(presentity)
        if cached is not None:
            return cached
        pubs = [
            composer.Publication(
                etag=r.etag,
                source_id=r.source_id,
                source_class=r.source_class,
                interface=r.interface,  # type: ignore[arg-type]
                asserted_identity=r.asserted_identity,
                received_at=r.received_at,
                document=self._document(r),
            )
            for r in (self.publications[e] for e in self.pubs_of.get(presentity, ()))
        ]
        result = composer.compose(presentity, pubs, self.config.compose_policy)
        self._composed[presentity] = result
        return result

    def _document(self, record: PublicationRecord) -> pidf.PresenceDocument:
        """The parsed document of a publication (its body was accepted: it parses)."""
        document = self._docs.get(record.etag)
        if document is None:
            document = pidf.parse(record.body)
            if record.presentity in self.watchers_of:
                self._docs[record.etag] = document
        return document

    def permissions(self, sub: SubscriptionRecord, now: float) -> presrules.Permissions | None:
        if sub.authenticated and not sub.anonymous and self.canonical(sub.watcher) == sub.presentity:
            owner = presrules.owner_permissions()
            if not self.config.expose_provenance_to_owner:
                owner = replace(owner, provenance=False)
            return owner
        ruleset = self.rules.get(sub.presentity)
        perms = None
        if ruleset is not None:
            watcher = presrules.WatcherIdentity(sub.watcher, sub.authenticated, sub.anonymous)
            perms = presrules.evaluate(
                ruleset, watcher, sphere=self._sphere(sub.presentity), now=_dt(now)
            )
        if perms is None and self.config.default_sub_handling == "allow":
            return _ALLOW_ALL
        return perms

    def _sphere(self, presentity: str) -> str | None:
        if presentity not in self.pubs_of:
            return None
        doc = self.composed(presentity).document
        return presrules.current_sphere(doc)

    def sub_handling(self, sub: SubscriptionRecord, now: float) -> str:
        perms = self.permissions(sub, now)
        if perms is None or perms.sub_handling is None:
            return self.config.default_sub_handling
        return perms.sub_handling

    def presence_body(self, sub: SubscriptionRecord, now: float) -> bytes:
        """The PIDF this watcher may see now (composed, authorised, transformed).

        Built once per composed document, permissions and resource URI: the watchers
        of a presentity that have the same rights share the bytes.
        """
        if sub.polite_block:
            return _neutral_body(sub.resource_uri)
        perms = self.permissions(sub, now)
        if sub.presentity not in self.pubs_of:
            unpublished = self._unpublished_body(perms, sub.resource_uri)
            if unpublished is not None:
                return unpublished
        bodies = self._bodies.get(sub.presentity)
        if bodies is None:
            bodies = self._bodies[sub.presentity] = {}
        key = (perms, sub.resource_uri)
        body = bodies.get(key)
        if body is not None:
            return body
        composed = self.composed(sub.presentity)
        if perms is not None and perms.provenance:
            document = composer.with_provenance(composed)
        else:
            document = composed.document
        document = presrules.transform(document, perms)
        document = _with_entity(document, sub.resource_uri)
        body = pidf.build(document)
        if len(bodies) < _BODIES_PER_PRESENTITY:
            bodies[key] = body
        return body

    def _unpublished_body(
        self, perms: presrules.Permissions | None, resource_uri: str
    ) -> bytes | None:
        """The body of a presentity nothing is published for, without composing it.

        With no publication the composed document is the same for every presentity
        but its entity, and so is what the permissions make of it; it is built once
        per permissions for a placeholder entity, and the resource URI is written in
        its place (only for a URI of plain characters, which XML writes as they are:
        else, and if the placeholder does not appear exactly once, ``None``).
        """
        if not _PLAIN_ATTRIBUTE.fullmatch(resource_uri):
            return None
        template = self._unpublished.get(perms)
        if template is None:
            composed = composer.compose(_PLACEHOLDER, [], self.config.compose_policy)
            if perms is not None and perms.provenance:
                document = composer.with_provenance(composed)
            else:
                document = composed.document
            document = presrules.transform(document, perms)
            built = pidf.build(_with_entity(document, _PLACEHOLDER))
            template = built if built.count(_PLACEHOLDER_BYTES) == 1 else b""
            if len(self._unpublished) < _BODIES_PER_PRESENTITY:
                self._unpublished[perms] = template
        if not template:
            return None
        return template.replace(_PLACEHOLDER_BYTES, resource_uri.encode())

    # -- SUBSCRIBE (RFC 6665 4.2.1, RFC 3856) -----------------------------------------
    def subscribe(self, request: Request, origin: Origin, now: float) -> Outcome:
        self._count("subscribe")
        package = self._package(request)
        if isinstance(package, Outcome):
            return package
        expires = self._expires(request, self.config.default_subscribe_expires)
        if isinstance(expires, Outcome):
            return expires
        to = request.to
        if to.tag:
            return self._resubscribe(request, package, expires, now, to)
        accept = [
            sys.intern(a.split(";")[0].strip().lower()) for a in request.headers.get_all("accept")
        ]
        if accept and package.content_type not in accept and "*/*" not in accept:
            return _reply(406, None, ("Accept", package.content_type))
        contacts = request.contacts
        if not contacts:
            return _reply(400, "SUBSCRIBE without Contact")
        presentity = self.canonical(str(request.ruri))
        if self.known_user is not None and not self.known_user(presentity):
            return _reply(404, "No such presentity")
        identity = self._watcher_identity(request, origin)
        if isinstance(identity, Outcome):
            return identity
        watcher, display, authenticated, anonymous, frm = identity
        local_tag = dialog_tag(presentity)  # routes in-dialog requests to its worker (D13)
        try:
            dialog = Dialog.from_uas_request(request, local_tag, from_=frm, to=to, contacts=contacts)
        except SipParseError as exc:
            return _reply(400, exc.reason)
        raw_event = request.headers.get("event") or ""
        event = None if raw_event in _PLAIN_EVENTS else request.event
        # the strings that every watcher of the presentity has alike are shared (interned)
        dialog.local_uri = sys.intern(dialog.local_uri)
        sub = SubscriptionRecord(
            id=secrets.token_hex(12),
            event=package.name,
            presentity=presentity,
            resource_uri=sys.intern(_resource_uri(request)),
            watcher=watcher,
            watcher_display=display,
            authenticated=authenticated,
            anonymous=anonymous,
            dialog=dialog,
            expires_at=now + expires,
            created_at=now,
            event_id=event.param("id") if event else None,
            winfo_id=secrets.token_hex(10),
            contact=self.contact,
            destination=origin.destination,
            accept=accept,
        )
        if package.name == "presence.winfo":
            if not authenticated or self.canonical(watcher) != presentity:
                self._count("winfo_forbidden")
                return _reply(403, "Only the presentity may watch its watchers")
            sub.state = "active"
        else:
            handling = self.sub_handling(sub, now)
            if handling == "block":
                self._count("subscribe_blocked")
                return _reply(403, "Forbidden")
            sub.polite_block = handling == "polite-block"
            sub.state = "pending" if handling == "confirm" else "active"
            sub.winfo_event = "subscribe" if sub.state == "pending" else "approved"
        status = 202 if sub.state == "pending" else 200
        out = Outcome(
            Reply(
                status,
                None,
                (("Expires", str(expires)), ("Contact", self.contact)),
                to_tag=local_tag,
            )
        )
        if expires == 0:  # a fetch: one NOTIFY with the state, then gone
            sub.state = "terminated" if sub.state == "active" else sub.state
            out.notifies.append(self._build_notify(sub, now, fetch=True))
            self._count("fetch")
            return out
        self._add_subscription(sub)
        out.save_subscriptions.append(sub)
        out.notifies.append(self._build_notify(sub, now, full=True))
        if package.name == "presence":
            out.merge(self._winfo_changed(presentity, [sub], now))
        return out

    def _watcher_identity(
        self, request: Request, origin: Origin
    ) -> tuple[str, str | None, bool, bool, NameAddr] | Outcome:
        """Who watches: identity, display name, authenticated, anonymous, and the From
        header it read (parsed once for the dialog too)."""
        privacy = {p.strip().lower() for p in (request.headers.get("privacy") or "").split(";")}
        try:
            frm = request.from_
        except SipParseError:
            return _reply(400, "malformed From header")
        anonymous = "id" in privacy or "user" in privacy or "anonymous" in str(frm.uri).lower()
        if origin.trusted:
            pai = request.headers.get_all("p-asserted-identity")
            if pai:
                try:
                    uri = str(parse_name_addr(pai[0], "P-Asserted-Identity").uri)
                except SipParseError:
                    return _reply(400, "malformed P-Asserted-Identity header")
                return uri, None if anonymous else frm.display_name, True, anonymous, frm
            # a trusted peer without PAI: an unauthenticated watcher (e.g. from a foreign network)
            return str(frm.uri), frm.display_name, False, anonymous, frm
        # open trust mode: From is taken as the identity (documented lab mode)
        return str(frm.uri), frm.display_name, origin.source_id == "open", anonymous, frm

    def _add_subscription(self, sub: SubscriptionRecord) -> None:
        self.subscriptions[sub.id] = sub
        self.by_dialog[sub.dialog.id] = sub.id
        index = self.winfo_of if sub.event == "presence.winfo" else self.watchers_of
        index.setdefault(sub.presentity, set()).add(sub.id)
        self._schedule(sub.expires_at, "sub", sub.id)

    def _forget_subscription(self, sub: SubscriptionRecord) -> None:
        self.subscriptions.pop(sub.id, None)
        self.by_dialog.pop(sub.dialog.id, None)
        index = self.winfo_of if sub.event == "presence.winfo" else self.watchers_of
        ids = index.get(sub.presentity)
        if ids is not None:
            ids.discard(sub.id)
            if not ids:
                del index[sub.presentity]
        self._dirty.discard(sub.id)

    def find_dialog(self, request: Request, to: NameAddr | None = None) -> SubscriptionRecord | None:
        """The subscription of an in-dialog request (``to``: its To header, if parsed)."""
        try:
            sub_id = self.by_dialog.get(dialog_id_of_request(request, to))
        except SipParseError:
            return None
        return self.subscriptions.get(sub_id) if sub_id else None

    def _resubscribe(
        self, request: Request, package: EventPackage, expires: int, now: float, to: NameAddr
    ) -> Outcome:
        sub = self.find_dialog(request, to)
        if sub is None or sub.event != package.name:
            return _reply(481, "Subscription does not exist")
        if not sub.dialog.accept_remote_cseq(request):
            return _reply(500, "CSeq out of order")
        sub.dialog.refresh_target(request)
        headers = (("Expires", str(expires)), ("Contact", self.contact))
        status = 202 if sub.state == "pending" else 200
        out = Outcome(Reply(status, None, headers, to_tag=sub.dialog.local_tag))
        if expires == 0:
            self._count("unsubscribe")
            return out.merge(self._terminate(sub, "timeout", now, winfo_event="timeout"))
        self._count("resubscribe")
        sub.expires_at = now + expires
        self._schedule(sub.expires_at, "sub", sub.id)
        out.save_subscriptions.append(sub)
        out.notifies.append(self._build_notify(sub, now, full=True))
        return out

    def _terminate(
        self, sub: SubscriptionRecord, reason: str, now: float, *, winfo_event: str | None = None
    ) -> Outcome:
        """End a subscription: final NOTIFY, removal, winfo update."""
        self._forget_subscription(sub)
        sub.state = "terminated"
        sub.reason = reason
        out = Outcome(delete_subscriptions=[sub.id])
        out.notifies.append(self._build_notify(sub, now))
        if sub.event == "presence":
            sub.winfo_event = winfo_event or reason
            out.merge(self._winfo_changed(sub.presentity, [sub], now))
        return out

    # -- NOTIFY -------------------------------------------------------------------------
    def _subscription_state(self, sub: SubscriptionRecord, now: float, fetch: bool) -> str:
        if sub.state == "terminated" or fetch:
            return f"terminated;reason={sub.reason or 'timeout'}"
        remaining = max(0, int(sub.expires_at - now))
        return f"{sub.state};expires={remaining}"

    def _build_notify(
        self, sub: SubscriptionRecord, now: float, *, full: bool = True, fetch: bool = False,
        changed: Iterable[SubscriptionRecord] = (),
    ) -> OutgoingNotify:
        body = b""
        ctype: str | None = None
        if sub.event == "presence":
            if sub.state == "active" or (fetch and sub.state == "terminated" and sub.reason is None):
                body = self.presence_body(sub, now)
                ctype = PIDF
        elif sub.state != "terminated" or fetch:
            sub.winfo_version += 1
            body = self._winfo_body(sub, now, full=full, changed=changed)
            ctype = WINFO
        event = sub.event if sub.event_id is None else f"{sub.event};id={sub.event_id}"
        headers = [
            ("event", "Event", event),
            ("subscription-state", "Subscription-State", self._subscription_state(sub, now, fetch)),
        ]
        if ctype:
            headers.append(("content-type", "Content-Type", ctype))
        request = self._in_dialog_request(sub.dialog, "NOTIFY", headers, body)
        sub.last_notify_at = now
        self._count("notify")
        return OutgoingNotify(sub.id, request, sub.destination, sub.state == "terminated" or fetch)

    def _in_dialog_request(
        self, dialog: Dialog, method: str, headers: list[tuple[str, str, str]], body: bytes
    ) -> Request:
        """What ``dialog.build_request(method, headers=..., body=..., contact=self.contact)``
        builds (RFC 3261 12.2.1.1, loose or strict routing), with the parsed remote target
        and first route kept between NOTIFYs and the header list built in one go, its
        names already normalised (``headers``: ``(key, name, value)``, as in
        :meth:`Headers.from_keyed`)."""
        dialog.local_cseq += 1
        target = self._parsed_uri(dialog.remote_target)
        fields: list[tuple[str, str, str]] = []
        routes = dialog.route_set
        if routes:
            first = self._parsed_route(routes[0])
            if isinstance(first.uri, SipURI) and not first.uri.lr:
                # strict router: it becomes the Request-URI, the remote target the last Route
                target = first.uri
                routes = [*routes[1:], f"<{dialog.remote_target}>"]
            fields.extend(("route", "Route", r) for r in routes)
        fields.append(("from", "From", f"{dialog.local_uri};tag={dialog.local_tag}"))
        fields.append(
            ("to", "To", f"{dialog.remote_uri};tag={dialog.remote_tag}" if dialog.remote_tag
             else dialog.remote_uri)
        )
        fields.append(("call-id", "Call-ID", dialog.call_id))
        fields.append(("cseq", "CSeq", f"{dialog.local_cseq} {method}"))
        if self.contact:
            fields.append(("contact", "Contact", self.contact))
        fields.extend(headers)
        return Request(Headers.from_keyed(fields), body, method, target)

    def _parsed_uri(self, text: str) -> URI:
        uri = self._uris.get(text)
        if uri is None:
            uri = parse_uri(text)
            if len(self._uris) >= _PARSED_CACHE:
                self._uris.clear()
            self._uris[text] = uri
        return uri

    def _parsed_route(self, text: str) -> NameAddr:
        route = self._routes.get(text)
        if route is None:
            route = parse_name_addr(text, "Route")
            if len(self._routes) >= _PARSED_CACHE:
                self._routes.clear()
            self._routes[text] = route
        return route

    def _notify_presentity(self, presentity: str, now: float, out: Outcome) -> None:
        """Presence changed: tell every active watcher (rate-limited per subscription)."""
        watchers = self.watchers_of.get(presentity)
        if not watchers:
            return
        subscriptions = self.subscriptions
        for sub_id in list(watchers):
            sub = subscriptions[sub_id]
            if sub.state == "active":
                self._notify_or_defer(sub, now, out)

    def _notify_or_defer(
        self, sub: SubscriptionRecord, now: float, out: Outcome | None = None
    ) -> Outcome:
        """NOTIFY ``sub`` now, or later when one is in flight or rate control says wait."""
        if out is None:
            out = Outcome()
        if sub.id in self._inflight:
            self._dirty.add(sub.id)
            return out
        interval = self.config.min_notify_interval
        if interval > 0 and now - sub.last_notify_at < interval:
            if sub.id not in self._dirty:
                self._dirty.add(sub.id)
                self._schedule(sub.last_notify_at + interval, "notify", sub.id)
            self._count("notify_coalesced")
            return out
        out.save_subscriptions.append(sub)
        out.notifies.append(self._build_notify(sub, now))
        return out

    def notify_sent(self, sub_id: str) -> None:
        """The node started a NOTIFY transaction for this subscription."""
        self._inflight.add(sub_id)

    def notify_done(self, sub_id: str, status: int, now: float) -> Outcome:
        """The NOTIFY transaction ended with ``status`` (408/503 for timeout/transport)."""
        self._inflight.discard(sub_id)
        sub = self.subscriptions.get(sub_id)
        if sub is None:
            return Outcome()
        if status >= 300 and status != 491:
            # RFC 6665 4.2.2: 481 and Timer F end the subscription; so does any other failure
            self._count(f"notify_failed_{status}")
            reason = "timeout" if status == 408 else "giveup"
            self._forget_subscription(sub)
            sub.state = "terminated"
            sub.reason = reason
            out = Outcome(delete_subscriptions=[sub.id])
            if sub.event == "presence":
                sub.winfo_event = reason
                out.merge(self._winfo_changed(sub.presentity, [sub], now))
            return out
        if sub.id in self._dirty:
            self._dirty.discard(sub.id)
            return self._notify_or_defer(sub, now)
        return Outcome()

    # -- watcher info (RFC 3857) --------------------------------------------------------------
    def _watcher_entry(self, sub: SubscriptionRecord, now: float) -> winfo.Watcher:
        status: Any = sub.state
        if sub.polite_block and sub.state == "active":
            status = "active"
        return winfo.Watcher(
            id=sub.winfo_id,
            status=status,
            event=sub.winfo_event,  # type: ignore[arg-type]
            uri=ANONYMOUS_URI if sub.anonymous else sub.watcher,
            display_name=None if sub.anonymous else sub.watcher_display,
            duration_subscribed=max(0, int(now - sub.created_at)),
            expiration=max(0, int(sub.expires_at - now)) if sub.state != "terminated" else None,
        )

    def _winfo_body(
        self, sub: SubscriptionRecord, now: float, *, full: bool,
        changed: Iterable[SubscriptionRecord],
    ) -> bytes:
        if full:
            watched = [self.subscriptions[i] for i in sorted(self.watchers_of.get(sub.presentity, ()))]
        else:
            watched = list(changed)
        lst = winfo.WatcherList(
            resource=sub.resource_uri,
            package="presence",
            watchers=tuple(self._watcher_entry(w, now) for w in watched),
        )
        info = winfo.WatcherInfo(sub.winfo_version - 1, "full" if full else "partial", (lst,))
        return winfo.build(info)

    def _winfo_changed(
        self, presentity: str, changed: list[SubscriptionRecord], now: float
    ) -> Outcome:
        out = Outcome()
        for sub_id in list(self.winfo_of.get(presentity, ())):
            wsub = self.subscriptions[sub_id]
            out.notifies.append(self._build_notify(wsub, now, full=False, changed=changed))
            out.save_subscriptions.append(wsub)
        return out

    # -- rules (RFC 5025) ------------------------------------------------------------------
    def set_rules(self, presentity: str, ruleset: presrules.Ruleset | None, now: float) -> Outcome:
        """A rule change re-evaluates every live subscription of the presentity at once."""
        presentity = self.canonical(presentity)
        if ruleset is None:
            self.rules.pop(presentity, None)
        else:
            self.rules[presentity] = ruleset
        out = Outcome()
        changed: list[SubscriptionRecord] = []
        for sub_id in list(self.watchers_of.get(presentity, ())):
            sub = self.subscriptions[sub_id]
            handling = self.sub_handling(sub, now)
            if handling == "block":
                out.merge(self._terminate(sub, "rejected", now))
                continue
            polite = handling == "polite-block"
            new_state = "pending" if handling == "confirm" else "active"
            if new_state == "pending" and sub.state == "active":
                # approval withdrawn: RFC 3857 "deactivated" would invite a retry; keep pending
                sub.state = "pending"
                sub.winfo_event = "subscribe"
            elif new_state == "active" and sub.state == "pending":
                sub.state = "active"
                sub.winfo_event = "approved"
            sub.polite_block = polite
            changed.append(sub)
            out.save_subscriptions.append(sub)
            self._notify_or_defer(sub, now, out)
        if changed:
            out.merge(self._winfo_changed(presentity, changed, now))
        return out

    # -- timers ---------------------------------------------------------------------------------
    def on_timer(self, now: float) -> Outcome:
        out = Outcome()
        while self._timers and self._timers[0][0] <= now:
            _, _, kind, ident = heapq.heappop(self._timers)
            if kind == "pub":
                record = self.publications.get(ident)
                if record is not None and record.expires_at <= now:
                    self._count("publication_expired")
                    out.merge(self._remove_publication(ident, now))
            elif kind == "sub":
                sub = self.subscriptions.get(ident)
                if sub is not None and sub.expires_at <= now:
                    self._count("subscription_expired")
                    out.merge(self._terminate(sub, "timeout", now))
            elif kind == "notify":
                sub = self.subscriptions.get(ident)
                if sub is not None and ident in self._dirty and ident not in self._inflight:
                    self._dirty.discard(ident)
                    self._notify_or_defer(sub, now, out)
        return out

    # -- restart ----------------------------------------------------------------------------------
    def restore(
        self,
        publications: Iterable[PublicationRecord],
        subscriptions: Iterable[SubscriptionRecord],
        rules: dict[str, presrules.Ruleset],
        now: float,
    ) -> Outcome:
        """Load persisted state; expired records are dropped, every live watcher is NOTIFYed."""
        out = Outcome()
        self.rules.update({self.canonical(k): v for k, v in rules.items()})
        for record in publications:
            if record.expires_at <= now:
                out.delete_publications.append(record.etag)
                continue
            try:
                pidf.validate(record.body)  # the model is built once composed (_document)
            except DocumentError:
                out.delete_publications.append(record.etag)
                continue
            self.publications[record.etag] = record
            self.pubs_of.setdefault(record.presentity, set()).add(record.etag)
            self._schedule(record.expires_at, "pub", record.etag)
        for sub in subscriptions:
            if sub.expires_at <= now or sub.state == "terminated":
                out.delete_subscriptions.append(sub.id)
                continue
            self._add_subscription(sub)
        for sub in list(self.subscriptions.values()):
            out.notifies.append(self._build_notify(sub, now, full=True))
            out.save_subscriptions.append(sub)
        self._count("restored")
        return out

    def shutdown(self, now: float) -> Outcome:
        """Deactivate every subscription (final NOTIFYs); used when the network stops for good."""
        out = Outcome()
        for sub in list(self.subscriptions.values()):
            out.merge(self._terminate(sub, "deactivated", now))
        return out

    def opaque_id(self, text: str) -> str:
        return hmac.new(self.secret, text.encode(), hashlib.sha256).hexdigest()[:20]


_ALLOW_ALL = replace(presrules.owner_permissions(), provenance=False, matched_rules=())
"""What a watcher sees when no rule matches and the default sub-handling is allow."""

_PLAIN_EVENTS = dict(PACKAGES)
"""Event header values that need no parsing: a package name alone, as written."""

_ETAG_BATCH = 64
"""Entity-tags drawn from the CSPRNG in one call."""

_PARSED_CACHE = 4096
"""Remote targets and routes kept parsed (the busiest subscriptions' dialogs)."""

_BODIES_PER_PRESENTITY = 64
"""Distinct (permissions, resource URI) bodies kept per presentity and composed document."""

_PLACEHOLDER = "sip:placeholder-6d1f0c@presence.invalid"
_PLACEHOLDER_BYTES = _PLACEHOLDER.encode()
_PLAIN_ATTRIBUTE = re.compile(r"[!#-%(-;=?-~]+")
"""Printable ASCII but the quotes, ``&``, ``<`` and ``>``: written as it is in an XML
attribute value (no character reference), so substituting it in the bytes is exact."""


@lru_cache(maxsize=1024)
def _neutral_body(entity: str) -> bytes:
    return pidf.build(pidf.neutral_document(entity))


def _dt(now: float) -> datetime:
    return datetime.fromtimestamp(now, tz=UTC)


def _with_entity(doc: pidf.PresenceDocument, entity: str) -> pidf.PresenceDocument:
    return doc if doc.entity == entity else replace(doc, entity=entity)


def _resource_uri(request: Request) -> str:
    uri = request.ruri
    if isinstance(uri, SipURI):
        return uri.aor
    if isinstance(uri, TelURI):
        return uri.aor
    return str(uri)


def _publish_interface(origin: Origin) -> str:
    if origin.source_class == "network":
        return "Pen"
    if origin.source_class == "external":
        return "Pex"
    return "Peu"


def _element_kinds(doc: pidf.PresenceDocument) -> set[str]:
    kinds: set[str] = set()
    if doc.tuples:
        kinds.add("tuple")
    if doc.persons:
        kinds.add("person")
    if doc.devices:
        kinds.add("device")
    return kinds
