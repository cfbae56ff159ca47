"""Echo node vs a bare UDP responder under SIPp OPTIONS load (loopback, one machine).

    .venv/bin/python benchmarks/bench_echo_sipp.py [--step-seconds 10] [--write-doc]

For each event loop (uvloop when installed, and plain asyncio) and each server
(the echo node: SipEndpoint + EchoNode, parse + validate + transaction + 200 OK;
and a bare responder that parses nothing and answers a canned 200 built with
``bytes.split`` from the Via/From/To/Call-ID/CSeq lines), SIPp sends OPTIONS at
rising rates, one step of ``--step-seconds`` per rate, until more than 0.1% of
the calls of a step fail (no 200 within 2 s; SIPp's retransmissions are off, so
every lost datagram is a failed call) or SIPp cannot keep the offered rate.
The highest rate that passed is the server's sustained rate; the target is
echo >= 60% of the bare responder's rate on the same loop.  On asyncio a third
server, ``bare64``, is the bare responder with the 64 KiB receive buffer that the
echo node's ``UdpTransport`` sets (asyncio's default of 256 KiB per datagram costs
about 15 us a datagram on this machine), for comparison.

Both servers run through ``cli.run_async`` as the nodes do (the GC set-up included).

Every loop is bounded: a fixed list of rates, ``--step-seconds`` per step (SIPp's
own ``-m`` and ``-timeout`` end each step), ``--max-total-seconds`` for the whole
run, and each server stops by itself after ``--server-lifetime`` seconds.

``--serve echo|bare|bare64 --loop uvloop|asyncio`` runs one server (used internally).
Needs ``sipp`` (Debian package sip-tester).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchlib import SippStep, machine, sipp_counts

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "benchmarks" / "sipp" / "options_uac.xml"
DOC = ROOT / "docs" / "performance.md"
DEFAULT_RATES = (2000, 3000, 4000, 5000, 6000, 7000, 8000, 10000, 12000, 14000, 16000, 18000, 20000,
                 22000, 24000, 26000, 28000, 30000, 32000, 36000, 40000, 48000, 56000)
RCVBUF = 4 * 1024 * 1024
BEGIN, END = "<!-- bench_echo_sipp:begin -->", "<!-- bench_echo_sipp:end -->"


# -- the servers ------------------------------------------------------------------------


class BareResponder(asyncio.DatagramProtocol):
    """Answers every datagram with a 200 copied from its Via/From/To/Call-ID/CSeq lines.

    ``bare`` keeps the loop's datagram transport as it comes (the baseline of the
    target); ``bare64`` also gets the 64 KiB receive buffer that ``UdpTransport`` sets on
    asyncio's selector loop (asyncio reads each datagram into 256 KiB, which costs more
    than the responder itself): the echo node's I/O, less the SIP stack.
    """

    KEEP = frozenset({b"via", b"v", b"from", b"f", b"to", b"t", b"call-id", b"i", b"cseq"})

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.answered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        out = [b"SIP/2.0 200 OK"]
        keep = self.KEEP
        for line in data.split(b"\r\n")[1:]:
            if not line:
                break
            if line.split(b":", 1)[0].strip().lower() in keep:
                out.append(line)
        out.append(b"Content-Length: 0\r\n\r\n")
        assert self.transport is not None
        self.transport.sendto(b"\r\n".join(out), addr)
        self.answered += 1


async def _serve(kind: str, lifetime: float) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    closers: list[Any] = []
    if kind in ("bare", "bare64"):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, RCVBUF)
        sock.bind(("127.0.0.1", 0))
        transport, _ = await loop.create_datagram_endpoint(BareResponder, sock=sock)
        if kind == "bare64" and hasattr(transport, "max_size"):
            from presence_ims.transport.udp import MAX_DATAGRAM

            transport.max_size = MAX_DATAGRAM  # as UdpTransport does on asyncio's selector loop
        port = sock.getsockname()[1]
        closers.append(transport.close)
    else:
        from presence_ims import logging as plog
        from presence_ims.nodes.echo import EchoNode
        from presence_ims.transport import SipEndpoint

        plog.configure("warning", json=True)  # as `presence-ims node echo --log-level warning`
        endpoint = SipEndpoint(node="echo", logger=plog.get_logger(node="echo"))
        t = await endpoint.listen("udp", "127.0.0.1", 0)
        EchoNode(endpoint)
        port = t.port
        closers.append(endpoint.close)
    print(f"listening {port}", flush=True)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(lifetime):
            await stop.wait()
    for close in closers:
        result = close()
        if asyncio.iscoroutine(result):
            await result


def serve(kind: str, loop_name: str, lifetime: float) -> int:
    """Run one server the way ``presence-ims node`` runs a node (``cli.run_async``: GC tuned)."""
    from presence_ims.cli import run_async

    async def main() -> int:
        await _serve(kind, lifetime)
        return 0

    return run_async(main, uvloop=loop_name == "uvloop")


# -- in process ----------------------------------------------------------------------------

SIPP_OPTIONS = (
    "OPTIONS sip:echo@127.0.0.1:5099 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-4242-{n}-0\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:sipp@127.0.0.1:5061>;tag=4242SIPpTag00{n}\r\n"
    "To: <sip:echo@127.0.0.1:5099>\r\n"
    "Call-ID: {n}-4242@127.0.0.1\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Contact: <sip:sipp@127.0.0.1:5061>\r\n"
    "Accept: application/sdp\r\n"
    "User-Agent: SIPp presence-ims benchmark\r\n"
    "Content-Length: 0\r\n\r\n"
)
"""What ``sipp/options_uac.xml`` sends (``n`` is the call number)."""


class _Sink:
    """A UDP transport that only counts what the endpoint sends."""

    name = "udp"
    via_transport = "UDP"
    host = "127.0.0.1"
    port = 5099

    def __init__(self) -> None:
        self.sent = 0

    def send(self, data: bytes, destination: Any, transaction: object = None) -> None:
        self.sent += 1

    async def close(self) -> None:
        return None


async def _in_process(count: int, rate: float, profile: bool) -> dict[str, float]:
    import cProfile
    import gc
    import pstats
    import resource

    from presence_ims import logging as plog
    from presence_ims.nodes.echo import EchoNode
    from presence_ims.sip.transaction import Address
    from presence_ims.transport import SipEndpoint

    plog.configure("warning", json=True)
    endpoint = SipEndpoint(node="echo", logger=plog.get_logger(node="echo"))
    sink = _Sink()
    endpoint.add_transport(sink)
    EchoNode(endpoint)
    datagrams = [SIPP_OPTIONS.format(n=n).encode() for n in range(count)]
    source = Address("udp", "127.0.0.1", 5061)
    # the endpoint's clock, advanced by 1/rate per request: Timer J (32 s) ends transactions
    # as it would at that rate, so the table holds as many as a server running at it
    clock = [asyncio.get_running_loop().time()]
    endpoint._now = lambda: clock[0]  # type: ignore[method-assign]
    step = 1.0 / rate
    gc_seconds = [0.0, 0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_seconds[1] = time.perf_counter()
        else:
            gc_seconds[0] += time.perf_counter() - gc_seconds[1]

    def run() -> None:
        receive = endpoint.datagram_received
        for data in datagrams:
            clock[0] += step
            receive(data, source)
            due = endpoint._timer_at
            if due is not None and clock[0] >= due:
                endpoint._on_timer()

    gc.callbacks.append(on_gc)
    profiler = cProfile.Profile() if profile else None
    cpu = time.process_time()
    if profiler is not None:
        profiler.runcall(run)
    else:
        run()
    cpu = time.process_time() - cpu
    gc.callbacks.remove(on_gc)
    endpoint._closed = True
    if profiler is not None:
        pstats.Stats(profiler).sort_stats(os.environ.get("PROFILE_SORT", "tottime")).print_stats(int(os.environ.get("PROFILE_TOP", "30")))
    assert sink.sent == count, "every request gets its 200"
    return {
        "requests": count,
        "us_per_request": cpu / count * 1e6,
        "gc_us_per_request": gc_seconds[0] / count * 1e6,
        "live_transactions": len(endpoint.layer),
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def in_process(count: int, rate: float, profile: bool) -> int:
    """Cost of the SIP stack alone: the echo node fed SIPp's OPTIONS without sockets or SIPp."""
    from presence_ims.cli import run_async

    async def main() -> int:
        r = await _in_process(count, rate, profile)
        print(f"echo in process: {r['us_per_request']:.1f} us CPU per request "
              f"(of which cyclic GC {r['gc_us_per_request']:.1f} us) over {count:,} OPTIONS "
              f"at a simulated {rate:,.0f}/s; {r['live_transactions']:,} transactions live at "
              f"the end, max RSS {r['max_rss_mb']:,.0f} MB", flush=True)
        return 0

    return run_async(main, uvloop=False)


# -- SIPp steps ----------------------------------------------------------------------------


Step = SippStep


@dataclass
class Series:
    server: str
    loop: str
    steps: list[Step] = field(default_factory=list)

    @property
    def sustained(self) -> float:
        """The achieved rate of the highest step that passed (0 when none did)."""
        good = [s.achieved for s in self.steps if s.passed]
        return max(good) if good else 0.0


def run_step(port: int, rate: int, seconds: float, workdir: Path) -> Step:
    calls = int(rate * seconds)
    stat = workdir / f"stat-{port}-{rate}.csv"
    cmd = [
        "sipp", f"127.0.0.1:{port}", "-sf", str(SCENARIO), "-i", "127.0.0.1",
        "-r", str(rate), "-rp", "1000", "-m", str(calls), "-l", str(max(rate * 2, 1000)),
        "-nr", "-buff_size", str(RCVBUF), "-timeout", f"{int(seconds + 10)}s",
        "-trace_stat", "-stf", str(stat), "-fd", "3600",
    ]
    started = time.monotonic()
    subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=seconds + 30, check=False, cwd=workdir)
    wall = time.monotonic() - started
    successful, failed, elapsed = sipp_counts(stat, wall)
    # calls never started or still pending when SIPp stopped count as failed too
    failed = max(failed, calls - successful)
    achieved = successful / max(elapsed, 1e-9) if successful else 0.0
    return Step(rate, calls, successful, failed, round(elapsed, 2), round(achieved, 1))


def start_server(kind: str, loop_name: str, lifetime: float) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--loop", loop_name,
         "--server-lifetime", str(lifetime)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.match(r"listening (\d+)", line)
    if not m:
        proc.kill()
        raise SystemExit(f"{kind}/{loop_name} server did not start: {line!r}")
    return proc, int(m.group(1))


def stop_server(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_at(rate: int, seconds: float, loops: list[str], kinds: list[str], repeat: int) -> int:
    """The server's CPU time per answered request at one offered rate, below its limit:
    what each request costs, without the noise of where a ramp happens to stop. Rounds
    alternate the servers, so that the machine's other work falls on all of them."""
    with tempfile.TemporaryDirectory(prefix="bench-sipp-") as tmp:
        for round_ in range(repeat):
            for loop_name in loops:
                for kind in kinds:
                    if kind == "bare64" and loop_name != "asyncio":
                        continue
                    proc, port = start_server(kind, loop_name, seconds + 60)
                    try:
                        before = _cpu_seconds(proc.pid)
                        step = run_step(port, rate, seconds, Path(tmp))
                        used = _cpu_seconds(proc.pid) - before
                    finally:
                        stop_server(proc)
                    per = used / step.successful * 1e6 if step.successful else float("nan")
                    print(f"round {round_ + 1}  {kind:6s} {loop_name:7s} {per:6.1f} us CPU/request  "
                          f"answered {step.achieved:8.1f}/s  failed {step.failed}", flush=True)
    return 0


def ramp(kind: str, loop_name: str, rates: list[int], seconds: float, deadline: float,
         workdir: Path) -> Series:
    series = Series(kind, loop_name)
    lifetime = max(60.0, deadline - time.monotonic() + 30)
    proc, port = start_server(kind, loop_name, lifetime)
    try:
        for rate in rates:
            if time.monotonic() + seconds + 15 > deadline:
                print("  (time budget used up)", flush=True)
                break
            step = run_step(port, rate, seconds, workdir)
            series.steps.append(step)
            print(f"  {kind:6s} {loop_name:7s} offered {rate:6d}/s  answered {step.achieved:9.1f}/s  "
                  f"failed {step.failed_ratio * 100:6.3f}%  {'ok' if step.passed else 'LIMIT'}",
                  flush=True)
            if not step.passed:
                break
            if proc.poll() is not None:
                print("  (server exited)", flush=True)
                break
    finally:
        stop_server(proc)
    return series


# -- report -------------------------------------------------------------------------------------


def render(results: list[Series], info: dict[str, str], seconds: float) -> str:
    lines = [
        BEGIN,
        f"Measured {info['date']} on {info.get('Model name', '?')}, {info.get('CPU(s)', '?')} CPUs "
        f"(shared with other work), Python {info['python']}, uvloop {info.get('uvloop', '-')}, "
        f"SIPp {info.get('sipp', '?')}; steps of {seconds:g} s, SIPp retransmissions off, a call "
        "fails without a 200 within 2 s.",
        "",
        "| loop | server | sustained OPTIONS/s | first failing step |",
        "|---|---|---|---|",
    ]
    for s in results:
        bad = next((st for st in s.steps if not st.passed), None)
        failing = (f"{bad.rate}/s offered: {bad.achieved:.0f}/s answered, "
                   f"{bad.failed_ratio * 100:.2f}% failed" if bad else "none (ramp ended)")
        lines.append(f"| {s.loop} | {s.server} | {s.sustained:,.0f} | {failing} |")
    lines.append("")
    for loop_name in sorted({s.loop for s in results}):
        echo = next((s for s in results if s.loop == loop_name and s.server == "echo"), None)
        bare = next((s for s in results if s.loop == loop_name and s.server == "bare"), None)
        bare64 = next((s for s in results if s.loop == loop_name and s.server == "bare64"), None)
        if echo and bare and bare.sustained:
            ratio = echo.sustained / bare.sustained
            verdict = "meets" if ratio >= 0.6 else "is below"
            extra = ""
            if bare64 is not None and bare64.sustained:
                extra = (f"; {echo.sustained / bare64.sustained * 100:.0f}% of bare64, the bare "
                         "responder with the echo node's 64 KiB receive buffer")
            lines.append(f"- {loop_name}: echo = {ratio * 100:.0f}% of the bare responder "
                         f"({verdict} the 60% target){extra}.")
    lines += ["", "<details><summary>every step</summary>", "",
              "| loop | server | offered/s | answered/s | failed | result |", "|---|---|---|---|---|---|"]
    for s in results:
        for st in s.steps:
            lines.append(f"| {s.loop} | {s.server} | {st.rate} | {st.achieved:,.0f} | "
                         f"{st.failed_ratio * 100:.3f}% | {'ok' if st.passed else 'limit'} |")
    lines += ["", "</details>", END]
    return "\n".join(lines)


def write_doc(block: str) -> None:
    text = DOC.read_text() if DOC.exists() else "# Performance\n\n## SIP core\n"
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        _, after = rest.split(END, 1)
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    DOC.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", choices=["echo", "bare", "bare64"], help=argparse.SUPPRESS)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="asyncio")
    parser.add_argument("--server-lifetime", type=float, default=1800.0)
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--rates", help="comma-separated offered rates (default: 2000, 3000 ... 56000)")
    parser.add_argument("--loops", default="uvloop,asyncio")
    parser.add_argument("--servers", default="echo,bare,bare64",
                        help="bare64 runs on asyncio only (on uvloop it is the same as bare)")
    parser.add_argument("--max-total-seconds", type=float, default=1500.0)
    parser.add_argument("--write-doc", action="store_true", help=f"update the block in {DOC}")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--in-process", type=int, metavar="N",
                        help="no SIPp: feed N OPTIONS to the echo node in process and print its "
                             "CPU cost per request (the SIP stack alone)")
    parser.add_argument("--rate", type=float, default=5000.0,
                        help="simulated request rate of --in-process (default 5000/s)")
    parser.add_argument("--profile", action="store_true", help="cProfile of the --in-process run")
    parser.add_argument("--cpu-at", type=int, metavar="RATE",
                        help="no ramp: SIPp at this one rate for --step-seconds against each "
                             "server, --repeat times, printing the server's CPU time per request")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of --cpu-at (default 1)")
    args = parser.parse_args(argv)

    if args.serve:
        return serve(args.serve, args.loop, args.server_lifetime)
    if args.in_process:
        return in_process(args.in_process, args.rate, args.profile)
    if shutil.which("sipp") is None:
        print("sipp not found: apt-get install sip-tester", file=sys.stderr)
        return 2
    rates = [int(r) for r in args.rates.split(",")] if args.rates else list(DEFAULT_RATES)
    loops = [name for name in args.loops.split(",") if name]
    if "uvloop" in loops:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            loops.remove("uvloop")
    if args.cpu_at:
        return cpu_at(args.cpu_at, args.step_seconds, loops, args.servers.split(","), args.repeat)
    deadline = time.monotonic() + args.max_total_seconds
    results: list[Series] = []
    with tempfile.TemporaryDirectory(prefix="bench-sipp-") as tmp:
        for loop_name in loops:
            for kind in args.servers.split(","):
                if kind == "bare64" and loop_name != "asyncio":
                    continue
                print(f"{kind} on {loop_name}:", flush=True)
                results.append(ramp(kind, loop_name, rates, args.step_seconds, deadline, Path(tmp)))
    info = machine()
    block = render(results, info, args.step_seconds)
    print(block)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(
            {"machine": info, "series": [
                {"server": s.server, "loop": s.loop, "sustained": s.sustained,
                 "steps": [asdict(st) for st in s.steps]} for s in results]}, indent=2))
    if args.write_doc:
        write_doc(block)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
