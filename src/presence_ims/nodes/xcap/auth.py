"""HTTP Digest authentication for XCAP (RFC 7616: MD5 with ``qop=auth``).

Users authenticate with the same SIP Digest passwords as on the SIP side of
the network: username = the IMPI (``alice@home1.net``), realm = the home
network domain. Nonces are ``time || random || HMAC`` (made and checked by
:class:`presence_ims.sip.digest.NonceManager`), so they need no server state
beyond the per-nonce counts, and an old nonce answered with the right password
earns a fresh challenge with ``stale=true`` rather than a password prompt.

The core, :class:`DigestAuthenticator`, is sans-IO (``now`` is an argument);
:func:`digest_middleware` is the aiohttp glue, which puts the authenticated
username in ``request["xcap_user"]`` or answers 401 (400 for credentials that
do not name this request).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ...sip.digest import (
    Challenge,
    DigestError,
    NonceManager,
    NonceStatus,
    parse_credentials,
    verify,
)

__all__ = [
    "AUTH_FAILURE_KEY",
    "USER_KEY",
    "AuthResult",
    "DigestAuthenticator",
    "PasswordLookup",
    "digest_middleware",
    "request_key",
]


def request_key(name: str, kind: type) -> Any:
    """A typed ``web.RequestKey`` where aiohttp has them (3.14+), else the plain name."""
    factory = getattr(web, "RequestKey", None)
    return factory(name, kind) if factory is not None else name


USER_KEY: Any = request_key("xcap_user", str)
"""Where :func:`digest_middleware` leaves the authenticated username in the request."""
AUTH_FAILURE_KEY: Any = request_key("xcap_auth_failure", str)
"""Where :func:`digest_middleware` leaves why authentication failed (for the access log)."""

PasswordLookup = Callable[[str], str | None]
"""username (IMPI) -> its SIP Digest password, None when unknown."""

_DUMMY_PASSWORD = "\x00no such user\x00"


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Outcome of checking one Authorization header."""

    username: str | None
    """The authenticated user (IMPI); None when authentication failed."""
    status: int = 200
    """200 when authenticated, 401 (challenge again) or 400 (malformed for this request)."""
    stale: bool = False
    """The password was right but the nonce too old (or reused): challenge with stale=true."""
    reason: str = ""
    """Why it failed, for logs (never sent to the client)."""

    @property
    def ok(self) -> bool:
        """Authentication succeeded."""
        return self.username is not None


def _uri_matches(digest_uri: str, target: str) -> bool:
    """The credentials' ``uri`` names the request target (RFC 7616 section 3.4.6)."""
    if digest_uri == target:
        return True
    if "://" in digest_uri:
        parts = urlsplit(digest_uri)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return path == target
    return False


class DigestAuthenticator:
    """Issues Digest challenges and checks Authorization headers (sans-IO)."""

    def __init__(
        self,
        realm: str,
        *,
        secret: bytes | None = None,
        nonce_lifetime: float = 300.0,
        max_tracked: int = 100_000,
    ) -> None:
        self.realm = realm
        """The protection space (the home network domain)."""
        self.nonces = NonceManager(
            secret if secret is not None else os.urandom(32),
            nonce_lifetime,
            max_tracked=max_tracked,
        )
        """Nonce issuer and checker."""

    def challenge(self, now: float, *, stale: bool = False) -> str:
        """A ``WWW-Authenticate`` value with a fresh nonce."""
        return Challenge(
            realm=self.realm,
            nonce=self.nonces.issue(now),
            algorithm="MD5",
            qop=("auth",),
            stale=stale,
        ).to_header()

    def authenticate(
        self,
        authorization: str | None,
        *,
        method: str,
        target: str,
        passwords: PasswordLookup,
        now: float,
    ) -> AuthResult:
        """Check an ``Authorization`` value for a request ``method`` on ``target`` (path + query)."""
        if not authorization:
            return AuthResult(None, 401, reason="no credentials")
        scheme = authorization.strip().split(None, 1)[0].lower() if authorization.strip() else ""
        if scheme != "digest":
            return AuthResult(None, 401, reason=f"unsupported scheme {scheme[:20]!r}")
        try:
            creds = parse_credentials(authorization)
        except DigestError as exc:
            return AuthResult(None, 400, reason=f"malformed credentials: {exc.reason}")
        if creds.realm != self.realm:
            return AuthResult(None, 401, reason="wrong realm")
        if creds.algorithm.upper() != "MD5":
            return AuthResult(None, 401, reason=f"unsupported algorithm {creds.algorithm!r}")
        if creds.qop != "auth":
            return AuthResult(None, 401, reason="qop=auth required")
        if not _uri_matches(creds.uri, target):
            return AuthResult(None, 400, reason="digest uri does not match the request")
        password = passwords(creds.username)
        try:
            good = verify(creds, password=password or _DUMMY_PASSWORD, method=method)
        except DigestError as exc:
            return AuthResult(None, 401, reason=exc.reason)
        if password is None or not good:
            return AuthResult(None, 401, reason="wrong credentials")
        status = self.nonces.check(creds.nonce, creds.nc, now)
        if status is NonceStatus.VALID:
            return AuthResult(creds.username)
        if status is NonceStatus.INVALID:
            return AuthResult(None, 401, reason="unknown nonce")
        return AuthResult(None, 401, stale=True, reason=f"nonce {status.value}")


def digest_middleware(
    authenticator: DigestAuthenticator,
    passwords: PasswordLookup,
    *,
    clock: Callable[[], float] = time.time,
) -> Middleware:
    """aiohttp middleware: authenticate every request or answer 401/400.

    On success the username is stored in ``request[USER_KEY]``; on failure the
    reason is stored in ``request[AUTH_FAILURE_KEY]`` for the access log.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        now = clock()
        result = authenticator.authenticate(
            request.headers.get("Authorization"),
            method=request.method,
            target=request.raw_path,
            passwords=passwords,
            now=now,
        )
        if result.username is not None:
            request[USER_KEY] = result.username
            return await handler(request)
        request[AUTH_FAILURE_KEY] = result.reason
        if result.status == 400:
            return web.Response(status=400, text="bad credentials\n")
        return web.Response(
            status=401,
            text="authentication required\n",
            headers={"WWW-Authenticate": authenticator.challenge(now, stale=result.stale)},
        )

    return middleware
