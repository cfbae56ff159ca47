"""Property tests of the SIP parser (Hypothesis).

- generated valid messages: serialize(parse(x)) is stable, field by field;
- random bytes and mutated valid messages: nothing but SipParseError escapes;
- StreamFramer: where a stream is cut does not change the messages.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from presence_ims.sip import (
    Headers,
    Message,
    Request,
    Response,
    SipParseError,
    SipURI,
    StreamFramer,
    normalize_name,
    parse_datagram,
    parse_uri,
    uri_equal,
    validate_request,
    validate_response,
)

SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
TOKEN_CHARS = ALNUM + "-.!%*_+`'~"
UNRESERVED = ALNUM + "-_.!~*'()"

token = st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=12)
label = st.from_regex(r"[a-z]([a-z0-9\-]{0,8}[a-z0-9])?", fullmatch=True)
hostname = st.builds(lambda labels, top: ".".join([*labels, top]), st.lists(label, max_size=3),
                     st.from_regex(r"[a-z]{2,6}", fullmatch=True))
ipv4 = st.builds(lambda a: ".".join(str(x) for x in a), st.lists(st.integers(0, 255), min_size=4, max_size=4))
ipv6 = st.sampled_from(["[::1]", "[2001:db8::10]", "[2001:DB8:0:0:8:800:200C:417A]", "[::ffff:192.0.2.1]"])
host = st.one_of(hostname, ipv4, ipv6)
port = st.one_of(st.none(), st.integers(1, 65535))
escape = st.integers(0, 255).map(lambda b: f"%{b:02X}")
user = st.lists(st.one_of(st.sampled_from(UNRESERVED + "&=+$,;?/"), escape), min_size=1, max_size=10).map("".join)
param_value = st.lists(st.one_of(st.sampled_from(UNRESERVED + "[]/:&+$"), escape), min_size=1, max_size=8).map("".join)
param_name = st.text(alphabet=UNRESERVED, min_size=1, max_size=8)
uri_params = st.lists(st.tuples(param_name, st.one_of(st.none(), param_value)), max_size=3).map(tuple)
uri_headers = st.lists(
    st.tuples(st.text(alphabet=UNRESERVED, min_size=1, max_size=6), st.text(alphabet=UNRESERVED, max_size=6)),
    max_size=2,
).map(tuple)


@st.composite
def sip_uris(draw: st.DrawFn, with_headers: bool = True) -> SipURI:
    u = draw(st.one_of(st.none(), user))
    return SipURI(
        draw(st.sampled_from(["sip", "sips"])),
        draw(host),
        u,
        None if u is None else draw(st.one_of(st.none(), st.text(alphabet=UNRESERVED, max_size=6))),
        draw(port),
        draw(uri_params),
        draw(uri_headers) if with_headers else (),
    )


quoted_display = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12
).map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"')
token_display = st.lists(token, min_size=1, max_size=3).map(" ".join)
display = st.one_of(st.none(), quoted_display, token_display)
gen_value = st.one_of(token, quoted_display)
header_params = st.lists(st.tuples(token, st.one_of(st.none(), gen_value)), max_size=3)


def params_text(params: list[tuple[str, str | None]]) -> str:
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)


@st.composite
def name_addr(draw: st.DrawFn, tag: bool = False) -> str:
    d = draw(display)
    params = draw(header_params)
    params = [(n, v) for n, v in params if n.lower() != "tag"]
    if tag:
        params.insert(0, ("tag", draw(token)))
    uri = draw(sip_uris())
    return f"{d + ' ' if d else ''}<{uri}>{params_text(params)}"


@st.composite
def via(draw: st.DrawFn) -> str:
    transport = draw(st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "udp"]))
    p = draw(port)
    params: list[tuple[str, str | None]] = [("branch", "z9hG4bK" + draw(token))]
    if draw(st.booleans()):
        params.append(("rport", draw(st.one_of(st.none(), st.integers(1, 65535).map(str)))))
    if draw(st.booleans()):
        params.append(("received", draw(ipv4)))
    return f"SIP/2.0/{transport} {draw(host)}{'' if p is None else f':{p}'}{params_text(params)}"


RESERVED_KEYS = {
    normalize_name(n)
    for n in ("via", "from", "to", "call-id", "cseq", "max-forwards", "content-length",
              "content-type", "expires", "contact", "route", "record-route", "path", "require",
              "proxy-require")
}
ext_name = token.filter(lambda n: normalize_name(n) not in RESERVED_KEYS)
ext_value = st.text(
    alphabet=st.characters(blacklist_categories=["Cc", "Cs", "Zl", "Zp"]), max_size=30
).map(str.strip)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    fields: list[tuple[str, str]] = [("Via", draw(via())) for _ in range(draw(st.integers(1, 3)))]
    fields += [
        ("From", draw(name_addr(tag=True))),
        ("To", draw(name_addr(tag=draw(st.booleans())))),
        (draw(st.sampled_from(["Call-ID", "i", "call-id"])), draw(token) + "@" + draw(hostname)),
    ]
    method = draw(st.one_of(st.sampled_from(["INVITE", "OPTIONS", "PUBLISH", "SUBSCRIBE", "ACK"]), token))
    seq = draw(st.integers(0, 2**31 - 1))
    fields.append(("CSeq", f"{seq} {'INVITE' if method == 'ACK' else method}"))
    if draw(st.booleans()):
        fields.append(("Max-Forwards", str(draw(st.integers(0, 255)))))
    for _ in range(draw(st.integers(0, 2))):
        fields.append((draw(st.sampled_from(["Contact", "m"])), draw(name_addr())))
    if draw(st.booleans()):
        fields.append(("Route", ", ".join(f"<{draw(sip_uris(with_headers=False))};lr>" for _ in range(2))))
    for _ in range(draw(st.integers(0, 4))):
        fields.append((draw(ext_name), draw(ext_value)))
    body = draw(st.binary(max_size=200))
    if body:
        fields.append(("Content-Type", "application/pidf+xml"))
    draw(st.randoms()).shuffle(fields)
    headers = Headers(fields)
    if draw(st.booleans()):
        return Response(headers, body, draw(st.integers(100, 699)),
                        draw(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)).strip())
    ruri = draw(st.one_of(sip_uris(with_headers=False), st.just(parse_uri("tel:+12015550123"))))
    return Request(headers, body, method, ruri)


def parse_valid(data: bytes) -> Message:
    msg = parse_datagram(data)
    if isinstance(msg, Request):
        validate_request(msg)
    else:
        assert isinstance(msg, Response)
        validate_response(msg)
    return msg


def fields_of(msg: Message) -> tuple[object, ...]:
    start: tuple[object, ...]
    if isinstance(msg, Request):
        start = ("request", msg.method, str(msg.uri), msg.version)
    else:
        assert isinstance(msg, Response)
        start = ("response", msg.status, msg.reason, msg.version)
    return (*start, list(msg.headers), msg.body)


@SETTINGS
@given(messages())
def test_serialize_parse_is_stable(msg: Message) -> None:
    wire = msg.serialize()
    first = parse_valid(wire)
    again = first.serialize()
    assert again == wire
    second = parse_valid(again)
    assert fields_of(second) == fields_of(first)
    assert list(first.headers)[:-1] == list(msg.headers)
    assert list(first.headers)[-1] == ("Content-Length", str(len(msg.body)))
    # the typed views agree too
    assert second.vias == first.vias
    assert second.cseq == first.cseq
    assert second.from_ == first.from_
    assert second.to == first.to
    assert second.contacts == first.contacts
    assert second.call_id == first.call_id
    if isinstance(first, Request) and isinstance(second, Request):
        assert uri_equal(first.ruri, second.ruri)


@SETTINGS
@given(sip_uris())
def test_uri_round_trip(uri: SipURI) -> None:
    text = str(uri)
    parsed = parse_uri(text)
    assert str(parsed) == text
    assert uri_equal(parsed, uri)
    assert uri_equal(uri, parsed)


def only_sip_parse_errors(data: bytes) -> None:
    try:
        msg = parse_datagram(data)
        if isinstance(msg, Request):
            validate_request(msg)
        else:
            validate_response(msg)  # type: ignore[arg-type]
    except SipParseError as exc:
        assert isinstance(exc.reason, str) and exc.reason
        assert 400 <= exc.status <= 599
        return
    # a message that validated keeps its promises: the checked views parse
    assert msg.via is not None and msg.cseq is not None and msg.call_id
    assert msg.from_.uri is not None and msg.to.uri is not None
    for view in (lambda: msg.contacts, lambda: msg.event, lambda: msg.content_type,
                 lambda: msg.expires, lambda: msg.name_addrs("route")):
        try:
            view()
        except SipParseError:
            pass
    msg.serialize()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_sip_parse_error(data: bytes) -> None:
    only_sip_parse_errors(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_after_a_start_line(tail: bytes) -> None:
    only_sip_parse_errors(b"OPTIONS sip:a@b SIP/2.0\r\n" + tail + b"\r\n\r\n")
    only_sip_parse_errors(b"SIP/2.0 200 OK\r\nVia: " + tail + b"\r\n\r\n")


Mutation = Callable[[bytearray, random.Random], None]


def _flip(buf: bytearray, rnd: random.Random) -> None:
    if buf:
        buf[rnd.randrange(len(buf))] = rnd.randrange(256)


def _delete(buf: bytearray, rnd: random.Random) -> None:
    if buf:
        i = rnd.randrange(len(buf))
        del buf[i : i + rnd.randint(1, 20)]


def _insert(buf: bytearray, rnd: random.Random) -> None:
    i = rnd.randrange(len(buf) + 1)
    buf[i:i] = rnd.choice([b";", b",", b"<", b">", b'"', b"\r\n", b" ", b":", b"%", b"\x00", b"\xff",
                           b"@", b"=", b"\r\n ", b"SIP/2.0", b"\\"])


def _duplicate_line(buf: bytearray, rnd: random.Random) -> None:
    lines = bytes(buf).split(b"\r\n")
    i = rnd.randrange(len(lines))
    lines.insert(i, lines[i])
    buf[:] = b"\r\n".join(lines)


MUTATIONS: list[Mutation] = [_flip, _delete, _insert, _duplicate_line]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), st.randoms(use_true_random=False), st.integers(1, 6))
def test_mutated_messages_raise_only_sip_parse_error(msg: Message, rnd: random.Random, count: int) -> None:
    buf = bytearray(msg.serialize())
    for _ in range(count):
        rnd.choice(MUTATIONS)(buf, rnd)
    only_sip_parse_errors(bytes(buf))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages(), min_size=1, max_size=3), st.lists(st.integers(0, 4000), max_size=12),
       st.booleans())
def test_stream_split_points_do_not_matter(msgs: list[Message], cuts: list[int], keepalive: bool) -> None:
    wires = [m.serialize() for m in msgs]
    stream = (b"\r\n\r\n" if keepalive else b"").join(wires)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    assume(b"".join(chunks) == stream)
    framer = StreamFramer()
    out: list[bytes] = []
    for chunk in chunks:
        framer.feed(chunk)
        while (m := framer.next_message()) is not None:
            out.append(m.serialize())
    assert out == wires
    assert framer.buffered == 0


# -- the validation fast paths accept nothing the full parsers refuse ----------------------


def _fast_implies_full(text: str) -> None:
    from presence_ims.sip.headers import parse_name_addr, parse_via
    from presence_ims.sip.parser import _NAME_ADDR_FAST, _VIA_FAST

    if _VIA_FAST.fullmatch(text) is not None:
        parse_via(text)  # must not raise
    if _NAME_ADDR_FAST.fullmatch(text.strip()) is not None:
        parse_name_addr(text)  # must not raise


def _mutate_text(text: str, rnd: random.Random, count: int) -> str:
    chars = list(text)
    for _ in range(count):
        i = rnd.randrange(len(chars) + 1)
        op = rnd.random()
        if op < 0.4:
            chars.insert(i, rnd.choice(';,<>"@:=?%[] \t\\/.-0aZ'))
        elif chars and op < 0.7:
            del chars[min(i, len(chars) - 1)]
        elif chars:
            chars[min(i, len(chars) - 1)] = rnd.choice(';,<>"@:=?%[]\\ 9')
    return "".join(chars)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(via(), name_addr(tag=True), name_addr()), st.randoms(use_true_random=False),
       st.integers(0, 4))
def test_validation_fast_paths_are_subsets(text: str, rnd: random.Random, count: int) -> None:
    _fast_implies_full(text)
    _fast_implies_full(_mutate_text(text, rnd, count))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from('SIP/2.0UDsip:a@b<>";=,?%[]:.-_ \tbranchrportreceived0123456789'),
               max_size=60))
def test_validation_fast_paths_on_random_text(text: str) -> None:
    _fast_implies_full(text)
