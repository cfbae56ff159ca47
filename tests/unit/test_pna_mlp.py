"""Pl: MLP location reports (sans-IO)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presence_ims.elements import ElementError, mlp

SLIA = b"""<?xml version="1.0" ?>
<!DOCTYPE svc_result SYSTEM "MLP_SVC_RESULT_310.DTD">
<svc_result ver="3.1.0">
  <slia ver="3.1.0">
    <pos>
      <msid type="MSISDN">15550001</msid>
      <pd>
        <time utc_off="+0200">20240623134453</time>
        <shape>
          <CircularArea>
            <coord><X>30 16 28.308N</X><Y>45 15 33.444E</Y></coord>
            <radius>240</radius>
          </CircularArea>
        </shape>
        <alt>120</alt>
      </pd>
      <pos_method>CELL</pos_method>
    </pos>
    <pos>
      <msid>15550002</msid>
      <poserr><result resid="5">ABSENT SUBSCRIBER</result><time utc_off="+0000">20240623114453</time></poserr>
    </pos>
  </slia>
</svc_result>
"""


def test_standard_location_answer() -> None:
    report = mlp.parse_report(SLIA)
    assert report.kind == "slia" and report.version == "3.1.0"
    first, second = report.positions
    assert first.msid == "15550001" and first.msid_type == "MSISDN"
    assert first.latitude == pytest.approx(30 + 16 / 60 + 28.308 / 3600)
    assert first.longitude == pytest.approx(45 + 15 / 60 + 33.444 / 3600)
    assert first.radius == 240 and first.altitude == 120 and first.method == "CELL"
    assert first.time == datetime(2024, 6, 23, 11, 44, 53, tzinfo=UTC)  # utc_off applied
    assert second.error == "5 ABSENT SUBSCRIBER" and not second.has_position


def test_report_round_trip_and_decimal_degrees() -> None:
    position = mlp.Position(
        "sip:alice@home1.net", "SIP_URI", -33.8688, 151.2093, None, 15.0,
        datetime(2024, 5, 1, 12, 0, tzinfo=UTC), "A-GPS",
    )  # fmt: skip
    data = mlp.build_report(mlp.LocationReport("slirep", (position,), "77"))
    back = mlp.parse_report(data)
    assert back.kind == "slirep" and back.req_id == "77"
    got = back.positions[0]
    assert got.latitude == pytest.approx(-33.8688, abs=1e-6)
    assert got.longitude == pytest.approx(151.2093, abs=1e-6)
    assert (got.radius, got.time, got.method, got.msid_type) == (15.0, position.time, "A-GPS", "SIP_URI")
    decimal = b"<slirep><pos><msid>1</msid><pd><shape><Point><coord><X>52.52</X><Y>-13.4</Y></coord></Point></shape></pd></pos></slirep>"
    p = mlp.parse_report(decimal).positions[0]
    assert (p.latitude, p.longitude, p.radius) == (52.52, -13.4, None)


@pytest.mark.parametrize(
    ("text", "axis", "value"),
    [
        ("52 31 12.000N", "lat", 52.52),
        ("52 31 12S", "lat", -52.52),
        ("13 24 36.000W", "lon", -13.41),
        ("+45.5", "lat", 45.5),
        ("-179.999", "lon", -179.999),
    ],
)
def test_coordinates(text: str, axis: str, value: float) -> None:
    assert mlp.parse_coordinate(text, axis) == pytest.approx(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "axis"),
    [("52 31 12E", "lat"), ("91", "lat"), ("181", "lon"), ("52 61 00N", "lat"), ("north", "lat"), ("", "lon")],
)
def test_bad_coordinates(text: str, axis: str) -> None:
    with pytest.raises(ElementError):
        mlp.parse_coordinate(text, axis)  # type: ignore[arg-type]


def test_format_dms_round_trips() -> None:
    for value, axis in ((52.52, "lat"), (-0.0001, "lon"), (89.99999, "lat"), (-179.5, "lon")):
        assert mlp.parse_coordinate(mlp.format_dms(value, axis), axis) == pytest.approx(value, abs=1e-6)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "doc",
    [
        b"<svc_result/>",
        b"<svc_result><slia/></svc_result>",
        b"<svc_result><slia><pos><pd/></pos></slia></svc_result>",
        b"<svc_result><slia><pos><msid>1</msid></pos></slia></svc_result>",
        b"<slia><pos><msid>1</msid><pd><shape><Polygon/></shape></pd></pos></slia>",
        b"<slia><pos><msid>1</msid><pd><shape><Point><coord><X>1</X></coord></Point></shape></pd></pos></slia>",
        b"<slia><pos><msid>1</msid><pd><time>2024</time><shape><Point><coord><X>1</X><Y>2</Y></coord></Point></shape></pd></pos></slia>",
        b"<other/>",
        b"not xml",
        b'<!DOCTYPE svc_result [<!ENTITY x "y">]><svc_result/>',
        b'<!DOCTYPE a SYSTEM "x.dtd"><!DOCTYPE b SYSTEM "y.dtd"><a/>',
        b"<slia>" + b"<pos><msid>1</msid><poserr/></pos>" * 65 + b"</slia>",
    ],
)
def test_refused(doc: bytes) -> None:
    with pytest.raises(ElementError):
        mlp.parse_report(doc)


def test_result_document() -> None:
    data = mlp.build_result(4, "UNKNOWN SUBSCRIBER")
    assert b'resid="4"' in data and b"UNKNOWN SUBSCRIBER" in data


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_parse_or_raise_element_error(data: bytes) -> None:
    try:
        mlp.parse_report(data)
    except ElementError:
        pass


_TAGS = st.sampled_from(["svc_result", "slia", "slirep", "pos", "msid", "pd", "shape", "Point",
                         "CircularArea", "coord", "X", "Y", "Z", "radius", "time", "poserr", "result"])
_XML = st.recursive(
    st.text(alphabet="0123456789 .NSEW+-", max_size=14),
    lambda inner: st.builds(lambda tag, kids: f"<{tag}>{''.join(kids)}</{tag}>", _TAGS, st.lists(inner, max_size=3)),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_XML)
def test_any_mlp_shaped_tree_parses_or_raises(text: str) -> None:
    try:
        report = mlp.parse_report(f"<svc_result>{text}</svc_result>".encode())
    except ElementError:
        return
    for p in report.positions:
        assert p.error is not None or (p.latitude is not None and -90 <= p.latitude <= 90)
