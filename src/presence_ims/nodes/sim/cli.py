"""``presence-ims sim``: drive the simulated network elements of a running network.

    presence-ims sim attach alice                  # MSC/VLR and SGSN attach (--cs / --ps for one)
    presence-ims sim move alice --cell 4711        # new cell (and --area LAI/RAI)
    presence-ims sim busy alice --cs               # in a call (idle: back)
    presence-ims sim detach alice --ps
    presence-ims sim pdp-start alice --ip 10.0.0.7 # GGSN Accounting-Start (pdp-stop, pdp-interim)
    presence-ims sim locate alice --lat 52.52 --lon 13.405 [--radius 30]
    presence-ims sim run configs/scenarios/demo.toml [--loop] [--speed 2]

Every command reads the network configuration (``--config``, default
``configs/home1.toml``) for the PNA's addresses and the elements' secrets,
prints one line per answer, and exits 0 when the PNA accepted everything, 1
when it refused something, 2 on a usage error.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register_cli"]


def _domains(args: argparse.Namespace) -> list[str]:
    if args.cs and not args.ps:
        return ["msc"]
    if args.ps and not args.cs:
        return ["sgsn"]
    return ["msc", "sgsn"]


async def _main(args: argparse.Namespace) -> int:
    from ...cli import UsageError
    from ...config import ConfigError, load
    from .client import ElementSimulator, Outcome
    from .errors import SimError
    from .node import targets_from_settings
    from .scenario import load_scenario

    try:
        settings = load(args.config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    sim = ElementSimulator(targets_from_settings(settings, timeout=args.timeout))
    outcomes: list[Outcome] = []
    try:
        command = args.sim_command
        if command == "run":
            scenario = load_scenario(args.scenario)
            print(f"scenario {scenario.name}: {len(scenario.steps)} steps over {scenario.duration:g} s", flush=True)
            outcomes = await sim.run(scenario, loop=args.loop, speed=args.speed)
        elif command in ("attach", "detach", "busy", "idle", "move"):
            event = "location" if command == "move" else command
            for element in _domains(args):
                outcomes.append(
                    await sim.feed(element, args.user, event, area=getattr(args, "area", None), cell=getattr(args, "cell", None))  # type: ignore[arg-type]
                )
        elif command in ("pdp-start", "pdp-interim", "pdp-stop"):
            status = {"pdp-start": "start", "pdp-interim": "interim", "pdp-stop": "stop"}[command]
            outcomes.append(await sim.accounting(args.user, status, ip=args.ip, session=args.session))  # type: ignore[arg-type]
        elif command == "locate":
            outcomes.append(
                await sim.locate(args.user, args.lat, args.lon, alt=args.alt, radius=args.radius, method=args.method)
            )
    except SimError as exc:
        raise UsageError(exc.reason) from None
    finally:
        await sim.close()
    for outcome in outcomes:
        print(outcome, flush=True)
    return 0 if all(o.ok for o in outcomes) else 1


def cmd_sim(args: argparse.Namespace) -> int:
    from ... import logging as plog
    from ...cli import UsageError, run_async

    if args.sim_command in ("move",) and args.cell is None and args.area is None:
        raise UsageError("move needs --cell and/or --area")
    if args.sim_command in ("pdp-stop", "pdp-interim") and args.ip is None and args.session is None:
        raise UsageError(f"{args.sim_command} needs --ip or --session")
    plog.configure(args.log_level)
    return run_async(lambda: _main(args))


def register_cli(subparsers: Any) -> None:
    """Add ``sim`` to the ``presence-ims`` command line (``subparsers`` of the top parser)."""
    parser = subparsers.add_parser(
        "sim",
        help="drive the simulated MSC/VLR, SGSN, GGSN and GMLC toward the PNA",
        description="Simulated network elements talking to a running PNA (Pc, Pg, Pk, Pl).",
    )
    parser.add_argument("--config", default="configs/home1.toml", help="network configuration (TOML)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait for each answer")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="sim_command", required=True)

    run = sub.add_parser("run", help="play a scenario file (TOML)")
    run.add_argument("scenario")
    run.add_argument("--loop", action="store_true", help="start again when it ends")
    run.add_argument("--speed", type=float, default=1.0, help="2 plays twice as fast")

    for name, text in (
        ("attach", "attach to the CS (MSC/VLR) and/or PS (SGSN) domain"),
        ("detach", "detach"),
        ("busy", "in a call (CS) / transferring data (PS)"),
        ("idle", "back to idle"),
        ("move", "new location area / routing area / cell"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("user", help="user name (alice) or IMPU")
        p.add_argument("--cs", action="store_true", help="only the MSC/VLR (Pc)")
        p.add_argument("--ps", action="store_true", help="only the SGSN (Pg)")
        if name in ("attach", "move"):
            p.add_argument("--cell", help="cell identity")
            p.add_argument("--area", help="location area (CS) / routing area (PS) identity")

    for name, text in (
        ("pdp-start", "GGSN: PDP context up (RADIUS Accounting-Start)"),
        ("pdp-interim", "GGSN: Interim-Update"),
        ("pdp-stop", "GGSN: PDP context down (Accounting-Stop)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("user")
        p.add_argument("--ip", required=name == "pdp-start", help="Framed-IP-Address")
        p.add_argument("--session", help="Acct-Session-Id (default USER-IP)")

    locate = sub.add_parser("locate", help="GMLC: MLP location report")
    locate.add_argument("user")
    locate.add_argument("--lat", type=float, required=True)
    locate.add_argument("--lon", type=float, required=True)
    locate.add_argument("--alt", type=float, default=None, help="metres")
    locate.add_argument("--radius", type=float, default=None, help="uncertainty, metres")
    locate.add_argument("--method", default="GPS", help="positioning method (GPS, A-GPS, CELL ...)")
    parser.set_defaults(func=cmd_sim)
