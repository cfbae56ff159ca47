"""The echo node against the RFC 4475 torture messages and a flood of malformed requests.

(a) every RFC 4475 message is sent over real UDP to an in-process echo node and
    its answer is judged by the rules of ``expected.json``;
(b) the RFC 4475 runner from the shared folder is run against an echo node
    started as a subprocess (``python -m presence_ims.cli node echo``);
(c) 10,000 malformed requests: every answer is a 4xx (or nothing), and the node
    still answers OPTIONS afterwards.

No sleeps: after each message an OPTIONS probe is sent from the same socket;
its answer proves the node has handled everything sent before it.
"""

from __future__ import annotations

import json
import random
import re
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from presence_ims.nodes.echo import EchoNode
from presence_ims.sip import (
    Request,
    Response,
    SipParseError,
    parse_datagram,
    validate_request,
)
from presence_ims.sip.transaction import Address
from presence_ims.transport import SipEndpoint

RFC4475 = Path(__file__).resolve().parents[1] / "data" / "rfc4475"
EXPECTED: dict[str, dict[str, Any]] = json.loads((RFC4475 / "expected.json").read_text())
CALL_ID_RE = re.compile(rb"^(?:call-id|i)[ \t]*:[ \t]*(\S+)", re.I | re.M)
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Echo:
    """An in-process echo node whose UDP sends are recorded.

    Only answers for the test's own client socket are really sent; the rest
    (answers to the 192.0.2.x/5060 hosts of the torture messages) are only
    recorded, so nothing leaves for ports this test does not own.
    """

    endpoint: SipEndpoint
    client: Any
    sent: list[tuple[bytes, Address]] = field(default_factory=list)
    received: list[Response] = field(default_factory=list)
    """Answers that reached the client socket, probes' answers excepted."""
    probes: int = 0

    @property
    def port(self) -> int:
        return self.endpoint.transports["udp"].port

    def send(self, data: bytes) -> None:
        self.client.send(data, ("127.0.0.1", self.port))

    def options(self, call_id: str) -> bytes:
        return (
            f"OPTIONS sip:echo@127.0.0.1:{self.port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.client.port};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
            "Max-Forwards: 70\r\n"
            "From: <sip:probe@127.0.0.1>;tag=probe\r\n"
            "To: <sip:echo@127.0.0.1>\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()

    async def probe(self, within: float = 5.0) -> Response:
        """Send an OPTIONS and wait for its 200 (everything sent before it has been handled)."""
        self.probes += 1
        call_id = f"probe-{self.probes}-{secrets.token_hex(4)}"
        self.send(self.options(call_id))
        deadline = time.monotonic() + within
        while True:
            data = await self.client.recv(max(0.01, deadline - time.monotonic()))
            msg = parse_datagram(data)
            assert isinstance(msg, Response)
            if msg.headers.get("call-id") == call_id:
                return msg
            if not str(msg.headers.get("call-id")).startswith("probe-"):
                self.received.append(msg)


@pytest.fixture
async def echo(udp_client: Callable[[], Awaitable[Any]]) -> AsyncIterator[Echo]:
    endpoint = SipEndpoint(node="echo")
    transport = await endpoint.listen("udp", "127.0.0.1", 0)
    EchoNode(endpoint)
    client = await udp_client()
    node = Echo(endpoint, client)
    real_send = transport.send

    def recording_send(data: bytes, destination: Address, transaction: object = None) -> None:
        node.sent.append((data, destination))
        if destination.port == client.port:
            real_send(data, destination, transaction)

    transport.send = recording_send  # type: ignore[method-assign]
    try:
        yield node
    finally:
        await endpoint.close()


# -- (a) RFC 4475 in process ---------------------------------------------------------------


def call_ids(data: bytes) -> set[str]:
    return {m.decode("latin-1") for m in CALL_ID_RE.findall(data)}


ALL_CALL_IDS = {tag: call_ids((RFC4475 / f"{tag}.sip").read_bytes()) for tag in EXPECTED}


def judge(exp: dict[str, Any], responses: list[Response]) -> str | None:
    """None when the answers meet ``pass`` (and the extra checks); else why not."""
    statuses = [r.status for r in responses]
    finals = [s for s in statuses if s >= 200]
    final = finals[0] if finals else (statuses[0] if statuses else None)
    ok = False
    for token in exp["pass"]:
        if token == "none":
            ok = ok or not responses
        elif token == "any":
            ok = ok or bool(responses)
        elif token == "non-400":
            ok = ok or any(s != 400 for s in statuses)
        elif token.endswith("xx"):
            ok = ok or (final is not None and final // 100 == int(token[0]))
        else:
            ok = ok or final == int(token)
    if not ok:
        return f"got {statuses}, expected one of {exp['pass']}"
    for token in exp.get("fail_if", []):
        if any(s // 100 == int(token[0]) for s in finals):
            return f"got {statuses}: {token} is wrong here"
    forbidden = exp.get("forbid_call_id")
    if forbidden and any(r.headers.get("call-id") == forbidden for r in responses):
        return f"answered the request with Call-ID {forbidden}"
    required = exp.get("require_header")
    if required and not all(required in r.headers for r in responses if r.status >= 200):
        return f"final response without {required}"
    return None


async def test_rfc4475_in_process(echo: Echo) -> None:
    assert (await echo.probe()).status == 200
    failures: dict[str, str] = {}
    for tag in sorted(EXPECTED):
        data = (RFC4475 / f"{tag}.sip").read_bytes()
        mark = len(echo.sent)
        echo.send(data)
        assert (await echo.probe()).status == 200, f"the node stopped answering after {tag}"
        others = set().union(*(ids for t, ids in ALL_CALL_IDS.items() if t != tag))
        responses = []
        for raw, _ in echo.sent[mark:]:
            msg = parse_datagram(raw)
            assert isinstance(msg, Response), "the echo node only ever sends responses"
            cid = msg.headers.get("call-id")
            if cid not in others and not str(cid).startswith("probe-"):
                responses.append(msg)
        verdict = judge(EXPECTED[tag], responses)
        if verdict is not None:
            failures[tag] = verdict
    assert failures == {}
    # malformed input is counted, never crashes the node
    assert echo.endpoint.stats["parse_error:-"] >= 19
    assert echo.endpoint.stats["handler_error"] == 0


async def test_reasons_of_the_rejections(echo: Echo) -> None:
    """The 400s name the defect (the reason phrase is what a tester reads first)."""
    reasons = {}
    for tag in ("badinv01", "clerr", "scalar02", "quotbal", "badvers", "mismatch01", "insuf", "multi01"):
        mark = len(echo.sent)
        echo.send((RFC4475 / f"{tag}.sip").read_bytes())
        await echo.probe()
        (raw, _), *_ = echo.sent[mark:]
        resp = parse_datagram(raw)
        assert isinstance(resp, Response)
        reasons[tag] = (resp.status, resp.reason)
    assert reasons == {
        "badinv01": (400, "malformed parameter in Via header"),
        "clerr": (400, "Content-Length larger than the datagram"),
        "scalar02": (400, "CSeq number out of range"),
        "quotbal": (400, "malformed To header"),
        "badvers": (505, "SIP version not supported"),
        "mismatch01": (400, "CSeq method does not match the request method"),
        "insuf": (400, "missing From header"),
        "multi01": (400, "more than one Call-ID header"),
    }


# -- (b) the shared runner against `python -m presence_ims.cli node echo` -------------------


def test_rfc4475_runner_against_the_cli_node(shared: Path) -> None:
    runner = shared / "conformance" / "rfc4475" / "run"
    if not runner.is_file():
        pytest.skip(f"no RFC 4475 runner at {runner}")
    node = subprocess.Popen(
        [sys.executable, "-m", "presence_ims.cli", "node", "echo",
         "--listen", "udp:127.0.0.1:0", "--log-level", "error"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    try:
        assert node.stdout is not None
        port = None
        for _ in range(5):  # "listening udp:127.0.0.1:PORT", then "ready: echo"
            line = node.stdout.readline()
            m = re.match(r"listening udp:127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
            if line.startswith("ready") or not line:
                break
        assert port, "the echo node did not report its port"
        result = subprocess.run(
            [sys.executable, str(runner), "127.0.0.1", str(port), "--timeout", "1"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        node.terminate()
        try:
            node.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            node.kill()
            node.wait()
    if "# warning: could not bind" in result.stdout:
        pytest.skip("the runner could not bind 127.0.0.2:5060 (another run is using it)")
    lines = result.stdout.strip().splitlines()
    failed = [ln for ln in lines if ln.endswith("| FAIL")]
    assert failed == []
    assert lines[-1] == "49 passed, 0 failed", result.stdout[-2000:]
    assert result.returncode == 0
    assert node.returncode == 0  # SIGTERM ends the node cleanly


# -- (c) a flood of malformed requests --------------------------------------------------------

FLOOD = 10_000
BATCH = 250


def _template(rnd: random.Random, port: int, n: int) -> list[bytes]:
    method = rnd.choice(["OPTIONS", "PUBLISH", "SUBSCRIBE", "MESSAGE", "NOTIFY", "INFO"])
    body = b"<presence/>" if method == "PUBLISH" else b""
    return [
        f"{method} sip:echo@127.0.0.1 SIP/2.0".encode(),
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKfz{n};rport".encode(),
        b"Max-Forwards: 70",
        b'From: "Fuzz" <sip:fuzz@127.0.0.1>;tag=fz',
        b"To: <sip:echo@127.0.0.1>",
        f"Call-ID: fz-{n}".encode(),
        f"CSeq: {n} {method}".encode(),
        b"Contact: <sip:fuzz@127.0.0.1>;expires=60",
        f"Content-Length: {len(body)}".encode(),
        b"",
        body,
    ]


DEFECTS: list[Callable[[list[bytes], random.Random], object]] = [
    lambda ls, r: ls.pop(r.choice([1, 3, 4, 5, 6])),  # a mandatory header goes missing
    lambda ls, r: ls.insert(6, r.choice([b"Call-ID: other", b"To: <sip:x@y>", b"CSeq: 1 BYE"])),
    lambda ls, r: ls.__setitem__(6, ls[6].replace(b"CSeq: ", r.choice([b"CSeq: x", b"CSeq: -", b"CSeq: 99999999999"]))),
    lambda ls, r: ls.__setitem__(6, ls[6].rsplit(b" ", 1)[0] + b" BYE"),
    lambda ls, r: ls.__setitem__(0, ls[0].replace(b"sip:echo", r.choice([b"<sip:echo", b"sip: echo", b"sip:ec ho", b"sip:@echo", b"sip:echo:99999"]))),
    lambda ls, r: ls.__setitem__(1, ls[1].replace(b";branch", r.choice([b";;branch", b" ;,branch", b":99999;branch"]))),
    lambda ls, r: ls.__setitem__(8, r.choice([b"Content-Length: 500", b"Content-Length: -1", b"Content-Length: 0, 3"])),
    lambda ls, r: ls.insert(2, r.choice([b"Max-Forwards: 300", b"Max-Forwards: many", b"Expires: soon"])),
    lambda ls, r: ls.__setitem__(3, b'From: "Fuzz <sip:fuzz@127.0.0.1>;tag=fz'),
    lambda ls, r: ls.__setitem__(7, r.choice([b"Contact: <sip:fuzz@127.0.0.1", b"Contact: sip:a@b?c=d", b"Contact: <>"])),
    lambda ls, r: ls.insert(4, r.choice([b"Require: a b", b"Proxy-Require: @", b"Bad Header: x", b"NoColon"])),
]


def _byte_noise(data: bytearray, rnd: random.Random) -> None:
    for _ in range(rnd.randint(1, 3)):
        i = rnd.randrange(len(data))
        if rnd.random() < 0.5:
            data[i] = rnd.randrange(256)
        else:
            data[i:i] = rnd.choice([b";", b",", b"<", b'"', b"%", b"\r\n", b" ", b"\x00"])


def oracle(data: bytes) -> int | None:
    """The status the stack's own parser gives (None: the request is valid)."""
    try:
        msg = parse_datagram(data)
        if isinstance(msg, Request):
            validate_request(msg)
    except SipParseError as exc:
        return exc.status
    return None


def malformed_requests(port: int, count: int, seed: int = 4475) -> list[tuple[bytes, int]]:
    rnd = random.Random(seed)
    out: list[tuple[bytes, int]] = []
    n = 0
    while len(out) < count and n < count * 4:
        n += 1
        lines = _template(rnd, port, n)
        for _ in range(rnd.randint(1, 2)):
            rnd.choice(DEFECTS)(lines, rnd)
        data = bytearray(b"\r\n".join(lines))
        if rnd.random() < 0.3:
            _byte_noise(data, rnd)
        status = oracle(bytes(data))
        if status is not None and 400 <= status < 500:
            out.append((bytes(data), status))
    return out


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_flood_of_malformed_requests(echo: Echo) -> None:
    started = time.monotonic()
    flood = malformed_requests(echo.client.port, FLOOD)
    assert len(flood) == FLOOD
    expected: dict[str, set[int]] = {}
    for data, status in flood:
        ids = call_ids(data)
        if len(ids) == 1:
            expected.setdefault(ids.pop(), set()).add(status)
    for start in range(0, FLOOD, BATCH):
        for data, _ in flood[start : start + BATCH]:
            echo.send(data)
        # the probe's answer comes after every answer to the batch (one socket, in order)
        probe_ok = await echo.probe(within=10.0)
        assert probe_ok.status == 200
        assert time.monotonic() - started < 60, "the flood is taking too long"
    answers = echo.received
    # the node is alive and well
    final = await echo.probe()
    assert final.status == 200
    # every answer was a 4xx, and the one the parser names for that request
    # most defects leave the start line and the Via readable: those requests are answered
    assert len(answers) >= FLOOD // 2, f"only {len(answers)} of {FLOOD} malformed requests answered"
    bad = [(r.status, r.reason) for r in answers if not 400 <= r.status < 500]
    assert bad == []
    for r in answers:
        cid = r.headers.get("call-id")
        if cid in expected:
            assert r.status in expected[cid], (cid, r.status, r.reason)
    assert len(answers) <= FLOOD
    assert echo.endpoint.stats["parse_error:-"] >= len(answers)
    assert echo.endpoint.stats["rx_request"] == echo.probes  # only the probes got through
    assert echo.endpoint.stats["handler_error"] == 0
