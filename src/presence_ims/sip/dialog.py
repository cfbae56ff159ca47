"""Dialog state (RFC 3261 section 12) for subscriptions, both sides.

A :class:`Dialog` is plain data: it can be stored and restored (the Presence
Server keeps its subscriptions across restarts) and builds the in-dialog
requests of its side.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import SipParseError
from .headers import NameAddr, parse_name_addr
from .message import Headers, Request, Response
from .uri import URI, SipURI, parse_uri


@dataclass(slots=True)
class Dialog:
    """One side of a dialog."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    """Our address (From of our requests), without tag, as text."""
    remote_uri: str
    """The peer's address (To of our requests), without tag, as text."""
    remote_target: str
    """The peer's Contact URI (Request-URI of our requests)."""
    route_set: list[str] = field(default_factory=list)
    """Route values for our requests, in order (each a name-addr text)."""
    local_cseq: int = 0
    remote_cseq: int | None = None
    secure: bool = False

    @property
    def id(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    # -- creation -------------------------------------------------------------------
    @classmethod
    def from_uas_request(
        cls,
        request: Request,
        local_tag: str,
        *,
        local_cseq: int = 0,
        from_: NameAddr | None = None,
        to: NameAddr | None = None,
        contacts: list[NameAddr] | None = None,
    ) -> Dialog:
        """The UAS side, from a dialog-creating request (RFC 3261 12.1.1).

        ``from_``, ``to``, ``contacts``: the request's headers, when the caller has
        already parsed them (``request.from_``, ``request.to``, ``request.contacts``).
        """
        if contacts is None:
            contacts = request.contacts
        if len(contacts) != 1:
            raise SipParseError("dialog-creating request needs exactly one Contact")
        frm = request.from_ if from_ is None else from_
        to = request.to if to is None else to
        routes = [str(na) for na in request.name_addrs("record-route")]
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=frm.tag or "",
            local_uri=str(to.without_param("tag")),
            remote_uri=str(frm.without_param("tag")),
            remote_target=str(contacts[0].uri),
            route_set=routes,
            local_cseq=local_cseq,
            remote_cseq=request.cseq.seq,
            secure=isinstance(request.uri, SipURI) and request.uri.scheme == "sips",
        )

    @classmethod
    def from_uac_response(cls, request: Request, response: Response) -> Dialog:
        """The UAC side, from our request and a 2xx or a NOTIFY that creates the dialog (12.1.2)."""
        contacts = response.contacts
        if not contacts:
            raise SipParseError("dialog-creating response without Contact")
        to = response.to
        frm = request.from_
        routes = [str(na) for na in reversed(response.name_addrs("record-route"))]
        return cls(
            call_id=request.call_id,
            local_tag=frm.tag or "",
            remote_tag=to.tag or "",
            local_uri=str(frm.without_param("tag")),
            remote_uri=str(to.without_param("tag")),
            remote_target=str(contacts[0].uri),
            route_set=routes,
            local_cseq=request.cseq.seq,
            remote_cseq=None,
        )

    # -- in-dialog requests ---------------------------------------------------------------
    def build_request(
        self,
        method: str,
        *,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        contact: str | None = None,
    ) -> Request:
        """An in-dialog request (RFC 3261 12.2.1.1), loose or strict routing."""
        self.local_cseq += 1
        h = Headers()
        target: URI = parse_uri(self.remote_target)
        routes = list(self.route_set)
        if routes:
            first = parse_name_addr(routes[0], "Route")
            if isinstance(first.uri, SipURI) and not first.uri.lr:
                # strict router: it becomes the Request-URI, the remote target the last Route
                target = first.uri
                routes = [*routes[1:], f"<{self.remote_target}>"]
        for r in routes:
            h.add("Route", r)
        h.add("From", f"{self.local_uri};tag={self.local_tag}")
        h.add("To", f"{self.remote_uri};tag={self.remote_tag}" if self.remote_tag else self.remote_uri)
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{self.local_cseq} {method}")
        if contact:
            h.add("Contact", contact)
        for name, value in headers or ():
            h.add(name, value)
        return Request(h, body, method, target)

    def accept_remote_cseq(self, request: Request) -> bool:
        """Check and record the CSeq of an in-dialog request (12.2.2); False means answer 500."""
        seq = request.cseq.seq
        if self.remote_cseq is not None and seq <= self.remote_cseq:
            return False
        self.remote_cseq = seq
        return True

    def refresh_target(self, message: Request | Response) -> None:
        """A target refresh request or its response updates the remote target."""
        contacts = message.contacts
        if contacts:
            self.remote_target = str(contacts[0].uri)

    def next_hop(self) -> URI:
        """Where the next in-dialog request goes first (first Route, else the remote target)."""
        if self.route_set:
            return parse_name_addr(self.route_set[0], "Route").uri
        return parse_uri(self.remote_target)

    # -- persistence ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Dialog:
        return cls(**data)


def dialog_id_of_request(request: Request, to: NameAddr | None = None) -> tuple[str, str, str]:
    """(Call-ID, local tag, remote tag) as seen by the receiver of an in-dialog request
    (``to``: its To header, when the caller has already parsed it)."""
    if to is None:
        to = request.to
    frm: NameAddr = request.from_
    return (request.call_id, to.tag or "", frm.tag or "")
