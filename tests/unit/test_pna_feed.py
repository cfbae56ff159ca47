"""The Pc/Pg feed codec: signing, verification and every refusal (sans-IO)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presence_ims.elements import ElementError
from presence_ims.elements import feed as f

MSC = f.FeedElement("msc1", "msc", b"msc-secret-123")
SGSN = f.FeedElement("sgsn1", "sgsn", b"sgsn-secret-456")
NOW = 1_700_000_000.0


def verifier() -> f.FeedVerifier:
    return f.FeedVerifier([MSC, SGSN], max_skew=30.0)


def kind_of(line: bytes, v: f.FeedVerifier | None = None, now: float = NOW) -> str:
    with pytest.raises(ElementError) as info:
        (v or verifier()).verify(line, now)
    return info.value.kind


def test_signed_line_verifies_and_round_trips() -> None:
    signer = f.FeedSigner(SGSN, 100)
    event, line = signer.line("sip:alice@home1.net", "location", NOW, area="26201-0101-01", cell="4711")
    assert line.endswith(b"\n") and len(line) < f.MAX_LINE
    got = verifier().verify(line, NOW + 1)
    assert got == event
    assert got.interface == "Pg" and got.area == "26201-0101-01" and got.cell == "4711"
    fields = json.loads(line)
    assert fields["rai"] == "26201-0101-01" and "lai" not in fields
    assert fields["mac"] == f.mac(fields, SGSN.secret)


def test_mac_covers_the_canonical_form_not_the_bytes() -> None:
    _, line = f.FeedSigner(MSC, 1).line("tel:+15550001", "attach", NOW)
    fields = json.loads(line)
    reordered = json.dumps(dict(reversed(list(fields.items()))), indent=1).replace("\n", " ").encode() + b"\n"
    assert verifier().verify(reordered, NOW).event == "attach"


def test_refusals_by_kind() -> None:
    signer = f.FeedSigner(MSC, 10)
    _, good = signer.line("sip:alice@home1.net", "busy", NOW)
    fields = json.loads(good)
    assert kind_of(b"{not json\n") == "malformed"
    assert kind_of(b"[1,2]\n") == "malformed"
    assert kind_of(b"\n") == "malformed"
    assert kind_of(b"\xff\xfe\n") == "malformed"
    assert kind_of(b"x" * (f.MAX_LINE + 1)) == "too_long"
    assert kind_of(json.dumps({**fields, "v": 2}).encode()) == "version"
    assert kind_of(json.dumps({**fields, "element": "msc9"}).encode()) == "unknown_element"
    assert kind_of(json.dumps({**fields, "event": "detach"}).encode()) == "bad_mac"
    del fields["mac"]
    assert kind_of(json.dumps(fields).encode()) == "bad_mac"
    # duplicate keys are refused rather than silently collapsed
    dup = good.replace(b'"v":1', b'"v":1,"v":1', 1)
    assert kind_of(dup) == "malformed"


def test_wrong_type_unknown_fields_and_bad_values_are_invalid() -> None:
    def signed(**changes: object) -> bytes:
        fields = f.FeedEvent("msc1", "msc", 5, int(NOW * 1000), "sip:alice@home1.net", "attach").fields()
        fields.update(changes)
        fields["mac"] = f.mac(fields, MSC.secret)
        return json.dumps(fields).encode()

    assert verifier().verify(signed(), NOW).event == "attach"
    assert kind_of(signed(type="sgsn")) == "wrong_type"
    assert kind_of(signed(rai="1-2")) == "invalid"  # an MSC reports a LAI, not a RAI
    assert kind_of(signed(extra=1)) == "invalid"
    assert kind_of(signed(event="explode")) == "invalid"
    assert kind_of(signed(seq=-1)) == "invalid"
    assert kind_of(signed(seq=True)) == "invalid"
    assert kind_of(signed(user="alice smith")) == "invalid"
    assert kind_of(signed(cell="<script>")) == "invalid"


def test_replay_and_staleness() -> None:
    v = verifier()
    signer = f.FeedSigner(SGSN, 500)
    _, first = signer.line("sip:alice@home1.net", "attach", NOW)
    _, second = signer.line("sip:alice@home1.net", "detach", NOW)
    assert v.verify(second, NOW).seq == 501
    assert kind_of(first, v) == "replay"  # lower sequence number than the last accepted
    assert kind_of(second, v) == "replay"  # the same line again
    assert v.last_seq("sgsn1") == 501
    _, old = signer.line("sip:alice@home1.net", "idle", NOW - 31)
    _, future = signer.line("sip:alice@home1.net", "idle", NOW + 31)
    assert kind_of(old, v) == "stale"
    assert kind_of(future, v) == "stale"
    # refusals do not advance the replay state
    _, ok = signer.line("sip:alice@home1.net", "busy", NOW)
    assert v.verify(ok, NOW).seq == 504
    # elements are independent
    _, msc_line = f.FeedSigner(MSC, 1).line("15550001", "attach", NOW)
    assert v.verify(msc_line, NOW).seq == 1


def test_acks_round_trip() -> None:
    for ack in (f.FeedAck(7, True), f.FeedAck(None, False, "malformed"), f.FeedAck(9, False, "replay")):
        assert f.parse_ack(f.encode_ack(ack)) == ack
    with pytest.raises(ElementError):
        f.parse_ack(b'{"v":1,"seq":"x","ok":true}\n')


def test_signer_refuses_bad_input() -> None:
    signer = f.FeedSigner(MSC, 1)
    with pytest.raises(ElementError):
        signer.line("sip:alice@home1.net", "fly", NOW)
    with pytest.raises(ElementError):
        signer.line("not a user", "attach", NOW)
    with pytest.raises(ElementError):
        signer.line("sip:alice@home1.net", "location", NOW, cell="bad cell")
    with pytest.raises(ElementError):
        f.FeedSigner(f.FeedElement("bad id!", "msc", b"s"), 1)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_verify_or_raise_element_error(data: bytes) -> None:
    try:
        verifier().verify(data, NOW)
    except ElementError as exc:
        assert exc.kind in {
            "malformed", "too_long", "version", "unknown_element", "bad_mac", "invalid",
            "wrong_type", "stale", "replay",
        }  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from([*sorted(f._FIELDS), "zz"]), st.one_of(
    st.integers(), st.text(max_size=20), st.booleans(), st.none(), st.floats(allow_nan=False)), max_size=12))
def test_any_json_object_verifies_or_raises(fields: dict[str, object]) -> None:
    fields = {**fields, "element": "msc1"}
    fields["mac"] = f.mac(fields, MSC.secret)  # authentic, so every later check is reached
    try:
        event = verifier().verify(json.dumps(fields).encode(), NOW)
    except ElementError:
        return
    assert event.element == "msc1" and event.event in f.EVENTS
