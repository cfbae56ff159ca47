"""Start a whole home network (or two) in-process on 127.0.0.1 with free ports.

    async with running_network(tmp_path) as net:
        alice = await net.ue("alice", auth="digest")
        ...

The configuration is ``configs/home1.toml`` with every port replaced by a
free one and the state under ``tmp_path``; ``overrides`` patches sections
(``{"pcscf": {"allow_aka_without_ipsec": True}}``).  Real sockets, real TLS
between the nodes, real Diameter: nothing is mocked.
"""

from __future__ import annotations

import contextlib
import socket
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from presence_ims.config import NetworkSettings, load
from presence_ims.nodes.runner import ROLES, Network
from presence_ims.nodes.ue import UeConfig, UserEquipment

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

_taken: set[int] = set()


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (and not handed out before)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = int(t.getsockname()[1])
            if port in _taken:
                continue
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    u.bind(("127.0.0.1", port))
            except OSError:
                continue
            _taken.add(port)
            return port
    raise RuntimeError("no free port")


PORT_FIELDS: dict[str, tuple[str, ...]] = {
    "hss": ("port",),
    "icscf": ("port",),
    "scscf": ("port",),
    "pcscf": ("port", "network_port", "port_c", "port_s"),
    "ps": ("port", "xcap_port"),
    "pna": ("sip_port", "feed_port", "radius_port", "mlp_port"),
    "pea": ("port",),
}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_value(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def write_toml(data: dict[str, Any], path: Path) -> Path:
    lines: list[str] = []
    for section, body in data.items():
        if isinstance(body, list):
            for item in body:
                lines.append(f"[[{section}]]")
                lines.extend(f"{k} = {_toml_value(v)}" for k, v in item.items())
                lines.append("")
            continue
        lines.append(f"[{section}]")
        nested = {k: v for k, v in body.items() if isinstance(v, dict) and k != "hosts" and k != "peer_networks"}
        for k, v in body.items():
            if k not in nested:
                lines.append(f"{k} = {_toml_value(v)}")
        lines.append("")
        for k, v in nested.items():
            lines.append(f"[{section}.{k}]")
            lines.extend(f"{_toml_value(kk)} = {_toml_value(vv)}" for kk, vv in v.items())
            lines.append("")
    path.write_text("\n".join(lines))
    return path


def network_config(
    base: str,
    tmp_path: Path,
    overrides: dict[str, dict[str, Any]] | None = None,
    *,
    pki_dir: Path | None = None,
) -> dict[str, Any]:
    """The config of ``configs/<base>.toml`` with free ports and state under ``tmp_path``."""
    with (CONFIGS / f"{base}.toml").open("rb") as fh:
        data: dict[str, Any] = tomllib.load(fh)
    state = tmp_path / base
    data["network"]["state_dir"] = str(state)
    data["network"]["pki_dir"] = str(pki_dir or tmp_path / "pki")
    for section, fields in PORT_FIELDS.items():
        data.setdefault(section, {})
        for name in fields:
            data[section][name] = free_port()
    # the PNA publishes for every registered user and watches every registration: tests
    # of other interfaces run without it unless they ask for it (test_pen.py and friends)
    data.setdefault("pna", {})["enabled"] = False
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    return data


@dataclass
class RunningNetwork:
    settings: NetworkSettings
    network: Network
    config_path: Path
    ues: list[UserEquipment] = field(default_factory=list)

    @property
    def nodes(self) -> dict[str, Any]:
        return self.network.nodes

    @property
    def pcscf_address(self) -> str:
        return f"127.0.0.1:{self.settings.pcscf.port}"

    def subscriber(self, user: str) -> Any:
        for sub in self.settings.subscribers:
            if sub.impi.split("@")[0] == user:
                return sub
        raise KeyError(user)

    def ue_config(self, user: str, **kwargs: Any) -> UeConfig:
        sub = self.subscriber(user)
        values: dict[str, Any] = {
            "impi": sub.impi,
            "impu": sub.default_impu,
            "domain": self.settings.domain,
            "pcscf": self.pcscf_address,
            "k": sub.k,
            "op": sub.op,
            "opc": sub.opc,
            "password": sub.digest_password,
        }
        values.update(kwargs)
        return UeConfig(**values)

    async def restart(self, role: str) -> Any:
        """Stop one node and start a new instance from the same configuration."""
        from presence_ims.nodes.runner import build_node

        old = self.network.nodes.pop(role)
        await old.stop()
        node = build_node(role, self.settings, self.network.tls)
        assert node is not None
        await node.start()
        self.network.nodes[role] = node
        return node

    async def restart_missing(self, role: str) -> Any:
        """Start a node that was stopped (after a simulated crash)."""
        from presence_ims.nodes.runner import build_node

        node = build_node(role, self.settings, self.network.tls)
        assert node is not None
        await node.start()
        self.network.nodes[role] = node
        return node

    async def ue(self, user: str, *, register: bool = True, **kwargs: Any) -> UserEquipment:
        ue = UserEquipment(self.ue_config(user, **kwargs), node=f"ue-{user}")
        await ue.start()
        self.ues.append(ue)
        if register:
            await ue.register()
        return ue


@contextlib.asynccontextmanager
async def running_network(
    tmp_path: Path,
    *,
    base: str = "home1",
    overrides: dict[str, dict[str, Any]] | None = None,
    roles: tuple[str, ...] = ROLES,
    pki_dir: Path | None = None,
    extra: dict[str, Any] | None = None,
) -> AsyncIterator[RunningNetwork]:
    data = network_config(base, tmp_path, overrides, pki_dir=pki_dir)
    for key, value in (extra or {}).items():
        data[key] = value
    path = write_toml(data, tmp_path / f"{base}.toml")
    settings = load(path)
    net = Network(settings, roles=roles)
    await net.start()
    running = RunningNetwork(settings, net, path)
    try:
        yield running
    finally:
        for ue in running.ues:
            with contextlib.suppress(Exception):
                await ue.stop(deregister=False)
        await net.stop()


@contextlib.asynccontextmanager
async def running_networks(
    tmp_path: Path,
    *,
    overrides1: dict[str, dict[str, Any]] | None = None,
    overrides2: dict[str, dict[str, Any]] | None = None,
) -> AsyncIterator[tuple[RunningNetwork, RunningNetwork]]:
    """home1.net and home2.net, wired to each other's I-CSCF, sharing one CA."""
    pki = tmp_path / "pki"
    d1 = network_config("home1", tmp_path, overrides1, pki_dir=pki)
    d2 = network_config("home2", tmp_path, overrides2, pki_dir=pki)
    t = "tls" if d1["network"].get("tls", True) else "tcp"
    d1["network"]["peer_networks"] = {"home2.net": f"sip:icscf.home2.net:{d2['icscf']['port']};transport={t}"}
    d2["network"]["peer_networks"] = {"home1.net": f"sip:icscf.home1.net:{d1['icscf']['port']};transport={t}"}
    s1 = load(write_toml(d1, tmp_path / "home1.toml"))
    s2 = load(write_toml(d2, tmp_path / "home2.toml"))
    n1, n2 = Network(s1), Network(s2)
    await n1.start()
    try:
        await n2.start()
    except BaseException:
        await n1.stop()
        raise
    r1 = RunningNetwork(s1, n1, tmp_path / "home1.toml")
    r2 = RunningNetwork(s2, n2, tmp_path / "home2.toml")
    try:
        yield r1, r2
    finally:
        for r in (r1, r2):
            for ue in r.ues:
                with contextlib.suppress(Exception):
                    await ue.stop(deregister=False)
        await n2.stop()
        await n1.stop()
