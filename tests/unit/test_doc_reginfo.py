"""Registration information (RFC 3680), as the S-CSCF sends it to the PNA on Pi."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from presence_ims.documents import DocumentError, reginfo, validate
from presence_ims.documents.reginfo import Contact, RegInfo, Registration


def _conformance_xsd() -> Path:
    """shared/conformance/xsd: $PRESENCE_IMS_SHARED, beside the checkout, or /work/shared."""
    env = os.environ.get("PRESENCE_IMS_SHARED")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[2].parent / "shared", Path("/work/shared")]
    for base in candidates:
        if (base / "conformance" / "xsd").is_dir():
            return base / "conformance" / "xsd"
    return candidates[-1] / "conformance" / "xsd"


EXTERNAL = _conformance_xsd() / "validate"
needs_external = pytest.mark.skipif(
    not EXTERNAL.exists(), reason="shared conformance validator not present (shared/ absent)"
)

GRUU = (
    b'<gr:pub-gruu xmlns:gr="urn:ietf:params:xml:ns:gruuinfo" '
    b'uri="sip:alice@home1.net;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6">'
    b"</gr:pub-gruu>"
)

EVENTS = (
    "registered",
    "created",
    "refreshed",
    "shortened",
    "expired",
    "deactivated",
    "probation",
    "unregistered",
    "rejected",
)


def reg_info() -> RegInfo:
    return RegInfo(
        version=3,
        state="full",
        registrations=(
            Registration(
                "sip:alice@home1.net",
                "reg-a1",
                "active",
                (
                    Contact(
                        "c1",
                        "active",
                        "registered",
                        "sip:alice@192.0.2.10:5060",
                        expires=600000,
                        q="0.8",
                        display_name="Alice's phone",
                        unknown_params=(
                            ("+sip.instance", '"<urn:gsma:imei:35209900-176148-1>"'),
                            ("+g.3gpp.smsip", ""),
                        ),
                        duration_registered=12,
                        callid="a84b4c76e66710",
                        cseq=314159,
                        extensions=(GRUU,),
                    ),
                    Contact(
                        "c2",
                        "terminated",
                        "expired",
                        "sip:alice@198.51.100.7",
                        duration_registered=3600,
                        retry_after=30,
                    ),
                ),
            ),
            Registration("tel:+49891234", "reg-a2", "init"),
            Registration("sip:alice-anon@home1.net", "reg-a3", "terminated"),
        ),
    )


def test_round_trip_and_validation() -> None:
    info = reg_info()
    data = reginfo.build(info)
    assert reginfo.parse(data) == info
    assert validate.errors(data) == []
    assert b"<gr:pub-gruu " in data


@pytest.mark.parametrize("event", EVENTS)
def test_every_contact_event(event: str) -> None:
    info = RegInfo(
        0,
        "partial",
        (
            Registration(
                "sip:a@b",
                "r",
                "active",
                (Contact("c", "active", event, "sip:a@192.0.2.1"),),  # type: ignore[arg-type]
            ),
        ),
    )
    data = reginfo.build(info)
    assert reginfo.parse(data) == info
    validate.validate(data)


@needs_external
def test_external_validator_accepts_built_reginfo() -> None:
    result = subprocess.run(
        [sys.executable, str(EXTERNAL), "-"],
        input=reginfo.build(reg_info()),
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


_HEAD = b'<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" state="full">'


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            b'<reginfo xmlns="urn:x" version="0" state="full"/>',
            "not a reginfo document: root is {urn:x}reginfo",
        ),
        (
            b'<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" state="full"/>',
            "reginfo has no version",
        ),
        (
            b'<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" state="most"/>',
            "bad reginfo state: 'most'",
        ),
        (_HEAD + b'<registration id="r" state="active"/></reginfo>', "registration has no aor"),
        (
            _HEAD + b'<registration aor="sip:a@b" id="r" state="gone"/></reginfo>',
            "bad registration state: 'gone'",
        ),
        (
            _HEAD + b'<registration aor="sip:a@b" id="r" state="active"><contact id="c" '
            b'state="active" event="gone"><uri>sip:x</uri></contact></registration></reginfo>',
            "bad contact event: 'gone'",
        ),
        (
            _HEAD + b'<registration aor="sip:a@b" id="r" state="active"><contact id="c" '
            b'state="active" event="created"/></registration></reginfo>',
            "contact c has no uri",
        ),
        (
            _HEAD + b'<registration aor="sip:a@b" id="r" state="active"><contact id="c" '
            b'state="active" event="created" expires="soon"><uri>sip:x</uri></contact>'
            b"</registration></reginfo>",
            "bad expires: 'soon'",
        ),
        (
            _HEAD + b'<registration aor="sip:a@b" id="r" state="active"><contact id="c" '
            b'state="active" event="created" expires="' + b"9" * 5000 + b'"><uri>sip:x</uri>'
            b"</contact></registration></reginfo>",
            ("bad expires: '" + "9" * 5000)[:117] + "...",
        ),
    ],
)
def test_bad_reginfo(body: bytes, reason: str) -> None:
    with pytest.raises(DocumentError) as info:
        reginfo.parse(body)
    assert info.value.reason == reason


def test_build_refuses_bad_values() -> None:
    with pytest.raises(DocumentError, match="bad contact event"):
        reginfo.build(
            RegInfo(
                0,
                "full",
                (
                    Registration(
                        "sip:a@b",
                        "r",
                        "active",
                        (Contact("c", "active", "gone", "sip:x"),),  # type: ignore[arg-type]
                    ),
                ),
            )
        )
    with pytest.raises(DocumentError, match="bad cseq"):
        reginfo.build(
            RegInfo(
                0,
                "full",
                (
                    Registration(
                        "sip:a@b",
                        "r",
                        "active",
                        (Contact("c", "active", "created", "sip:x", cseq=2**64),),
                    ),
                ),
            )
        )
