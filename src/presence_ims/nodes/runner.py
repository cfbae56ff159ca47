"""Building and running nodes from the network configuration.

:class:`Network` starts a home network's nodes in dependency order (HSS, PS,
S-CSCF, I-CSCF, P-CSCF, then the agents) in one event loop; ``up`` runs one
or two networks in the foreground; ``node ROLE`` runs one node alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from .. import logging as plog
from ..config import ConfigError, NetworkSettings, load
from ..security import pki
from ..storage import StoreError
from .common import NodeStartError
from .ps.node import PsStartError

ROLES = ("hss", "ps", "scscf", "icscf", "pcscf", "pna", "pea", "sim")
# who still needs whom while stopping: the PS's final NOTIFYs go through the S-CSCF and the
# P-CSCF, the S-CSCF's final reg-event NOTIFYs through the P-CSCF
STOP_ORDER = ("sim", "pea", "pna", "ps", "scscf", "pcscf", "icscf", "hss")


class Node(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class StartError(Exception):
    """One clear line: which node could not start and why."""


@dataclass(slots=True)
class Tls:
    server: dict[str, ssl.SSLContext] = field(default_factory=dict)
    client: dict[str, ssl.SSLContext] = field(default_factory=dict)


def make_tls(settings: NetworkSettings, roles: Iterable[str]) -> Tls:
    tls = Tls()
    if not settings.network.tls:
        return tls
    names = [settings.name(r) for r in roles]
    ips = sorted({settings.host_of(r) for r in roles} | {"127.0.0.1"})
    try:
        creds = pki.ensure_pki(settings.pki_dir, settings.domain, names, ips)
    except OSError as exc:
        raise StartError(f"cannot create the network PKI in {settings.pki_dir}: {exc.strerror or exc}") from None
    except ValueError as exc:  # a damaged PEM file
        raise StartError(
            f"the network PKI in {settings.pki_dir} is damaged ({exc}); remove it or run "
            "presence-ims pki init"
        ) from None
    for role in roles:
        c = creds[settings.name(role)]
        try:
            tls.server[role] = pki.server_context(c)
            tls.client[role] = pki.client_context(c)
        except (OSError, ValueError) as exc:
            raise StartError(f"cannot load the certificate of {settings.name(role)}: {exc}") from None
    return tls


def build_node(role: str, settings: NetworkSettings, tls: Tls) -> Node | None:
    """The node object for ``role`` (None when disabled or not available)."""
    hosts = settings.hosts()
    server = tls.server.get(role)
    client = tls.client.get(role)
    if role == "hss":
        from .hss.node import HssNode

        return HssNode(settings.hss_config(), ssl=server)
    if role == "ps":
        from ..transport.resolve import Resolver
        from .ps.node import PresenceServer

        node = PresenceServer(
            settings.ps_config(), resolver=Resolver(hosts, default_transport=settings.net_transport),
            server_ssl=server, client_ssl=client,
        )
        node.initial_rules = dict(settings.ps.initial_rules)
        return node
    if role == "scscf":
        from .scscf import Scscf

        return Scscf(settings.scscf_config(), hosts=hosts, server_ssl=server, client_ssl=client, diameter_ssl=client)
    if role == "icscf":
        from .icscf import Icscf

        return Icscf(settings.icscf_config(), hosts=hosts, server_ssl=server, client_ssl=client, diameter_ssl=client)
    if role == "pcscf":
        from .pcscf import Pcscf

        return Pcscf(settings.pcscf_config(), hosts=hosts, server_ssl=server, client_ssl=client)
    section = getattr(settings, role, None)
    if section is not None and not getattr(section, "enabled", True):
        return None
    factory = _agent_factory(role)
    if factory is None:
        return None
    return factory(settings, tls)  # type: ignore[no-any-return]


def _agent_factory(role: str) -> Any:
    """The PNA, PEA and simulator plug in here when their packages exist."""
    import importlib

    try:
        module = importlib.import_module(f"presence_ims.nodes.{role}")
    except ModuleNotFoundError:
        return None
    return getattr(module, "build", None)


class Network:
    """The nodes of one home network, started in order and stopped in reverse."""

    def __init__(self, settings: NetworkSettings, roles: Iterable[str] = ROLES) -> None:
        self.settings = settings
        self.roles = [r for r in ROLES if r in set(roles)]
        self.tls = make_tls(settings, self.roles)
        self.nodes: dict[str, Node] = {}

    async def start(self) -> None:
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        for role in self.roles:
            node = build_node(role, self.settings, self.tls)
            if node is None:
                continue
            try:
                await node.start()
            except (NodeStartError, PsStartError, StoreError, OSError) as exc:
                await self.stop()
                reason = getattr(exc, "strerror", None) or str(exc)
                raise StartError(f"{role} ({self.settings.domain}) cannot start: {reason}") from None
            except Exception as exc:
                await self.stop()
                name = type(exc).__name__
                raise StartError(f"{role} ({self.settings.domain}) cannot start: {name}: {exc}") from None
            self.nodes[role] = node

    async def stop(self, *, final: bool = False) -> None:
        """Stop every node; ``final``: end subscriptions with final NOTIFYs (a clean shutdown)."""
        if final and "ps" in self.nodes:
            self.nodes["ps"].deactivate_on_stop = True  # type: ignore[attr-defined]
        # agents first (they withdraw their publications), then the PS (its final
        # NOTIFYs still need the CSCFs), then the CSCFs and the HSS
        for role in [r for r in STOP_ORDER if r in self.nodes]:
            node = self.nodes.pop(role)
            try:
                await node.stop()
            except Exception as exc:  # one node failing to stop must not keep the others up
                plog.get_logger(node=role).warning("stop_failed", reason=str(exc))

    def table(self) -> list[tuple[str, str, str]]:
        """(node, interfaces, address) rows for the start-up banner."""
        s = self.settings
        t = s.net_transport
        rows = []
        d = s.domain
        if "pcscf" in self.nodes:
            rows.append((f"P-CSCF {d}", "Gm (SIP clients)", f"udp/tcp {s.host_of('pcscf')}:{s.pcscf.port}"))
            rows.append((f"P-CSCF {d}", "Gm protected (ESP)", f"port-c {s.pcscf.port_c}, port-s {s.pcscf.port_s}"))
            rows.append((f"P-CSCF {d}", "Mw", f"{t} {s.host_of('pcscf')}:{s.pcscf.network_port}"))
        if "icscf" in self.nodes:
            rows.append((f"I-CSCF {d}", "Mw, Px", f"{t} {s.host_of('icscf')}:{s.icscf.port}"))
        if "scscf" in self.nodes:
            rows.append((f"S-CSCF {d}", "Mw, ISC, Pi", f"{t} {s.host_of('scscf')}:{s.scscf.port}"))
        if "hss" in self.nodes:
            rows.append((f"HSS {d}", "Cx, Px, Sh/Ph (Diameter)", f"{t} {s.host_of('hss')}:{s.hss.port}"))
        if "ps" in self.nodes:
            rows.append((f"PS {d}", "Peu, Pw, Pen, Pex (ISC)", f"{t} {s.host_of('ps')}:{s.ps.port}"))
            if s.ps.xcap_port is not None:
                rows.append((f"XCAP {d}", "Ut (pres-rules)", f"http://{s.host_of('xcap')}:{s.ps.xcap_port}/xcap-root"))
        for role in ("pna", "pea", "sim"):
            node = self.nodes.get(role)
            describe = getattr(node, "describe", None)
            if describe is not None:
                rows.extend(describe())
        return rows


class ProcessNetwork:
    """One OS process per node (``up --processes``), restarted when it dies.

    The parent creates the PKI first so that the children never race to make
    the CA; each child is ``presence-ims node ROLE --config FILE`` and is
    considered up when it prints its ``ready:`` line.
    """

    RESTART_DELAY = 1.0
    READY_TIMEOUT = 20.0

    def __init__(self, settings: NetworkSettings, path: str, log_level: str) -> None:
        self.settings = settings
        self.path = path
        self.log_level = log_level
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        self.log = plog.get_logger(node="supervisor")
        self.roles = [r for r in ROLES if getattr(getattr(settings, r, None), "enabled", True)]

    def table(self) -> list[tuple[str, str, str]]:
        net = Network.__new__(Network)
        net.settings = self.settings
        net.nodes = {r: object() for r in self.procs}  # type: ignore[misc]
        return Network.table(net)

    async def start(self) -> None:
        make_tls(self.settings, ROLES)
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        for role in self.roles:
            ok = await self._spawn(role)
            if ok is None:
                continue
            if not ok:
                await self.stop()
                raise StartError(f"{role} ({self.settings.domain}) did not start (see its log above)")
            self._watchers[role] = asyncio.create_task(self._watch(role))

    async def _spawn(self, role: str) -> bool | None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "presence_ims", "node", role, "--config", self.path,
            "--log-level", self.log_level,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(self.READY_TIMEOUT):
                while True:
                    line = await proc.stdout.readline()
                    if not line:
                        await proc.wait()
                        return None if proc.returncode == 0 else False
                    if line.startswith(b"ready:"):
                        break
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return False
        self.procs[role] = proc
        self.log.info("node_process_up", role=role, pid=proc.pid)
        return True

    async def _watch(self, role: str) -> None:
        while not self._stopping:
            proc = self.procs[role]
            code = await proc.wait()
            if self._stopping:
                return
            self.log.error("node_process_exited", role=role, code=code, action="restarting")
            await asyncio.sleep(self.RESTART_DELAY)
            if self._stopping:
                return
            ok = await self._spawn(role)
            if not ok:
                self.log.error("node_restart_failed", role=role)
                return

    async def stop(self) -> None:
        self._stopping = True
        for task in self._watchers.values():
            task.cancel()
        for role in [r for r in STOP_ORDER if r in self.procs]:
            proc = self.procs.pop(role)
            if proc.returncode is None:
                proc.terminate()
                try:
                    async with asyncio.timeout(10):
                        await proc.wait()
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def _up(args: argparse.Namespace) -> int:
    from ..cli import UsageError, wait_for_signal

    paths = [args.config]
    if args.with_home2:
        paths.append(args.home2_config)
    networks: list[Any] = []
    try:
        for path in paths:
            try:
                settings = load(path)
            except ConfigError as exc:
                raise UsageError(str(exc)) from None
            if getattr(args, "processes", False):
                networks.append(ProcessNetwork(settings, path, args.log_level))
            else:
                networks.append(Network(settings))
        for net in networks:
            await net.start()
    except StartError as exc:
        for net in networks:
            await net.stop()
        raise UsageError(str(exc)) from None
    try:
        _banner(networks)
        await wait_for_signal()
        print("stopping ...", flush=True)
    finally:
        for net in reversed(networks):
            if isinstance(net, Network):
                await net.stop(final=True)
            else:
                await net.stop()
    return 0


def _banner(networks: list[Any]) -> None:
    out = sys.stdout
    rows = [r for net in networks for r in net.table()]
    width = [max(len(r[i]) for r in rows) for i in range(3)] if rows else [0, 0, 0]
    print(f"{'node':<{width[0]}}  {'interfaces':<{width[1]}}  address", file=out)
    for r in rows:
        print(f"{r[0]:<{width[0]}}  {r[1]:<{width[1]}}  {r[2]}", file=out)
    print(file=out)
    for net in networks:
        if not net.settings.network.demo:
            continue
        print(f"demo subscribers of {net.settings.domain} (DEMO ONLY: published credentials):", file=out)
        for sub in net.settings.subscribers:
            impus = ", ".join(sub.all_impus)
            print(f"  {sub.impi:<18} {impus}", file=out)
            print(f"  {'':<18} digest password {sub.digest_password}  K {sub.k}  OP {sub.op}  AMF {sub.amf}", file=out)
    domains = ", ".join(n.settings.domain for n in networks)
    print(f"ready: {domains} (P-CSCF udp/tcp {networks[0].settings.host_of('pcscf')}:{networks[0].settings.pcscf.port})", file=out, flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    from ..cli import run_async

    plog.configure(args.log_level)
    return run_async(lambda: _up(args))


async def _one(args: argparse.Namespace) -> int:
    from ..cli import UsageError, wait_for_signal

    try:
        settings = load(args.config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    net = Network(settings, roles=[args.role])
    try:
        await net.start()
    except StartError as exc:
        raise UsageError(str(exc)) from None
    if not net.nodes:
        raise UsageError(f"{args.role} is disabled or not available in this configuration")
    print(f"ready: {args.role} ({settings.domain})", flush=True)
    try:
        await wait_for_signal()
    finally:
        await net.stop()
    return 0


async def _ps_open(args: argparse.Namespace) -> int:
    """``node ps --trust open ...``: the PS alone, no IMS core, for labs and benchmarks."""
    from ..cli import UsageError, wait_for_signal
    from .ps.config import PsConfig
    from .ps.node import PresenceServer
    from .ps.workers import PsCluster

    sip = tuple(args.sip or ["udp:127.0.0.1:5065"])
    try:
        config = PsConfig(trust=args.trust or "open", sip=sip, store=args.store or "memory",
                          xcap=(args.xcap or None),
                          workers=1 if args.workers is None else args.workers)
    except ValidationError as exc:
        raise UsageError("bad PS options: " + "; ".join(
            f"--{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )) from None
    node: PresenceServer | PsCluster
    try:
        if config.workers > 1:
            node = PsCluster(config, log_level=args.log_level)
        else:
            node = PresenceServer(config)
        await node.start()
    except (PsStartError, StoreError) as exc:
        raise UsageError(str(exc)) from None
    workers = f" workers={config.workers}" if config.workers > 1 else ""
    print(f"ready: ps trust={config.trust} sip={','.join(sip)} store={config.store}{workers}", flush=True)
    failed = getattr(node, "failed", None)
    try:
        waits = [asyncio.ensure_future(wait_for_signal())]
        if failed is not None:
            waits.append(failed)
        _done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            if not w.done():
                w.cancel()
    finally:
        with contextlib.suppress(Exception):
            await node.stop()
    if failed is not None and failed.done() and not failed.cancelled():
        print(f"presence-ims: {failed.result()}", file=sys.stderr, flush=True)
        return 1
    return 0


def run_node(args: argparse.Namespace) -> int:
    from ..cli import UsageError, run_async

    if args.role == "ps" and args.config is None:
        return run_async(lambda: _ps_open(args))
    if args.config is None:
        raise UsageError(f"node {args.role} needs --config FILE")
    if not Path(args.config).is_file():
        raise UsageError(f"config file not found: {args.config}")
    return run_async(lambda: _one(args))
