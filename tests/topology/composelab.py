"""docker-compose.yml read as a topology, and the same topology in Linux network namespaces.

:func:`parse_compose` turns the compose file into :class:`Topology` (services,
their command, address, hostname, ports, volumes, dependencies).  :class:`NetnsLab`
builds one network namespace per service, each with a veth pair to a Linux
bridge living in a namespace of its own (nothing is added to the root
namespace but the namespace names), gives the service its compose address and
brings loopback up; :meth:`NetnsLab.close` removes every veth and namespace it
made.  :class:`NodeProcess` runs a command inside a namespace and waits for its
``ready:`` line by reading the pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_CONFIG = ROOT / "configs" / "compose.toml"
IMAGE_CONFIG = "/app/configs/compose.toml"
"""Where the image holds configs/compose.toml (WORKDIR /app, COPY configs ./configs)."""

NS_PREFIX = "pims-"
_STALE = re.compile(r"^pims-(\d+)-")


class LabError(Exception):
    """A namespace, link or address could not be set up; the message says which command."""


# -- the compose file -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Port:
    host_ip: str | None
    host_port: int
    container_port: int
    protocol: str


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    command: tuple[str, ...]
    address: str | None
    hostname: str | None
    aliases: tuple[str, ...]
    depends_on: dict[str, str]
    """Dependency -> condition (service_started, service_completed_successfully ...)."""
    ports: tuple[Port, ...]
    volumes: tuple[str, ...]
    network_mode: str | None
    raw: Mapping[str, Any]

    @property
    def role(self) -> str | None:
        """The node role of ``node ROLE ...`` commands, None for other commands."""
        if len(self.command) >= 2 and self.command[0] == "node":
            return self.command[1]
        return None


@dataclass(frozen=True, slots=True)
class Topology:
    network: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address | None
    services: dict[str, Service]
    volumes: tuple[str, ...]

    def nodes(self) -> list[Service]:
        """The services running ``node ROLE``, in an order that respects depends_on."""
        return [self.services[n] for n in start_order(self.services) if self.services[n].role]


def _parse_port(spec: Any) -> Port:
    if isinstance(spec, dict):
        return Port(spec.get("host_ip"), int(spec["published"]), int(spec["target"]),
                    str(spec.get("protocol", "tcp")))
    text = str(spec)
    proto = "tcp"
    if "/" in text:
        text, proto = text.rsplit("/", 1)
    parts = text.split(":")
    if len(parts) == 3:
        return Port(parts[0], int(parts[1]), int(parts[2]), proto)
    if len(parts) == 2:
        return Port(None, int(parts[0]), int(parts[1]), proto)
    raise ValueError(f"port {spec!r}: expected [IP:]HOST:CONTAINER[/PROTO]")


def parse_compose(path: Path = COMPOSE_FILE) -> Topology:
    """The compose file as a :class:`Topology` (one user-defined network expected)."""
    data = yaml.safe_load(path.read_text())
    networks = data.get("networks") or {}
    if len(networks) != 1:
        raise ValueError(f"{path}: expected exactly one network, found {sorted(networks)}")
    (net_name, net), = networks.items()
    ipam = (net or {}).get("ipam", {}).get("config", [])
    if len(ipam) != 1 or "subnet" not in ipam[0]:
        raise ValueError(f"{path}: network {net_name} needs one ipam subnet")
    subnet = ipaddress.IPv4Network(ipam[0]["subnet"])
    gw = ipam[0].get("gateway")
    services: dict[str, Service] = {}
    for name, body in (data.get("services") or {}).items():
        command = body.get("command", ())
        if isinstance(command, str):
            raise ValueError(f"{path}: service {name}: give command as a list")
        attach = (body.get("networks") or {}).get(net_name) or {}
        deps = body.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        services[name] = Service(
            name=name,
            command=tuple(str(c) for c in command),
            address=attach.get("ipv4_address"),
            hostname=body.get("hostname"),
            aliases=tuple(attach.get("aliases") or ()),
            depends_on={d: str((c or {}).get("condition", "service_started")) for d, c in deps.items()},
            ports=tuple(_parse_port(p) for p in body.get("ports") or ()),
            volumes=tuple(str(v) for v in body.get("volumes") or ()),
            network_mode=body.get("network_mode"),
            raw=body,
        )
    return Topology(
        network=net_name,
        subnet=subnet,
        gateway=ipaddress.IPv4Address(gw) if gw else None,
        services=services,
        volumes=tuple(data.get("volumes") or ()),
    )


def start_order(services: Mapping[str, Service]) -> list[str]:
    """Service names, every one after what it depends on; ValueError on a cycle or unknown name."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name not in services:
            raise ValueError(f"{path[-1]} depends on unknown service {name}")
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise ValueError("depends_on cycle: " + " -> ".join((*path, name)))
        state[name] = "visiting"
        for dep in services[name].depends_on:
            visit(dep, (*path, name))
        state[name] = "done"
        order.append(name)

    for name in services:
        visit(name, ("(top)",))
    return order


# -- namespaces -------------------------------------------------------------------------------


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=False)


def netns_unavailable() -> str | None:
    """Why network namespaces cannot be used here (None: they can)."""
    if not os.uname().sysname == "Linux":
        return "network namespaces need Linux"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    probe = f"{NS_PREFIX}{os.getpid()}-probe"
    made = _ip("netns", "add", probe)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip() or made.returncode}"
    try:
        veth = _ip("-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1")
        if veth.returncode != 0:
            return f"cannot create a veth pair in a namespace: {veth.stderr.strip()}"
        bridge = _ip("-n", probe, "link", "add", "b0", "type", "bridge")
        if bridge.returncode != 0:
            return f"cannot create a bridge in a namespace: {bridge.stderr.strip()}"
        run = _ip("netns", "exec", probe, "true")
        if run.returncode != 0:
            return f"`ip netns exec` failed: {run.stderr.strip() or run.returncode}"
    finally:
        _ip("netns", "del", probe)
    return None


def remove_stale_namespaces() -> list[str]:
    """Delete namespaces left by earlier runs of this lab whose process is gone."""
    listed = _ip("netns", "list")
    removed: list[str] = []
    for line in listed.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = _STALE.match(name)
        if not m:
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # its owner still runs
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        if _ip("netns", "del", name).returncode == 0:
            removed.append(name)
    return removed


@dataclass
class NetnsLab:
    """Namespaces on one bridge: ``add(name, address)`` per host, ``close()`` removes all."""

    subnet: ipaddress.IPv4Network
    tag: str = field(default_factory=lambda: str(os.getpid()))
    namespaces: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    bridge_ns: str | None = None

    def ns_name(self, host: str) -> str:
        return f"{NS_PREFIX}{self.tag}-{host}"

    def _run(self, *args: str) -> None:
        result = _ip(*args)
        if result.returncode != 0:
            raise LabError(f"ip {' '.join(args)}: {result.stderr.strip() or result.returncode}")

    def start(self) -> None:
        ns = self.ns_name("bridge")
        self._run("netns", "add", ns)
        self.namespaces.append(ns)
        self.bridge_ns = ns
        self._run("-n", ns, "link", "add", "br0", "type", "bridge")
        self._run("-n", ns, "link", "set", "br0", "up")

    def add(self, host: str, address: str) -> str:
        """A namespace for ``host`` with ``address`` on eth0, wired to the bridge; its name."""
        if self.bridge_ns is None:
            self.start()
        assert self.bridge_ns is not None
        ns = self.ns_name(host)
        self._run("netns", "add", ns)
        self.namespaces.append(ns)
        link = f"v-{host}"[:15]
        self._run("-n", self.bridge_ns, "link", "add", link, "type", "veth",
                  "peer", "name", "eth0", "netns", ns)
        self.links.append(link)
        self._run("-n", self.bridge_ns, "link", "set", link, "master", "br0", "up")
        self._run("-n", ns, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
        self._run("-n", ns, "link", "set", "eth0", "up")
        self._run("-n", ns, "link", "set", "lo", "up")
        return ns

    def close(self) -> list[str]:
        """Remove every link and namespace made; the problems met (empty when all went)."""
        problems: list[str] = []
        if self.bridge_ns is not None:
            for link in reversed(self.links):
                r = _ip("-n", self.bridge_ns, "link", "del", link)
                if r.returncode != 0:
                    problems.append(f"link {link}: {r.stderr.strip()}")
        self.links.clear()
        for ns in reversed(self.namespaces):
            r = _ip("netns", "del", ns)
            if r.returncode != 0:
                problems.append(f"netns {ns}: {r.stderr.strip()}")
        left = set(self.remaining())
        problems.extend(f"netns {ns} still present" for ns in self.namespaces if ns in left)
        self.namespaces.clear()
        self.bridge_ns = None
        return problems

    def remaining(self) -> list[str]:
        listed = _ip("netns", "list").stdout.splitlines()
        names = [line.split()[0] for line in listed if line.split()]
        return [n for n in names if n.startswith(f"{NS_PREFIX}{self.tag}-")]


# -- processes inside namespaces -------------------------------------------------------------


@dataclass
class NodeProcess:
    """One command running in a namespace; stdout is read line by line, stderr goes to a file."""

    name: str
    argv: list[str]
    log_path: Path
    proc: asyncio.subprocess.Process | None = None
    lines: list[str] = field(default_factory=list)
    ready_line: str | None = None
    _drain: asyncio.Task[None] | None = None

    async def spawn(self, env: Mapping[str, str], cwd: Path) -> None:
        with self.log_path.open("wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=err, env=dict(env), cwd=cwd,
            )

    async def wait_ready(self, within: float) -> str:
        """The ``ready:`` line; TimeoutError, or LabError when the process ends first."""
        assert self.proc is not None and self.proc.stdout is not None
        async with asyncio.timeout(within):
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    code = await self.proc.wait()
                    raise LabError(f"{self.name} exited ({code}) before ready:\n{self.tail()}")
                line = raw.decode(errors="replace").rstrip("\n")
                self.lines.append(line)
                if line.startswith("ready:"):
                    self.ready_line = line
                    self._drain = asyncio.create_task(self._read_rest())
                    return line

    async def _read_rest(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while raw := await self.proc.stdout.readline():
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def tail(self, count: int = 25) -> str:
        try:
            err = self.log_path.read_text(errors="replace").splitlines()[-count:]
        except OSError:
            err = []
        return "\n".join([*(f"  out| {line}" for line in self.lines[-count:]),
                          *(f"  err| {line}" for line in err)])

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def stop(self, grace: float = 8.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; the exit code."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                async with asyncio.timeout(grace):
                    await self.proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        if self._drain is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                async with asyncio.timeout(2):
                    await self._drain
        return self.proc.returncode


def netns_exec(ns: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def child_env(overrides: Mapping[str, str], drop_prefix: str = "PRESENCE_IMS_") -> dict[str, str]:
    """This environment without ``drop_prefix*`` variables, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_prefix)}
    env.update(overrides)
    return env


def in_image_paths(argv: Iterable[str], mapping: Mapping[str, str]) -> list[str]:
    """``argv`` with container paths replaced by the paths of this checkout."""
    return [mapping.get(a, a) for a in argv]
