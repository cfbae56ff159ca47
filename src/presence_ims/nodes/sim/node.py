"""The element simulator as a node of ``presence-ims up``.

With ``[sim] autostart = true`` it plays its scenario (``configs/scenarios/demo.toml``
by default) once the network is up, or over and over with ``loop``; otherwise
it stays idle and ``presence-ims sim ...`` drives the elements by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ...logging import get_logger
from ..common import NodeStartError
from .client import ElementSimulator, SimTargets
from .config import SimSection
from .errors import SimError
from .scenario import Scenario, load_scenario

__all__ = ["SimNode"]


class SimNode:
    """Runs the MSC/VLR, SGSN, GGSN and GMLC toward the network's PNA."""

    role = "sim"

    def __init__(self, section: SimSection, targets: SimTargets, *, domain: str) -> None:
        self.section = section
        self.targets = targets
        self.domain = domain
        self.log = get_logger(node="sim")
        self.simulator: ElementSimulator | None = None
        self.scenario: Scenario | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.section.autostart:
            try:
                self.scenario = load_scenario(self.section.scenario)
            except SimError as exc:
                raise NodeStartError(f"sim: {exc.reason}") from None
        self.simulator = ElementSimulator(self.targets, logger=self.log)
        if self.scenario is not None:
            self._task = asyncio.create_task(self._play(self.scenario))
        self.log.info(
            "sim_started",
            scenario=self.scenario.name if self.scenario else None,
            steps=len(self.scenario.steps) if self.scenario else 0,
        )

    async def _play(self, scenario: Scenario) -> None:
        assert self.simulator is not None
        outcomes = await self.simulator.run(scenario, loop=self.section.loop)
        refused = sum(1 for o in outcomes if not o.ok)
        self.log.info("scenario_done", scenario=scenario.name, steps=len(outcomes), refused=refused)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self.simulator is not None:
            await self.simulator.close()
            self.simulator = None

    def describe(self) -> list[tuple[str, str, str]]:
        """Rows for the ``up`` banner."""
        what = f"scenario {self.section.scenario}" if self.scenario else "idle (presence-ims sim ...)"
        if self.scenario and self.section.loop:
            what += ", looping"
        return [(f"SIM {self.domain}", "MSC/VLR, SGSN, GGSN, GMLC -> PNA", what)]


def targets_from_settings(settings: Any, *, timeout: float | None = None) -> SimTargets:
    """Where the network's PNA listens and the secrets of its elements (from ``[pna]``/``[sim]``)."""
    from ...elements.feed import FeedElement

    pna = settings.pna
    sim: SimSection = settings.sim
    host = settings.host_of("pna")

    def element(ident: str, kind: str) -> FeedElement | None:
        cfg = pna.feed_elements.get(ident)
        if cfg is None or cfg.type != kind:
            return None
        return FeedElement(ident, cfg.type, cfg.secret.encode())

    bind = settings.host_of("sim")
    secret = pna.radius_clients.get(bind)
    msisdns: dict[str, str] = {}
    for sub in settings.subscribers:
        for group in sub.impus:
            canonical = next((u for u in group if u.startswith("sip")), group[0])
            tel = next((u for u in group if u.startswith("tel:")), None)
            digits = (sub.msisdn or (tel[4:] if tel else "")).lstrip("+")
            if digits.isdigit():
                msisdns[canonical] = digits
    return SimTargets(
        domain=settings.domain,
        feed=(host, pna.feed_port),
        radius=(host, pna.radius_port),
        mlp_url=f"http://{host}:{pna.mlp_port}/mlp",
        msc=element(sim.msc, "msc"),
        sgsn=element(sim.sgsn, "sgsn"),
        radius_secret=secret.encode() if secret is not None else None,
        mlp_user=pna.mlp_user,
        mlp_password=pna.mlp_password,
        ggsn=sim.ggsn,
        msisdns=msisdns,
        bind=bind,
        timeout=timeout or sim.timeout,
    )
