"""The Presence External Agent: signed submissions over HTTP in, Pex out.

``POST /v1/presence`` takes a submission (:mod:`.submission`) signed as
:mod:`.auth` describes.  In order: authenticate (401), read (400), authorise
the presentity and attributes for that source (403), validate (400), know the
presentity (404); only then the PEA keeps the source's contribution and
publishes the presentity's document on **Pex** (PUBLISH over mutual TLS with
the PEA's certificate; the PS lets the PEA publish person elements only).
Every submission is logged with ``interface="Pex"`` and counted
(``counters["Pex.accepted"]``, ``counters["Pex.refused.<kind>"]``).

The document of a presentity holds one ``dm:person`` per source
(``pea-<source>``); contributions end at their ``expires``/``until``, and a
calendar is re-evaluated whenever its answer changes.  ``GET /v1/health``
answers ``ok`` (unauthenticated, nothing else is disclosed).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ...documents import pidf
from ...logging import get_logger
from ...sip import SipParseError, parse_uri
from ...sip.transaction import Address
from ...transport import SipEndpoint
from ...transport.resolve import ResolveError, Resolver
from ..common import NodeStartError
from ..pna.pen import PublishClient
from ..pna.publisher import Publisher
from ..pna.state import UserDirectory
from .auth import Authenticator, SourcePolicy
from .config import PeaSection
from .errors import PeaError
from .icalendar import Calendar
from .submission import (
    PersonAttributes,
    calendar_attributes,
    check_scope,
    person_element,
    read_submission,
    validate,
)

__all__ = ["SUBMIT_PATH", "PeaNetwork", "PeaNode"]

SUBMIT_PATH = "/v1/presence"


@dataclass(frozen=True, slots=True)
class PeaNetwork:
    """What the PEA needs to know about its network."""

    domain: str
    """Home network domain."""
    name: str
    """Our host name (``pea.home1.net``), the SIP identity ``sip:pea.home1.net``."""
    host: str
    """Address the HTTP server binds."""
    transport: str
    """Network-side SIP transport: tls or tcp."""
    hosts: dict[str, str]
    """Host table for the network's names."""
    ps_uri: str
    """Where PUBLISHes go (Pex)."""


@dataclass(slots=True)
class _Contribution:
    source: str
    attributes: PersonAttributes | None
    calendar: Calendar | None
    expires_at: float
    received_at: float
    with_note: bool = False
    next_change: float | None = None


class PeaNode:
    """The PEA node (``role = "pea"``)."""

    role = "pea"

    def __init__(
        self,
        config: PeaSection,
        network: PeaNetwork,
        sources: tuple[SourcePolicy, ...],
        directory: UserDirectory,
        *,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.network = network
        self.identity = f"sip:{network.name}"
        self.sources = sources
        self.directory = directory
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        self.clock = clock
        self.log = get_logger(node="pea")
        self.counters: Counter[str] = Counter()
        """Accepted and refused submissions (``Pex.accepted``, ``Pex.refused.<kind>``), PUBLISH outcomes."""
        self.auth = Authenticator(sources, max_skew=config.max_skew)
        self.endpoint = SipEndpoint(node="pea", interface="Pex", logger=self.log)
        self.publisher = Publisher(expires=config.publish_expires, debounce=config.debounce)
        self.pex: PublishClient | None = None
        self.port: int | None = None
        """The bound HTTP port."""
        self._contributions: dict[str, dict[str, _Contribution]] = {}
        self._runner: web.AppRunner | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        net = self.network
        t = net.transport
        try:
            ps = Resolver(net.hosts, default_transport=t).resolve(parse_uri(net.ps_uri))
        except (ResolveError, SipParseError) as exc:
            raise NodeStartError(f"pea: {exc}") from None
        try:
            await self.endpoint.listen(
                t, net.host, 0,
                ssl=self.server_ssl if t == "tls" else None,
                client_ssl=self.client_ssl if t == "tls" else None,
            )  # fmt: skip
        except (OSError, ValueError) as exc:
            await self.endpoint.close()
            raise NodeStartError(f"pea cannot open its {t} transport: {exc}") from None
        self.pex = PublishClient(
            self.endpoint,
            Address(t, ps.host, ps.port),
            self.publisher,
            identity=self.identity,
            interface="Pex",
            node="pea",
            logger=self.log,
            count=self._count,
            clock=self.clock,
        )
        app = web.Application(client_max_size=self.config.max_body)
        app.router.add_post(SUBMIT_PATH, self._on_submit)
        app.router.add_get("/v1/health", self._on_health)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, net.host, self.config.port)
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            await self.endpoint.close()
            raise NodeStartError(f"pea cannot listen on {net.host}:{self.config.port}: {exc.strerror or exc}") from None
        self._runner = runner
        for address in runner.addresses:
            self.port = int(address[1])
            break
        self.pex.start()
        self._task = asyncio.create_task(self._expiry_loop())
        self.log.info("pea_started", port=self.port, sources=sorted(s.id for s in self.sources))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.pex is not None:
            await self.pex.close()
        await self.endpoint.close()
        self.log.info("pea_stopped")

    def describe(self) -> list[tuple[str, str, str]]:
        """Rows for the ``up`` banner."""
        return [
            (
                f"PEA {self.network.domain}",
                "external sources (signed JSON), Pex",
                f"http://{self.network.host}:{self.port}{SUBMIT_PATH}",
            )
        ]

    def _count(self, name: str) -> None:
        self.counters[name] += 1

    # -- HTTP -------------------------------------------------------------------------------
    async def _on_health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    def _refuse(self, exc: PeaError, **fields: Any) -> web.Response:
        self.counters["Pex.refused"] += 1
        self.counters[f"Pex.refused.{exc.kind}"] += 1
        self.log.warning(
            "submission_refused", interface="Pex", status=exc.status, kind=exc.kind,
            reason=exc.reason, **fields,
        )  # fmt: skip
        headers = {"WWW-Authenticate": 'PEA-SIG-1 realm="pea"'} if exc.status == 401 else None
        return web.json_response(
            {"error": exc.kind, "reason": exc.reason}, status=exc.status, headers=headers
        )

    async def _on_submit(self, request: web.Request) -> web.Response:
        remote = request.remote or "?"
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._refuse(PeaError(413, "too_large", "submission too large"), remote=remote)
        now = self.clock()
        try:
            source = self.auth.authenticate(request.headers, request.method, request.raw_path, body, now)
        except PeaError as exc:
            return self._refuse(exc, remote=remote, source=request.headers.get("X-PEA-Source", "")[:40])
        try:
            presentity = self.submit(source, body, now)
        except PeaError as exc:
            return self._refuse(exc, remote=remote, source=source.id)
        return web.json_response({"status": "accepted", "presentity": presentity}, status=202)

    # -- submissions ------------------------------------------------------------------------
    def submit(self, source: SourcePolicy, body: bytes, now: float) -> str:
        """Check and apply an authenticated submission; the presentity it changed."""
        raw = read_submission(body)
        canonical = self.directory.resolve(str(raw["presentity"]).strip())
        check_scope(raw, source, canonical)
        sub = validate(raw, now, default_ttl=self.config.default_ttl, max_ttl=self.config.max_ttl)
        if canonical is None:
            raise PeaError(404, "unknown_presentity", "no such presentity")
        mine = self._contributions.setdefault(canonical, {})
        if sub.clear:
            mine.pop(source.id, None)
            what = "clear"
        elif sub.calendar is not None:
            mine[source.id] = _Contribution(
                source.id, None, sub.calendar, sub.expires_at or now + self.config.max_ttl, now,
                with_note="note" in source.attributes,
            )  # fmt: skip
            what = f"calendar ({len(sub.calendar.events)} events)"
            for warning in sub.calendar.warnings:
                self.log.info("calendar_warning", interface="Pex", source=source.id, warning=warning)
        else:
            assert sub.attributes is not None and sub.expires_at is not None
            mine[source.id] = _Contribution(source.id, sub.attributes, None, sub.expires_at, now)
            what = "attributes"
        if not mine:
            del self._contributions[canonical]
        self.counters["Pex.accepted"] += 1
        self.log.info(
            "submission", interface="Pex", outcome="accepted", source=source.id,
            presentity=canonical, what=what,
        )  # fmt: skip
        self._republish(canonical, now)
        return canonical

    def document(self, presentity: str, now: float) -> pidf.PresenceDocument | None:
        """The PIDF the PEA publishes for ``presentity`` at ``now`` (None: nothing)."""
        persons: list[pidf.Person] = []
        for source_id in sorted(self._contributions.get(presentity, {})):
            c = self._contributions[presentity][source_id]
            attrs = c.attributes
            if c.calendar is not None:
                attrs, c.next_change = calendar_attributes(c.calendar, now, with_note=c.with_note)
                if c.next_change is not None and c.next_change <= now:
                    c.next_change = now + 1.0  # never spin on a boundary
            if attrs is not None:
                persons.append(person_element(source_id, attrs, c.received_at))
        if not persons:
            return None
        return pidf.PresenceDocument(presentity, (), tuple(persons))

    def _republish(self, presentity: str, now: float) -> None:
        doc = self.document(presentity, now)
        body = pidf.build(doc) if doc is not None else None
        if self.pex is not None:
            self.pex.update(presentity, body)
        self._wake.set()

    def _next_deadline(self) -> float | None:
        times = [
            t
            for mine in self._contributions.values()
            for c in mine.values()
            for t in (c.expires_at, c.next_change)
            if t is not None
        ]
        return min(times) if times else None

    async def _expiry_loop(self) -> None:
        while True:
            deadline = self._next_deadline()
            self._wake.clear()
            delay = None if deadline is None else max(0.0, deadline - self.clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            now = self.clock()
            for presentity in list(self._contributions):
                mine = self._contributions[presentity]
                due = [c for c in mine.values() if c.expires_at <= now or (c.next_change or now + 1) <= now]
                if not due:
                    continue
                for c in due:
                    if c.expires_at <= now:
                        del mine[c.source]
                        self.log.info("contribution_expired", interface="Pex", source=c.source, presentity=presentity)
                if not mine:
                    del self._contributions[presentity]
                self._republish(presentity, now)
