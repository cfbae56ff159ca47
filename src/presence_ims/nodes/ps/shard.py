"""Which PS worker owns a datagram: presentities sharded over worker processes (D13).

With ``workers = N`` the PS runs N processes that read one UDP socket. Each
presentity belongs to one worker, ``crc32(canonical presentity) % N``: its
publications, its watchers' subscriptions and its rules live there, so a PUBLISH
is composed and notified where the watchers are, with no state shared between
workers. A worker that reads a datagram owned by another hands it over.

Sans-IO: bytes in, a worker index out. The owner of a message:

- a request outside a dialog (PUBLISH, initial SUBSCRIBE): its Request-URI;
- a request inside a dialog (SUBSCRIBE refresh or end): the PS's To tag, which
  carries the presentity's hash (:func:`dialog_tag`), else its To URI;
- a response (to a NOTIFY): the PS's From tag likewise, else its From URI.

The hash is stable (CRC-32, not Python's salted ``hash``): the same presentity
maps to the same worker in every process and after a restart; a restart with
another N moves presentities, and the tags still route (their hash is taken
modulo the new N, as the restored subscriptions are).
"""

from __future__ import annotations

import re
import secrets
import zlib
from collections.abc import Callable

TAG_HASH_SEP = "-"
"""Separator between the random part of a PS dialog tag and the presentity's hash."""

_TAG = re.compile(rb"^[0-9a-f]{12}-([0-9a-f]{8})$")
_TO = re.compile(rb"\n(?:to|t)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)
_FROM = re.compile(rb"\n(?:from|f)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)
_TAG_PARAM = re.compile(rb";[ \t]*tag[ \t]*=[ \t]*([^;, \t]+)", re.IGNORECASE)
CACHE_SIZE = 65_536
"""Raw URIs whose worker is remembered (cleared when full)."""


def presentity_hash(presentity: str) -> int:
    """Stable 32-bit hash of a canonical presentity (``sip:user@host``)."""
    return zlib.crc32(presentity.encode("utf-8", "surrogatepass"))


def shard_of(presentity: str, workers: int) -> int:
    """The worker (0 .. workers-1) that owns a canonical presentity."""
    return presentity_hash(presentity) % workers if workers > 1 else 0


def dialog_tag(presentity: str) -> str:
    """A PS dialog tag: 48 random bits, then the presentity's hash (routes in-dialog
    requests and NOTIFY responses to the presentity's worker)."""
    return f"{secrets.token_hex(6)}{TAG_HASH_SEP}{presentity_hash(presentity):08x}"


def _uri_of(value: bytes) -> bytes:
    """The URI of a From/To value: inside <...>, else up to the first ';'."""
    start = value.find(b"<")
    if start >= 0:
        end = value.find(b">", start)
        return value[start + 1 : end if end >= 0 else len(value)]
    return value.split(b";", 1)[0].strip()


def _tag_of(value: bytes) -> bytes | None:
    end = value.find(b">")
    match = _TAG_PARAM.search(value, end + 1 if end >= 0 else 0)
    return match.group(1) if match else None


class Router:
    """Maps a received datagram to the worker that owns it.

    ``canonical`` turns a URI into the presentity key the PS core uses (aliases
    applied); anything the router cannot read goes to worker 0, whose SIP stack
    answers it (a 400 naming the defect) like a single PS would.
    """

    def __init__(self, workers: int, canonical: Callable[[str], str]) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers = workers
        self.canonical = canonical
        self._cache: dict[bytes, int] = {}

    def route(self, data: bytes) -> int:
        if self.workers == 1:
            return 0
        end = data.find(b"\n")
        if end < 0:
            return 0
        blank = data.find(b"\r\n\r\n", max(end - 1, 0))
        stop = blank if blank >= 0 else len(data)
        head = data[end:stop] if stop > end else b""  # from the first line's LF
        if data.startswith(b"SIP/2.0 "):
            uri = None
            match = _FROM.search(head)
        else:
            parts = data[:end].split()
            uri = parts[1] if len(parts) == 3 else None
            match = _TO.search(head)
        if match is not None:
            value = match.group(1)
            tag = _tag_of(value)
            if tag is not None or uri is None:
                if tag is not None:
                    marked = _TAG.match(tag)
                    if marked is not None:
                        return int(marked.group(1), 16) % self.workers
                uri = _uri_of(value)
        if uri is None:
            return 0
        return self._shard(uri)

    def _shard(self, uri: bytes) -> int:
        cache = self._cache
        found = cache.get(uri)
        if found is None:
            try:
                key = self.canonical(uri.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                return 0
            found = shard_of(key, self.workers)
            if len(cache) >= CACHE_SIZE:
                cache.clear()
            cache[uri] = found
        return found
