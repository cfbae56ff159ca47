"""The XCAP server (RFC 4825) of the Presence Server: Ut, the Peu "HTTP for access lists".

Each user reads and writes their presence rules (``pres-rules``, RFC 5025) and
buddy lists (``resource-lists``, RFC 4826) as whole documents, elements or
attributes, authenticated with HTTP Digest against their SIP Digest password
and confined to the documents of their own public identities (XUIs).

Every change is validated first (well-formedness, UTF-8, schema, uniqueness,
the node selector selecting what was put); a document is never left changed
by a failed request. A successful change updates the in-memory copy, the store
(kind ``xcap``, key ``auid/xui/document``, value ``{"etag", "content"}``, then
flushed), and calls ``on_change(auid, xui, document, content or None)`` so the
Presence Server re-evaluates its subscriptions at once.

Every request is logged (event ``xcap_request``: method, path, status, user)
and counted in :attr:`XcapServer.stats`.
"""

from __future__ import annotations

import hashlib
import os
import re
import ssl as _ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from lxml import etree

from ...documents.xcaperror import CONTENT_TYPE as ERROR_TYPE
from ...documents.xml import DEFAULT_MAX_SIZE, DocumentError, parse_xml, serialize
from ...storage.base import Store, StoreError
from .auth import AUTH_FAILURE_KEY, USER_KEY, DigestAuthenticator, digest_middleware, request_key
from .selector import (
    ATTRIBUTE_TYPE,
    ELEMENT_TYPE,
    NodeSelector,
    XcapError,
    XcapUri,
    delete_node,
    parse_node_selector,
    parse_uri,
    put_node,
    render,
    select,
)
from .usages import ApplicationUsage, default_usages, parse_document

__all__ = ["STORE_KIND", "ChangeCallback", "XcapServer"]

STORE_KIND = "xcap"
"""Storage kind of XCAP documents."""

ChangeCallback = Callable[[str, str, str, bytes | None], None]
"""(auid, xui, document name, new content or None when deleted)."""

_METHODS = ("GET", "HEAD", "PUT", "DELETE")
_ETAG = re.compile(r'\s*(W/)?"([^"]*)"\s*(?:,|$)')
_MAX_LOGGED_PATH = 300
_URI_KEY: Any = request_key("xcap_request_uri", XcapUri)


@dataclass(frozen=True, slots=True)
class _Doc:
    etag: str
    """Entity tag, without quotes."""
    content: bytes
    """The whole document, UTF-8."""


def _parse_etags(value: str) -> list[tuple[bool, str]] | None:
    """``If-Match``/``If-None-Match`` list as (weak, tag); None for ``*``."""
    if value.strip() == "*":
        return None
    tags: list[tuple[bool, str]] = []
    pos = 0
    while pos < len(value):
        match = _ETAG.match(value, pos)
        if match is None or match.end() == pos:
            break  # unparsable rest: what was read so far counts
        tags.append((match[1] is not None, match[2]))
        pos = match.end()
    return tags


def _precondition(
    headers: Mapping[str, str], etag: str | None, exists: bool, *, safe: bool
) -> int | None:
    """412 (or 304 for GET/HEAD) when If-Match / If-None-Match fail (RFC 9110 section 13)."""
    if_match = headers.get("If-Match")
    if if_match is not None:
        tags = _parse_etags(if_match)
        if tags is None:
            if not exists:
                return 412
        elif etag is None or not any(not weak and tag == etag for weak, tag in tags):
            return 412
    if_none = headers.get("If-None-Match")
    if if_none is not None:
        tags = _parse_etags(if_none)
        if tags is None:
            failed = exists
        else:
            failed = etag is not None and any(tag == etag for _, tag in tags)
        if failed:
            return 304 if safe else 412
    return None


def _quoted(etag: str) -> str:
    return f'"{etag}"'


class XcapServer:
    """An aiohttp XCAP server; ``await start()``, ``await stop()``.

    ``store`` must already be open; the server loads its documents at start.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        root: str = "/xcap-root",
        realm: str,
        credentials: Callable[[str], str | None],
        identities: Callable[[str], set[str]],
        store: Store,
        on_change: ChangeCallback,
        ssl: _ssl.SSLContext | None = None,
        usages: Mapping[str, ApplicationUsage] | None = None,
        max_body: int = DEFAULT_MAX_SIZE,
        nonce_lifetime: float = 300.0,
        logger: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        """Listening address."""
        self.root = "/" + root.strip("/") if root.strip("/") else ""
        """XCAP root path (no trailing slash)."""
        self.realm = realm
        """Digest realm (the home network domain)."""
        self.usages: dict[str, ApplicationUsage] = dict(usages or default_usages())
        """AUID -> application usage."""
        self.max_body = max_body
        """Largest request body and largest document (bytes); more gives 413."""
        self.stats: Counter[str] = Counter()
        """Counters: ``requests``, ``method:GET``, ``status:200`` ..."""
        self._port = port
        self._credentials = credentials
        self._identities = identities
        self._store = store
        self._on_change = on_change
        self._ssl = ssl
        self._clock = clock
        self._log = (logger or structlog.get_logger()).bind(node="xcap", interface="Ut")
        self._auth = DigestAuthenticator(realm, nonce_lifetime=nonce_lifetime)
        self._docs: dict[str, _Doc] = {}
        self._runner: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (the real one when started on port 0)."""
        return self._port

    @property
    def url(self) -> str:
        """``http(s)://host:port/xcap-root``."""
        scheme = "https" if self._ssl is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self._port}{self.root}"

    @property
    def documents(self) -> dict[str, bytes]:
        """Current documents by storage key (a copy)."""
        return {key: doc.content for key, doc in self._docs.items()}

    def make_app(self) -> web.Application:
        """The aiohttp application (logging, Digest authentication, the XCAP handler)."""
        app = web.Application(
            client_max_size=self.max_body,
            middlewares=[
                self._access_middleware,
                digest_middleware(self._auth, self._credentials, clock=self._clock),
            ],
        )
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def start(self) -> None:
        """Load the documents from the store and listen."""
        if self._runner is not None:
            raise RuntimeError("XCAP server already started")
        await self._load()
        runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._port, ssl_context=self._ssl)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                self._port = int(address[1])
                break
        self._log.info("xcap_started", url=self.url, documents=len(self._docs))

    async def stop(self) -> None:
        """Stop listening (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            self._log.info("xcap_stopped")

    async def _load(self) -> None:
        records = await self._store.load(STORE_KIND)
        self._docs.clear()
        for key, value in records.items():
            try:
                etag, content = value["etag"], value["content"]
                self._docs[key] = _Doc(str(etag), str(content).encode("utf-8"))
            except (KeyError, TypeError):
                self._log.warning("xcap_record_unreadable", key=key)

    # -- middleware --------------------------------------------------------------------

    @web.middleware
    async def _access_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await handler(request)
            status = response.status
        except web.HTTPException as exc:
            status = exc.status
            self._count_and_log(request, status, started)
            raise
        except Exception as exc:
            self._log.error(
                "xcap_internal_error",
                method=request.method,
                path=request.raw_path[:_MAX_LOGGED_PATH],
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
            status = 500
            response = web.Response(status=500, text="internal server error\n")
        self._count_and_log(request, status, started)
        return response

    def _count_and_log(self, request: web.Request, status: int, started: float) -> None:
        self.stats["requests"] += 1
        self.stats[f"method:{request.method}"] += 1
        self.stats[f"status:{status}"] += 1
        extra: dict[str, Any] = {}
        failure = request.get(AUTH_FAILURE_KEY)
        if failure:
            extra["auth_failure"] = failure
        self._log.info(
            "xcap_request",
            method=request.method,
            path=request.raw_path[:_MAX_LOGGED_PATH],
            status=status,
            user=request.get(USER_KEY),
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            **extra,
        )

    # -- the handler -------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._serve(request)
        except XcapError as exc:
            return self._error(request, exc)

    def _error(self, request: web.Request, exc: XcapError) -> web.Response:
        if exc.condition is None:
            headers = {"Allow": "GET, HEAD"} if exc.status == 405 else None
            return web.Response(status=exc.status, text=f"{exc.reason}\n", headers=headers)
        ancestor_uri: str | None = None
        uri: XcapUri | None = request.get(_URI_KEY)
        if exc.condition == "no-parent" and uri is not None:
            if exc.ancestor is None:
                path = uri.directory_path(self.root)
            else:
                path = uri.node_path(self.root, exc.ancestor)
            ancestor_uri = f"{request.scheme}://{request.host}{path}"
        body = exc.body(ancestor_uri) or b""
        return web.Response(status=exc.status, body=body, content_type=ERROR_TYPE)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        method = request.method
        if method not in _METHODS:
            return web.Response(
                status=405, text="method not allowed\n", headers={"Allow": ", ".join(_METHODS)}
            )
        path, _, query = request.raw_path.partition("?")
        uri = parse_uri(path, query, root=self.root)
        request[_URI_KEY] = uri
        usage = self.usages.get(uri.auid)
        if usage is None:
            raise XcapError(404, None, "unknown application usage")
        selector = (
            parse_node_selector(
                uri.node, default_namespace=usage.namespace, namespaces=uri.namespaces
            )
            if uri.node is not None
            else None
        )
        if uri.xui is None:
            content = usage.global_documents.get(uri.document)
            if content is None:
                raise XcapError(404, None, "no such global document")
            if method not in ("GET", "HEAD"):
                raise XcapError(405, None, "global documents are read-only")
            fixed = _Doc(hashlib.sha256(content).hexdigest()[:24], content)
            return self._get(request, usage, fixed, selector)
        if not usage.user_documents:
            raise XcapError(404, None, "this application usage has no user documents")
        user = request.get(USER_KEY)
        if user is None or uri.xui not in self._identities(user):
            return web.Response(status=403, text="not your document\n")
        doc = self._docs.get(uri.key)
        if method in ("GET", "HEAD"):
            if doc is None:
                status = _precondition(request.headers, None, False, safe=True)
                if status is not None:
                    return web.Response(status=status)
                raise XcapError(404, None, "no such document")
            return self._get(request, usage, doc, selector)
        if method == "PUT":
            return await self._put(request, uri, usage, doc, selector)
        return await self._delete(request, uri, usage, doc, selector)

    def _get(
        self,
        request: web.Request,
        usage: ApplicationUsage,
        doc: _Doc,
        selector: NodeSelector | None,
    ) -> web.StreamResponse:
        headers = {"ETag": _quoted(doc.etag)}
        if selector is None:
            status = _precondition(request.headers, doc.etag, True, safe=True)
            if status is not None:
                return web.Response(status=status, headers=headers)
            return web.Response(body=doc.content, content_type=usage.mime_type, headers=headers)
        root = self._parse_stored(doc)
        try:
            rendered = render(root, selector)
        except XcapError:
            status = _precondition(request.headers, doc.etag, False, safe=True)
            if status is not None:
                return web.Response(status=status, headers=headers)
            raise
        status = _precondition(request.headers, doc.etag, True, safe=True)
        if status is not None:
            return web.Response(status=status, headers=headers)
        return web.Response(body=rendered.body, content_type=rendered.content_type, headers=headers)

    async def _read_body(self, request: web.Request) -> bytes:
        length = request.content_length
        if length is not None and length > self.max_body:
            raise XcapError(413, None, f"body larger than {self.max_body} bytes")
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise XcapError(413, None, f"body larger than {self.max_body} bytes") from None

    @staticmethod
    def _check_type(request: web.Request, expected: str) -> None:
        if request.headers.get("Content-Type") is None or request.content_type != expected:
            raise XcapError(415, None, f"Content-Type must be {expected}")

    async def _put(
        self,
        request: web.Request,
        uri: XcapUri,
        usage: ApplicationUsage,
        doc: _Doc | None,
        selector: NodeSelector | None,
    ) -> web.StreamResponse:
        if selector is None:
            self._check_type(request, usage.mime_type)
            body = await self._read_body(request)
            doc = self._docs.get(uri.key)  # re-read: another request may have run meanwhile
            etag = doc.etag if doc is not None else None
            status = _precondition(request.headers, etag, doc is not None, safe=False)
            if status is not None:
                return web.Response(status=status)
            root = parse_document(body, max_size=self.max_body)
            usage.validate(root)
            new_etag = await self._commit(uri, body, doc)
            return web.Response(
                status=201 if doc is None else 200, headers={"ETag": _quoted(new_etag)}
            )
        if selector.namespaces:
            raise XcapError(405, None, "namespace bindings are read-only")
        self._check_type(request, ATTRIBUTE_TYPE if selector.attribute else ELEMENT_TYPE)
        body = await self._read_body(request)
        doc = self._docs.get(uri.key)
        if doc is None:
            status = _precondition(request.headers, None, False, safe=False)
            if status is not None:
                return web.Response(status=status)
            raise XcapError(409, "no-parent", "the document does not exist", ancestor=None)
        root = self._parse_stored(doc)
        status = _precondition(request.headers, doc.etag, self._exists(root, selector), safe=False)
        if status is not None:
            return web.Response(status=status, headers={"ETag": _quoted(doc.etag)})
        edit = put_node(root, selector, body, max_size=self.max_body)
        content = self._checked(usage, edit.root)
        etag = await self._commit(uri, content, doc)
        return web.Response(status=201 if edit.created else 200, headers={"ETag": _quoted(etag)})

    async def _delete(
        self,
        request: web.Request,
        uri: XcapUri,
        usage: ApplicationUsage,
        doc: _Doc | None,
        selector: NodeSelector | None,
    ) -> web.StreamResponse:
        if doc is None:
            status = _precondition(request.headers, None, False, safe=False)
            if status is not None:
                return web.Response(status=status)
            raise XcapError(404, None, "no such document")
        if selector is None:
            status = _precondition(request.headers, doc.etag, True, safe=False)
            if status is not None:
                return web.Response(status=status, headers={"ETag": _quoted(doc.etag)})
            await self._commit(uri, None, doc)
            return web.Response(status=200)
        root = self._parse_stored(doc)
        status = _precondition(request.headers, doc.etag, self._exists(root, selector), safe=False)
        if status is not None:
            return web.Response(status=status, headers={"ETag": _quoted(doc.etag)})
        edit = delete_node(root, selector)
        content = self._checked(usage, edit.root)
        etag = await self._commit(uri, content, doc)
        return web.Response(status=200, headers={"ETag": _quoted(etag)})

    # -- documents ---------------------------------------------------------------------

    def _parse_stored(self, doc: _Doc) -> etree._Element:
        try:
            return parse_xml(doc.content, max_size=max(self.max_body, len(doc.content)))
        except DocumentError as exc:
            raise XcapError(500, None, f"stored document unreadable: {exc.reason}") from None

    @staticmethod
    def _exists(root: etree._Element, selector: NodeSelector) -> bool:
        try:
            select(root, selector)
        except XcapError:
            return False
        return True

    def _checked(self, usage: ApplicationUsage, root: etree._Element) -> bytes:
        usage.validate(root)
        content = serialize(root)
        if len(content) > self.max_body:
            raise XcapError(
                409, "constraint-failure", f"the document would exceed {self.max_body} bytes"
            )
        return content

    def _new_etag(self, previous: _Doc | None, content: bytes) -> str:
        seed = previous.etag.encode() if previous is not None else os.urandom(8)
        return hashlib.sha256(seed + b"\x00" + content).hexdigest()[:24]

    async def _commit(self, uri: XcapUri, content: bytes | None, previous: _Doc | None) -> str:
        """Install the new document (None: delete), store it, tell the listener; the new ETag."""
        if uri.xui is None:
            raise XcapError(405, None, "global documents are read-only")
        key = uri.key
        etag = ""
        if content is None:
            self._docs.pop(key, None)
            self._store.delete(STORE_KIND, key)
        else:
            etag = self._new_etag(previous, content)
            self._docs[key] = _Doc(etag, content)
            self._store.put(STORE_KIND, key, {"etag": etag, "content": content.decode("utf-8")})
        self._log.info(
            "xcap_document_changed",
            auid=uri.auid,
            xui=uri.xui,
            document=uri.document,
            deleted=content is None,
            etag=etag or None,
        )
        try:
            self._on_change(uri.auid, uri.xui, uri.document, content)
        except Exception as exc:
            self._log.error(
                "xcap_on_change_failed", key=key, error=f"{type(exc).__name__}: {exc}"[:300]
            )
        try:
            await self._store.flush()
        except StoreError as exc:
            self._log.error("xcap_store_flush_failed", key=key, reason=str(exc))
        return etag
