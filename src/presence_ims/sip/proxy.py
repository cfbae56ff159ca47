"""Proxy behaviour of RFC 3261 section 16, as pure functions the CSCFs reuse.

A proxy validates (16.3: Max-Forwards, loops, Proxy-Require), preprocesses
routing information (16.4: strict-router fix-up, removing its own Route),
forwards a copy (16.6: Max-Forwards, Record-Route, Via with a loop-detecting
branch) and relays responses upstream without its Via (16.7).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable

from .checks import Rejection, check_proxy_require
from .errors import SipParseError
from .headers import MAGIC_COOKIE, NameAddr, parse_name_addr, parse_via
from .message import Request, Response
from .uri import SipURI

OwnUri = Callable[[SipURI], bool]
"""Does this URI name this proxy (host and port it listens on)?"""


def loop_hash(request: Request) -> str:
    """Hash over what makes a request distinct at this hop (RFC 3261 16.6 step 8)."""
    h = request.headers
    parts = [
        str(request.uri),
        (h.get("call-id") or "").strip(),
        (h.get("cseq") or "").split()[0] if h.get("cseq") else "",
        request.method,
        request.from_.tag or "",
        request.to.tag or "",
        (h.get_all("route") or [""])[0],
        ",".join(h.get_all("proxy-require")),
    ]
    return hashlib.sha1("\x00".join(parts).encode("utf-8", "surrogateescape")).hexdigest()[:12]


def proxy_branch(request: Request) -> str:
    """A branch that lets this proxy recognise a looped request: cookie, loop hash, random."""
    return f"{MAGIC_COOKIE}{loop_hash(request)}.{secrets.token_hex(6)}"


def validate(
    request: Request,
    *,
    supported: frozenset[str] = frozenset(),
    is_own_via: Callable[[str, int | None], bool] | None = None,
) -> Rejection | None:
    """RFC 3261 16.3: Max-Forwards (483), loops (482), Proxy-Require (420)."""
    mf = request.max_forwards
    if mf is not None and mf <= 0 and request.method not in ("ACK",):
        return Rejection(483, "Too Many Hops")
    if is_own_via is not None:
        current = None
        for value in request.headers.get_all("via"):
            via = parse_via(value)
            branch = via.branch or ""
            if not is_own_via(via.host, via.port) or "." not in branch:
                continue
            current = current or loop_hash(request)
            if branch[len(MAGIC_COOKIE) :].split(".", 1)[0] == current:
                return Rejection(482, "Loop Detected")
    return check_proxy_require(request, supported)


def preprocess_route(request: Request, is_own: OwnUri) -> NameAddr | None:
    """RFC 3261 16.4: undo a strict router's rewrite and pop our own top Route.

    Returns the Route value removed (it may carry parameters such as ``orig``
    that tell the proxy why the request came to it), or None.
    """
    uri = request.uri
    if isinstance(uri, SipURI) and is_own(uri) and request.headers.get_all("route"):
        # we were a strict router's target: the last Route is the real Request-URI
        routes = request.headers.get_all("route")
        last = parse_name_addr(routes[-1], "Route")
        request.headers.set_all("Route", routes[:-1])
        request.uri = last.uri
    routes = request.headers.get_all("route")
    if not routes:
        return None
    top = parse_name_addr(routes[0], "Route")
    if isinstance(top.uri, SipURI) and is_own(top.uri):
        request.headers.pop_first_value("route")
        return top
    return None


def prepare_forward(request: Request, *, record_route: str | None = None) -> Request:
    """A copy to forward (16.6): Max-Forwards decremented (or 70 added), Record-Route added."""
    out = request.copy()
    mf = out.max_forwards
    out.headers.set("Max-Forwards", str(mf - 1) if mf is not None else "70")
    if record_route:
        out.headers.prepend("Record-Route", record_route)
    return out


def next_hop(request: Request) -> NameAddr | SipURI:
    """Where a forwarded request goes: the top Route, else the Request-URI."""
    routes = request.headers.get_all("route")
    if routes:
        return parse_name_addr(routes[0], "Route")
    uri = request.ruri
    if not isinstance(uri, SipURI):
        raise SipParseError(f"cannot route to {uri}")
    return uri


def relay_response(response: Response) -> Response:
    """The response to pass upstream: our own top Via removed (16.7 step 3)."""
    out = response.copy()
    out.headers.pop_first_value("via")
    return out
