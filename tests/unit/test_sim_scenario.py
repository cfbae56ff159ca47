"""Simulator scenarios (TOML) and the simulator's command line (no network needed)."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presence_ims.nodes.sim.cli import register_cli
from presence_ims.nodes.sim.errors import SimError
from presence_ims.nodes.sim.scenario import ELEMENT_EVENTS, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_scenario_is_valid() -> None:
    scenario = load_scenario(ROOT / "configs" / "scenarios" / "demo.toml")
    assert scenario.name == "demo" and scenario.description
    assert [s.at for s in scenario.steps] == sorted(s.at for s in scenario.steps)
    elements = {s.element for s in scenario.steps}
    assert elements == {"msc", "sgsn", "ggsn", "gmlc"}  # every interface is exercised
    first = scenario.steps[0]
    assert (first.element, first.user, first.event, first.area, first.cell) == ("sgsn", "alice", "attach", "26201-0101-01", "4711")
    locate = next(s for s in scenario.steps if s.element == "gmlc")
    assert (locate.lat, locate.lon, locate.radius, locate.method) == (52.52, 13.405, 50.0, "A-GPS")
    assert scenario.duration == 30.0


def test_steps_are_sorted_stably() -> None:
    data = {"step": [
        {"at": 2, "element": "msc", "user": "alice", "event": "attach"},
        {"at": 1, "element": "sgsn", "user": "bob", "event": "attach"},
        {"at": 2, "element": "msc", "user": "alice", "event": "busy"},
    ]}  # fmt: skip
    s = parse_scenario(data)
    assert [(x.at, x.event) for x in s.steps] == [(1.0, "attach"), (2.0, "attach"), (2.0, "busy")]
    assert s.name == "scenario"


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"element": "hlr"}, "element must be"),
        ({"event": "fly"}, "events are"),
        ({"rai": "1"}, "no field 'rai'"),  # msc has lai
        ({"at": -1}, "out of range"),
        ({"at": "soon"}, "must be a number"),
        ({"user": "Alice Smith"}, "bad user"),
        ({"cell": "12 34"}, "bad cell"),
    ],
)
def test_bad_steps_name_the_step(step: dict[str, Any], message: str) -> None:
    base = {"at": 1, "element": "msc", "user": "alice", "event": "attach"}
    with pytest.raises(SimError, match=f"step 1: .*{message}"):
        parse_scenario({"step": [{**base, **step}]})


def test_element_specific_rules() -> None:
    with pytest.raises(SimError, match="pdp-start needs ip"):
        parse_scenario({"step": [{"at": 0, "element": "ggsn", "user": "alice", "event": "pdp-start"}]})
    with pytest.raises(SimError, match="needs ip or session"):
        parse_scenario({"step": [{"at": 0, "element": "ggsn", "user": "alice", "event": "pdp-stop"}]})
    with pytest.raises(SimError, match="bad ip"):
        parse_scenario({"step": [{"at": 0, "element": "ggsn", "user": "alice", "event": "pdp-start", "ip": "10.0.0.300"}]})
    with pytest.raises(SimError, match="needs lat and lon"):
        parse_scenario({"step": [{"at": 0, "element": "gmlc", "user": "alice", "event": "locate", "lat": 1}]})
    with pytest.raises(SimError, match="unknown top-level key"):
        parse_scenario({"steps": []})


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(SimError, match="cannot read"):
        load_scenario(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[step]\n")
    with pytest.raises(SimError, match="not valid TOML"):
        load_scenario(bad)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('[[step]]\nat = 1\nelement = "msc"\nuser = "alice"\nevent = "pdp-start"\n')
    with pytest.raises(SimError, match=r"wrong\.toml: step 1"):
        load_scenario(wrong)


def test_cli_parses_the_documented_commands() -> None:
    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sim", "move", "alice", "--cell", "4711"])
    assert (args.sim_command, args.user, args.cell, args.cs, args.ps) == ("move", "alice", "4711", False, False)
    args = parser.parse_args(["sim", "pdp-start", "alice", "--ip", "10.0.0.7"])
    assert (args.ip, args.session) == ("10.0.0.7", None)
    args = parser.parse_args(["sim", "locate", "alice", "--lat", "52.5", "--lon", "13.4"])
    assert (args.lat, args.lon, args.method) == (52.5, 13.4, "GPS")
    args = parser.parse_args(["sim", "--config", "x.toml", "attach", "bob", "--ps"])
    assert (args.config, args.ps) == ("x.toml", True)
    with pytest.raises(SystemExit):
        parser.parse_args(["sim", "pdp-start", "alice"])  # --ip is required


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 100), st.floats(allow_nan=False),
                    st.text(max_size=12), st.sampled_from(["alice", "msc", "sgsn", "ggsn", "gmlc", "attach",
                                                           "locate", "pdp-start", "10.0.0.7", "4711"]))  # fmt: skip
_KEYS = st.sampled_from(["at", "element", "user", "event", "lai", "rai", "cell", "ip", "session",
                         "lat", "lon", "alt", "radius", "method", "x"])  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(_KEYS, _VALUES, max_size=8), max_size=4))
def test_any_steps_parse_or_raise_sim_error(steps: list[dict[str, Any]]) -> None:
    try:
        scenario = parse_scenario({"step": steps})
    except SimError:
        return
    for step in scenario.steps:
        assert step.event in ELEMENT_EVENTS[step.element]


def test_toml_round_trip_of_a_small_scenario(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('name = "x"\n[[step]]\nat = 0.5\nelement = "gmlc"\nuser = "sip:bob@home1.net"\nevent = "locate"\nlat = 1.5\nlon = -2\n')
    assert tomllib.loads(path.read_text())["name"] == "x"
    (step,) = load_scenario(path).steps
    assert (step.user, step.lat, step.lon) == ("sip:bob@home1.net", 1.5, -2.0)
