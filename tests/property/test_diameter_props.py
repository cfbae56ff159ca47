"""Hypothesis: the Diameter codec, framer and parsers never raise anything but
DiameterError, and encoding round-trips."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from presence_ims.diameter import cx, sh
from presence_ims.diameter.base import parse_capabilities
from presence_ims.diameter.codec import (
    Avp,
    DiameterError,
    DiameterFramer,
    DiameterMessage,
    decode,
    encode,
    grouped_avp,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# AVP codes chosen so that grouped ones (dictionary type Grouped) appear too.
codes = st.sampled_from([1, 263, 264, 268, 297, 260, 601, 612, 700, 702, 99999])
vendors = st.sampled_from([0, 0, 10415, 7])

leaf_avps = st.builds(
    Avp,
    code=codes,
    payload=st.binary(max_size=40),
    vendor_id=vendors,
    mandatory=st.booleans(),
    private=st.booleans(),
)


def _grouped(children: st.SearchStrategy[list[Avp]]) -> st.SearchStrategy[Avp]:
    return st.builds(
        lambda code, vendor, kids: grouped_avp(code, kids, vendor),
        st.sampled_from([297, 260, 612, 700]),
        st.sampled_from([0, 10415]),
        children,
    )


def _valid_leaf(avp: Avp) -> bool:
    # A leaf whose dictionary type is Grouped must hold valid AVPs; keep
    # random payloads on non-grouped codes only.
    return avp.code not in (297, 260, 612, 700) or avp.payload == b""


avps = st.recursive(
    leaf_avps.filter(_valid_leaf),
    lambda children: _grouped(st.lists(children, max_size=3)),
    max_leaves=8,
)

messages = st.builds(
    DiameterMessage,
    command_code=st.integers(0, 0xFFFFFF),
    application_id=st.integers(0, 0xFFFFFFFF),
    request=st.booleans(),
    avps=st.lists(avps, max_size=6).map(tuple),
    hop_by_hop=st.integers(0, 0xFFFFFFFF),
    end_to_end=st.integers(0, 0xFFFFFFFF),
    proxiable=st.booleans(),
    retransmit=st.booleans(),
)


@SETTINGS
@given(messages)
def test_encode_decode_round_trip(message: DiameterMessage) -> None:
    data = encode(message)
    assert len(data) % 4 == 0
    assert decode(data) == message


@SETTINGS
@given(st.lists(messages, min_size=1, max_size=4), st.data())
def test_framer_reassembles_any_split(batch: list[DiameterMessage], data: st.DataObject) -> None:
    stream = b"".join(encode(m) for m in batch)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    framer = DiameterFramer()
    frames: list[bytes] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        frames += framer.feed(stream[start:cut])
        start = cut
    assert [decode(f) for f in frames] == batch
    assert framer.buffered == 0


@SETTINGS
@given(st.binary(max_size=400))
def test_decode_random_bytes(data: bytes) -> None:
    try:
        decode(data)
    except DiameterError:
        pass


@SETTINGS
@given(st.binary(max_size=300))
def test_decode_random_avps_behind_a_valid_header(body: bytes) -> None:
    body = body + b"\x00" * (-len(body) % 4)
    length = 20 + len(body)
    header = bytes([1]) + length.to_bytes(3, "big") + b"\x80\x00\x01\x2c" + b"\x00" * 12
    try:
        message = decode(header + body)
    except DiameterError:
        return
    for avp in message.avps:
        try:
            avp.as_grouped()
        except DiameterError:
            pass


@SETTINGS
@given(st.lists(st.binary(max_size=64), max_size=10))
def test_framer_random_chunks(chunks: list[bytes]) -> None:
    framer = DiameterFramer(max_message_size=4096)
    try:
        for chunk in chunks:
            for frame in framer.feed(chunk):
                try:
                    decode(frame)
                except DiameterError:
                    pass
    except DiameterError:
        pass


@SETTINGS
@given(messages, st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6))
def test_mutated_messages_raise_only_diameter_error(
    message: DiameterMessage, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(encode(message))
    for position, value in flips:
        data[position % len(data)] = value
    try:
        decode(bytes(data))
    except DiameterError:
        pass


PARSERS: list[Callable[[DiameterMessage], Any]] = [
    cx.UserAuthorizationRequest.from_message,
    cx.UserAuthorizationAnswer.from_message,
    cx.MultimediaAuthRequest.from_message,
    cx.MultimediaAuthAnswer.from_message,
    cx.ServerAssignmentRequest.from_message,
    cx.ServerAssignmentAnswer.from_message,
    cx.LocationInfoRequest.from_message,
    cx.LocationInfoAnswer.from_message,
    cx.RegistrationTerminationRequest.from_message,
    cx.RegistrationTerminationAnswer.from_message,
    sh.UserDataRequest.from_message,
    sh.UserDataAnswer.from_message,
    sh.SubscribeNotificationsRequest.from_message,
    sh.SubscribeNotificationsAnswer.from_message,
    sh.PushNotificationRequest.from_message,
    sh.PushNotificationAnswer.from_message,
    parse_capabilities,
]

typed_codes = st.sampled_from(
    [1, 263, 264, 268, 283, 296, 297, 601, 602, 603, 607, 612, 614, 615, 623, 700, 702, 703, 705, 709]
)
typed_avps = st.builds(
    Avp,
    code=typed_codes,
    payload=st.binary(max_size=24),
    vendor_id=st.sampled_from([0, 10415]),
)


@SETTINGS
@given(
    st.sampled_from([257, 300, 301, 302, 303, 304, 306, 308, 309]),
    st.booleans(),
    st.lists(typed_avps, max_size=10),
    st.sampled_from(PARSERS),
)
def test_command_parsers_raise_only_diameter_error(
    command: int, request: bool, avp_list: list[Avp], parser: Callable[[DiameterMessage], Any]
) -> None:
    message = DiameterMessage(command, 16777216, request, tuple(avp_list))
    try:
        parser(message)
    except DiameterError:
        pass


@SETTINGS
@given(st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_xml_parsers_raise_only_diameter_error(data: bytes) -> None:
    for parser in (cx.parse_ims_subscription, sh.parse_sh_data):
        try:
            parser(data)
        except DiameterError:
            pass


xml_fragments = st.sampled_from(
    [
        "<IMSSubscription>", "</IMSSubscription>", "<PrivateID>a</PrivateID>",
        "<ServiceProfile>", "</ServiceProfile>", "<PublicIdentity>", "</PublicIdentity>",
        "<Identity>sip:a@h</Identity>", "<BarringIndication>1</BarringIndication>",
        "<InitialFilterCriteria>", "</InitialFilterCriteria>", "<Priority>0</Priority>",
        "<TriggerPoint>", "</TriggerPoint>", "<ConditionTypeCNF>x</ConditionTypeCNF>",
        "<SPT>", "</SPT>", "<Group>z</Group>", "<Method>PUBLISH</Method>",
        "<ApplicationServer>", "</ApplicationServer>", "<ServerName>sip:ps</ServerName>",
        "<Sh-Data>", "</Sh-Data>", "<Sh-IMS-Data>", "</Sh-IMS-Data>",
        "<IMSUserState>7</IMSUserState>", "<CSLocationInformation>",
        "</CSLocationInformation>", "<AgeOfLocationInformation>q</AgeOfLocationInformation>",
        "<RepositoryData>", "</RepositoryData>", "<SequenceNumber>1</SequenceNumber>",
    ]
)


@SETTINGS
@given(st.lists(xml_fragments, max_size=25))
def test_structured_xml_raises_only_diameter_error(parts: list[str]) -> None:
    data = "".join(parts).encode()
    for parser in (cx.parse_ims_subscription, sh.parse_sh_data):
        try:
            parser(data)
        except DiameterError:
            pass


@SETTINGS
@given(
    st.text(min_size=1, max_size=20),
    st.lists(
        st.tuples(st.text(min_size=1, max_size=30), st.booleans(), st.integers(0, 3)),
        min_size=1,
        max_size=4,
    ),
)
def test_ims_subscription_round_trip(
    private_id: str, identities: list[tuple[str, bool, int]]
) -> None:
    # XML 1.0 cannot carry control characters or surrogates; lxml refuses them.
    def xml_ok(text: str) -> bool:
        return all(c in "\t\n\r" or (" " <= c < "\ud800") or ("\ue000" <= c <= "\ufffd") for c in text)

    if not xml_ok(private_id) or not all(xml_ok(i[0]) for i in identities):
        return
    if private_id.strip() != private_id or not private_id.strip():
        return
    if any(i[0].strip() != i[0] or not i[0].strip() for i in identities):
        return
    subscription = cx.ImsSubscription(
        private_id,
        (cx.ServiceProfile(tuple(cx.PublicIdentity(*i) for i in identities)),),
    )
    assert cx.parse_ims_subscription(cx.build_ims_subscription(subscription)) == subscription
