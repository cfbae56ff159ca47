"""The simulated network elements talking to a running PNA.

:class:`ElementSimulator` plays

* the MSC/VLR (Pc) and the SGSN (Pg): signed lines on the PNA's feed
  (one TCP connection per element, each line acknowledged);
* the GGSN (Pk): RADIUS Accounting-Requests over UDP, retransmitted until an
  Accounting-Response that verifies arrives;
* the GMLC (Pl): MLP ``slirep`` documents POSTed to ``/mlp`` with HTTP Basic.

Every method returns what the PNA answered (and raises :class:`SimError` when
it does not answer).  :meth:`ElementSimulator.run` plays a
:class:`~.scenario.Scenario` in real time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp

from ...documents.xml import DocumentError, parse_xml
from ...elements import feed as efeed
from ...elements import mlp as emlp
from ...elements import radius as eradius
from ...elements.errors import ElementError
from .errors import SimError
from .scenario import Scenario, Step

__all__ = ["ElementSimulator", "Outcome", "SimTargets"]


@dataclass(frozen=True, slots=True)
class SimTargets:
    """Where the PNA listens and the secrets the elements share with it."""

    domain: str
    """Home network domain (``alice`` means ``sip:alice@<domain>``)."""
    feed: tuple[str, int]
    """PNA feed address (Pc/Pg)."""
    radius: tuple[str, int]
    """PNA RADIUS accounting address (Pk)."""
    mlp_url: str
    """PNA MLP endpoint (Pl), ``http://host:port/mlp``."""
    msc: efeed.FeedElement | None
    """The MSC/VLR's feed identity."""
    sgsn: efeed.FeedElement | None
    """The SGSN's feed identity."""
    radius_secret: bytes | None
    """RADIUS shared secret of the GGSN."""
    mlp_user: str
    mlp_password: str
    ggsn: str = "ggsn1"
    """NAS-Identifier."""
    msisdns: Mapping[str, str] = field(default_factory=dict)
    """IMPU -> MSISDN digits (Calling-Station-Id, MLP msid)."""
    bind: str = "127.0.0.1"
    """Local address for the RADIUS socket (the PNA knows the GGSN by it)."""
    timeout: float = 2.0
    """Seconds to wait for an answer."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the PNA answered to one simulated action."""

    interface: str
    """Pc, Pg, Pk or Pl."""
    user: str
    """The IMPU acted for."""
    action: str
    """What was done (``attach``, ``pdp-start`` ...)."""
    ok: bool
    """The PNA accepted it."""
    detail: str = ""
    """The refusal reason, the MLP result ..."""

    def __str__(self) -> str:
        verdict = "accepted" if self.ok else "refused"
        tail = f" ({self.detail})" if self.detail else ""
        return f"{self.interface} {self.action} {self.user}: {verdict}{tail}"


class _Radius(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.waiting: dict[int, asyncio.Future[bytes]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) >= 20:
            fut = self.waiting.get(data[1])
            if fut is not None and not fut.done():
                fut.set_result(data)


class ElementSimulator:
    """MSC/VLR, SGSN, GGSN and GMLC for the demo users."""

    def __init__(
        self, targets: SimTargets, *, logger: Any = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.targets = targets
        self.log = logger
        self.clock = clock
        now = clock()
        # sequence numbers start at the start time in microseconds: they keep growing
        # across restarts of the simulator, as the PNA's replay check wants
        self._signers = {
            kind: efeed.FeedSigner(element, int(now * 1_000_000))
            for kind, element in (("msc", targets.msc), ("sgsn", targets.sgsn))
            if element is not None
        }
        self._streams: dict[str, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._radius: _Radius | None = None
        self._radius_id = int(now) % 256
        self._radius_lock = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None

    # -- identities ------------------------------------------------------------------------
    def impu(self, user: str) -> str:
        """``alice`` -> ``sip:alice@<domain>``; URIs unchanged."""
        return user if ":" in user else f"sip:{user}@{self.targets.domain}"

    def msisdn(self, user: str) -> str | None:
        """The MSISDN of a user, when the network gives one."""
        return self.targets.msisdns.get(self.impu(user))

    def _note(self, outcome: Outcome) -> Outcome:
        if self.log is not None:
            log = self.log.info if outcome.ok else self.log.warning
            log("sim_action", interface=outcome.interface, user=outcome.user,
                action=outcome.action, ok=outcome.ok, detail=outcome.detail)  # fmt: skip
        return outcome

    # -- Pc / Pg ------------------------------------------------------------------------------
    async def _stream(self, kind: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        stream = self._streams.get(kind)
        if stream is not None and not stream[1].is_closing():
            return stream
        host, port = self.targets.feed
        try:
            async with asyncio.timeout(self.targets.timeout):
                stream = await asyncio.open_connection(host, port, limit=efeed.MAX_LINE)
        except (OSError, TimeoutError) as exc:
            raise SimError(f"cannot reach the PNA feed at {host}:{port}: {exc}") from None
        self._streams[kind] = stream
        return stream

    async def feed(
        self,
        element: Literal["msc", "sgsn"],
        user: str,
        event: str,
        *,
        area: str | None = None,
        cell: str | None = None,
    ) -> Outcome:
        """One MSC/VLR or SGSN event (attach, detach, busy, idle, location)."""
        signer = self._signers.get(element)
        if signer is None:
            raise SimError(f"no feed identity configured for the {element}")
        impu = self.impu(user)
        interface = efeed.interface_of(element)
        lock = self._locks.setdefault(element, asyncio.Lock())
        async with lock:
            for attempt in (1, 2):
                try:
                    # a fresh line per attempt: a line the PNA already took would be a replay
                    ev, line = signer.line(impu, event, self.clock(), area=area, cell=cell)
                except ElementError as exc:
                    raise SimError(exc.reason) from None
                reader, writer = await self._stream(element)
                try:
                    writer.write(line)
                    await writer.drain()
                    async with asyncio.timeout(self.targets.timeout):
                        answer = await reader.readuntil(b"\n")
                    ack = efeed.parse_ack(answer)
                    break
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ElementError) as exc:
                    writer.close()
                    self._streams.pop(element, None)
                    if attempt == 2:
                        raise SimError(f"{interface}: no acknowledgement ({exc})") from None
                except TimeoutError:
                    writer.close()
                    self._streams.pop(element, None)
                    raise SimError(f"{interface}: no acknowledgement within {self.targets.timeout} s") from None
        action = "move" if event == "location" else event
        if ack.seq is not None and ack.seq != ev.seq:
            return self._note(Outcome(interface, impu, action, False, f"ack for seq {ack.seq}"))
        return self._note(Outcome(interface, impu, action, ack.ok, ack.reason or ""))

    # -- Pk --------------------------------------------------------------------------------------
    async def _radius_socket(self) -> _Radius:
        if self._radius is None or self._radius.transport is None or self._radius.transport.is_closing():
            loop = asyncio.get_running_loop()
            _, proto = await loop.create_datagram_endpoint(
                _Radius, local_addr=(self.targets.bind, 0), remote_addr=self.targets.radius
            )
            self._radius = proto
        return self._radius

    async def accounting(
        self,
        user: str,
        status: Literal["start", "interim", "stop", "on", "off"],
        *,
        ip: str | None = None,
        session: str | None = None,
    ) -> Outcome:
        """One Accounting-Request from the GGSN; accepted when a valid response came."""
        secret = self.targets.radius_secret
        if secret is None:
            raise SimError("no RADIUS secret configured for the GGSN")
        impu = self.impu(user)
        msisdn = self.msisdn(user)
        if session is None and status in ("start", "interim", "stop"):
            if ip is None:
                raise SimError("a PDP session needs --ip or --session")
            session = f"{impu.split(':', 1)[1].split('@', 1)[0]}-{ip}"
        record = eradius.AccountingRecord(
            status=status,
            session_id=session,
            calling_station_id=msisdn,
            user_name=impu if msisdn is None else None,
            framed_ip=ip,
            nas_identifier=self.targets.ggsn,
            event_timestamp=int(self.clock()),
        )
        action = {"start": "pdp-start", "interim": "pdp-interim", "stop": "pdp-stop"}.get(status, status)
        async with self._radius_lock:
            proto = await self._radius_socket()
            self._radius_id = (self._radius_id + 1) % 256
            try:
                data = eradius.build_accounting_request(record, secret, self._radius_id)
            except ElementError as exc:
                raise SimError(exc.reason) from None
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[bytes] = loop.create_future()
            proto.waiting[self._radius_id] = fut
            try:
                for _ in range(3):  # RFC 2866: the client retransmits the same packet
                    assert proto.transport is not None
                    proto.transport.sendto(data)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.targets.timeout / 3):
                            response = await asyncio.shield(fut)
                        break
                else:
                    return self._note(Outcome("Pk", impu, action, False, "no Accounting-Response"))
            finally:
                proto.waiting.pop(self._radius_id, None)
        if not eradius.verify_accounting_response(data, response, secret):
            return self._note(Outcome("Pk", impu, action, False, "response does not verify"))
        return self._note(Outcome("Pk", impu, action, True, f"session {session}" if session else ""))

    # -- Pl ---------------------------------------------------------------------------------------
    async def locate(
        self,
        user: str,
        lat: float,
        lon: float,
        *,
        alt: float | None = None,
        radius: float | None = None,
        method: str = "GPS",
    ) -> Outcome:
        """An MLP location report from the GMLC."""
        impu = self.impu(user)
        msisdn = self.msisdn(user)
        position = emlp.Position(
            msid=msisdn or impu,
            msid_type="MSISDN" if msisdn else "SIP_URI",
            latitude=lat,
            longitude=lon,
            altitude=alt,
            radius=radius,
            time=datetime.fromtimestamp(int(self.clock()), UTC),
            method=method,
        )
        try:
            body = emlp.build_report(emlp.LocationReport("slirep", (position,), f"{int(self.clock())}"))
        except ElementError as exc:
            raise SimError(exc.reason) from None
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.targets.timeout))
        credentials = f"{self.targets.mlp_user}:{self.targets.mlp_password}".encode()
        headers = {
            "Content-Type": "application/xml",
            "Authorization": "Basic " + base64.b64encode(credentials).decode(),
        }
        try:
            async with self._http.post(self.targets.mlp_url, data=body, headers=headers) as response:
                status = response.status
                text = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SimError(f"Pl: cannot reach the PNA at {self.targets.mlp_url}: {exc}") from None
        resid, result = _mlp_result(text)
        ok = status == 200 and resid == "0"
        detail = f"HTTP {status}" if status != 200 else f"{resid} {result}".strip()
        return self._note(Outcome("Pl", impu, "locate", ok, "" if ok else detail))

    # -- scenarios ------------------------------------------------------------------------------
    async def step(self, step: Step) -> list[Outcome]:
        """Perform one scenario step."""
        if step.element in ("msc", "sgsn"):
            event = "location" if step.event == "move" else step.event
            element: Literal["msc", "sgsn"] = "msc" if step.element == "msc" else "sgsn"
            return [await self.feed(element, step.user, event, area=step.area, cell=step.cell)]
        if step.element == "ggsn":
            status: Literal["start", "interim", "stop"] = {
                "pdp-start": "start", "pdp-interim": "interim", "pdp-stop": "stop",
            }[step.event]  # type: ignore[assignment]  # fmt: skip
            return [await self.accounting(step.user, status, ip=step.ip, session=step.session)]
        assert step.lat is not None and step.lon is not None
        return [
            await self.locate(
                step.user, step.lat, step.lon, alt=step.alt, radius=step.radius,
                method=step.method or "GPS",
            )
        ]  # fmt: skip

    async def run(self, scenario: Scenario, *, loop: bool = False, speed: float = 1.0) -> list[Outcome]:
        """Play ``scenario`` in real time (``speed`` 2 plays twice as fast)."""
        outcomes: list[Outcome] = []
        while True:
            start = self.clock()
            for step in scenario.steps:
                delay = start + step.at / speed - self.clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    outcomes.extend(await self.step(step))
                except SimError as exc:
                    if self.log is not None:
                        self.log.warning("sim_step_failed", step=step.event, user=step.user, reason=exc.reason)
                    outcomes.append(Outcome("-", self.impu(step.user), step.event, False, exc.reason))
            if not loop:
                return outcomes

    async def close(self) -> None:
        for _, writer in self._streams.values():
            writer.close()
        self._streams.clear()
        if self._radius is not None and self._radius.transport is not None:
            self._radius.transport.close()
        self._radius = None
        if self._http is not None:
            await self._http.close()
            self._http = None


def _mlp_result(data: bytes) -> tuple[str, str]:
    try:
        root = parse_xml(data)
    except DocumentError:
        return "", ""
    result = root.find("result") if root.tag != "result" else root
    if result is None:
        return "", ""
    return result.get("resid") or "", (result.text or "").strip()
