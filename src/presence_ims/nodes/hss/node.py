"""The HSS node: a Diameter server (Cx/Px and Sh/Ph) around :class:`HssLogic`.

Vectors come from :class:`MilenageVectorSource` (MILENAGE with each
subscriber's K and OP/OPc, SQN advanced per vector and, when ``sqn_store`` is
set, saved atomically to a JSON file so a restart never reuses one).
Requests the logic asks for (RTR to an S-CSCF, PNR to a PNA/AS) go over the
connection that peer opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl as _ssl
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from ...diameter.base import CX_APPLICATION, SH_APPLICATION, result_name
from ...diameter.codec import DiameterError, DiameterMessage, Result
from ...diameter.cx import ReasonCode
from ...diameter.sh import LocationInformation
from ...transport.diameter import DiameterCounters, DiameterPeer, DiameterServer
from .logic import HssError, HssLogic, SendRequest, VectorSource
from .model import HssConfig, SubscriberConfig

if TYPE_CHECKING:
    from ...security.aka import AuthVector
    from ...security.milenage import Milenage

__all__ = ["HssNode", "MilenageVectorSource"]


class MilenageVectorSource:
    """AKA vectors from MILENAGE (TS 35.206) and TS 33.102 sequence numbers.

    Each vector uses ``next_sqn`` of the last SQN used (SEQ + 1, same IND);
    a resynchronisation continues from the UE's SQN_MS.  With ``store`` the
    last SQN per IMPI is written to a JSON file (temporary file + rename)
    after every change and read back at start.
    """

    def __init__(
        self,
        subscribers: Iterable[SubscriberConfig],
        store: Path | None = None,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._sqn: dict[str, int] = {sub.impi: sub.sqn for sub in subscribers}
        self._store = store
        self._random = random_bytes
        self._milenage: dict[str, Milenage] = {}
        if store is not None and store.exists():
            try:
                saved = json.loads(store.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise HssError(f"cannot read SQN store {store}: {exc}") from exc
            if not isinstance(saved, dict):
                raise HssError(f"SQN store {store} is not a JSON object")
            for impi, sqn in saved.items():
                if isinstance(impi, str) and isinstance(sqn, int) and 0 <= sqn < 1 << 48:
                    self._sqn[impi] = max(sqn, self._sqn.get(impi, 0))

    def sqn(self, impi: str) -> int:
        """The last SQN used for ``impi``."""
        return self._sqn.get(impi, 0)

    def _m(self, sub: SubscriberConfig) -> Milenage:
        from ...security.errors import SecurityError
        from ...security.milenage import Milenage

        cached = self._milenage.get(sub.impi)
        if cached is not None:
            return cached
        if sub.k is None:
            raise HssError(f"{sub.impi} has no AKA key")
        try:
            m = Milenage(
                bytes.fromhex(sub.k),
                op=None if sub.op is None else bytes.fromhex(sub.op),
                opc=None if sub.opc is None else bytes.fromhex(sub.opc),
            )
        except SecurityError as exc:
            raise HssError(f"{sub.impi}: {exc.reason}") from exc
        self._milenage[sub.impi] = m
        return m

    def vector(self, sub: SubscriberConfig, now: float) -> AuthVector:
        """A fresh vector, advancing and saving the SQN."""
        from ...security.aka import generate_vector, next_sqn
        from ...security.errors import SecurityError

        m = self._m(sub)
        try:
            sqn = next_sqn(self._sqn.get(sub.impi, sub.sqn))
            vector = generate_vector(m, sqn, bytes.fromhex(sub.amf), self._random(16))
        except SecurityError as exc:
            raise HssError(f"{sub.impi}: {exc.reason}") from exc
        self._sqn[sub.impi] = sqn
        self._save()
        return vector

    def resync(self, sub: SubscriberConfig, rand: bytes, auts: bytes) -> int:
        """Recover SQN_MS from AUTS and continue from it."""
        from ...security.aka import resync_sqn
        from ...security.errors import SecurityError

        try:
            sqn_ms = resync_sqn(self._m(sub), rand, auts)
        except SecurityError as exc:
            raise HssError(f"{sub.impi}: resynchronisation failed: {exc.reason}") from exc
        self._sqn[sub.impi] = sqn_ms
        self._save()
        return sqn_ms

    def _save(self) -> None:
        if self._store is None:
            return
        directory = self._store.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self._store.name}.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self._sqn, handle, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self._store)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise HssError(f"cannot write SQN store {self._store}: {exc}") from exc


class HssNode:
    """The HSS: Cx/Px and Sh/Ph over one Diameter server."""

    def __init__(
        self,
        config: HssConfig,
        *,
        vector_source: VectorSource | None = None,
        ssl: _ssl.SSLContext | None = None,
        logger: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        """The node's configuration."""
        self._log = (logger or structlog.get_logger()).bind(node="hss")
        self._clock = clock
        vectors = vector_source or MilenageVectorSource(config.subscribers, config.sqn_store)
        self.logic = HssLogic(config, vectors, session_high=int(clock()), logger=self._log)
        """The sans-IO core (registration state, Sh subscriptions)."""
        self._ssl = ssl
        self._server: DiameterServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        """The Diameter port (after :meth:`start`)."""
        if self._server is None:
            raise HssError("HSS not started")
        return self._server.port

    @property
    def server(self) -> DiameterServer:
        """The Diameter server (counters, connected peers)."""
        if self._server is None:
            raise HssError("HSS not started")
        return self._server

    @property
    def counters(self) -> DiameterCounters:
        """Diameter message and error counts (after :meth:`start`)."""
        return self.server.counters

    async def start(self) -> None:
        """Listen for Diameter peers."""
        if self._server is not None:
            raise HssError("HSS already started")
        server = DiameterServer(
            self.config.listen_address,
            self.config.listen_port,
            self.config.origin_host,
            self.config.realm,
            (CX_APPLICATION, SH_APPLICATION),
            self._on_request,
            self._ssl,
            node="hss",
            logger=self._log,
        )
        await server.start()
        self._server = server
        self._log.info("hss_started", port=server.port, subscribers=len(self.config.subscribers))

    async def stop(self) -> None:
        """Finish pending sends, close every connection (DPR) and stop."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.stop()
            self._server = None
        self._log.info("hss_stopped")

    async def __aenter__(self) -> HssNode:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _on_request(
        self, request: DiameterMessage, peer: DiameterPeer
    ) -> DiameterMessage | None:
        answer, actions = self.logic.handle(request, self._clock(), peer.remote_host)
        for action in actions:
            task = asyncio.create_task(self._send(action))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return answer

    async def _send(self, action: SendRequest) -> DiameterMessage | None:
        server = self._server
        if server is None:
            return None
        try:
            answer = await server.request(action.peer, action.message)
        except DiameterError as exc:
            self._log.warning(
                "hss_request_failed",
                interface=action.interface,
                command=action.message.name,
                peer=action.peer,
                reason=exc.reason,
            )
            return None
        try:
            result = Result.of(answer)
            outcome = result_name(result.code, result.experimental)
        except DiameterError:
            outcome = "no result"
        self._log.info(
            "hss_request_answered",
            interface=action.interface,
            command=answer.name,
            peer=action.peer,
            result=outcome,
        )
        return answer

    async def _run(self, actions: list[SendRequest]) -> list[DiameterMessage]:
        answers = await asyncio.gather(*(self._send(action) for action in actions))
        return [answer for answer in answers if answer is not None]

    async def deregister(
        self,
        impi: str,
        *,
        reason: int = ReasonCode.PERMANENT_TERMINATION,
        info: str | None = None,
    ) -> list[DiameterMessage]:
        """Administratively de-register ``impi``: RTR to its S-CSCF(s), PNR
        to Sh subscribers; returns the answers received."""
        actions = self.logic.deregister(impi, self._clock(), reason=reason, info=info)
        return await self._run(actions)

    async def update_user_data(
        self,
        impu: str,
        *,
        service_indication: str | None = None,
        service_data: str | None = None,
        cs_location: LocationInformation | None = None,
        ps_location: LocationInformation | None = None,
        cs_user_state: int | None = None,
        ps_user_state: int | None = None,
    ) -> list[DiameterMessage]:
        """Change Sh data of ``impu`` and push it (PNR) to its subscribers;
        returns the PNAs received."""
        actions = self.logic.update_user_data(
            impu,
            self._clock(),
            service_indication=service_indication,
            service_data=service_data,
            cs_location=cs_location,
            ps_location=ps_location,
            cs_user_state=cs_user_state,
            ps_user_state=ps_user_state,
        )
        return await self._run(actions)
