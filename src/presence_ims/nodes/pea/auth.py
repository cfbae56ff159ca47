"""Authentication of external sources on the PEA's HTTP interface (Pex input), sans-IO.

Every submission carries four headers::

    X-PEA-Source:    calendar-bob
    X-PEA-Timestamp: 1717171717            (Unix seconds, the source's clock)
    X-PEA-Nonce:     4f0c1a9e6b2d4c8e9a1b  (16-64 of A-Z a-z 0-9 _ -, never reused)
    X-PEA-Signature: hmac-sha256=BASE64    (or ed25519=BASE64)

and the signature covers the method, the path (with its query), the source,
the timestamp, the nonce and the SHA-256 of the body::

    PEA-SIG-1\\n<METHOD>\\n<path?query>\\n<source>\\n<timestamp>\\n<nonce>\\n<hex sha256(body)>

HMAC-SHA-256 sources share a secret with the PEA; Ed25519 sources keep their
private key and the PEA knows only the public key.  :class:`Authenticator`
refuses (:class:`PeaError`, status 401) a submission that is unsigned, from an
unknown source, signed with another algorithm than the source's, signed
wrongly, more than ``max_skew`` seconds away from the PEA's clock (``stale``)
or carrying a nonce already seen from that source within the window
(``replayed``).  Nonces are remembered until their timestamp is stale anyway,
so the replay cache stays bounded; it is filled only after the signature
verified, so forged requests cannot poison it.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import PeaError

__all__ = [
    "HEADER_NONCE",
    "HEADER_SIGNATURE",
    "HEADER_SOURCE",
    "HEADER_TIMESTAMP",
    "Algorithm",
    "Authenticator",
    "SourcePolicy",
    "sign",
    "signing_input",
]

HEADER_SOURCE: Final = "X-PEA-Source"
HEADER_TIMESTAMP: Final = "X-PEA-Timestamp"
HEADER_NONCE: Final = "X-PEA-Nonce"
HEADER_SIGNATURE: Final = "X-PEA-Signature"
SIGNATURE_VERSION: Final = b"PEA-SIG-1"

Algorithm = Literal["hmac-sha256", "ed25519"]
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}\Z")
_TIMESTAMP = re.compile(r"[0-9]{1,12}\Z")
_SOURCE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,31}\Z")
_MAX_NONCES: Final = 100_000


@dataclass(frozen=True, slots=True)
class SourcePolicy:
    """An external source: its key and what it may set."""

    id: str
    """Source id (``X-PEA-Source``)."""
    algorithm: Algorithm
    """hmac-sha256 or ed25519."""
    key: bytes
    """The HMAC secret, or the 32-byte Ed25519 public key."""
    presentities: tuple[str, ...]
    """fnmatch patterns of the presentities it may set."""
    attributes: frozenset[str]
    """Person attributes it may set (activities, note, mood, place-type, sphere, location)."""

    def may_set(self, presentity: str) -> bool:
        """Whether the source may publish for ``presentity``."""
        return any(fnmatch.fnmatchcase(presentity, p) for p in self.presentities)


def signing_input(method: str, path: str, source: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """The bytes a submission's signature covers."""
    digest = hashlib.sha256(body).hexdigest()
    parts = (method.upper(), path, source, timestamp, nonce, digest)
    return SIGNATURE_VERSION + b"\n" + "\n".join(parts).encode("utf-8")


def sign(algorithm: Algorithm, key: bytes, data: bytes) -> str:
    """The ``X-PEA-Signature`` value: HMAC with the secret, or Ed25519 with the 32-byte seed."""
    if algorithm == "hmac-sha256":
        raw = hmac.new(key, data, hashlib.sha256).digest()
    else:
        raw = Ed25519PrivateKey.from_private_bytes(key).sign(data)
    return f"{algorithm}={base64.b64encode(raw).decode()}"


class Authenticator:
    """Verifies submissions and keeps the nonces seen (the replay window)."""

    def __init__(self, sources: Iterable[SourcePolicy], *, max_skew: float = 300.0) -> None:
        self.sources = {s.id: s for s in sources}
        self.max_skew = max_skew
        """Largest distance between the timestamp and our clock, seconds."""
        self._nonces: dict[tuple[str, str], float] = {}

    def _forget_old(self, now: float) -> None:
        if len(self._nonces) > 1024:
            self._nonces = {k: t for k, t in self._nonces.items() if t > now}

    def authenticate(
        self, headers: Mapping[str, str], method: str, path: str, body: bytes, now: float
    ) -> SourcePolicy:
        """The source that signed this submission, or :class:`PeaError`."""
        h = {k.lower(): v for k, v in headers.items()}
        source_id = h.get(HEADER_SOURCE.lower())
        stamp = h.get(HEADER_TIMESTAMP.lower())
        nonce = h.get(HEADER_NONCE.lower())
        signature = h.get(HEADER_SIGNATURE.lower())
        if not source_id or not stamp or not nonce or not signature:
            raise PeaError(401, "unsigned", "submission is not signed")
        source_id, stamp, nonce, signature = (v.strip() for v in (source_id, stamp, nonce, signature))
        source = self.sources.get(source_id) if _SOURCE.match(source_id) else None
        if source is None:
            raise PeaError(401, "unknown_source", "unknown source")
        if not _TIMESTAMP.match(stamp):
            raise PeaError(401, "bad_timestamp", "malformed timestamp")
        if abs(int(stamp) - now) > self.max_skew:
            raise PeaError(401, "stale", "timestamp outside the accepted window")
        if not _NONCE.match(nonce):
            raise PeaError(401, "bad_nonce", "malformed nonce")
        algorithm, sep, encoded = signature.partition("=")
        if not sep or algorithm not in ("hmac-sha256", "ed25519"):
            raise PeaError(401, "bad_signature", "malformed signature")
        if algorithm != source.algorithm:
            raise PeaError(401, "wrong_algorithm", f"source signs with {source.algorithm}")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise PeaError(401, "bad_signature", "signature is not base64") from None
        data = signing_input(method, path, source_id, stamp, nonce, body)
        if not self._verify(source, data, raw):
            raise PeaError(401, "bad_signature", "signature does not verify")
        self._forget_old(now)
        key = (source_id, nonce)
        if key in self._nonces and self._nonces[key] > now:
            raise PeaError(401, "replayed", "nonce already used")
        if len(self._nonces) >= _MAX_NONCES:
            raise PeaError(503, "replay_cache_full", "too many submissions in the window")
        self._nonces[key] = int(stamp) + self.max_skew + 1
        return source

    @staticmethod
    def _verify(source: SourcePolicy, data: bytes, raw: bytes) -> bool:
        if source.algorithm == "hmac-sha256":
            expected = hmac.new(source.key, data, hashlib.sha256).digest()
            return hmac.compare_digest(expected, raw)
        try:
            Ed25519PublicKey.from_public_bytes(source.key).verify(raw, data)
        except (InvalidSignature, ValueError):
            return False
        return True
