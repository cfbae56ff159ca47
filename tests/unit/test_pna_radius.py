"""Pk: RADIUS accounting packets through pyrad (RFC 2866), sans-IO."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presence_ims.elements import ElementError
from presence_ims.elements import radius as r

SECRET = b"ggsn-shared-secret"


def start(**changes: object) -> r.AccountingRecord:
    values: dict[str, object] = {
        "status": "start",
        "session_id": "alice-10.0.0.7",
        "calling_station_id": "15550001",
        "framed_ip": "10.0.0.7",
        "nas_ip": "192.0.2.10",
        "nas_identifier": "ggsn1",
        "imsi": "262019876543210",
        "event_timestamp": 1_700_000_000,
    }
    values.update(changes)
    return r.AccountingRecord(**values)  # type: ignore[arg-type]


def test_request_round_trip_and_authenticator() -> None:
    data = r.build_accounting_request(start(), SECRET, 17)
    code, ident, length = struct.unpack("!BBH", data[:4])
    assert (code, ident, length) == (4, 17, len(data))
    # RFC 2866 section 3: MD5(Code+ID+Length+16 zero octets+Attributes+Secret)
    assert data[4:20] == hashlib.md5(data[:4] + bytes(16) + data[20:] + SECRET).digest()
    request = r.parse_accounting_request(data, SECRET)
    assert request.identifier == 17 and request.record == start()
    assert request.record.nas == "ggsn1"


def test_response_is_verifiable_by_the_client() -> None:
    data = r.build_accounting_request(start(status="stop", session_time=42, terminate_cause=1), SECRET, 3)
    request = r.parse_accounting_request(data, SECRET)
    assert request.record.status == "stop" and request.record.session_time == 42
    response = r.build_accounting_response(request, SECRET)
    assert response[0] == 5 and response[1] == 3  # Accounting-Response, same identifier
    # Response Authenticator: MD5(Code+ID+Length+RequestAuth+Attributes+Secret)
    assert response[4:20] == hashlib.md5(response[:4] + data[4:20] + response[20:] + SECRET).digest()
    assert r.verify_accounting_response(data, response, SECRET)
    assert not r.verify_accounting_response(data, response, b"other secret")
    tampered = bytes([response[0], response[1] ^ 1]) + response[2:]
    assert not r.verify_accounting_response(data, tampered, SECRET)


def test_wrong_secret_and_tampering_are_refused() -> None:
    data = r.build_accounting_request(start(), SECRET, 1)
    with pytest.raises(ElementError) as info:
        r.parse_accounting_request(data, b"guessed")
    assert info.value.kind == "bad_authenticator"
    flipped = bytearray(data)
    flipped[-1] ^= 0x01
    with pytest.raises(ElementError) as info:
        r.parse_accounting_request(bytes(flipped), SECRET)
    assert info.value.kind in ("bad_authenticator", "malformed")


def test_access_request_is_not_accounting() -> None:
    data = bytearray(r.build_accounting_request(start(), SECRET, 1))
    data[0] = 1  # Access-Request
    with pytest.raises(ElementError) as info:
        r.parse_accounting_request(bytes(data), SECRET)
    assert info.value.kind == "not_accounting"


def test_missing_attributes() -> None:
    with pytest.raises(ElementError, match="Acct-Session-Id"):
        r.parse_accounting_request(r.build_accounting_request(start(session_id=None), SECRET, 1), SECRET)
    no_user = start(calling_station_id=None, user_name=None)
    with pytest.raises(ElementError, match="Calling-Station-Id"):
        r.parse_accounting_request(r.build_accounting_request(no_user, SECRET, 1), SECRET)
    # Accounting-On needs no session
    on = r.AccountingRecord("on", nas_identifier="ggsn1")
    assert r.parse_accounting_request(r.build_accounting_request(on, SECRET, 1), SECRET).record.status == "on"


def test_build_refuses_bad_values() -> None:
    with pytest.raises(ElementError):
        r.build_accounting_request(start(framed_ip="10.0.0.300"), SECRET, 1)
    with pytest.raises(ElementError):
        r.build_accounting_request(start(), SECRET, 256)
    with pytest.raises(ElementError):
        r.build_accounting_request(start(session_id="tab\tin"), SECRET, 1)


def test_truncated_and_short_packets() -> None:
    data = r.build_accounting_request(start(), SECRET, 1)
    for cut in (0, 3, 19, 25):
        with pytest.raises(ElementError):
            r.parse_accounting_request(data[:cut], SECRET)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_element_error(data: bytes) -> None:
    try:
        r.parse_accounting_request(data, SECRET)
    except ElementError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=200))
def test_authentic_garbage_attributes_raise_element_error(attrs: bytes) -> None:
    """Correctly authenticated packets with arbitrary attributes: parsed or ElementError."""
    header = struct.pack("!BBH", 4, 9, 20 + len(attrs))
    auth = hashlib.md5(header + bytes(16) + attrs + SECRET).digest()
    try:
        r.parse_accounting_request(header + auth + attrs, SECRET)
    except ElementError:
        pass
