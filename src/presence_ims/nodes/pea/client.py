"""The external source's side: sign and send submissions to the PEA.

    key = SigningKey.hmac("calendar-bob", "calendar-bob-demo-key-DEMO-ONLY")
    status, answer = await submit("http://127.0.0.1:8081", key, {
        "presentity": "sip:bob@home1.net", "activities": ["meeting"],
        "until": "2024-05-01T15:00:00+02:00", "note": "Design review",
    })

:func:`signed_headers` is the sans-IO part (tests forge, replay and age
submissions with it); :func:`submit` sends one over HTTP with aiohttp.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from .auth import (
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_SOURCE,
    HEADER_TIMESTAMP,
    Algorithm,
    sign,
    signing_input,
)
from .errors import PeaError

__all__ = ["SigningKey", "encode_body", "signed_headers", "submit"]


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A source's identity and signing key."""

    source: str
    """Source id."""
    algorithm: Algorithm
    """hmac-sha256 or ed25519."""
    key: bytes
    """HMAC secret, or the 32-byte Ed25519 private key seed."""

    @classmethod
    def hmac(cls, source: str, secret: str | bytes) -> SigningKey:
        """An HMAC-SHA-256 key."""
        return cls(source, "hmac-sha256", secret.encode() if isinstance(secret, str) else secret)

    @classmethod
    def ed25519(cls, source: str, seed: str | bytes) -> SigningKey:
        """An Ed25519 key from its 32-byte seed (bytes or 64 hex digits)."""
        try:
            raw = bytes.fromhex(seed) if isinstance(seed, str) else seed
        except ValueError:
            raise PeaError(400, "bad_key", "an Ed25519 seed is 64 hex digits") from None
        if len(raw) != 32:
            raise PeaError(400, "bad_key", "an Ed25519 seed is 32 bytes")
        return cls(source, "ed25519", raw)


def encode_body(payload: Mapping[str, Any] | bytes) -> bytes:
    """The JSON body of a submission."""
    if isinstance(payload, bytes):
        return payload
    return json.dumps(dict(payload), separators=(",", ":")).encode()


def signed_headers(
    key: SigningKey,
    method: str,
    path: str,
    body: bytes,
    *,
    now: float,
    nonce: str | None = None,
) -> dict[str, str]:
    """The X-PEA-* headers signing ``body`` for ``method`` ``path`` at ``now``."""
    stamp = str(int(now))
    nonce = nonce or secrets.token_urlsafe(18)
    data = signing_input(method, path, key.source, stamp, nonce, body)
    return {
        HEADER_SOURCE: key.source,
        HEADER_TIMESTAMP: stamp,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: sign(key.algorithm, key.key, data),
    }


async def submit(
    base_url: str,
    key: SigningKey | None,
    payload: Mapping[str, Any] | bytes,
    *,
    path: str = "/v1/presence",
    now: float | None = None,
    nonce: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109
) -> tuple[int, dict[str, Any]]:
    """POST a submission; (HTTP status, JSON answer).

    ``key`` None sends it unsigned; ``headers`` replace the computed ones
    (tests use both to forge).  Raises OSError/aiohttp errors when the PEA
    cannot be reached.
    """
    body = encode_body(payload)
    url = URL(base_url.rstrip("/") + path)
    sent: dict[str, str] = {"Content-Type": "application/json"}
    if key is not None:
        sent.update(
            signed_headers(key, "POST", url.raw_path_qs, body, now=time.time() if now is None else now, nonce=nonce)
        )
    sent.update(headers or {})
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        async with session.post(url, data=body, headers=sent) as response:
            try:
                answer = await response.json(content_type=None)
            except (ValueError, aiohttp.ContentTypeError):
                answer = {}
            return response.status, answer if isinstance(answer, dict) else {}
