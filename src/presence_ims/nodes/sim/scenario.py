"""Simulator scenarios: what the network elements do to whom, and when (TOML), sans-IO.

    name = "demo"
    description = "alice's phone attaches, moves, opens a data session and is located"

    [[step]]
    at = 1.0                 # seconds after the start
    element = "sgsn"         # msc | sgsn | ggsn | gmlc
    user = "alice"           # a user name of the network, or an IMPU
    event = "attach"
    rai = "26201-0101-01"
    cell = "4711"

Events and their fields per element:

=======  ==========================================  ==============================
element  events                                      fields
=======  ==========================================  ==============================
msc      attach, detach, busy, idle, move            lai, cell
sgsn     attach, detach, busy, idle, move            rai, cell
ggsn     pdp-start, pdp-interim, pdp-stop            ip, session
gmlc     locate                                      lat, lon, alt, radius, method
=======  ==========================================  ==============================

:func:`parse_scenario` validates everything up front (:class:`SimError` with
the step number) so that a scenario never fails half-way for a typo.
"""

from __future__ import annotations

import ipaddress
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from .errors import SimError

__all__ = ["ELEMENT_EVENTS", "Element", "Scenario", "Step", "load_scenario", "parse_scenario"]

Element = Literal["msc", "sgsn", "ggsn", "gmlc"]
ELEMENT_EVENTS: Final[Mapping[str, frozenset[str]]] = {
    "msc": frozenset({"attach", "detach", "busy", "idle", "move"}),
    "sgsn": frozenset({"attach", "detach", "busy", "idle", "move"}),
    "ggsn": frozenset({"pdp-start", "pdp-interim", "pdp-stop"}),
    "gmlc": frozenset({"locate"}),
}
_FIELDS: Final[Mapping[str, frozenset[str]]] = {
    "msc": frozenset({"lai", "cell"}),
    "sgsn": frozenset({"rai", "cell"}),
    "ggsn": frozenset({"ip", "session"}),
    "gmlc": frozenset({"lat", "lon", "alt", "radius", "method"}),
}
_COMMON: Final = frozenset({"at", "element", "user", "event"})
_AREA = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,31}\Z")
_USER = re.compile(r"(?:[a-z][a-z0-9._-]{0,31}|(?:sips?|tel):[!-~]{1,120})\Z")
_TOKEN = re.compile(r"[ -~]{1,64}\Z")
MAX_STEPS: Final = 10_000


@dataclass(frozen=True, slots=True)
class Step:
    """One thing an element does."""

    at: float
    """Seconds after the scenario starts."""
    element: Element
    """msc | sgsn | ggsn | gmlc."""
    user: str
    """User name (``alice``) or IMPU."""
    event: str
    """See the table of the module."""
    area: str | None = None
    """LAI (msc) or RAI (sgsn)."""
    cell: str | None = None
    """Cell identity."""
    ip: str | None = None
    """Framed IP address (ggsn)."""
    session: str | None = None
    """Acct-Session-Id (ggsn; default ``<user>-<ip>``)."""
    lat: float | None = None
    """Latitude (gmlc)."""
    lon: float | None = None
    """Longitude (gmlc)."""
    alt: float | None = None
    """Altitude, metres (gmlc)."""
    radius: float | None = None
    """Uncertainty radius, metres (gmlc)."""
    method: str | None = None
    """Positioning method (gmlc; default GPS)."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named list of steps, in time order."""

    name: str
    """Scenario name."""
    steps: tuple[Step, ...]
    """Steps sorted by ``at`` (ties keep file order)."""
    description: str = ""
    """What it shows."""

    @property
    def duration(self) -> float:
        """When the last step happens."""
        return self.steps[-1].at if self.steps else 0.0


def _text(raw: Mapping[str, Any], key: str, pattern: re.Pattern[str], where: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.match(value):
        raise SimError(f"{where}: bad {key} {value!r}")
    return value


def _num(raw: Mapping[str, Any], key: str, low: float, high: float, where: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SimError(f"{where}: {key} must be a number")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise SimError(f"{where}: {key} out of range")
    return number


def _step(raw: Any, index: int) -> Step:
    where = f"step {index + 1}"
    if not isinstance(raw, dict):
        raise SimError(f"{where}: not a table")
    element_raw = raw.get("element")
    element: Element
    if element_raw == "msc":
        element = "msc"
    elif element_raw == "sgsn":
        element = "sgsn"
    elif element_raw == "ggsn":
        element = "ggsn"
    elif element_raw == "gmlc":
        element = "gmlc"
    else:
        raise SimError(f"{where}: element must be msc, sgsn, ggsn or gmlc")
    event = raw.get("event")
    if event not in ELEMENT_EVENTS[element]:
        allowed = ", ".join(sorted(ELEMENT_EVENTS[element]))
        raise SimError(f"{where}: {element} events are {allowed}")
    unknown = set(raw) - _COMMON - _FIELDS[element]
    if unknown:
        raise SimError(f"{where}: {element} has no field {sorted(unknown)[0]!r}")
    at = _num(raw, "at", 0.0, 86400.0 * 7, where)
    if at is None:
        raise SimError(f"{where}: at (seconds) missing")
    user = _text(raw, "user", _USER, where)
    if user is None:
        raise SimError(f"{where}: user missing")
    ip = _text(raw, "ip", re.compile(r"[0-9.]{7,15}\Z"), where)
    if ip is not None:
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise SimError(f"{where}: bad ip {ip!r}") from None
    if element == "ggsn" and event == "pdp-start" and ip is None:
        raise SimError(f"{where}: pdp-start needs ip")
    if element == "ggsn" and event != "pdp-start" and ip is None and raw.get("session") is None:
        raise SimError(f"{where}: {event} needs ip or session")
    lat = _num(raw, "lat", -90.0, 90.0, where)
    lon = _num(raw, "lon", -180.0, 180.0, where)
    if element == "gmlc" and (lat is None or lon is None):
        raise SimError(f"{where}: locate needs lat and lon")
    area_key = "lai" if element == "msc" else "rai"
    return Step(
        at=at,
        element=element,
        user=user,
        event=event,
        area=_text(raw, area_key, _AREA, where),
        cell=_text(raw, "cell", _AREA, where),
        ip=ip,
        session=_text(raw, "session", re.compile(r"[!-~]{1,64}\Z"), where),
        lat=lat,
        lon=lon,
        alt=_num(raw, "alt", -1000.0, 100000.0, where),
        radius=_num(raw, "radius", 0.0, 1e7, where),
        method=_text(raw, "method", _TOKEN, where),
    )


def parse_scenario(data: Mapping[str, Any], *, default_name: str = "scenario") -> Scenario:
    """A scenario from its TOML document (already read into a dict)."""
    unknown = set(data) - {"name", "description", "step"}
    if unknown:
        raise SimError(f"unknown top-level key {sorted(unknown)[0]!r}")
    steps_raw = data.get("step", [])
    if not isinstance(steps_raw, list):
        raise SimError("step must be an array of tables ([[step]])")
    if len(steps_raw) > MAX_STEPS:
        raise SimError(f"more than {MAX_STEPS} steps")
    steps = [_step(raw, i) for i, raw in enumerate(steps_raw)]
    name = data.get("name", default_name)
    description = data.get("description", "")
    if not isinstance(name, str) or not isinstance(description, str):
        raise SimError("name and description must be strings")
    ordered = sorted(enumerate(steps), key=lambda pair: (pair[1].at, pair[0]))
    return Scenario(name, tuple(s for _, s in ordered), description)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise SimError(f"cannot read scenario {p}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SimError(f"{p}: not valid TOML: {exc}") from None
    try:
        return parse_scenario(data, default_name=p.stem)
    except SimError as exc:
        raise SimError(f"{p}: {exc.reason}") from None
