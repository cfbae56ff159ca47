"""docker-compose.yml against configs/compose.toml, and the same topology run across hosts.

There is no Docker engine here, so the compose file is checked structurally
(every service, address, hostname, command, port and volume against the
config the nodes read), then proven by running it: one Linux network
namespace per service on a bridge, each service's own command in its
namespace with its compose address, and the Peu and Pw scenario from a UE in
a namespace of its own.  What the watcher receives is asserted on.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import composelab
import pytest
from composelab import (
    COMPOSE_CONFIG,
    DOCKERFILE,
    IMAGE_CONFIG,
    NetnsLab,
    NodeProcess,
    Topology,
    child_env,
    in_image_paths,
    netns_exec,
    netns_unavailable,
    start_order,
)

import presence_ims.config
from presence_ims.config import NetworkSettings
from presence_ims.documents import pidf
from presence_ims.nodes.runner import ROLES

CORE_ROLES = ("hss", "ps", "scscf", "icscf", "pcscf")
"""Roles that must come up; the agents (pna, pea, sim) join when their package exists."""

UE_SCRIPT = Path(__file__).resolve().with_name("ue_scenario.py")


# -- the compose file, structurally --------------------------------------------------------------


def test_one_service_per_role(topology: Topology) -> None:
    roles = sorted(s.role for s in topology.services.values() if s.role)
    assert roles == sorted(ROLES)
    for service in topology.services.values():
        if service.role is None:
            continue
        assert service.name == service.role
        assert service.command == ("node", service.role, "--config", IMAGE_CONFIG)


def test_addresses_and_hostnames_match_config(
    topology: Topology, compose_settings: NetworkSettings
) -> None:
    s = compose_settings
    seen: dict[str, str] = {}
    for service in topology.services.values():
        if service.role is None:
            continue
        role = service.role
        assert service.address is not None, f"{role} has no fixed ipv4_address"
        ip = ipaddress.IPv4Address(service.address)
        assert ip in topology.subnet
        assert ip != topology.gateway
        assert ip not in (topology.subnet.network_address, topology.subnet.broadcast_address)
        assert service.address not in seen, f"{role} and {seen.get(service.address)} share an address"
        seen[service.address] = role
        assert s.network.hosts.get(s.name(role)) == service.address, (
            f"{role}: compose {service.address}, compose.toml {s.network.hosts.get(s.name(role))}"
        )
        assert s.host_of(role) == service.address
        assert service.hostname == s.name(role)
        assert s.name(role) in service.aliases
    # every name in the hosts table is a compose service's address and alias
    by_address = {svc.address: svc for svc in topology.services.values()}
    for name, address in s.network.hosts.items():
        svc = by_address.get(address)
        assert svc is not None, f"{name} -> {address}: no service has that address"
        assert name in svc.aliases, f"{name} is not an alias of service {svc.name}"
    assert s.host_of("xcap") == topology.services["ps"].address


def test_published_ports(topology: Topology, compose_settings: NetworkSettings) -> None:
    s = compose_settings
    pcscf = {(p.container_port, p.protocol): p for p in topology.services["pcscf"].ports}
    assert set(pcscf) == {(s.pcscf.port, "udp"), (s.pcscf.port, "tcp")}
    assert all(p.host_port == 5060 for p in pcscf.values())
    ps = {(p.container_port, p.protocol): p for p in topology.services["ps"].ports}
    assert s.ps.xcap_port is not None
    assert set(ps) == {(s.ps.xcap_port, "tcp")}
    assert all(p.host_port == 8080 for p in ps.values())
    others = [n for n, svc in topology.services.items() if svc.ports and n not in ("pcscf", "ps")]
    assert others == [], f"only the P-CSCF and XCAP are published, not {others}"


def _mounts(volumes: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for spec in volumes:
        source, target, *mode = spec.split(":")
        out[target] = (source, mode[0] if mode else "rw")
    return out


def test_pki_runs_first_and_volumes(topology: Topology, compose_settings: NetworkSettings) -> None:
    s = compose_settings
    pki_dir, state_dir = str(s.pki_dir), str(s.state_dir)
    pki = topology.services["pki"]
    assert pki.command == ("pki", "init", "--config", IMAGE_CONFIG)
    assert pki.raw.get("restart") in ("no", None)
    assert _mounts(pki.volumes) == {pki_dir: ("pki", "rw")}
    assert {"pki", "state"} <= set(topology.volumes)
    for service in topology.services.values():
        if service.role is None:
            continue
        assert service.depends_on.get("pki") == "service_completed_successfully", service.name
        mounts = _mounts(service.volumes)
        assert mounts.get(pki_dir) == ("pki", "ro"), f"{service.name}: the PKI volume read-only"
        assert mounts.get(state_dir) == ("state", "rw"), f"{service.name}: the state volume"
        assert service.raw.get("image") == pki.raw.get("image")
    order = start_order(topology.services)
    assert order[0] == "pki"
    assert order.index("hss") < order.index("scscf") < order.index("icscf") < order.index("pcscf")


def test_dockerfile() -> None:
    lines = [ln.strip() for ln in DOCKERFILE.read_text().splitlines()]
    instructions = [ln for ln in lines if ln and not ln.startswith("#")]
    froms = [ln.split()[1] for ln in instructions if ln.startswith("FROM ")]
    assert froms and all(f == "python:3.11-slim" for f in froms)
    text = "\n".join(instructions)
    assert re.search(r"pip (wheel|install)\b.*\s\.(\s|$)", text), "the project is installed with pip"
    users = [ln.split()[1] for ln in instructions if ln.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "runs as a non-root user"
    assert 'ENTRYPOINT ["presence-ims"]' in instructions
    workdirs = [ln.split()[1] for ln in instructions if ln.startswith("WORKDIR ")]
    assert "COPY configs ./configs" in instructions and workdirs[-1] == "/app"
    assert IMAGE_CONFIG == f"{workdirs[-1]}/configs/{COMPOSE_CONFIG.name}"
    assert "/var/lib/presence-ims/state" in text and "/var/lib/presence-ims/pki" in text


def test_config_is_valid_and_networked(compose_settings: NetworkSettings) -> None:
    s = compose_settings
    assert s.network.tls
    assert str(s.state_dir) == "/var/lib/presence-ims/state"
    assert str(s.pki_dir) == "/var/lib/presence-ims/pki"
    assert all(s.host_of(r) != "127.0.0.1" for r in ROLES), "every node has its own address"


# -- the topology, run in network namespaces ---------------------------------------------------


def test_skip_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where namespaces cannot be made, the test skips and says why."""
    with monkeypatch.context() as m:
        m.setattr(shutil, "which", lambda _name: None)
        assert netns_unavailable() == "the `ip` command (iproute2) is not installed"
    with monkeypatch.context() as m:
        m.setattr(shutil, "which", lambda _name: "/usr/sbin/ip")
        m.setattr(os, "geteuid", lambda: 1000)
        assert netns_unavailable() == "creating network namespaces needs root"
    with monkeypatch.context() as m:
        m.setattr(shutil, "which", lambda _name: "/usr/sbin/ip")
        m.setattr(os, "geteuid", lambda: 0)
        failed = subprocess.CompletedProcess(["ip"], 1, "", "mount --make-shared /run/netns failed")
        m.setattr(composelab, "_ip", lambda *_args: failed)
        assert netns_unavailable() == (
            "`ip netns add` failed: mount --make-shared /run/netns failed"
        )


def _integrated(role: str, settings: NetworkSettings) -> bool:
    """Whether ``node ROLE`` is expected to run: a core role, or an agent that has its
    ``build`` hook and its own config section (not yet the placeholder ``AgentSection``)."""
    if role in CORE_ROLES:
        return True
    try:
        module = importlib.import_module(f"presence_ims.nodes.{role}")
    except ModuleNotFoundError:
        return False
    section = getattr(settings, role, None)
    placeholder = getattr(presence_ims.config, "AgentSection", None)
    if section is None or (placeholder is not None and type(section) is placeholder):
        return False
    return hasattr(module, "build") and bool(getattr(section, "enabled", True))


def _presence_ims() -> list[str]:
    script = Path(sys.executable).with_name("presence-ims")
    if script.exists():
        return [str(script)]
    found = shutil.which("presence-ims")
    return [found] if found else [sys.executable, "-m", "presence_ims.cli"]


@dataclass
class RunningTopology:
    lab: NetnsLab
    env: dict[str, str]
    pki_dir: Path
    cwd: Path
    nodes: dict[str, NodeProcess] = field(default_factory=dict)
    not_started: list[str] = field(default_factory=list)

    async def crash_and_restart(self, name: str) -> NodeProcess:
        """SIGKILL node ``name`` (a crash), then start its command again in its namespace."""
        old = self.nodes[name]
        assert old.proc is not None
        old.proc.kill()
        await old.stop()
        new = NodeProcess(name, old.argv, old.log_path.with_suffix(".restarted.log"))
        self.nodes[name] = new
        await new.spawn(self.env, self.cwd)
        await new.wait_ready(30)
        return new

    async def stop_nodes(self) -> dict[str, int | None]:
        names = list(reversed(self.nodes))
        codes = await asyncio.gather(*(self.nodes[n].stop() for n in names))
        return dict(zip(names, codes, strict=True))


def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(directory.iterdir())}


@contextlib.asynccontextmanager
async def compose_in_namespaces(
    topology: Topology, settings: NetworkSettings, lab: NetnsLab, tmp_path: Path
) -> AsyncIterator[RunningTopology]:
    """Every compose service in its namespace, as docker-compose would start them."""
    state, pki_dir = tmp_path / "state", tmp_path / "pki"
    # the two volumes of the compose file: same paths for every service, like the mounts
    env = child_env({
        "PRESENCE_IMS_NETWORK__STATE_DIR": str(state),
        "PRESENCE_IMS_NETWORK__PKI_DIR": str(pki_dir),
    })
    paths = {IMAGE_CONFIG: str(COMPOSE_CONFIG)}
    running = RunningTopology(lab, env, pki_dir, tmp_path)
    try:
        for name in start_order(topology.services):
            service = topology.services[name]
            argv = [*_presence_ims(), *in_image_paths(service.command, paths)]
            if service.role is None:
                # one-shot services (pki): run to completion first, as
                # depends_on: service_completed_successfully requires
                done = await asyncio.create_subprocess_exec(
                    *argv, env=env, cwd=tmp_path,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                )
                try:
                    async with asyncio.timeout(30):
                        out, _ = await done.communicate()
                finally:
                    if done.returncode is None:
                        done.kill()
                        await done.wait()
                assert done.returncode == 0, f"{name}: {' '.join(argv)}\n{out.decode()}"
                continue
            if not _integrated(service.role, settings):
                running.not_started.append(name)
                continue
            assert service.address is not None
            ns = lab.add(name, service.address)
            node = NodeProcess(name, netns_exec(ns, argv), tmp_path / f"{name}.log")
            await node.spawn(env, tmp_path)
            running.nodes[name] = node
        waits = {n: asyncio.ensure_future(p.wait_ready(30)) for n, p in running.nodes.items()}
        await asyncio.wait(waits.values())
        failed = {n: t.exception() for n, t in waits.items() if t.exception() is not None}
        if failed:
            report = "\n".join(
                f"{n}: {type(e).__name__}: {e}\n{running.nodes[n].tail()}" for n, e in failed.items()
            )
            pytest.fail(f"nodes not ready:\n{report}")
        yield running
    finally:
        await running.stop_nodes()


async def _run_ue(
    ns: str, settings: NetworkSettings, ue_address: str, auth: str, tag: str
) -> list[dict[str, Any]]:
    pcscf = f"{settings.host_of('pcscf')}:{settings.pcscf.port}"
    xcap = f"http://{settings.host_of('xcap')}:{settings.ps.xcap_port}/xcap-root"
    argv = netns_exec(ns, [
        sys.executable, str(UE_SCRIPT), "--config", str(COMPOSE_CONFIG), "--pcscf", pcscf,
        "--host", ue_address, "--auth", auth, "--xcap", xcap, "--tag", tag, "--timeout", "25",
    ])
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=child_env({}),
    )
    try:
        async with asyncio.timeout(35):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    events = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    tail = err.decode(errors="replace")[-3000:]
    assert proc.returncode == 0 and events and events[-1]["event"] == "done", (
        f"UE scenario ({auth}) failed: {events[-3:]}\n{tail}"
    )
    return events


def _by_event(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == name]


@pytest.mark.netns
@pytest.mark.slow
@pytest.mark.timeout(100)
async def test_peu_and_pw_across_namespaces(
    topology: Topology, compose_settings: NetworkSettings, netns_lab: NetnsLab, tmp_path: Path
) -> None:
    s = compose_settings
    used = {svc.address for svc in topology.services.values() if svc.address}
    used.add(str(topology.gateway))
    ue_address = next(str(h) for h in reversed(list(topology.subnet.hosts())) if str(h) not in used)
    async with compose_in_namespaces(topology, s, netns_lab, tmp_path) as running:
        assert set(CORE_ROLES) <= set(running.nodes), running.not_started
        for name, node in running.nodes.items():
            assert node.ready_line == f"ready: {name} ({s.domain})"
        pki_files = _snapshot(running.pki_dir)
        assert {"ca.pem", "ca.key"} <= set(pki_files)
        assert {f"{s.name(r)}.pem" for r in ROLES} <= set(pki_files)
        ue_ns = netns_lab.add("ue", ue_address)

        for auth in ("digest", "aka"):
            if auth == "aka":
                # a crashed PS, restarted, serves again; the other nodes kept running
                await running.crash_and_restart("ps")
                assert all(node.running for node in running.nodes.values())
            events = await _run_ue(ue_ns, s, ue_address, auth, tag=auth)
            xcap = _by_event(events, "xcap")
            assert xcap and xcap[0]["status"] == 401
            assert "Digest" in (xcap[0]["www_authenticate"] or "")
            registered = {e["user"]: e for e in _by_event(events, "registered")}
            assert set(registered) == {"alice", "bob"}
            assert "sip:alice@home1.net" in registered["alice"]["impus"]
            assert registered["alice"]["protected"] is (auth == "aka"), "ESP only with IMS AKA"
            assert [e["status"] for e in _by_event(events, "published")] == [200, 200]
            assert _by_event(events, "subscribed")[0]["status"] == 200
            notifies = _by_event(events, "notify")
            assert len(notifies) == 2
            seen = []
            for n in notifies:
                assert n["state"] == "active"
                assert n["content_type"] == "application/pidf+xml"
                # relayed to the watcher by the P-CSCF in its namespace
                # (over the ESP-protected ports with IMS AKA), through the S-CSCF, from the PS
                top = n["vias"][0].split()[1].split(";")[0]
                protected = {s.pcscf.port_c, s.pcscf.port_s}
                assert top in {f"{s.host_of('pcscf')}:{p}" for p in
                               (protected if auth == "aka" else {s.pcscf.port})}, n["vias"]
                vias = " ".join(n["vias"][1:])
                assert s.host_of("scscf") in vias and s.host_of("ps") in vias, n["vias"]
                doc = pidf.parse(n["body"].encode())
                assert doc.entity == "sip:alice@home1.net"
                # alice's own tuple (other sources, such as the PNA, may add theirs)
                own = [t for t in doc.tuples if t.id == "t1"]
                assert len(own) == 1, doc.tuples
                seen.append((own[0].basic, own[0].notes[0].text))
            assert seen == [("open", f"desk {auth}"), ("closed", f"away {auth}")]
            assert _by_event(events, "unsubscribed")[0]["status"] == 200
            assert _by_event(events, "unpublished")[0]["status"] == 200

        assert _snapshot(running.pki_dir) == pki_files, "nodes only read the PKI made by pki init"
        codes = await running.stop_nodes()
        assert codes == dict.fromkeys(codes, 0), (
            "every node stops cleanly on SIGTERM: "
            + "; ".join(f"{n}={c}\n{running.nodes[n].tail(8)}" for n, c in codes.items() if c)
        )
