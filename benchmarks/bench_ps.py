"""The Presence Server under SIPp load, next to Kamailio 5.6's presence module.

    .venv/bin/python benchmarks/bench_ps.py all [--write-doc]       # everything, ~30-45 min
    .venv/bin/python benchmarks/bench_ps.py publish [--store memory|sqlite|both]
    .venv/bin/python benchmarks/bench_ps.py subscribe | fanout | memory
    .venv/bin/python benchmarks/bench_ps.py kamailio                # the reference alone
    .venv/bin/python benchmarks/bench_ps.py profile [--what publish|subscribe|fanout]

What is measured, over UDP on 127.0.0.1, each server in its own process:

* publish: sustained PUBLISH/s, a fresh presentity per call
  (``sipp/ps_publish_one.xml``), with the memory store and with SQLite;
* subscribe: sustained subscription dialogs/s, fresh presentity and watcher per
  call: SUBSCRIBE, 2xx, NOTIFY, un-SUBSCRIBE, 2xx, final NOTIFY
  (``sipp/ps_subscribe_dialog.xml``);
* fanout: NOTIFYs/s with 200 presentities x 10 watchers; the watchers are a
  small uvloop process of this script (``--serve-watchers``) that answers every
  NOTIFY with a 200 and timestamps it, SIPp publishes (``sipp/ps_fanout_publish.xml``:
  a PUBLISH stamped with its send time, then its removal, so two NOTIFYs per
  watcher and call); then one more step at half the sustained rate gives the
  PUBLISH->NOTIFY latency p50/p99;
* memory: RSS of the PS process before and after 100,000 subscriptions
  (10,000 presentities x 10 watchers, made by the same watcher process), read
  once the transactions of the set-up have ended (Timer J, 32 s);
* the same against Kamailio 5.6 (``kamailio/kamailio.cfg``: presence +
  presence_xml in memory, 4 UDP workers, no authentication, force_active), in
  the same run, where ``kamailio`` is installed.

A ramp runs steps of ``--step-seconds`` (10) at rising rates until a step fails:
more than 0.1% of its calls fail (SIPp's retransmissions are off, every wait
is bounded by 2 s, so a lost datagram is a failed call), SIPp reaches less than
95% of the offered rate, or (fan-out) more than 0.1% of the (PUBLISH, watcher)
pairs did not see the stamped state within 2 s. The sustained rate is the
achieved rate of the highest step that passed. Every loop is bounded: fixed
rate lists, SIPp's own ``-m`` and ``-timeout``, ``--max-total-seconds`` for the
whole run, timeouts on every wait, and every server is killed at the end (and
dies with this script: PR_SET_PDEATHSIG).

The machine's load (``/proc/loadavg``) is recorded with every step: the
figures are only as good as the quiet around them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchlib import FAIL_LIMIT, SippStep, machine, sipp_counts

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks"
SIPP_DIR = HERE / "sipp"
KAMAILIO_CFG = HERE / "kamailio" / "kamailio.cfg"
DBTEXT_SOURCE = Path("/usr/share/kamailio/dbtext/kamailio")
DOC = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- bench_ps:begin -->", "<!-- bench_ps:end -->"

RCVBUF = 4 * 1024 * 1024
DOMAIN = "home1.net"

PUBLISH_RATES = (1000, 2000, 3000, 3500, 4000, 4500, 5000, 6000, 7000, 8000, 10000, 12000, 14000, 16000,
                 18000, 20000, 22000, 24000, 26000, 28000, 30000, 34000, 38000)
DIALOG_RATES = (250, 500, 750, 1000, 1100, 1250, 1500, 2000, 2500, 3000, 3500, 4000, 5000, 6000, 7000,
                8000, 9000, 10000, 12000)
FANOUT_CALL_RATES = (50, 100, 150, 200, 250, 300, 350, 400, 500, 600, 700, 800, 900, 1000, 1100,
                     1200, 1400, 1600, 1800)
"""SIPp calls/s of the fan-out publisher: 2 PUBLISHes and 2 x 10 NOTIFYs per call."""

FANOUT_PRESENTITIES, FANOUT_WATCHERS = 200, 10
MEMORY_PRESENTITIES, MEMORY_WATCHERS = 10_000, 10


# -- processes ---------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when this script dies (Linux PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)


def free_port() -> int:
    """A UDP port free on 127.0.0.1 now (and its TCP twin, the PS may listen on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            try:
                t.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise SystemExit("no free port")


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text()
            found.extend(int(p) for p in text.split())
    return found


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Kamailio's workers)."""
    out: list[int] = []
    todo = [pid]
    while todo and len(out) < 256:
        p = todo.pop()
        out.append(p)
        todo.extend(_children(p))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (seconds)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def memory_kib(pids: list[int]) -> dict[str, int]:
    """RSS and PSS (kB) summed over the processes: PSS splits shared pages (Kamailio's shm)."""
    rss = pss = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
    return {"rss": rss, "pss": pss}


class Server:
    """A server under test, started as a subprocess (its own process group) and killed after."""

    def __init__(self, kind: str, store: str, workdir: Path) -> None:
        kind, _, workers = kind.partition(":")
        self.kind = kind  # "ps" (or "ps:N": N worker processes) or "kamailio"
        self.workers = int(workers or 1)
        self.store = store
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"{kind}-{self.port}.log"

    @property
    def label(self) -> str:
        if self.kind == "kamailio":
            return "Kamailio 5.6 (4 workers)"
        workers = f", {self.workers} workers" if self.workers > 1 else ""
        return f"PS ({self.store.split(':')[0]} store{workers})"

    def start(self, timeout: float = 30.0) -> None:
        log = self.log.open("wb")
        if self.kind == "ps":
            cmd = [sys.executable, "-m", "presence_ims", "node", "ps", "--trust", "open",
                   "--sip", f"udp:127.0.0.1:{self.port}", "--store", self.store,
                   "--log-level", "warning", "--workers", str(self.workers)]
            env = dict(os.environ, PYTHONHASHSEED="0")
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, cwd=ROOT,
                                         env=env, preexec_fn=_die_with_parent,
                                         start_new_session=True)
            assert self.proc.stdout is not None
            deadline = time.monotonic() + timeout
            line = b""
            with selectors.DefaultSelector() as sel:
                sel.register(self.proc.stdout, selectors.EVENT_READ)
                while time.monotonic() < deadline:
                    if not sel.select(max(0.0, deadline - time.monotonic())):
                        break
                    line = self.proc.stdout.readline()
                    if not line or line.startswith(b"ready:"):
                        break
            if not line.startswith(b"ready:"):
                self.stop()
                raise RuntimeError(f"PS did not start: {line!r} (see {self.log})")
            return
        dbtext = self.workdir / "dbtext"
        dbtext.mkdir(exist_ok=True)
        for name in ("version", "active_watchers", "watchers", "presentity", "xcap"):
            shutil.copy(DBTEXT_SOURCE / name, dbtext / name)
        rundir = self.workdir / "kamailio-run"
        rundir.mkdir(exist_ok=True)
        cmd = ["kamailio", "-f", str(KAMAILIO_CFG), "-DD", "-E", "-n", "4", "-m", "3072",
               "-l", f"udp:127.0.0.1:{self.port}", "-Y", str(rundir),
               "-A", f'SERVER_ADDRESS="sip:ps@127.0.0.1:{self.port}"',
               "-A", f'DBURL="text://{dbtext}"']
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, cwd=self.workdir,
                                     preexec_fn=_die_with_parent, start_new_session=True)
        if not wait_options(self.port, timeout):
            self.stop()
            raise RuntimeError(f"Kamailio did not answer OPTIONS (see {self.log})")

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid) if self.proc else []

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        # Kamailio's workers follow their main process; anything left of the group goes too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def wait_options(port: int, timeout: float) -> bool:
    """Send OPTIONS until something answers (Kamailio prints no ready line)."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.5)
        n = 0
        while time.monotonic() < deadline:
            n += 1
            msg = (f"OPTIONS sip:ps@127.0.0.1:{port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.1:{s.getsockname()[1]};branch=z9hG4bKping{n}\r\n"
                   "Max-Forwards: 70\r\nFrom: <sip:ping@127.0.0.1>;tag=p\r\n"
                   f"To: <sip:ps@127.0.0.1>\r\nCall-ID: ping{n}\r\nCSeq: {n} OPTIONS\r\n"
                   "Content-Length: 0\r\n\r\n")
            s.sendto(msg.encode(), ("127.0.0.1", port))
            with contextlib.suppress(TimeoutError, OSError):
                if s.recv(4096).startswith(b"SIP/2.0 200"):
                    return True
            time.sleep(0.2)
    return False


# -- SIPp steps ----------------------------------------------------------------------------------


@dataclass
class Step(SippStep):
    load: str = ""
    """/proc/loadavg (1, 5, 15 min) when the step ended."""
    server_cpu: float = 0.0
    """CPU seconds the server used during the step."""
    rss_kib: int = 0
    sipp_cpu: float = 0.0
    """CPU SIPp used per second of the step (1.0: one core)."""
    sipp_note: str = ""
    """SIPp's exit code and last error line (kept in the JSON output)."""
    notifies: int = 0
    """Fan-out: NOTIFYs the watchers received during the step."""
    notify_rate: float = 0.0
    delivered: float = 1.0
    """Fan-out: share of (PUBLISH, watcher) pairs that saw the stamped state within 2 s."""
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None

    @property
    def passed(self) -> bool:
        return super().passed and self.delivered >= 1 - FAIL_LIMIT

    @property
    def cpu_us_per_call(self) -> float:
        return self.server_cpu / self.successful * 1e6 if self.successful else 0.0


@dataclass
class Series:
    scenario: str
    server: str
    unit: str
    steps: list[Step] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def best(self) -> Step | None:
        good = [s for s in self.steps if s.passed]
        return max(good, key=lambda s: s.achieved) if good else None

    @property
    def sustained(self) -> float:
        best = self.best()
        if best is None:
            return 0.0
        return best.notify_rate if self.scenario == "fanout" else best.achieved


def run_sipp(port: int, scenario: Path, rate: int, seconds: float, workdir: Path, *,
             keys: dict[str, str] | None = None, inf: Path | None = None) -> Step:
    """One SIPp step: ``rate`` calls/s for ``seconds``; returns the counts."""
    calls = max(1, int(rate * seconds))
    stat = workdir / f"stat-{scenario.stem}-{port}-{rate}-{time.monotonic_ns()}.csv"
    cmd = ["sipp", f"127.0.0.1:{port}", "-sf", str(scenario), "-i", "127.0.0.1",
           "-p", str(free_port()), "-r", str(rate), "-rp", "1000", "-m", str(calls),
           "-l", str(max(rate * 3, 1000)), "-nr", "-buff_size", str(RCVBUF),
           "-timeout", f"{int(seconds + 15)}s", "-trace_stat", "-stf", str(stat), "-fd", "1"]
    for key, value in (keys or {}).items():
        cmd += ["-key", key, value]
    if inf is not None:
        cmd += ["-inf", str(inf)]
    errors = workdir / f"sipp-errors-{port}-{rate}-{time.monotonic_ns()}.log"
    cmd += ["-trace_err", "-error_file", str(errors)]
    started = time.monotonic()
    with (workdir / "sipp-stderr.log").open("ab") as stderr:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=stderr, cwd=workdir, preexec_fn=_die_with_parent)
        # reaped here with wait4: SIPp's own CPU time comes with it
        deadline = started + seconds + 40
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        returncode = os.waitstatus_to_exitcode(status)
        sipp_cpu = usage.ru_utime + usage.ru_stime
        proc.returncode = returncode
    wall = time.monotonic() - started
    successful, failed, elapsed = sipp_counts(stat, wall)
    stat.unlink(missing_ok=True)
    failed = max(failed, calls - successful)  # never started or unfinished: failed too
    achieved = successful / max(elapsed, 1e-9) if successful else 0.0
    note = f"SIPp exit code {returncode}"
    if errors.exists():
        lines = [line for line in errors.read_text(errors="replace").splitlines()
                 if line.strip() and "delete FD from epoll" not in line]  # SIPp's own noise
        if lines:
            note += f"; {len(lines)} error lines, last: {lines[-1][:160]}"
    return Step(rate, calls, successful, failed, round(elapsed, 2), round(achieved, 1),
                sipp_cpu=round(sipp_cpu / max(wall, 1e-9), 2), sipp_note=note)


def print_step(series: Series, step: Step) -> None:
    extra = ""
    if series.scenario == "fanout":
        extra = (f"  NOTIFY {step.notify_rate:8.0f}/s delivered {step.delivered * 100:6.2f}% "
                 f"p50 {step.p50_ms or 0:.1f} ms p99 {step.p99_ms or 0:.1f} ms")
    print(f"  {series.server:26s} {series.scenario:9s} offered {step.rate:6d}/s "
          f"done {step.achieved:9.1f}/s failed {step.failed_ratio * 100:6.3f}%{extra} "
          f"cpu {step.cpu_us_per_call:6.0f} us/call sipp {step.sipp_cpu:.2f} core "
          f"rss {step.rss_kib // 1024} MiB load {step.load}  {'ok' if step.passed else 'LIMIT'}",
          flush=True)
    if not step.passed:
        print(f"    ({step.sipp_note})", flush=True)


class Budget:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def allows(self, seconds: float) -> bool:
        return time.monotonic() + seconds < self.deadline


def ramp_sipp(server: Server, series: Series, scenario: Path, rates: tuple[int, ...],
              seconds: float, budget: Budget, workdir: Path) -> Series:
    """Steps at rising rates against a running server; each step has fresh users."""
    for index, rate in enumerate(rates):
        if not budget.allows(seconds + 30):
            print("  (time budget used up)", flush=True)
            series.extra["stopped"] = "time budget"
            break
        pids = server.pids()
        cpu0 = cpu_seconds(pids)
        step = run_sipp(server.port, scenario, rate, seconds, workdir,
                        keys={"pfx": f"s{index}x{rate}"})
        step.server_cpu = round(cpu_seconds(server.pids()) - cpu0, 2)
        step.rss_kib = memory_kib(server.pids())["pss" if server.kind == "kamailio" else "rss"]
        step.load = loadavg()
        series.steps.append(step)
        print_step(series, step)
        if not step.passed:
            break
        if not server.alive():
            print("  (server exited)", flush=True)
            series.extra["stopped"] = "server exited"
            break
        time.sleep(1.0)  # let the last transactions end
    return series


def bench_publish(kind: str, store: str, args: argparse.Namespace, budget: Budget,
                  workdir: Path) -> Series:
    server = Server(kind, store, workdir)
    series = Series("publish", server.label, "PUBLISH/s")
    server.start()
    try:
        ramp_sipp(server, series, SIPP_DIR / "ps_publish_one.xml", rates(args, PUBLISH_RATES),
                  args.step_seconds, budget, workdir)
    finally:
        server.stop()
    return series


def bench_subscribe(kind: str, args: argparse.Namespace, budget: Budget, workdir: Path) -> Series:
    server = Server(kind, "memory", workdir)
    series = Series("subscribe", server.label, "dialogs/s")
    server.start()
    try:
        ramp_sipp(server, series, SIPP_DIR / "ps_subscribe_dialog.xml",
                  rates(args, DIALOG_RATES), args.step_seconds, budget, workdir)
    finally:
        server.stop()
    return series


# -- the watcher process ---------------------------------------------------------------------------

_TS = re.compile(rb"ts=(\d+)\.\d*\.(\d+)")
_CALL_ID = re.compile(rb"^(?:Call-ID|i)[ \t]*:[ \t]*(\S+)", re.I | re.M)
_KEEP = frozenset({b"via", b"v", b"from", b"f", b"to", b"t", b"call-id", b"i", b"cseq"})
_TO_TAG = re.compile(rb"^(?:To|t)[ \t]*:[^\r\n]*;tag=([^;\s]+)", re.I | re.M)


class Watchers(asyncio.DatagramProtocol):
    """Subscriptions held on one UDP socket: SUBSCRIBEs out, NOTIFYs answered and stamped."""

    def __init__(self, target: tuple[str, int], presentities: list[str], watchers: int,
                 prefix: str) -> None:
        self.target = target
        self.prefix = prefix
        self.subs = [(p, f"{prefix}w{w}x{i}") for i, p in enumerate(presentities)
                     for w in range(watchers)]
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.answered: set[int] = set()
        self.notified: set[int] = set()
        self.rejected = 0
        self.notifies = 0
        self.latencies: list[float] = []
        self.late = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def subscribe_request(self, n: int, attempt: int) -> bytes:
        presentity, watcher = self.subs[n]
        return (
            f"SUBSCRIBE sip:{presentity}@{DOMAIN} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{self.prefix}s{n}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:{watcher}@{DOMAIN}>;tag=w{n}\r\n"
            f"To: <sip:{presentity}@{DOMAIN}>\r\n"
            f"Call-ID: {self.prefix}c{n}@bench\r\n"
            "CSeq: 1 SUBSCRIBE\r\n"
            f"Contact: <sip:{watcher}@127.0.0.1:{self.port}>\r\n"
            "Event: presence\r\nAccept: application/pidf+xml\r\nExpires: 3600\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()

    def _index(self, data: bytes) -> int | None:
        m = _CALL_ID.search(data)
        if m is None:
            return None
        cid = m.group(1)
        head = self.prefix.encode() + b"c"
        if not cid.startswith(head):
            return None
        try:
            return int(cid[len(head):].split(b"@", 1)[0])
        except ValueError:
            return None

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        received = time.time()
        if data.startswith(b"SIP/2.0 "):
            n = self._index(data)
            if n is not None:
                if data[8:9] == b"2":
                    self.answered.add(n)
                elif data[8:9] != b"1":
                    self.rejected += 1
            return
        if not data.startswith(b"NOTIFY "):
            return
        lines = data.split(b"\r\n")
        out = [b"SIP/2.0 200 OK"]
        for line in lines[1:]:
            if not line:
                break
            if line.split(b":", 1)[0].strip().lower() in _KEEP:
                out.append(line)
        out.append(b"Content-Length: 0\r\n\r\n")
        assert self.transport is not None
        self.transport.sendto(b"\r\n".join(out), addr)
        self.notifies += 1
        n = self._index(data)
        if n is not None:
            self.notified.add(n)
        stamps = _TS.findall(data)
        if stamps:
            # the newest stamp: a presentity may still show an older publication too
            sent = max(int(sec) + int(usec) / 1e6 for sec, usec in stamps)
            latency = received - sent
            if latency <= 2.0:
                self.latencies.append(latency)
            else:
                self.late += 1

    def reset(self) -> None:
        self.notifies = 0
        self.latencies = []
        self.late = 0

    def report(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        out: dict[str, Any] = {"notifies": self.notifies, "stamped": len(lat), "late": self.late}
        if lat:
            out["p50"] = lat[len(lat) // 2] * 1000
            out["p99"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
            out["max"] = lat[-1] * 1000
            out["mean"] = statistics.fmean(lat) * 1000
        return out


async def _watchers_main(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    host, _, port = args.target.rpartition(":")
    presentities = [f"{args.prefix}f{i}" for i in range(args.presentities)]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, RCVBUF)
    sock.bind(("127.0.0.1", 0))
    proto = Watchers((host, int(port)), presentities, args.watchers, args.prefix)
    proto.port = sock.getsockname()[1]
    transport, _ = await loop.create_datagram_endpoint(lambda: proto, sock=sock)
    total = len(proto.subs)
    # subscribe at a bounded rate with a bounded window; resend what got no answer after 2 s
    deadline = loop.time() + args.setup_timeout
    sent_at: dict[int, float] = {}
    attempts: dict[int, int] = {}
    next_n = 0
    batch = 20
    last_check = loop.time()
    while loop.time() < deadline and len(proto.answered & proto.notified) < total:
        now = loop.time()
        sent = 0
        while next_n < total and sent < batch and next_n - len(proto.answered) < args.window:
            transport.sendto(proto.subscribe_request(next_n, 0), proto.target)
            sent_at[next_n] = now
            attempts[next_n] = 1
            next_n += 1
            sent += 1
        if now - last_check > 0.5:
            last_check = now
            for n, at in list(sent_at.items()):
                if n in proto.answered:
                    del sent_at[n]
                elif now - at > 2.0 and attempts[n] < 5:
                    transport.sendto(proto.subscribe_request(n, attempts[n]), proto.target)
                    sent_at[n] = now
                    attempts[n] += 1
        await asyncio.sleep(batch / args.subscribe_rate if sent else 0.01)
    done = len(proto.answered & proto.notified)
    print(json.dumps({"ready": done, "total": total, "rejected": proto.rejected,
                      "port": proto.port}), flush=True)
    proto.reset()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    end = loop.time() + args.lifetime
    while loop.time() < end:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=max(0.1, end - loop.time()))
        except TimeoutError:
            break
        if not line:
            break
        command = line.decode().strip()
        if command == "reset":
            proto.reset()
            print(json.dumps({"reset": True}), flush=True)
        elif command == "report":
            print(json.dumps(proto.report()), flush=True)
        elif command == "quit":
            break
    transport.close()
    return 0


def serve_watchers(args: argparse.Namespace) -> int:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return asyncio.run(_watchers_main(args))


class WatcherProcess:
    """The watcher process, driven by lines on its stdin; JSON lines back on its stdout."""

    def __init__(self, port: int, presentities: int, watchers: int, prefix: str, *,
                 subscribe_rate: int, window: int, setup_timeout: float, lifetime: float) -> None:
        cmd = [sys.executable, __file__, "--serve-watchers", "--target", f"127.0.0.1:{port}",
               "--presentities", str(presentities), "--watchers", str(watchers),
               "--prefix", prefix, "--subscribe-rate", str(subscribe_rate),
               "--window", str(window), "--setup-timeout", str(setup_timeout),
               "--lifetime", str(lifetime)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
                                     preexec_fn=_die_with_parent)
        self.setup_timeout = setup_timeout

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                raise RuntimeError("watcher process did not answer")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("watcher process ended")
        return json.loads(line)  # type: ignore[no-any-return]

    def ready(self) -> dict[str, Any]:
        return self._read(self.setup_timeout + 30)

    def command(self, text: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return self._read(30)

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- fan-out ---------------------------------------------------------------------------------------


def fanout_step(server: Server, watchers: WatcherProcess, series: Series, rate: int,
                seconds: float, csv: Path, workdir: Path) -> Step:
    watchers.command("reset")
    pids = server.pids()
    cpu0 = cpu_seconds(pids)
    step = run_sipp(server.port, SIPP_DIR / "ps_fanout_publish.xml", rate, seconds, workdir,
                    inf=csv)
    time.sleep(2.5)  # NOTIFYs still on their way (a NOTIFY later than 2 s counts as lost)
    step.server_cpu = round(cpu_seconds(server.pids()) - cpu0, 2)
    report = watchers.command("report")
    step.notifies = int(report["notifies"])
    step.notify_rate = round(step.notifies / max(step.seconds, 1e-9), 1)
    expected = step.successful * FANOUT_WATCHERS
    step.delivered = round(min(1.0, report["stamped"] / expected), 5) if expected else 0.0
    step.p50_ms = round(report["p50"], 2) if "p50" in report else None
    step.p99_ms = round(report["p99"], 2) if "p99" in report else None
    step.max_ms = round(report["max"], 2) if "max" in report else None
    step.rss_kib = memory_kib(server.pids())["pss" if server.kind == "kamailio" else "rss"]
    step.load = loadavg()
    return step


class FanoutSetup:
    """A server with FANOUT_PRESENTITIES x FANOUT_WATCHERS subscriptions held by the watchers."""

    def __init__(self, kind: str, args: argparse.Namespace, workdir: Path, tag: str) -> None:
        self.server = Server(kind, "memory", workdir)
        prefix = f"fo{os.getpid()}{tag}"
        self.csv = workdir / f"fanout-{kind}-{tag}.csv"
        self.csv.write_text("SEQUENTIAL\n" + "".join(f"{prefix}f{i};\n"
                                                     for i in range(FANOUT_PRESENTITIES)))
        self.server.start()
        self.watchers = WatcherProcess(self.server.port, FANOUT_PRESENTITIES, FANOUT_WATCHERS,
                                       prefix, subscribe_rate=1000, window=200, setup_timeout=60,
                                       lifetime=args.max_total_seconds)
        self.ready: dict[str, Any] = {}

    def subscribe(self) -> bool:
        self.ready = self.watchers.ready()
        print(f"  {self.server.label}: {self.ready['ready']}/{self.ready['total']} watchers "
              "subscribed", flush=True)
        return bool(self.ready["ready"] == self.ready["total"])

    def stop(self) -> None:
        self.watchers.stop()
        self.server.stop()


def bench_fanout(kind: str, args: argparse.Namespace, budget: Budget, workdir: Path) -> Series:
    setup = FanoutSetup(kind, args, workdir, "ramp")
    series = Series("fanout", setup.server.label, "NOTIFY/s")
    try:
        ok = setup.subscribe()
        series.extra["subscriptions"] = setup.ready
        if not ok:
            series.extra["stopped"] = "watchers could not all subscribe"
            return series
        for rate in rates(args, FANOUT_CALL_RATES):
            if not budget.allows(args.step_seconds + 40):
                series.extra["stopped"] = "time budget"
                break
            step = fanout_step(setup.server, setup.watchers, series, rate, args.step_seconds,
                               setup.csv, workdir)
            series.steps.append(step)
            print_step(series, step)
            if not step.passed or not setup.server.alive():
                break
    finally:
        setup.stop()
    best = series.best()
    if best is None or not budget.allows(args.step_seconds + 60):
        return series
    # the latency at half the sustained rate, on a fresh server (not one just overloaded)
    setup = FanoutSetup(kind, args, workdir, "half")
    try:
        if setup.subscribe():
            half = max(1, best.rate // 2)
            step = fanout_step(setup.server, setup.watchers, series, half, args.step_seconds,
                               setup.csv, workdir)
            series.extra["half_rate"] = asdict(step)
            print("  half the sustained rate, fresh server:", flush=True)
            print_step(series, step)
    finally:
        setup.stop()
    return series


# -- memory per subscription ------------------------------------------------------------------------


def bench_memory(kind: str, store: str, args: argparse.Namespace, budget: Budget,
                 workdir: Path) -> Series:
    server = Server(kind, store, workdir)
    series = Series("memory", server.label, "bytes/subscription")
    server.start()
    try:
        time.sleep(2.0)
        key = "pss" if kind == "kamailio" else "rss"
        before = memory_kib(server.pids())
        total = args.memory_subscriptions
        presentities = max(1, total // MEMORY_WATCHERS)
        started = time.monotonic()
        watchers = WatcherProcess(server.port, presentities, MEMORY_WATCHERS, f"m{os.getpid()}",
                                  subscribe_rate=args.memory_rate, window=500,
                                  setup_timeout=max(60.0, 3 * total / args.memory_rate),
                                  lifetime=args.max_total_seconds)
        try:
            ready = watchers.ready()
            made = time.monotonic() - started
            right_after = memory_kib(server.pids())
            # the set-up's transactions end (Timer J = 32 s for SUBSCRIBE, K = 5 s for NOTIFY)
            settle = args.memory_settle
            time.sleep(settle)
            after = memory_kib(server.pids())
        finally:
            watchers.stop()
        subs = int(ready["ready"])
        series.extra.update({
            "subscriptions": subs, "requested": total, "seconds_to_make": round(made, 1),
            "before_kib": before, "right_after_kib": right_after, "after_kib": after,
            "settle_seconds": settle, "measure": key, "load": loadavg(),
            "bytes_per_subscription": round((after[key] - before[key]) * 1024 / max(subs, 1)),
            "bytes_per_subscription_right_after": round(
                (right_after[key] - before[key]) * 1024 / max(subs, 1)),
        })
        print(f"  {series.server}: {subs} subscriptions in {made:.0f} s; {key} "
              f"{before[key] // 1024} -> {right_after[key] // 1024} -> {after[key] // 1024} MiB "
              f"after {settle:g} s: {series.extra['bytes_per_subscription']} bytes each "
              f"(load {series.extra['load']})", flush=True)
    finally:
        server.stop()
    return series


# -- in-process profile -------------------------------------------------------------------------------


def _pidf(user: str, note: str = "benchmark") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<presence xmlns="urn:ietf:params:xml:ns:pidf" '
        'xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" '
        f'xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:{user}@{DOMAIN}">'
        '<tuple id="t1"><status><basic>open</basic></status>'
        f'<contact priority="0.8">sip:{user}@192.0.2.1</contact><note>{note}</note></tuple>'
        '<dm:person id="p1"><rpid:activities><rpid:busy/></rpid:activities></dm:person>'
        "</presence>\n"
    ).encode()


def publish_datagram(user: str, n: int, *, etag: str | None = None, body: bytes | None = None,
                     expires: int = 3600) -> bytes:
    body = _pidf(user) if body is None else body
    lines = [
        f"PUBLISH sip:{user}@{DOMAIN} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKp{n}",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{DOMAIN}>;tag=t{n}",
        f"To: <sip:{user}@{DOMAIN}>",
        f"Call-ID: p{n}@bench",
        "CSeq: 1 PUBLISH",
        "Event: presence",
        f"Expires: {expires}",
    ]
    if etag:
        lines.append(f"SIP-If-Match: {etag}")
    if body:
        lines.append("Content-Type: application/pidf+xml")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def subscribe_datagram(presentity: str, watcher: str, n: int, *, port: int = 9,
                       to_tag: str | None = None, expires: int = 3600, cseq: int = 1) -> bytes:
    to = f"<sip:{presentity}@{DOMAIN}>" + (f";tag={to_tag}" if to_tag else "")
    return (
        f"SUBSCRIBE sip:{presentity}@{DOMAIN} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKs{n}x{cseq}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{watcher}@{DOMAIN}>;tag=w{n}\r\n"
        f"To: {to}\r\n"
        f"Call-ID: s{n}@bench\r\n"
        f"CSeq: {cseq} SUBSCRIBE\r\n"
        f"Contact: <sip:{watcher}@127.0.0.1:{port}>\r\n"
        f"Event: presence\r\nAccept: application/pidf+xml\r\nExpires: {expires}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def _profile(args: argparse.Namespace) -> None:
    """Datagrams fed straight to the PS's endpoint, in process; NOTIFYs answered at once.

    The NOTIFYs leave through the PS's real UDP socket towards a local socket of
    this harness, which reads them and hands the 200s back to the endpoint, all
    inside the measured loop.
    """
    import cProfile
    import pstats

    from presence_ims import logging as plog

    plog.configure("warning", json=True)
    from presence_ims import cli
    from presence_ims.nodes.ps.config import PsConfig
    from presence_ims.nodes.ps.node import PresenceServer
    from presence_ims.sip.transaction import Address

    tune_gc = getattr(cli, "tune_gc", None)
    if tune_gc is not None:
        tune_gc()  # as `presence-ims node ps` does
    store = "memory" if args.store in ("memory", "both") else f"sqlite:{args.workdir}/prof.db"
    ps = PresenceServer(PsConfig(trust="open", sip=("udp:127.0.0.1:0",), store=store))
    await ps.start()
    watcher = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    watcher.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    watcher.bind(("127.0.0.1", 0))
    watcher.setblocking(False)
    wport = watcher.getsockname()[1]
    src = Address("udp", "127.0.0.1", wport)
    endpoint = ps.endpoint
    n = args.count

    to_tags: dict[bytes, str] = {}

    def answer_notifies() -> int:
        answered = 0
        while True:
            try:
                data = watcher.recv(65536)
            except BlockingIOError:
                return answered
            if not data.startswith(b"NOTIFY "):
                m = _TO_TAG.search(data)
                c = _CALL_ID.search(data)
                if m and c:
                    to_tags[c.group(1)] = m.group(1).decode()
                continue
            out = [b"SIP/2.0 200 OK"]
            for line in data.split(b"\r\n")[1:]:
                if not line:
                    break
                if line.split(b":", 1)[0].strip().lower() in _KEEP:
                    out.append(line)
            out.append(b"Content-Length: 0\r\n\r\n")
            endpoint.datagram_received(b"\r\n".join(out), src)
            answered += 1

    dialogs = args.what == "dialog"
    if args.what == "publish":
        data = [publish_datagram(f"u{i}", i) for i in range(n)]
    elif dialogs:  # SUBSCRIBE, 200, NOTIFY, un-SUBSCRIBE, 200, final NOTIFY (as SIPp's)
        data = [subscribe_datagram(f"p{i}", f"w{i}", i, port=wport, expires=600)
                for i in range(n)]
    elif args.what == "subscribe":
        data = [subscribe_datagram(f"p{i}", f"w{i}", i, port=wport) for i in range(n)]
    else:  # fanout: FANOUT_PRESENTITIES x FANOUT_WATCHERS watchers, then n PUBLISHes
        for i in range(FANOUT_PRESENTITIES * FANOUT_WATCHERS):
            endpoint.datagram_received(
                subscribe_datagram(f"f{i // FANOUT_WATCHERS}", f"w{i}", i, port=wport), src)
            answer_notifies()
        await asyncio.sleep(0.1)
        answer_notifies()
        data = [publish_datagram(f"f{i % FANOUT_PRESENTITIES}", 10**6 + i, expires=60)
                for i in range(n)]
    profiler = cProfile.Profile() if args.cprofile else None
    notifies = 0
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    if profiler:
        profiler.enable()
    for i, d in enumerate(data):
        endpoint.datagram_received(d, src)
        notifies += answer_notifies()
        if dialogs:
            tag = to_tags.pop(f"s{i}@bench".encode(), None)
            if tag is not None:
                endpoint.datagram_received(subscribe_datagram(
                    f"p{i}", f"w{i}", i, port=wport, to_tag=tag, expires=0, cseq=2), src)
                notifies += answer_notifies()
                to_tags.pop(f"s{i}@bench".encode(), None)
        if i % 64 == 0:
            await asyncio.sleep(0)
    if profiler:
        profiler.disable()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    print(f"{n} {args.what} requests ({notifies} NOTIFYs answered) in {wall:.2f} s: "
          f"{wall / n * 1e6:.1f} us each (cpu {cpu / n * 1e6:.1f} us), {n / wall:,.0f}/s; "
          f"PS stats: {ps.core.stats}", flush=True)
    await ps.stop()
    watcher.close()
    if profiler:
        stats = pstats.Stats(profiler).sort_stats(args.sort)
        stats.print_stats(args.top)
        if args.callers:
            stats.print_callers(args.callers)


def profile(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-ps-prof-") as tmp:
        args.workdir = tmp
        if args.loop == "uvloop":
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(_profile(args))
    return 0


# -- report ----------------------------------------------------------------------------------------


TARGETS = {
    ("publish", "memory"): 10_000,
    ("publish", "sqlite"): 6_000,
    ("subscribe", "memory"): 3_000,
    ("fanout", "memory"): 10_000,
}


def _store_of(series: Series) -> str:
    return "sqlite" if "sqlite" in series.server else "memory"


def render(results: list[Series], info: dict[str, str], args: argparse.Namespace,
           started_load: str) -> str:
    lines = [
        f"Measured {info['date']} on {info.get('Model name', '?')}, {info.get('CPU(s)', '?')} CPUs "
        f"(shared with other work: load average {started_load} at the start), "
        f"Python {info['python']}, uvloop {info.get('uvloop', '-')}, SIPp {info.get('sipp', '?')}, "
        f"Kamailio {info.get('kamailio', 'not installed')}; steps of {args.step_seconds:g} s, "
        "SIPp retransmissions off, a call fails without each answer within 2 s.",
        "",
        "| scenario | server | sustained | target | server CPU per call at that rate "
        "| first failing step | load (1/5/15 min) |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in results:
        if s.scenario == "memory":
            continue
        best = s.best()
        bad = next((st for st in s.steps if not st.passed), None)
        if bad is None:
            failing = s.extra.get("stopped", "none (ramp ended)")
        elif s.scenario == "fanout":
            failing = (f"{bad.rate} calls/s offered, {bad.achieved:,.0f}/s done: "
                       f"{bad.notify_rate:,.0f} NOTIFY/s, {bad.failed_ratio * 100:.2f}% calls failed, "
                       f"{(1 - bad.delivered) * 100:.2f}% stamped NOTIFYs missing")
        else:
            failing = (f"{bad.rate}/s offered: {bad.achieved:,.0f}/s done, "
                       f"{bad.failed_ratio * 100:.2f}% failed")
        goal = TARGETS.get((s.scenario, _store_of(s)))
        target_text = "reference" if "Kamailio" in s.server else (
            f"{goal:,} {'met' if s.sustained >= goal else '**missed**'}" if goal else "-")
        cpu = f"{best.cpu_us_per_call:,.0f} us" if best else "-"
        load = best.load if best else (s.steps[-1].load if s.steps else "?")
        lines.append(f"| {s.scenario} | {s.server} | {s.sustained:,.0f} {s.unit} | {target_text} "
                     f"| {cpu} | {failing} | {load} |")
    lines.append("")
    lat_rows = []
    for s in results:
        half = s.extra.get("half_rate")
        if s.scenario == "fanout" and half:
            ok = half["p99_ms"] is not None and half["p99_ms"] < 30
            verdict = "" if "Kamailio" in s.server else (" (target < 30 ms: met)" if ok else
                                                          " (target < 30 ms: **missed**)")
            lat_rows.append(
                f"| {s.server} | {half['rate']} calls/s ({half['notify_rate']:,.0f} NOTIFY/s) "
                f"| {half['p50_ms']} ms | {half['p99_ms']} ms{verdict} | {half['max_ms']} ms "
                f"| {half['delivered'] * 100:.2f}% | {half['load']} |")
    if lat_rows:
        lines += ["PUBLISH->NOTIFY latency at half the sustained fan-out rate (SIPp's send time "
                  "in the PIDF note to the watcher's receive time; 200 presentities x 10 "
                  "watchers):", "",
                  "| server | rate | p50 | p99 | max | stamped NOTIFYs delivered | load |",
                  "|---|---|---|---|---|---|---|", *lat_rows, ""]
    mem_rows = []
    for s in results:
        if s.scenario != "memory" or not s.extra:
            continue
        e = s.extra
        key = e["measure"]
        target = "" if "Kamailio" in s.server else (
            " (target 4,096: met)" if e["bytes_per_subscription"] <= 4096
            else " (target 4,096: **missed**)")
        mem_rows.append(
            f"| {s.server} | {e['subscriptions']:,} of {e['requested']:,} in "
            f"{e['seconds_to_make']} s | {key.upper()} {e['before_kib'][key] // 1024} "
            f"-> {e['right_after_kib'][key] // 1024} -> {e['after_kib'][key] // 1024} MiB "
            f"| {e['bytes_per_subscription_right_after']:,} | {e['bytes_per_subscription']:,}{target} "
            f"| {e['load']} |")
    if mem_rows:
        lines += [f"Memory per active subscription ({MEMORY_PRESENTITIES:,} presentities x "
                  f"{MEMORY_WATCHERS} watchers, made over UDP by the watcher process; the PS's "
                  "RSS, Kamailio's PSS summed over its processes, before -> right after -> "
                  f"{args.memory_settle:g} s later when the set-up's transactions have ended):",
                  "", "| server | subscriptions | memory | bytes/subscription right after "
                  "| bytes/subscription settled | load |", "|---|---|---|---|---|---|",
                  *mem_rows, ""]
    lines += ["<details><summary>every step</summary>", "",
              "| scenario | server | offered/s | done/s | failed | NOTIFY/s | p50 / p99 ms "
              "| server CPU us/call | SIPp CPU | RSS MiB | load | result |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in results:
        for st in s.steps:
            lat = f"{st.p50_ms} / {st.p99_ms}" if st.p50_ms is not None else "-"
            notify = f"{st.notify_rate:,.0f}" if s.scenario == "fanout" else "-"
            lines.append(
                f"| {s.scenario} | {s.server} | {st.rate} | {st.achieved:,.0f} "
                f"| {st.failed_ratio * 100:.3f}% | {notify} | {lat} | {st.cpu_us_per_call:,.0f} "
                f"| {st.sipp_cpu:.2f} | {st.rss_kib // 1024} | {st.load} "
                f"| {'ok' if st.passed else 'limit'} |")
    lines += ["", "</details>"]
    return "\n".join(lines)


FIGURES_BEGIN, FIGURES_END = "<!-- bench_ps:figures:begin -->", "<!-- bench_ps:figures:end -->"
SECTION = f"""{BEGIN}
## Presence Server under SIPp

`benchmarks/bench_ps.py` (see `benchmarks/README.md`). The figures below are rewritten by
`bench_ps.py all --write-doc`; the notes around them are not.

{FIGURES_BEGIN}
{FIGURES_END}
{END}"""


def write_doc(block: str) -> None:
    """Put ``block`` between the figure markers of this benchmark's section of the page
    (the section is created at the end of the page the first time)."""
    text = DOC.read_text() if DOC.exists() else "# Performance\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + "\n\n" + SECTION + "\n"
    before, rest = text.split(BEGIN, 1)
    section, after = rest.split(END, 1)
    if FIGURES_BEGIN not in section or FIGURES_END not in section:
        section = section.rstrip("\n") + f"\n\n{FIGURES_BEGIN}\n{FIGURES_END}\n"
    head, tail = section.split(FIGURES_BEGIN, 1)
    _, tail = tail.split(FIGURES_END, 1)
    DOC.write_text(before + BEGIN + head + FIGURES_BEGIN + "\n" + block + "\n" + FIGURES_END
                   + tail + END + after)


def rates(args: argparse.Namespace, default: tuple[int, ...]) -> tuple[int, ...]:
    if args.rates:
        return tuple(int(r) for r in args.rates.split(","))
    return default


def targets(args: argparse.Namespace) -> Iterator[str]:
    if args.command == "kamailio":
        yield "kamailio"
        return
    if args.server in ("ps", "both"):
        yield "ps"
    if args.server in ("kamailio", "both") or args.command == "all":
        yield "kamailio"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="all",
                        choices=["publish", "subscribe", "fanout", "memory", "kamailio", "all",
                                 "profile"])
    parser.add_argument("--server", choices=["ps", "kamailio", "both"], default="ps",
                        help="what the single-scenario commands measure (all: both)")
    parser.add_argument("--store", choices=["memory", "sqlite", "both"], default="both",
                        help="PS store for publish and memory (profile: memory unless sqlite)")
    parser.add_argument("--workers", type=lambda v: [int(x) for x in v.split(",")], default=[1],
                        help="PS worker processes to measure, e.g. 1,2 (D13); memory: 1 only")
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--rates", help="comma-separated offered rates (calls/s) for the ramp")
    parser.add_argument("--max-total-seconds", type=float, default=3600.0)
    parser.add_argument("--memory-subscriptions", type=int, default=100_000)
    parser.add_argument("--memory-rate", type=int, default=2000,
                        help="SUBSCRIBEs/s while making the memory benchmark's subscriptions")
    parser.add_argument("--memory-settle", type=float, default=40.0)
    parser.add_argument("--write-doc", action="store_true", help=f"update the block in {DOC}")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    # profile
    parser.add_argument("--what", choices=["publish", "subscribe", "dialog", "fanout"],
                        default="publish")
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--cprofile", action="store_true", help="profile: print cProfile stats")
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--callers", help="profile: also print the callers of functions matching this")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    # the watcher process (internal)
    parser.add_argument("--serve-watchers", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--presentities", type=int, default=FANOUT_PRESENTITIES,
                        help=argparse.SUPPRESS)
    parser.add_argument("--watchers", type=int, default=FANOUT_WATCHERS, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="b", help=argparse.SUPPRESS)
    parser.add_argument("--subscribe-rate", type=int, default=1000, help=argparse.SUPPRESS)
    parser.add_argument("--window", type=int, default=200, help=argparse.SUPPRESS)
    parser.add_argument("--setup-timeout", type=float, default=60.0, help=argparse.SUPPRESS)
    parser.add_argument("--lifetime", type=float, default=3600.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve_watchers:
        return serve_watchers(args)
    if args.command == "profile":
        return profile(args)
    if shutil.which("sipp") is None:
        print("sipp not found: apt-get install sip-tester", file=sys.stderr)
        return 2
    have_kamailio = shutil.which("kamailio") is not None and DBTEXT_SOURCE.is_dir()
    budget = Budget(args.max_total_seconds)
    started_load = loadavg()
    results: list[Series] = []
    commands = (["publish", "subscribe", "fanout", "memory"]
                if args.command in ("all", "kamailio") else [args.command])
    kinds = [k for kind in targets(args)
             for k in ([kind] if kind != "ps" else
                       [f"ps:{n}" if n > 1 else "ps" for n in args.workers])]
    if "kamailio" in kinds and not have_kamailio:
        print("kamailio not installed (apt-get install kamailio kamailio-presence-modules): "
              "no reference figures", flush=True)
        kinds.remove("kamailio")
    with tempfile.TemporaryDirectory(prefix="bench-ps-") as tmp:
        workdir = Path(tmp)
        # scenario by scenario, each server in turn: both see the same machine
        for command in commands:
            for kind in kinds:
                if command == "memory" and kind.startswith("ps:"):
                    continue  # RSS per subscription: one process
                print(f"{command} against {kind} (load {loadavg()}):", flush=True)
                try:
                    stores = (["memory", "sqlite"] if args.store == "both" else [args.store])
                    if kind == "kamailio":
                        stores = ["memory"]
                    specs = [f"sqlite:{workdir}/ps-{time.monotonic_ns()}.db"
                             if store == "sqlite" else "memory" for store in stores]
                    if command == "publish":
                        for spec in specs:
                            results.append(bench_publish(kind, spec, args, budget, workdir))
                    elif command == "subscribe":
                        results.append(bench_subscribe(kind, args, budget, workdir))
                    elif command == "fanout":
                        results.append(bench_fanout(kind, args, budget, workdir))
                    elif command == "memory":
                        for spec in specs:
                            results.append(bench_memory(kind, spec, args, budget, workdir))
                except RuntimeError as exc:
                    print(f"  {command} against {kind} failed: {exc}", flush=True)
    info = machine(kamailio=True)
    block = render(results, info, args, started_load)
    print(block)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": info, "series": [
            {"scenario": s.scenario, "server": s.server, "sustained": s.sustained,
             "extra": s.extra, "steps": [asdict(st) for st in s.steps]} for s in results]},
            indent=2))
    if args.write_doc:
        write_doc(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
