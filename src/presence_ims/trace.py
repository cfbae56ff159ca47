"""Follow flows across nodes in the JSON logs (``presence-ims trace``).

Every node logs each SIP message (``sip_rx``/``sip_tx``) and Diameter message
(``diameter_rx``/``diameter_tx``) with its node, reference interface and
Call-ID or Session-Id.  This turns such a log into a readable flow:

    ue-alice   Gm   ->  PUBLISH         udp:127.0.0.1:5060
    pcscf      Gm   <-  PUBLISH         udp:127.0.0.1:40312
    ...
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Hop:
    time: str
    node: str
    interface: str
    direction: str
    what: str
    peer: str
    key: str


def hops(lines: Iterable[str]) -> Iterator[Hop]:
    """The SIP and Diameter messages of a JSON log, in order."""
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        event = rec.get("event")
        if event in ("sip_rx", "sip_tx"):
            what = rec.get("method") or str(rec.get("status", "?"))
            peer = rec.get("source") or rec.get("destination") or ""
            key = rec.get("call_id") or ""
            direction = "<-" if event == "sip_rx" else "->"
        elif event in ("diameter_rx", "diameter_tx"):
            what = rec.get("command", "?")
            peer = rec.get("peer") or rec.get("peer_address") or ""
            key = rec.get("session_id") or ""
            direction = "<-" if event == "diameter_rx" else "->"
        else:
            continue
        node = str(rec.get("node", "?"))
        net = rec.get("net")
        if net:
            node = f"{node}.{str(net).split('.')[0]}"
        yield Hop(
            rec.get("timestamp", "")[11:23],
            node,
            str(rec.get("interface", "-")),
            direction,
            str(what),
            str(peer),
            str(key),
        )


def render(lines: Iterable[str], *, call_id: str | None = None, interface: str | None = None) -> str:
    out = []
    for h in hops(lines):
        if call_id and call_id not in h.key:
            continue
        if interface and h.interface != interface:
            continue
        out.append(f"{h.time}  {h.node:<12} {h.interface:<4} {h.direction} {h.what:<10} {h.peer}")
    return "\n".join(out)
