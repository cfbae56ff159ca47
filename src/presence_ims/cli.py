"""The ``presence-ims`` command line.

Errors a user can make (bad arguments, a taken port, an invalid config) end
with one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from . import __version__
from . import logging as plog


class UsageError(Exception):
    """A mistake of the user's: printed as one line, exit code 2."""


def parse_listen(spec: str) -> tuple[str, str, int]:
    """``udp:127.0.0.1:5099`` -> ("udp", "127.0.0.1", 5099); UsageError when malformed."""
    from .transport.spec import parse_listen as parse

    try:
        ls = parse(spec)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return ls.transport, ls.host, ls.port


def install_event_loop() -> str:
    """Use uvloop where it is installed; return the loop's name."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


async def wait_for_signal() -> None:
    """Return on SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


GC_THRESHOLDS = (50_000, 20, 100)
"""Cyclic GC thresholds of a running node (generation 0, 1, 2); the defaults are (700, 10, 10)."""


def tune_gc() -> None:
    """Set up the cyclic garbage collector for a long-running node (docs/performance.md).

    A node keeps many long-lived objects (transactions waiting for Timer J,
    registrations, subscriptions, dialogs) and allocates a few dozen short-lived
    ones per message, nearly all freed by reference counting.  With the default
    thresholds the collector runs every 700 net allocations and keeps walking
    the long-lived ones (30-45 us per request in the echo node at 4,000-5,000
    requests/s).  So: collect once, freeze what start-up created (modules,
    configuration) so that no collection walks it again, and start a young
    collection every 50,000 net allocations.  Cycles are still collected, in
    larger batches (under 1 us per request in the same echo node).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_async(main: Callable[[], Awaitable[int]], *, uvloop: bool = True) -> int:
    """Run a node's (or a tool's) main coroutine: uvloop where installed, GC tuned."""
    if uvloop:
        install_event_loop()
    tune_gc()
    try:
        return asyncio.run(main())  # type: ignore[arg-type]
    except KeyboardInterrupt:
        return 130


# -- commands ---------------------------------------------------------------------


async def _echo(args: argparse.Namespace) -> int:
    from .nodes.echo import EchoNode
    from .transport import SipEndpoint

    log = plog.get_logger(node="echo")
    endpoint = SipEndpoint(node="echo", interface="-", logger=log)
    try:
        for spec in args.listen:
            transport, host, port = parse_listen(spec)
            try:
                t = await endpoint.listen(transport, host, port)
            except OSError as exc:
                raise UsageError(f"cannot listen on {spec}: {exc.strerror or exc}") from None
            log.info("listening", transport=transport, host=host, port=t.port)
            print(f"listening {transport}:{host}:{t.port}", flush=True)
        EchoNode(endpoint)
        print("ready: echo", flush=True)
        await wait_for_signal()
    finally:
        await endpoint.close()
    return 0


def cmd_node(args: argparse.Namespace) -> int:
    plog.configure(args.log_level)
    if args.role == "echo":
        if not args.listen:
            args.listen = ["udp:127.0.0.1:5099"]
        return run_async(lambda: _echo(args))
    from .nodes.runner import run_node  # the IMS roles

    return run_node(args)


def cmd_aka(args: argparse.Namespace) -> int:
    from .security.aka import aka_debug

    def hexarg(name: str, value: str | None, size: int) -> bytes | None:
        if value is None:
            return None
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise UsageError(f"--{name} is not hex: {value!r}") from None
        if len(raw) != size:
            raise UsageError(f"--{name} must be {size} bytes ({2 * size} hex digits)")
        return raw

    if (args.op is None) == (args.opc is None):
        raise UsageError("give exactly one of --op and --opc")
    k = hexarg("k", args.k, 16)
    rand = hexarg("rand", args.rand, 16)
    sqn = hexarg("sqn", args.sqn, 6)
    amf = hexarg("amf", args.amf, 2)
    assert k and rand and sqn and amf
    result = aka_debug(
        k, rand, sqn, amf, op=hexarg("op", args.op, 16), opc=hexarg("opc", args.opc, 16)
    )
    print(json.dumps(result, indent=2))
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    from .nodes.runner import cmd_up

    return cmd_up(args)


def cmd_config_check(args: argparse.Namespace) -> int:
    from .config import ConfigError, load

    try:
        settings = load(args.file)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    print(
        f"{args.file}: valid ({settings.domain}, {len(settings.subscribers)} subscriber(s), "
        f"network side {settings.net_transport})"
    )
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    from .trace import render

    try:
        fh = sys.stdin if args.logfile == "-" else open(args.logfile, encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UsageError(f"cannot read {args.logfile}: {exc.strerror or exc}") from None
    with fh:
        print(render(fh, call_id=args.call_id, interface=args.interface))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="presence-ims", description="A runnable 3GPP IMS presence network."
    )
    parser.add_argument("--version", action="version", version=f"presence-ims {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    node = sub.add_parser("node", help="run one node")
    node.add_argument(
        "role", choices=["echo", "hss", "icscf", "scscf", "pcscf", "ps", "pna", "pea", "sim"]
    )
    node.add_argument("--config", help="TOML configuration file")
    node.add_argument(
        "--listen", action="append", help="TRANSPORT:HOST:PORT (echo); repeatable"
    )
    node.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    node.add_argument("--trust", choices=["open", "network"], help="PS: trust mode")
    node.add_argument("--sip", action="append", help="PS: SIP listen address TRANSPORT:HOST:PORT")
    node.add_argument("--store", help="PS: memory or sqlite:PATH")
    node.add_argument("--xcap", help="PS: XCAP root, e.g. http:127.0.0.1:8080")
    node.add_argument(
        "--workers", type=int, help="PS: worker processes sharing the UDP address (default 1)"
    )
    node.set_defaults(func=cmd_node)

    up = sub.add_parser("up", help="run a whole home network in the foreground")
    up.add_argument("--config", default="configs/home1.toml", help="network configuration (TOML)")
    up.add_argument("--with-home2", action="store_true", help="also run home2.net")
    up.add_argument("--home2-config", default="configs/home2.toml")
    up.add_argument(
        "--processes", action="store_true", help="one OS process per node (restarted if it dies)"
    )
    up.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    up.set_defaults(func=_cmd_up)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a configuration file")
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)

    from .nodes.pea.cli import register_cli as register_pea
    from .nodes.sim.cli import register_cli as register_sim
    from .pki_cli import register_cli as register_pki
    from .ue_cli import add_parser as add_ue

    register_pki(sub)
    add_ue(sub)
    register_sim(sub)
    register_pea(sub)

    trace = sub.add_parser("trace", help="render the SIP/Diameter flow of a JSON log")
    trace.add_argument("logfile", help="a log written with --log-level debug (JSON lines); - for stdin")
    trace.add_argument("--call-id", help="only this Call-ID (or a part of it)")
    trace.add_argument("--interface", help="only this reference interface (Gm, Mw, ISC, Pw ...)")
    trace.set_defaults(func=cmd_trace)

    aka = sub.add_parser("aka", help="compute Milenage/AKA values (debugging, interop)")
    aka.add_argument("--k", required=True)
    aka.add_argument("--op")
    aka.add_argument("--opc")
    aka.add_argument("--rand", required=True)
    aka.add_argument("--sqn", required=True)
    aka.add_argument("--amf", required=True)
    aka.set_defaults(func=cmd_aka)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:  # Ctrl-C before a node's loop runs (while importing it)
        return 130
    except UsageError as exc:
        # one line, even for a message listing several problems (config check)
        first, *rest = [line.strip() for line in str(exc).splitlines() if line.strip()] or [""]
        message = " ".join([first, "; ".join(rest)]) if rest else first
        print(f"presence-ims: {message}", file=sys.stderr)
        return 2


def _entry() -> Any:  # pragma: no cover
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover - `python -m presence_ims.cli`
    sys.exit(main())
