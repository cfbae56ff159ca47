"""The Presence Server node: the asyncio shell around :class:`PresenceCore`.

It establishes who sent each request (trust: mutual-TLS certificate names or
configured source addresses; or ``open`` mode), hands the request to the core,
answers, sends the NOTIFYs the core asks for, persists what changed, and runs
the core's timers.  XCAP edits of pres-rules reach the core at once.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...documents import presrules
from ...documents.xml import DocumentError
from ...logging import get_logger
from ...sip import Response, SipURI, method_of
from ...sip.checks import check_method, check_require, check_uri_scheme
from ...sip.transaction import Address
from ...storage import Store, StoreError, open_store
from ...transport import IncomingRequest, SipEndpoint, StreamTransport
from ...transport.resolve import ResolveError, Resolver
from ...transport.spec import parse_listen
from .config import PsConfig, PsPeer
from .core import CoreConfig, Origin, Outcome, PresenceCore, aor_key
from .model import PublicationRecord, SubscriptionRecord
from .shard import shard_of

PS_METHODS = frozenset({"PUBLISH", "SUBSCRIBE", "OPTIONS", "ACK"})

# What a NOTIFY changes in a subscription is only counters: the dialog's local CSeq, the
# winfo version, the time of the last NOTIFY. Writing the whole record for each NOTIFY
# would double the cost of a fan-out, so those changes are persisted lazily: every
# COUNTERS_PERSIST_INTERVAL seconds, and at once when the CSeq has moved CSEQ_SAVE_EVERY
# past the stored one; every other change is persisted at once as before. A clean stop
# writes everything (a restart goes on with the exact CSeq); after a crash (the run
# marker in the store says the last run did not stop) the restored CSeqs and winfo
# versions jump by CRASH_CSEQ_SLACK, more than any NOTIFY can have used since the stored
# value (at most CSEQ_SAVE_EVERY, plus what one flush interval sends), so no watcher
# sees a CSeq that does not grow (RFC 3261 12.2.2).
COUNTERS_PERSIST_INTERVAL = 10.0
CSEQ_SAVE_EVERY = 500
CRASH_CSEQ_SLACK = 1000
COUNTERS_SLICE = 256
"""Records the periodic counter write persists per loop turn: with 100,000 watchers
all notified since the last write, writing them in one go would hold the loop for
seconds, delaying every receive and NOTIFY behind it."""
NOTIFY_BATCH = 64
"""NOTIFYs sent per loop turn. An outcome with more (a presentity with many watchers,
a rule change, a restart) is queued: this many go out at once and the rest over the
following loop turns, receives being read in between. NOTIFYs leave in the order the
core made them, queued ones first; each counts as sent for the core (one in flight per
subscription, RFC 6446 coalescing) from the moment it is queued."""
RUN_MARKER = ("ps", "run")
"""Store kind and key of ``{"clean": bool}``: did the last run stop cleanly."""


class PsStartError(Exception):
    """The node cannot start (port taken, store unusable ...): one clear line."""


@dataclass(frozen=True)
class WorkerPlan:
    """What one of several PS worker processes is (see :mod:`.workers`)."""

    index: int
    count: int
    transport: Callable[[SipEndpoint, Callable[[dict[str, Any], bytes | None], None]], Any]
    """Makes its SIP transport (a :class:`SharedUdpTransport`) for the endpoint, with
    the callback for the parent's control messages."""
    unclean: bool = False
    """The last run of some worker did not stop cleanly (see CRASH_CSEQ_SLACK)."""

    def owns(self, presentity: str) -> bool:
        return shard_of(presentity, self.count) == self.index


class PresenceServer:
    def __init__(
        self,
        config: PsConfig,
        *,
        resolver: Resolver | None = None,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        store: Store | None = None,
        clock: Any = time.time,
        worker: WorkerPlan | None = None,
    ) -> None:
        self.config = config
        self.worker = worker
        """Set in one of several worker processes (D13): which presentities are its own."""
        self.log = get_logger(node="ps", net=config.domain)
        if worker is not None:
            self.log = self.log.bind(worker=worker.index)
        self.resolver = resolver or Resolver()
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        self.clock = clock
        self.store = store or open_store(config.store)
        self.endpoint = SipEndpoint(node="ps", interface="ISC", logger=self.log)
        self.endpoint.interface_resolver = self._interface_of
        default_handling = config.default_sub_handling or (
            "allow" if config.trust == "open" else "confirm"
        )
        core_config = CoreConfig(
            min_expires=config.min_expires,
            default_publish_expires=config.default_expires,
            default_subscribe_expires=config.default_expires,
            max_expires=config.max_expires,
            min_notify_interval=config.min_notify_interval,
            default_sub_handling=default_handling,
        )
        self.core = PresenceCore(
            core_config,
            contact="",
            aliases=dict(config.aliases),
            known_user=self._known_user if config.trust == "network" else None,
        )
        self.xcap: Any = None
        self.initial_rules: dict[str, list[str]] = {}
        self.deactivate_on_stop = config.shutdown == "deactivate"
        """End every subscription with a final NOTIFY at stop (a clean network shutdown)."""
        """Presentity -> watchers allowed everything, installed when it has no rules yet."""
        self._known = {aor_key(u) for u in config.known_users or ()}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._stopping = False
        self._inflight = 0
        self._idle = asyncio.Event()
        self.on_notify_result: Any = None
        """Optional callback(subscription_id, status) after each NOTIFY transaction (tests, tools)."""
        self.contact_transport = "udp"
        self._counters_dirty: set[str] = set()
        """Subscriptions whose NOTIFY counters moved since they were last persisted."""
        self._counters_at = 0.0
        self._addresses: dict[tuple[Any, ...], Address] = {}
        self._destinations: dict[tuple[str, str, int], dict[str, Any]] = {}
        self._open_origins: dict[tuple[str, str, int, bool], Origin] = {}
        self._notify_queue: deque[tuple[str, Any, dict[str, Any] | None]] = deque()
        """NOTIFYs made but not yet sent (see NOTIFY_BATCH), oldest first."""
        self._notify_drain: asyncio.Handle | None = None
        """(Request-URI, first Route, default transport) -> where the NOTIFYs go."""

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        if self.worker is None:  # (a cluster's parent says it)
            say_trust_mode(self.config, self.log)
        try:
            await self.store.open()
        except StoreError as exc:
            raise PsStartError(str(exc)) from None
        if self.worker is not None:
            shared = self.worker.transport(self.endpoint, self._control)
            await shared.start()
            self.endpoint.add_transport(shared)
        for spec_text in self.config.sip if self.worker is None else ():
            spec = parse_listen(spec_text)
            try:
                t = await self.endpoint.listen(
                    spec.transport,
                    spec.host,
                    spec.port,
                    ssl=self.server_ssl if spec.transport == "tls" else None,
                    client_ssl=self.client_ssl if spec.transport == "tls" else None,
                    advertise=self.config.advertise,
                )
            except OSError as exc:
                await self.endpoint.close()
                raise PsStartError(f"PS cannot listen on {spec}: {exc.strerror or exc}") from None
            self.log.info("listening", transport=spec.transport, host=spec.host, port=t.port)
        self.core.contact = self._contact()
        self.endpoint.on_request(self.handle)
        await self._restore()
        self._install_initial_rules()
        if self.config.xcap:
            await self._start_xcap()
        self._flusher = asyncio.create_task(self._flush_loop())
        self._arm()

    async def stop(self) -> None:
        self._stopping = True
        if self.deactivate_on_stop:
            self._apply(self.core.shutdown(self.clock()), None)
            if self._inflight:
                try:
                    async with asyncio.timeout(2.0):
                        await self._idle.wait()
                except TimeoutError:
                    self.log.warning("final_notifies_unanswered", count=self._inflight)
        if self._timer is not None:
            self._timer.cancel()
        if self._notify_drain is not None:  # what is still queued is not sent any more
            self._notify_drain.cancel()
            self._notify_drain = None
        self._notify_queue.clear()
        if self.xcap is not None:
            await self.xcap.stop()
        for task in list(self._tasks):
            task.cancel()
        if self._flusher is not None:
            self._flusher.cancel()
            try:
                await self._flusher
            except asyncio.CancelledError:
                pass
        await self.endpoint.close()
        self._persist_counters()
        self.store.put(*self._run_marker(), {"clean": True})
        try:
            await self.store.close()
        except StoreError as exc:
            self.log.error("store_close_failed", reason=str(exc))

    def _contact(self) -> str:
        for name in ("udp", "tcp", "tls"):
            t = self.endpoint.transports.get(name)
            if t is not None:
                self.contact_transport = name
                param = "" if name == "udp" else f";transport={name}"
                return f"<sip:ps@{t.host}:{t.port}{param}>"
        return "<sip:ps@127.0.0.1>"

    def port(self, transport: str = "udp") -> int:
        return self.endpoint.transports[transport].port

    # -- trust --------------------------------------------------------------------------------------
    def _known_user(self, presentity: str) -> bool:
        if self._known:
            return presentity in self._known
        return presentity.endswith("@" + self.config.domain)

    def peer_of(self, source: Address) -> PsPeer | None:
        names: list[str] = []
        t = self.endpoint.transports.get(source.transport)
        if isinstance(t, StreamTransport):
            names = t.peer_names(source.flow)
        for peer in self.config.peers:
            if names and any(n in peer.tls_names for n in names):
                return peer
            for addr in peer.addresses:
                host, _, port = addr.partition(":")
                if host == source.host and (not port or (source.transport == "udp" and int(port) == source.port)):
                    return peer
        return None

    def origin(self, incoming: IncomingRequest) -> Origin | None:
        source = incoming.source
        method = incoming.request.method
        if self.config.trust == "open":
            key = (source.transport, source.host, source.port, method == "PUBLISH")
            found = self._open_origins.get(key)
            if found is None:  # one (frozen) Origin per source and interface
                found = Origin(
                    interface="Peu" if method == "PUBLISH" else "Pw",
                    source_class="ue",
                    source_id="open",
                    trusted=False,
                    destination=self._destination(source),
                )
                if len(self._open_origins) >= 10_000:
                    self._open_origins.clear()
                self._open_origins[key] = found
            return found
        destination = self._destination(source)
        peer = self.peer_of(source)
        if peer is None:
            return None
        interface = {"network": "Pen", "external": "Pex"}.get(
            peer.source_class, "Peu" if method == "PUBLISH" else "Pw"
        )
        patterns = peer.presentities

        def may_publish(presentity: str) -> bool:
            return any(fnmatch.fnmatchcase(presentity, p) for p in patterns)

        return Origin(
            interface=interface,
            source_class=peer.source_class,
            source_id=peer.name,
            trusted=True,
            may_publish=None if patterns == ("*",) else may_publish,
            allowed_elements=frozenset(peer.elements) if peer.elements is not None else None,
            destination=destination,
        )

    def _destination(self, source: Address) -> dict[str, Any]:
        """Where to answer a source: one dict per source address, shared by all the
        subscriptions made from it (never changed once made)."""
        key = (source.transport, source.host, source.port)
        found = self._destinations.get(key)
        if found is None:
            found = {"transport": source.transport, "host": source.host, "port": source.port}
            if len(self._destinations) >= 10_000:
                self._destinations.clear()
            self._destinations[key] = found
        return found

    def _interface_of(self, peer: Address, msg: Any, direction: str) -> str:
        method = method_of(msg)  # a 400 to a request without CSeq has none
        if method in ("SUBSCRIBE", "NOTIFY"):
            return "Pw"
        p = self.peer_of(peer) if self.config.peers else None
        if p is not None and p.source_class == "network":
            return "Pen"
        if p is not None and p.source_class == "external":
            return "Pex"
        return "Peu"

    # -- requests ---------------------------------------------------------------------------------
    def handle(self, incoming: IncomingRequest) -> None:
        request = incoming.request
        if request.method == "ACK":
            return
        rejection = (
            check_method(request, PS_METHODS)
            or check_uri_scheme(request)
            or check_require(request, supported=())
        )
        if rejection is not None:
            incoming.respond(rejection.status, rejection.reason, headers=rejection.headers)
            return
        if request.method == "OPTIONS":
            incoming.respond(200, headers=(("Allow", ", ".join(sorted(PS_METHODS))),
                                           ("Allow-Events", "presence, presence.winfo")))
            return
        origin = self.origin(incoming)
        if origin is None:
            self.endpoint.stats["untrusted_request"] += 1
            self.log.warning(
                "untrusted_request",
                method=request.method,
                source=str(incoming.source),
                call_id=request.headers.get("call-id"),
            )
            incoming.respond(403, "Not a trusted network peer")
            return
        now = self.clock()
        if request.method == "PUBLISH":
            outcome = self.core.publish(request, origin, now)
        else:
            outcome = self.core.subscribe(request, origin, now)
        self._apply(outcome, incoming)
        self.log.debug(
            "ps_request",
            interface=origin.interface,
            method=request.method,
            call_id=request.headers.get("call-id"),
            status=outcome.reply.status if outcome.reply else None,
            source=origin.source_id,
        )

    def _apply(self, outcome: Outcome, incoming: IncomingRequest | None) -> None:
        if outcome.reply is not None and incoming is not None:
            r = outcome.reply
            if r.to_tag:
                incoming.local_tag = r.to_tag
            incoming.respond(r.status, r.reason, headers=r.headers, body=r.body)
        store = self.store
        for etag in outcome.delete_publications:
            store.delete("publication", etag)
        for pub in outcome.save_publications:
            if pub.etag in self.core.publications:
                store.put("publication", pub.etag, pub.to_dict())
        for sub_id in outcome.delete_subscriptions:
            store.delete("subscription", sub_id)
            self._counters_dirty.discard(sub_id)
        live = self.core.subscriptions
        for sub in outcome.save_subscriptions:
            if sub.id in live:
                self._save_subscription(sub)
        notifies = outcome.notifies
        if notifies:
            if not self._notify_queue and len(notifies) <= NOTIFY_BATCH:
                for notify in notifies:
                    self._send_notify(notify.subscription_id, notify.request, notify.destination)
            else:
                self._queue_notifies(notifies)
        self._arm()

    def _queue_notifies(self, notifies: list[Any]) -> None:
        """Queue NOTIFYs behind those already waiting, and send the first batch now."""
        queue = self._notify_queue
        for notify in notifies:
            self._notify_started(notify.subscription_id)
            queue.append((notify.subscription_id, notify.request, notify.destination))
        if self._notify_drain is None:
            self._drain_notifies()

    def _drain_notifies(self) -> None:
        """Send one batch of queued NOTIFYs; come back next loop turn for the rest."""
        self._notify_drain = None
        queue = self._notify_queue
        for _ in range(min(NOTIFY_BATCH, len(queue))):
            sub_id, request, destination = queue.popleft()
            self._send_notify(sub_id, request, destination, queued=True)
        if queue:
            self._notify_drain = asyncio.get_running_loop().call_soon(self._drain_notifies)

    def _save_subscription(self, sub: SubscriptionRecord) -> None:
        """Persist ``sub`` now, or later when only its NOTIFY counters moved (see above)."""
        state = sub.persisted_state()
        if sub.saved == state:
            moved = sub.dialog.local_cseq - sub.saved_cseq
            if moved == 0:
                return  # already written with this very CSeq (twice in one outcome)
            if moved < CSEQ_SAVE_EVERY:
                self._counters_dirty.add(sub.id)
                return
        self._put_subscription(sub, state)

    def _put_subscription(self, sub: SubscriptionRecord, state: tuple[Any, ...]) -> None:
        self.store.put("subscription", sub.id, sub.to_dict())
        sub.saved = state
        sub.saved_cseq = sub.dialog.local_cseq
        self._counters_dirty.discard(sub.id)

    def _persist_counters(self) -> None:
        dirty, self._counters_dirty = self._counters_dirty, set()
        for sub_id in dirty:
            self._persist_counter(sub_id)

    def _persist_counter(self, sub_id: str) -> None:
        """Write a live subscription whose record is behind (not one written meanwhile:
        another change, or its CSeq reaching ``CSEQ_SAVE_EVERY``)."""
        sub = self.core.subscriptions.get(sub_id)
        if sub is None:
            return
        state = sub.persisted_state()
        if sub.saved != state or sub.saved_cseq != sub.dialog.local_cseq:
            self._put_subscription(sub, state)

    async def _persist_counters_sliced(self) -> None:
        """:meth:`_persist_counters`, :data:`COUNTERS_SLICE` records per loop turn.

        What is left when the task is cancelled goes back to the dirty set, for the
        final write at stop.
        """
        pending = list(self._counters_dirty)
        self._counters_dirty = set()
        done = 0
        try:
            while done < len(pending):
                if done:
                    await asyncio.sleep(0)
                for sub_id in pending[done : done + COUNTERS_SLICE]:
                    done += 1
                    self._persist_counter(sub_id)
        finally:
            self._counters_dirty.update(pending[done:])

    def _send_notify(
        self, sub_id: str, request: Any, destination: dict[str, Any] | None, *, queued: bool = False
    ) -> None:
        """Start a NOTIFY transaction (``queued``: already counted as sent when queued)."""
        sub = self.core.subscriptions.get(sub_id)
        try:
            address = self._notify_address(sub.dialog if sub else None, request, destination)
        except ResolveError as exc:
            self.log.warning("notify_unroutable", reason=str(exc))
            if queued:
                self._notify_ended()
            self._apply(self.core.notify_done(sub_id, 503, self.clock()), None)
            return
        if not queued:
            self._notify_started(sub_id)

        def done(response: Response) -> None:
            self._notify_ended()
            if self._stopping:
                return
            self._apply(self.core.notify_done(sub_id, response.status, self.clock()), None)
            if self.on_notify_result is not None:
                self.on_notify_result(sub_id, response.status)

        self.endpoint.start_request(request, address, done)

    def _notify_started(self, sub_id: str) -> None:
        """A NOTIFY counts as sent for the core, and in flight for a stop, from now on."""
        self.core.notify_sent(sub_id)
        self._inflight += 1
        self._idle.clear()

    def _notify_ended(self) -> None:
        self._inflight -= 1
        if self._inflight == 0:
            self._idle.set()

    def _notify_address(
        self, dialog: Any, request: Any, destination: dict[str, Any] | None
    ) -> Address:
        """Where an in-dialog request goes: first Route, else the Request-URI (resolved).

        Kept per (Request-URI, first Route, default transport): that is all it depends on.
        Without a route set only the Request-URI's scheme, host, port and parameters
        matter (``Resolver.resolve``), so watchers behind one address share an entry.
        """
        default = destination["transport"] if destination else self.contact_transport
        uri = request.uri
        route = request.headers.get("route")
        key: tuple[Any, ...]
        if route is None and isinstance(uri, SipURI):
            key = (uri.scheme, uri.host, uri.port, uri.params, default)
        else:
            key = (uri, route or "", default)
        address = self._addresses.get(key)
        if address is None:
            address = self._resolve_notify(request, destination, default)
            if len(self._addresses) >= 10_000:
                self._addresses.clear()
            self._addresses[key] = address
        return address

    def _resolve_notify(
        self, request: Any, destination: dict[str, Any] | None, default: str
    ) -> Address:
        routes = request.name_addrs("route")
        uri = routes[0].uri if routes else request.ruri
        address = self.resolver.resolve(uri)
        if uri.param("transport") is None and not routes and destination:
            address = Address(default, address.host, address.port)
        if address.transport not in self.endpoint.transports:
            address = Address(default, address.host, address.port)
        return address

    # -- timers and persistence ------------------------------------------------------------------
    def _arm(self) -> None:
        when = self.core.next_deadline()
        if when is None or self._stopping:
            return
        if self._timer is not None and self._timer_at is not None and self._timer_at <= when:
            return
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, when - self.clock())
        self._timer_at = when
        self._timer = loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._apply(self.core.on_timer(self.clock()), None)

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        self._counters_at = loop.time()
        while True:
            await asyncio.sleep(self.config.flush_interval)
            if self._counters_dirty and loop.time() - self._counters_at >= COUNTERS_PERSIST_INTERVAL:
                self._counters_at = loop.time()
                await self._persist_counters_sliced()
            try:
                await self.store.flush()
            except StoreError as exc:
                self.log.error("store_flush_failed", reason=str(exc))

    async def _restore(self) -> None:
        try:
            pubs = [PublicationRecord.from_dict(v) for v in (await self.store.load("publication")).values()]
            subs = [SubscriptionRecord.from_dict(v) for v in (await self.store.load("subscription")).values()]
            docs = await self.store.load("xcap")
            marker = (await self.store.load(RUN_MARKER[0])).get(RUN_MARKER[1])
            if self.worker is not None:  # the parent read every worker's marker
                marker = {"clean": not self.worker.unclean}
                pubs = [p for p in pubs if self.worker.owns(p.presentity)]
                subs = [s for s in subs if self.worker.owns(s.presentity)]
        except StoreError as exc:
            raise PsStartError(str(exc)) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise PsStartError(f"store holds records this version cannot read: {exc}") from None
        rules: dict[str, presrules.Ruleset] = {}
        for key, value in docs.items():
            auid, _, rest = key.partition("/")
            xui, _, name = rest.rpartition("/")
            if auid == "pres-rules" and name == "index":
                try:
                    rules[xui] = presrules.parse(value["content"].encode())
                except (DocumentError, KeyError):
                    self.log.warning("stored_rules_unreadable", xui=xui)
        if marker is not None and not marker.get("clean", True) and subs:
            # the last run did not stop: its latest NOTIFY counters may not be stored
            self.log.warning("unclean_stop_detected", cseq_slack=CRASH_CSEQ_SLACK,
                             subscriptions=len(subs))
            for sub in subs:
                sub.dialog.local_cseq += CRASH_CSEQ_SLACK
                if sub.event == "presence.winfo":
                    sub.winfo_version += CRASH_CSEQ_SLACK
        outcome = self.core.restore(pubs, subs, rules, self.clock())
        if pubs or subs:
            self.log.info(
                "state_restored",
                publications=len(self.core.publications),
                subscriptions=len(self.core.subscriptions),
            )
        self._apply(outcome, None)
        self.store.put(*self._run_marker(), {"clean": False})
        try:
            await self.store.flush()
        except StoreError as exc:
            raise PsStartError(str(exc)) from None

    def _run_marker(self) -> tuple[str, str]:
        if self.worker is None:
            return RUN_MARKER
        return RUN_MARKER[0], f"{RUN_MARKER[1]}.{self.worker.index}"

    # -- XCAP -----------------------------------------------------------------------------------------
    async def _start_xcap(self) -> None:
        self.xcap = await start_xcap(self.config, self.store, self._xcap_changed, self.server_ssl)

    def _xcap_changed(self, auid: str, xui: str, name: str, content: bytes | None) -> None:
        if auid != "pres-rules" or name != "index":
            return
        ruleset = None
        if content is not None:
            try:
                ruleset = presrules.parse(content)
            except DocumentError as exc:
                self.log.warning("rules_unreadable", xui=xui, reason=exc.reason)
                return
        self.log.info("rules_changed", xui=xui)
        self._apply(self.core.set_rules(xui, ruleset, self.clock()), None)

    def _control(self, message: dict[str, Any], content: bytes | None) -> None:
        """A control message from the parent of the workers (an XCAP edit, D13)."""
        if message.get("op") == "rules":
            self._xcap_changed(
                str(message.get("auid")), str(message.get("xui")), str(message.get("name")), content
            )
        else:
            self.log.warning("unknown_control_message", op=message.get("op"))

    def _install_initial_rules(self) -> None:
        for presentity, watchers in self.initial_rules.items():
            key = aor_key(presentity)
            if self.core.canonical(key) in self.core.rules:
                continue
            content = allow_rules_document(watchers)
            ruleset = presrules.parse(content)
            self.store.put(
                "xcap",
                f"pres-rules/{presentity}/index",
                {"etag": hashlib.sha1(content).hexdigest()[:16], "content": content.decode()},
            )
            self._apply(self.core.set_rules(presentity, ruleset, self.clock()), None)
            self.log.info("initial_rules_installed", presentity=presentity, watchers=watchers)

    def set_rules(self, presentity: str, ruleset: presrules.Ruleset | None) -> None:
        """Install rules directly (tests and tools without XCAP)."""
        self._apply(self.core.set_rules(presentity, ruleset, self.clock()), None)


def say_trust_mode(config: PsConfig, log: Any) -> None:
    """The first log line of an ``open`` PS: it takes presence from anyone."""
    if config.trust == "open":
        log.warning(
            "trust_mode_open",
            detail="accepting PUBLISH/SUBSCRIBE from any source without the IMS core",
        )


async def start_xcap(
    config: PsConfig,
    store: Store,
    on_change: Callable[[str, str, str, bytes | None], None],
    server_ssl: ssl.SSLContext | None,
) -> Any:
    """Start the XCAP server of ``config.xcap`` on ``store``; PsStartError if it cannot listen."""
    from ..xcap.server import XcapServer

    spec = config.xcap or ""
    scheme, _, rest = spec.partition(":")
    host, _, port_text = rest.strip("/").rpartition(":")
    creds = dict(config.credentials)
    idents = {k: set(v) for k, v in config.identities.items()}
    xcap = XcapServer(
        host,
        int(port_text),
        root=config.xcap_root,
        realm=config.domain,
        credentials=creds.get,
        identities=lambda user: idents.get(user, set()),
        store=store,
        on_change=on_change,
        ssl=server_ssl if scheme == "https" else None,
    )
    try:
        await xcap.start()
    except OSError as exc:
        raise PsStartError(f"XCAP cannot listen on {spec}: {exc.strerror or exc}") from None
    return xcap


def allow_rules_document(watchers: list[str]) -> bytes:
    """A pres-rules document (RFC 5025) giving these watchers everything."""
    ones = "".join(f'<cp:one id="{w}"/>' for w in watchers)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<cp:ruleset xmlns:cp="urn:ietf:params:xml:ns:common-policy" '
        'xmlns:pr="urn:ietf:params:xml:ns:pres-rules">'
        '<cp:rule id="allow-buddies">'
        f"<cp:conditions><cp:identity>{ones}</cp:identity></cp:conditions>"
        "<cp:actions><pr:sub-handling>allow</pr:sub-handling></cp:actions>"
        "<cp:transformations>"
        "<pr:provide-services><pr:all-services/></pr:provide-services>"
        "<pr:provide-persons><pr:all-persons/></pr:provide-persons>"
        "<pr:provide-devices><pr:all-devices/></pr:provide-devices>"
        "<pr:provide-all-attributes/>"
        "</cp:transformations></cp:rule></cp:ruleset>\n"
    ).encode()
