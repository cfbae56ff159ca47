"""RFC 3903 publication state, client side, sans-IO: one event state per presentity.

Both agents (the PNA on Pen, the PEA on Pex) tell a :class:`Publisher` what
they want published for a presentity (a PIDF body, or ``None`` for nothing);
the publisher decides what to send and when:

* the initial PUBLISH (body, no SIP-If-Match) when there is no entity tag;
* a modify (body and SIP-If-Match) when the wanted body differs from the
  published one; changes are debounced (``debounce`` seconds after the first
  change, bursts become one request) and never sent twice;
* a refresh (SIP-If-Match, no body) at ``refresh_ratio`` of the granted expiry;
* a removal (SIP-If-Match, Expires 0) when the wanted body becomes ``None``,
  and for every publication at :meth:`Publisher.close`.

Answers come back through :meth:`Publisher.on_response`: a 412 forgets the
entity tag and publishes afresh, a 423 raises the expiry to Min-Expires, any
other failure retries with a doubling delay.  At most one request per
presentity is in flight.  No clock is read: ``now`` is an argument, and
:meth:`Publisher.next_deadline` says when to call :meth:`Publisher.poll` again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import PnaError

__all__ = ["PublicationView", "PublishKind", "PublishRequest", "Publisher"]

PublishKind = Literal["initial", "modify", "refresh", "remove"]


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """One PUBLISH to send."""

    presentity: str
    """Request-URI and To."""
    kind: PublishKind
    """initial | modify | refresh | remove."""
    body: bytes | None
    """PIDF body (initial, modify) or None (refresh, remove)."""
    etag: str | None
    """SIP-If-Match value (modify, refresh, remove)."""
    expires: int
    """Expires value (0 for remove)."""


@dataclass(frozen=True, slots=True)
class PublicationView:
    """What the publisher knows about one presentity (for logs, tests, inspection)."""

    etag: str | None
    """Current entity tag, None when nothing is published."""
    published: bytes | None
    """Body the PS holds (as far as we know)."""
    wanted: bytes | None
    """Body we want it to hold."""
    expires_at: float
    """When the publication expires at the PS (0 when none)."""
    in_flight: PublishKind | None
    """Kind of the request awaiting its answer."""
    failures: int
    """Consecutive failures."""


@dataclass(slots=True)
class _Entry:
    wanted: bytes | None = None
    published: bytes | None = None
    etag: str | None = None
    expires_at: float = 0.0
    refresh_at: float | None = None
    due: float | None = None
    in_flight: PublishRequest | None = None
    failures: int = 0
    expires: int = 3600


class Publisher:
    """Event state of every presentity one agent publishes for."""

    def __init__(
        self,
        *,
        expires: int = 3600,
        debounce: float = 0.2,
        refresh_ratio: float = 0.8,
        retry: float = 1.0,
        max_retry: float = 60.0,
    ) -> None:
        if expires < 1 or not 0.1 <= refresh_ratio < 1.0 or debounce < 0 or retry <= 0:
            raise PnaError("bad publisher settings", "config")
        self.expires = expires
        """Expires asked for (seconds)."""
        self.debounce = debounce
        self.refresh_ratio = refresh_ratio
        self.retry = retry
        self.max_retry = max(retry, max_retry)
        self._entries: dict[str, _Entry] = {}

    # -- what the agent wants -------------------------------------------------------
    def update(self, presentity: str, body: bytes | None, now: float, *, create: bool = True) -> bool:
        """Want ``body`` published for ``presentity`` (None: nothing).

        With ``create=False`` a presentity with no publication (and none on
        its way) is left alone: an agent uses it for "negative" states that
        are not worth a new publication.  Returns whether anything will be sent.
        """
        entry = self._entries.get(presentity)
        if entry is None:
            if body is None or not create:
                return False
            entry = self._entries[presentity] = _Entry(expires=self.expires)
        entry.wanted = body
        if entry.in_flight is not None:
            return True  # looked at again when the answer comes
        if body == entry.published and entry.etag is not None:
            entry.due = entry.refresh_at
            return False
        if body is None and entry.etag is None:
            del self._entries[presentity]
            return False
        soon = now + self.debounce
        if entry.due is None or entry.due > soon:
            entry.due = soon
        return True

    def view(self, presentity: str) -> PublicationView | None:
        """The state of one presentity's publication, None when unknown."""
        e = self._entries.get(presentity)
        if e is None:
            return None
        kind = e.in_flight.kind if e.in_flight is not None else None
        return PublicationView(e.etag, e.published, e.wanted, e.expires_at, kind, e.failures)

    def presentities(self) -> tuple[str, ...]:
        """Every presentity with state here."""
        return tuple(self._entries)

    # -- time ---------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        """When :meth:`poll` has something to send, None when nothing is scheduled."""
        dues = [e.due for e in self._entries.values() if e.due is not None and e.in_flight is None]
        return min(dues) if dues else None

    def poll(self, now: float) -> list[PublishRequest]:
        """The requests due at ``now`` (each is in flight until :meth:`on_response`)."""
        out: list[PublishRequest] = []
        for presentity, e in list(self._entries.items()):
            if e.in_flight is not None or e.due is None or e.due > now:
                continue
            request = self._next_request(presentity, e)
            if request is None:
                continue
            e.in_flight = request
            e.due = None
            out.append(request)
        return out

    def _next_request(self, presentity: str, e: _Entry) -> PublishRequest | None:
        if e.wanted is None:
            if e.etag is None:
                del self._entries[presentity]
                return None
            return PublishRequest(presentity, "remove", None, e.etag, 0)
        if e.etag is None:
            return PublishRequest(presentity, "initial", e.wanted, None, e.expires)
        if e.wanted != e.published:
            return PublishRequest(presentity, "modify", e.wanted, e.etag, e.expires)
        return PublishRequest(presentity, "refresh", None, e.etag, e.expires)

    # -- answers ----------------------------------------------------------------------------
    def on_response(
        self,
        request: PublishRequest,
        status: int,
        now: float,
        *,
        etag: str | None = None,
        expires: int | None = None,
        min_expires: int | None = None,
    ) -> None:
        """The final answer to ``request`` (408/503 for a timeout or transport failure)."""
        e = self._entries.get(request.presentity)
        if e is None or e.in_flight is not request:
            return
        e.in_flight = None
        if 200 <= status < 300:
            e.failures = 0
            if request.kind == "remove":
                e.etag, e.published, e.expires_at, e.refresh_at = None, None, 0.0, None
                if e.wanted is None:
                    del self._entries[request.presentity]
                else:
                    e.due = now
                return
            granted = expires if expires is not None and expires > 0 else request.expires
            e.etag = etag or request.etag
            if request.body is not None:
                e.published = request.body
            e.expires_at = now + granted
            e.refresh_at = now + granted * self.refresh_ratio
            e.due = now if e.wanted != e.published else e.refresh_at
            return
        if status == 412:
            # the PS does not know the entity tag (expired, restarted): start afresh
            e.etag, e.published, e.expires_at, e.refresh_at = None, None, 0.0, None
            if e.wanted is None:
                del self._entries[request.presentity]
            else:
                e.due = now
            return
        if status == 423 and min_expires is not None and min_expires > e.expires:
            e.expires = min_expires
            e.due = now
            return
        e.failures += 1
        delay = min(self.max_retry, self.retry * 2 ** min(e.failures - 1, 16))
        e.due = now + delay

    # -- the end -------------------------------------------------------------------------------
    def close(self) -> list[PublishRequest]:
        """Removals for every publication (the agent is stopping); state is cleared."""
        out = [
            PublishRequest(p, "remove", None, e.etag, 0)
            for p, e in self._entries.items()
            if e.etag is not None
        ]
        self._entries.clear()
        return out
