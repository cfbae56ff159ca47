"""The XCAP server on 127.0.0.1 (port 0), driven by aiohttp's client with HTTP Digest.

Alice manages her presence rules (whole document, one rule, one attribute),
conditional requests, validation failures with their xcap-error bodies, access
control (Bob may not read Alice's rules), and ``on_change`` seeing every change.
The Digest core (:class:`DigestAuthenticator`) is checked directly as well.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import DigestAuthMiddleware
from structlog.testing import CapturingLogger

from presence_ims.documents import presrules, resourcelists, xcaperror
from presence_ims.nodes.xcap.auth import AuthResult, DigestAuthenticator
from presence_ims.nodes.xcap.server import XcapServer
from presence_ims.sip.digest import Credentials, compute_response, parse_challenge
from presence_ims.storage.memory import MemoryStore

pytestmark = pytest.mark.timeout(60)

REALM = "home1.net"
ALICE, BOB = "alice@home1.net", "bob@home1.net"
ALICE_URI, ALICE_TEL, BOB_URI = "sip:alice@home1.net", "tel:+15551230001", "sip:bob@home1.net"
PASSWORDS = {ALICE: "alice-secret", BOB: "bob-secret"}
IDENTITIES = {ALICE: {ALICE_URI, ALICE_TEL}, BOB: {BOB_URI}}

RULES_TYPE = "application/auth-policy+xml"
EL_TYPE = "application/xcap-el+xml"
ATT_TYPE = "application/xcap-att+xml"

RULES = b"""<?xml version="1.0" encoding="UTF-8"?>
<ruleset xmlns="urn:ietf:params:xml:ns:common-policy"
         xmlns:pr="urn:ietf:params:xml:ns:pres-rules">
  <rule id="friends">
    <conditions>
      <identity><one id="sip:bob@home1.net"/></identity>
    </conditions>
    <actions><pr:sub-handling>allow</pr:sub-handling></actions>
    <transformations>
      <pr:provide-services><pr:all-services/></pr:provide-services>
      <pr:provide-note>true</pr:provide-note>
    </transformations>
  </rule>
  <rule id="strangers">
    <actions><pr:sub-handling>polite-block</pr:sub-handling></actions>
  </rule>
</ruleset>
"""

FAMILY = (
    b'<rule id="family"><actions>'
    b'<sub-handling xmlns="urn:ietf:params:xml:ns:pres-rules">allow</sub-handling>'
    b"</actions></rule>"
)

LISTS = b"""<?xml version="1.0" encoding="UTF-8"?>
<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">
  <list name="buddies"><entry uri="sip:bob@home1.net"/></list>
</resource-lists>
"""


class Clock:
    """The server's wall clock, moved by the tests."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Env:
    server: XcapServer
    store: MemoryStore
    clock: Clock
    log: CapturingLogger
    changes: list[tuple[str, str, str, bytes | None]] = field(default_factory=list)

    def doc_url(self, xui: str = ALICE_URI, auid: str = "pres-rules", name: str = "index") -> str:
        return f"{self.server.url}/{auid}/users/{xui}/{name}"

    def node_url(self, selector: str, xui: str = ALICE_URI, query: str = "") -> str:
        return f"{self.doc_url(xui)}/~~/{selector}" + (f"?{query}" if query else "")

    def requests(self) -> list[dict[str, Any]]:
        return [c.kwargs for c in self.log.calls if c.kwargs.get("event") == "xcap_request"]


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    store = MemoryStore()
    await store.open()
    clock = Clock()
    log = CapturingLogger()
    changes: list[tuple[str, str, str, bytes | None]] = []
    server = XcapServer(
        "127.0.0.1",
        0,
        realm=REALM,
        credentials=PASSWORDS.get,
        identities=lambda user: IDENTITIES.get(user, set()),
        store=store,
        on_change=lambda *change: changes.append(change),
        logger=structlog.wrap_logger(log, processors=[]),
        clock=clock,
    )
    await server.start()
    try:
        yield Env(server, store, clock, log, changes)
    finally:
        await server.stop()


def client(user: str, password: str | None = None) -> aiohttp.ClientSession:
    password = PASSWORDS[user] if password is None else password
    return aiohttp.ClientSession(middlewares=(DigestAuthMiddleware(user, password),))


async def error_of(response: aiohttp.ClientResponse) -> xcaperror.XcapError:
    assert response.status == 409
    assert response.content_type == xcaperror.CONTENT_TYPE
    return xcaperror.parse(await response.read())


def rule_ids(content: bytes | None) -> list[str]:
    assert content is not None
    return [rule.id for rule in presrules.parse(content).rules]


# --- the whole story ------------------------------------------------------------------------


async def test_alice_manages_her_rules(env: Env) -> None:
    url = env.doc_url()
    async with client(ALICE) as http:
        # PUT the whole document
        r = await http.put(url, data=RULES, headers={"Content-Type": RULES_TYPE})
        assert r.status == 201
        etag1 = r.headers["ETag"]
        assert etag1.startswith('"') and etag1.endswith('"')
        assert env.changes == [("pres-rules", ALICE_URI, "index", RULES)]
        record = env.store.data["xcap"][f"pres-rules/{ALICE_URI}/index"]
        assert record == {"etag": etag1.strip('"'), "content": RULES.decode()}

        # GET it back with its ETag
        r = await http.get(url)
        assert r.status == 200 and r.content_type == RULES_TYPE
        assert await r.read() == RULES and r.headers["ETag"] == etag1

        # PUT one rule by node selector
        r = await http.put(
            env.node_url('ruleset/rule[@id="family"]'),
            data=FAMILY,
            headers={"Content-Type": EL_TYPE},
        )
        assert r.status == 201
        etag2 = r.headers["ETag"]
        assert etag2 != etag1
        assert rule_ids(env.changes[-1][3]) == ["friends", "strangers", "family"]
        r = await http.get(env.node_url('ruleset/rule[@id="family"]'))
        assert r.status == 200 and r.content_type == EL_TYPE and r.headers["ETag"] == etag2
        assert b'id="family"' in await r.read()

        # change an attribute
        one = 'ruleset/rule[@id="friends"]/conditions/identity/one/@id'
        r = await http.put(
            env.node_url(one), data=b"sip:carol@home2.net", headers={"Content-Type": ATT_TYPE}
        )
        assert r.status == 200
        etag3 = r.headers["ETag"]
        assert etag3 not in (etag1, etag2)
        rules = presrules.parse(env.changes[-1][3] or b"")
        identity = rules.rules[0].conditions.identity
        assert identity is not None and identity.ones == ("sip:carol@home2.net",)
        r = await http.get(env.node_url(one))
        assert r.content_type == ATT_TYPE and await r.read() == b"sip:carol@home2.net"

        # conditional PUT with a stale ETag: 412, nothing changes
        seen = len(env.changes)
        r = await http.put(url, data=RULES, headers={"Content-Type": RULES_TYPE, "If-Match": etag1})
        assert r.status == 412
        r = await http.get(url)
        assert r.headers["ETag"] == etag3 and b"carol" in await r.read()
        assert len(env.changes) == seen

        # ... and with the current one: accepted
        r = await http.put(
            env.node_url('ruleset/rule[@id="strangers"]'),
            data=b'<rule id="strangers"/>',
            headers={"Content-Type": EL_TYPE, "If-Match": etag3},
        )
        assert r.status == 200
        etag4 = r.headers["ETag"]
        r = await http.get(url, headers={"If-None-Match": etag4})
        assert r.status == 304
        r = await http.get(url, headers={"If-Match": etag3})
        assert r.status == 412

        # DELETE an element, then the document
        r = await http.delete(env.node_url('ruleset/rule[@id="family"]'))
        assert r.status == 200
        assert rule_ids(env.changes[-1][3]) == ["friends", "strangers"]
        r = await http.delete(url)
        assert r.status == 200
        assert env.changes[-1] == ("pres-rules", ALICE_URI, "index", None)
        assert f"pres-rules/{ALICE_URI}/index" not in env.store.data["xcap"]
        r = await http.get(url)
        assert r.status == 404
    assert len(env.changes) == 6


async def test_create_only_with_if_none_match(env: Env) -> None:
    async with client(ALICE) as http:
        headers = {"Content-Type": RULES_TYPE, "If-None-Match": "*"}
        r = await http.put(env.doc_url(), data=RULES, headers=headers)
        assert r.status == 201
        r = await http.put(env.doc_url(), data=RULES, headers=headers)
        assert r.status == 412
        r = await http.put(env.doc_url(xui=ALICE_TEL), data=RULES, headers=headers)
        assert r.status == 201  # her other identity
        r = await http.put(
            env.doc_url(name="other"),
            data=RULES,
            headers={"If-Match": "*", "Content-Type": RULES_TYPE},
        )
        assert r.status == 412
    assert [c[1] for c in env.changes] == [ALICE_URI, ALICE_TEL]


# --- validation failures ---------------------------------------------------------------------


async def test_invalid_puts_leave_the_document_alone(env: Env) -> None:
    async with client(ALICE) as http:
        r = await http.put(env.doc_url(), data=RULES, headers={"Content-Type": RULES_TYPE})
        etag = r.headers["ETag"]
        count = len(env.changes)

        invalid = RULES.replace(b">allow<", b">perhaps<")
        r = await http.put(env.doc_url(), data=invalid, headers={"Content-Type": RULES_TYPE})
        assert (await error_of(r)).condition == "schema-validation-error"

        r = await http.put(env.doc_url(), data=b"<ruleset", headers={"Content-Type": RULES_TYPE})
        assert (await error_of(r)).condition == "not-well-formed"

        r = await http.put(env.doc_url(), data=b"<a>\xff</a>", headers={"Content-Type": RULES_TYPE})
        assert (await error_of(r)).condition == "not-utf-8"

        r = await http.put(
            env.node_url('ruleset/rule[@id="x"]'),
            data=b'<rule id="x"><bogus/></rule>',
            headers={"Content-Type": EL_TYPE},
        )
        assert (await error_of(r)).condition == "schema-validation-error"

        r = await http.put(
            env.node_url("ruleset/rule[3]"),
            data=b'<rule id="friends"/>',
            headers={"Content-Type": EL_TYPE},
        )
        unique = await error_of(r)
        assert unique.condition == "uniqueness-failure"
        assert unique.exists[0].field == "ruleset/rule/@id"

        r = await http.put(
            env.node_url('ruleset/rule[@id="friends"]'),
            data=b'<rule id="enemies"/>',
            headers={"Content-Type": EL_TYPE},
        )
        assert (await error_of(r)).condition == "cannot-insert"

        r = await http.put(
            env.node_url('ruleset/rule[@id="nope"]/actions/x'),
            data=b"<x/>",
            headers={"Content-Type": EL_TYPE},
        )
        parent = await error_of(r)
        assert parent.condition == "no-parent"
        assert parent.ancestor == f"{env.doc_url()}/~~/ruleset"

        r = await http.put(
            env.node_url("ruleset/rule[1]"),
            data=b"<rule id='a'/><rule id='b'/>",
            headers={"Content-Type": EL_TYPE},
        )
        assert (await error_of(r)).condition == "not-xml-frag"

        r = await http.put(
            env.node_url('ruleset/rule[@id="friends"]/@id'),
            data=b"a<b",
            headers={"Content-Type": ATT_TYPE},
        )
        assert (await error_of(r)).condition == "not-xml-att-value"

        r = await http.delete(env.node_url("ruleset/rule[1]"))
        assert (await error_of(r)).condition == "cannot-delete"

        r = await http.delete(env.node_url('ruleset/rule[@id="friends"]/@id'))
        assert (await error_of(r)).condition == "schema-validation-error"

        r = await http.put(
            env.node_url("ruleset/rule[1]"),
            data=b"<rule id='z'/>",
            headers={"Content-Type": EL_TYPE},
        )
        assert r.status == 200  # control: a valid element PUT to the same place works
        etag = r.headers["ETag"]

        r = await http.get(env.doc_url())
        assert r.headers["ETag"] == etag
    assert len(env.changes) == count + 1


async def test_element_put_into_a_missing_document_is_no_parent(env: Env) -> None:
    async with client(ALICE) as http:
        r = await http.put(
            env.node_url("ruleset/rule[1]"),
            data=b"<rule id='a'/>",
            headers={"Content-Type": EL_TYPE},
        )
        err = await error_of(r)
        assert err.condition == "no-parent"
        assert err.ancestor == f"{env.server.url}/pres-rules/users/{ALICE_URI}/"
        r = await http.get(env.node_url("ruleset"))
        assert r.status == 404
    assert env.changes == []


async def test_content_types_and_sizes(env: Env) -> None:
    async with client(ALICE) as http:
        r = await http.put(env.doc_url(), data=RULES, headers={"Content-Type": "application/xml"})
        assert r.status == 415
        r = await http.put(env.doc_url(), data=RULES)
        assert r.status == 415
        r = await http.put(env.doc_url(), data=RULES, headers={"Content-Type": RULES_TYPE})
        assert r.status == 201
        r = await http.put(
            env.node_url("ruleset/rule[3]"),
            data=b"<rule id='x'/>",
            headers={"Content-Type": RULES_TYPE},
        )
        assert r.status == 415
        r = await http.put(
            env.node_url("ruleset/rule[1]/@id"), data=b"x", headers={"Content-Type": EL_TYPE}
        )
        assert r.status == 415
        big = RULES.replace(b"</ruleset>", b"<!--" + b"x" * 70_000 + b"--></ruleset>")
        r = await http.put(env.doc_url(), data=big, headers={"Content-Type": RULES_TYPE})
        assert r.status == 413
        r = await http.request("PATCH", env.doc_url(), data=b"x")
        assert r.status == 405 and "PUT" in r.headers["Allow"]
    assert len(env.changes) == 1


async def test_resource_lists(env: Env) -> None:
    url = env.doc_url(auid="resource-lists")
    ctype = {"Content-Type": resourcelists.CONTENT_TYPE}
    async with client(ALICE) as http:
        r = await http.put(url, data=LISTS, headers=ctype)
        assert r.status == 201
        entry = f"{url}/~~/resource-lists/list[@name=%22buddies%22]/entry[@uri=%22sip:carol@home2.net%22]"
        r = await http.put(
            entry, data=b'<entry uri="sip:carol@home2.net"/>', headers={"Content-Type": EL_TYPE}
        )
        assert r.status == 201
        buddies = resourcelists.parse(env.changes[-1][3] or b"")
        assert [e.uri for e in resourcelists.entries(buddies)] == [BOB_URI, "sip:carol@home2.net"]
        r = await http.put(
            f"{url}/~~/resource-lists/list[@name=%22buddies%22]/entry[3]",
            data=b'<entry uri="sip:bob@home1.net"/>',
            headers={"Content-Type": EL_TYPE},
        )
        err = await error_of(r)
        assert err.condition == "uniqueness-failure"
        assert err.exists[0].field == "resource-lists/list/entry/@uri"
    assert env.changes[-1][0] == "resource-lists"


# --- namespaces in the query ------------------------------------------------------------------


async def test_prefixed_selector_with_xmlns_query(env: Env) -> None:
    async with client(ALICE) as http:
        await http.put(env.doc_url(), data=RULES, headers={"Content-Type": RULES_TYPE})
        r = await http.get(
            env.node_url(
                'c:ruleset/c:rule[@id="friends"]/c:actions/pr:sub-handling',
                query="xmlns(c=urn:ietf:params:xml:ns:common-policy)"
                "xmlns(pr=urn:ietf:params:xml:ns:pres-rules)",
            )
        )
        assert r.status == 200
        assert b">allow</" in await r.read()
        r = await http.get(env.node_url("ruleset/rule[1]/actions/sub-handling"))
        assert r.status == 404  # sub-handling is not in the default (common-policy) namespace
        r = await http.get(env.node_url("ruleset/x:rule"))
        assert r.status == 400


# --- authentication and authorization ---------------------------------------------------------


async def test_bob_may_not_touch_alices_rules(env: Env) -> None:
    async with client(ALICE) as http:
        assert (await http.put(env.doc_url(), data=RULES, headers={"Content-Type": RULES_TYPE})).ok
    async with client(BOB) as http:
        r = await http.get(env.doc_url())
        assert r.status == 403
        r = await http.put(env.doc_url(), data=RULES, headers={"Content-Type": RULES_TYPE})
        assert r.status == 403
        r = await http.delete(env.doc_url())
        assert r.status == 403
        r = await http.put(env.doc_url(BOB_URI), data=RULES, headers={"Content-Type": RULES_TYPE})
        assert r.status == 201  # his own
    assert [c[1] for c in env.changes] == [ALICE_URI, BOB_URI]
    assert {r["user"] for r in env.requests() if r["status"] == 403} == {BOB}


async def test_no_or_wrong_credentials(env: Env) -> None:
    async with aiohttp.ClientSession() as http:
        r = await http.get(env.doc_url())
        assert r.status == 401
        challenge = parse_challenge(r.headers["WWW-Authenticate"])
        assert challenge.realm == REALM and challenge.qop == ("auth",)
        assert challenge.algorithm == "MD5" and not challenge.stale
        r = await http.get(env.doc_url(), headers={"Authorization": "Basic YWxpY2U6eA=="})
        assert r.status == 401
    async with client(ALICE, "not-her-password") as http:
        r = await http.put(env.doc_url(), data=RULES, headers={"Content-Type": RULES_TYPE})
        assert r.status == 401
    async with aiohttp.ClientSession(
        middlewares=(DigestAuthMiddleware("mallory@home1.net", "x"),)
    ) as http:
        assert (await http.get(env.doc_url())).status == 401
    assert env.changes == []
    assert all(r["user"] is None for r in env.requests())


def authorization(
    challenge_header: str, user: str, password: str, method: str, uri: str, nc: int = 1
) -> str:
    """A Digest Authorization value (RFC 7616, MD5, qop=auth): the tests' own small client."""
    challenge = parse_challenge(challenge_header)
    cnonce = secrets.token_hex(8)
    nc_text = f"{nc:08x}"
    response = compute_response(
        username=user,
        realm=challenge.realm,
        password=password,
        method=method,
        uri=uri,
        nonce=challenge.nonce,
        nc=nc_text,
        cnonce=cnonce,
        qop="auth",
    )
    return Credentials(
        username=user,
        realm=challenge.realm,
        uri=uri,
        nonce=challenge.nonce,
        response=response,
        cnonce=cnonce,
        qop="auth",
        nc=nc_text,
    ).to_header()


async def test_stale_and_replayed_nonces(env: Env) -> None:
    path = "/xcap-root/xcap-caps/global/index"
    url = f"http://127.0.0.1:{env.server.port}{path}"

    def alice(
        challenge: str, nc: int = 1, password: str = PASSWORDS[ALICE], uri: str = path
    ) -> dict[str, str]:
        return {"Authorization": authorization(challenge, ALICE, password, "GET", uri, nc)}

    async with aiohttp.ClientSession() as http:
        first = (await http.get(url)).headers["WWW-Authenticate"]
        assert (await http.get(url, headers=alice(first))).status == 200
        r = await http.get(url, headers=alice(first))  # the same nonce count again
        assert r.status == 401 and parse_challenge(r.headers["WWW-Authenticate"]).stale
        assert (await http.get(url, headers=alice(first, nc=2))).status == 200
        env.clock.now += 3600  # the nonce is now too old
        r = await http.get(url, headers=alice(first, nc=3))
        assert r.status == 401
        fresh = r.headers["WWW-Authenticate"]
        assert parse_challenge(fresh).stale
        r = await http.get(url, headers=alice(fresh, password="bad"))
        assert r.status == 401 and not parse_challenge(r.headers["WWW-Authenticate"]).stale
        r = await http.get(url, headers=alice(fresh, uri="/xcap-root/other"))
        assert r.status == 400  # credentials for another request-target
        assert (await http.get(url, headers=alice(fresh))).status == 200


def test_digest_core_checks() -> None:
    auth = DigestAuthenticator(REALM, secret=b"k" * 32, nonce_lifetime=60)
    header = auth.challenge(100.0)

    def check(
        value: str | None, method: str = "GET", target: str = "/x", now: float = 101.0
    ) -> AuthResult:
        return auth.authenticate(
            value, method=method, target=target, passwords=PASSWORDS.get, now=now
        )

    good = authorization(header, ALICE, PASSWORDS[ALICE], "GET", "/x")
    assert check(good).username == ALICE and check(good).stale  # second use: replay
    assert check(None).status == 401 and not check(None).ok
    assert check("Digest garbage").status == 400
    wrong_method = authorization(header, ALICE, PASSWORDS[ALICE], "PUT", "/x", nc=5)
    assert not check(wrong_method).ok
    other_realm = authorization(
        header.replace(REALM, "home2.net"), ALICE, PASSWORDS[ALICE], "GET", "/x", nc=6
    )
    assert check(other_realm).reason == "wrong realm"
    absolute = authorization(header, ALICE, PASSWORDS[ALICE], "GET", "http://h:1/x?q", nc=7)
    assert check(absolute, target="/x?q").ok
    sha = authorization(header, ALICE, PASSWORDS[ALICE], "GET", "/x", nc=8).replace(
        "algorithm=MD5", "algorithm=SHA-256"
    )
    assert check(sha).reason.startswith("unsupported algorithm")
    no_qop = Credentials(ALICE, REALM, "/x", parse_challenge(header).nonce, "0" * 32).to_header()
    assert check(no_qop).reason == "qop=auth required"
    forged = authorization(
        header.replace(parse_challenge(header).nonce, "AAAA" * 10),
        ALICE,
        PASSWORDS[ALICE],
        "GET",
        "/x",
    )
    assert check(forged).reason == "unknown nonce" and not check(forged).stale
    late = authorization(header, ALICE, PASSWORDS[ALICE], "GET", "/x", nc=9)
    assert check(late, now=1000.0).stale


# --- xcap-caps, routing, robustness, logging ------------------------------------------------------


async def test_xcap_caps_and_routing(env: Env) -> None:
    async with client(BOB) as http:
        r = await http.get(f"{env.server.url}/xcap-caps/global/index")
        assert r.status == 200 and r.content_type == "application/xcap-caps+xml"
        body = await r.read()
        assert b"<auid>pres-rules</auid>" in body and b"<auid>resource-lists</auid>" in body
        assert b"urn:ietf:params:xml:ns:common-policy" in body
        etag = r.headers["ETag"]
        r = await http.get(
            f"{env.server.url}/xcap-caps/global/index", headers={"If-None-Match": etag}
        )
        assert r.status == 304
        r = await http.get(f"{env.server.url}/xcap-caps/global/index/~~/xcap-caps/auids/auid[2]")
        assert r.status == 200 and await r.read() == (
            b'<auid xmlns="urn:ietf:params:xml:ns:xcap-caps">pres-rules</auid>'
        )
        r = await http.put(
            f"{env.server.url}/xcap-caps/global/index",
            data=b"<x/>",
            headers={"Content-Type": "application/xcap-caps+xml"},
        )
        assert r.status == 405
        assert (await http.get(f"{env.server.url}/pres-rules/global/index")).status == 404
        assert (await http.get(f"{env.server.url}/nope/users/{BOB_URI}/index")).status == 404
        assert (await http.get(f"{env.server.url}/xcap-caps/users/{BOB_URI}/index")).status == 404
        assert (await http.get(f"http://127.0.0.1:{env.server.port}/elsewhere")).status == 404


async def test_restart_reads_the_store(env: Env) -> None:
    async with client(ALICE) as http:
        r = await http.put(env.doc_url(), data=RULES, headers={"Content-Type": RULES_TYPE})
        etag = r.headers["ETag"]
    again = XcapServer(
        "127.0.0.1",
        0,
        realm=REALM,
        credentials=PASSWORDS.get,
        identities=lambda user: IDENTITIES.get(user, set()),
        store=env.store,
        on_change=lambda *change: None,
    )
    await again.start()
    try:
        assert again.port != env.server.port
        async with client(ALICE) as http:
            r = await http.get(f"{again.url}/pres-rules/users/{ALICE_URI}/index")
            assert r.status == 200 and r.headers["ETag"] == etag and await r.read() == RULES
    finally:
        await again.stop()


async def test_failures_inside_never_reach_the_client(env: Env) -> None:
    def broken_identities(user: str) -> set[str]:
        raise RuntimeError("directory is down")

    def broken_listener(*change: object) -> None:
        raise ValueError("listener bug")

    server = XcapServer(
        "127.0.0.1",
        0,
        realm=REALM,
        credentials=PASSWORDS.get,
        identities=broken_identities,
        store=env.store,
        on_change=broken_listener,
        logger=structlog.wrap_logger(env.log, processors=[]),
    )
    await server.start()
    try:
        async with client(ALICE) as http:
            r = await http.get(f"{server.url}/pres-rules/users/{ALICE_URI}/index")
            assert r.status == 500
            text = await r.text()
            assert "Traceback" not in text and "directory is down" not in text
        # a listener that raises does not undo or fail the change
        async with client(ALICE) as http:
            r = await http.put(env.doc_url(), data=RULES, headers={"Content-Type": RULES_TYPE})
            assert r.status == 201
    finally:
        await server.stop()
    events = [c.kwargs["event"] for c in env.log.calls]
    assert "xcap_internal_error" in events


async def test_every_request_is_logged_and_counted(env: Env) -> None:
    async with client(ALICE) as http:
        await http.put(env.doc_url(), data=RULES, headers={"Content-Type": RULES_TYPE})
        await http.get(env.node_url("ruleset/rule[9]"))
    logged = env.requests()
    # PUT (401 then 201, the client answering the challenge), GET 404
    assert [(r["method"], r["status"]) for r in logged] == [
        ("PUT", 401),
        ("PUT", 201),
        ("GET", 404),
    ]
    for entry in logged:
        assert entry["node"] == "xcap" and entry["interface"] == "Ut"
        assert entry["path"].startswith("/xcap-root/pres-rules/users/sip:alice@home1.net/index")
    assert [r["user"] for r in logged] == [None, ALICE, ALICE]
    stats = env.server.stats
    assert stats["requests"] == 3 and stats["status:201"] == 1 and stats["method:PUT"] == 2
