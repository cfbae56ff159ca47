"""Driving independent SIP implementations from the tests: SIPp and baresip.

``run_sipp`` runs one SIPp scenario of ``tests/interop/sipp/`` as a
subprocess (asyncio, so an in-process network keeps serving meanwhile) and
reads SIPp's own verdict: its exit code and the cumulative counters of its
``-trace_stat`` file.  The benchmarks reuse it with other rates and counts.

``Baresip`` runs a headless baresip with its own configuration directory
(modules account, contact, presence, menu, ctrl_tcp; no audio), follows its
console output (the SIP trace of ``-s`` included) and talks to it over the
ctrl_tcp module: netstring-framed JSON commands
``{"command": ..., "params": ..., "token": ...}`` answered by
``{"response": true, "ok": ..., "data": ..., "token": ...}``, with
``{"event": true, ...}`` messages in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from presence_ims.documents import pidf
from presence_ims.documents.rpid import Activities
from presence_ims.ua import ClientSubscription, Notification

SCENARIOS = Path(__file__).resolve().parent / "sipp"
"""The SIPp scenario files (also used by ``benchmarks/``)."""

ALICE = "sip:alice@home1.net"
BOB = "sip:bob@home1.net"

BARESIP_MODULES = ("account.so", "contact.so", "presence.so", "menu.so", "ctrl_tcp.so")
"""What the headless baresip loads: no audio or video module, no console UI."""


def find_tool(name: str) -> str | None:
    """The path of an executable on PATH (or in /usr/sbin, /usr/bin), None when absent."""
    found = shutil.which(name)
    if found is None:
        for folder in ("/usr/bin", "/usr/sbin", "/usr/local/bin"):
            candidate = Path(folder) / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return found


def tool_version(path: str, *args: str) -> tuple[int, ...]:
    """The first ``N.N[.N]`` in what ``path args`` prints ((0,) when none)."""
    try:
        out = subprocess.run(
            [path, *args], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return (0,)
    text = (out.stdout + out.stderr).decode(errors="replace")
    match = re.search(r"v?(\d+)\.(\d+)(?:\.(\d+))?", text)
    if match is None:
        return (0,)
    return tuple(int(g) for g in match.groups() if g is not None)


# -- SIPp ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SippResult:
    """What one SIPp run reported."""

    returncode: int
    """0: every call succeeded; 1: some failed; 97/99/-1/-2 (255, 254): SIPp-level trouble."""
    stats: Mapping[str, str]
    """The last line of the ``-trace_stat`` CSV (cumulative counters, ``...(C)``)."""
    output: str
    """SIPp's screen (stdout and stderr)."""
    errors: str
    """The ``-trace_err`` log: unexpected messages, failed regexps, timeouts."""
    messages: str
    """The ``-trace_msg`` log: every message sent and received."""

    def counter(self, name: str) -> int:
        value = self.stats.get(name, "")
        return int(value) if value.strip().isdigit() else -1

    @property
    def successful(self) -> int:
        return self.counter("SuccessfulCall(C)")

    @property
    def failed(self) -> int:
        return self.counter("FailedCall(C)")

    def describe(self) -> str:
        """A summary for assertion messages."""
        tail = "\n".join(self.output.strip().splitlines()[-25:])
        return (
            f"sipp exit {self.returncode}, successful {self.successful}, failed {self.failed}\n"
            f"--- errors ---\n{self.errors[-4000:]}\n--- screen ---\n{tail}"
        )

    def received(self, start: str) -> list[str]:
        """The messages SIPp received whose first line starts with ``start``."""
        out = []
        for block in self.messages.split("-" * 47):
            lines = block.strip().splitlines()
            if len(lines) >= 3 and "message received" in lines[1]:
                body = "\n".join(lines[2:]).strip()
                if body.startswith(start):
                    out.append(body)
        return out


def write_csv(path: Path, rows: Iterable[Sequence[str]], mode: str = "SEQUENTIAL") -> Path:
    """A SIPp injection file (``-inf``): the reading mode line, then ``a;b;`` per call."""
    buf = io.StringIO()
    buf.write(mode + "\n")
    writer = csv.writer(buf, delimiter=";", lineterminator=";\n")
    for row in rows:
        writer.writerow(row)
    path.write_text(buf.getvalue())
    return path


def aka_scenario(path: Path, *, k: str, op: str, amf: str) -> Path:
    """``register_aka.xml`` with the placeholders replaced by key text (16, 16, 2 bytes).

    SIPp 3.6 uses the raw bytes of the text it is given; every value here is
    written into the file as is, so the keys must be printable.
    """
    text = (SCENARIOS / "register_aka.xml").read_text(encoding="latin-1")
    for name, value, size in (("K", k, 16), ("OP", op, 16), ("AMF", amf, 2)):
        if len(value.encode("latin-1")) != size or not value.isprintable() or " " in value or "]" in value:
            raise ValueError(f"AKA {name} must be {size} printable characters for SIPp: {value!r}")
        text = text.replace(f"aka_{name}=AKA_{name}", f"aka_{name}={value}")
    path.write_text(text, encoding="latin-1")
    return path


async def run_sipp(
    sipp: str,
    target: str,
    scenario: Path,
    workdir: Path,
    *,
    calls: int,
    rows: Iterable[Sequence[str]] | None = None,
    keys: Mapping[str, str] | None = None,
    options: Sequence[str] = (),
    rate: float = 50,
    local_port: int | None = None,
    limit: float = 15.0,
    name: str | None = None,
) -> SippResult:
    """Run ``sipp target -sf scenario -m calls`` and collect its verdict.

    ``rows`` become the ``-inf`` injection file (a fresh line per call),
    ``keys`` the ``-key NAME VALUE`` keywords.  SIPp stops by itself after
    ``calls`` calls, or after ``limit`` seconds (counted as an error).
    """
    label = name or scenario.stem
    err_file, msg_file, stat_file = _log_files(workdir, label)
    args = [
        target, "-sf", str(scenario), "-m", str(calls), "-r", str(rate),
        "-nostdin", "-default_behaviors", "all,-bye",
        "-trace_err", "-error_file", str(err_file),
        "-trace_msg", "-message_file", str(msg_file),
        "-trace_stat", "-stf", str(stat_file),
        "-timeout", f"{limit:g}s", "-timeout_error",
        "-i", "127.0.0.1",
    ]
    if local_port is not None:
        args += ["-p", str(local_port)]
    if rows is not None:
        args += ["-inf", str(write_csv(workdir / f"{label}_users.csv", rows))]
    for key, value in (keys or {}).items():
        args += ["-key", key, value]
    args += list(options)
    proc = await asyncio.create_subprocess_exec(
        sipp, *args, cwd=workdir,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(limit + 10):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
    returncode = proc.returncode if proc.returncode is not None else -9
    return SippResult(
        returncode=returncode,
        stats=_last_stats(stat_file),
        output=out.decode(errors="replace"),
        errors=_read(err_file),
        messages=_read(msg_file),
    )


def _log_files(workdir: Path, label: str) -> tuple[Path, Path, Path]:
    """Where SIPp writes its error log, message log and statistics (stale ones removed)."""
    workdir.mkdir(parents=True, exist_ok=True)
    files = (
        workdir / f"{label}_errors.log",
        workdir / f"{label}_messages.log",
        workdir / f"{label}_stats.csv",
    )
    for path in files:
        path.unlink(missing_ok=True)
    return files


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _last_stats(path: Path) -> dict[str, str]:
    lines = [line for line in _read(path).splitlines() if line.strip()]
    if len(lines) < 2:
        return {}
    names = lines[0].split(";")
    values = lines[-1].split(";")
    return dict(zip(names, values, strict=False))


# -- baresip ---------------------------------------------------------------------------------


class BaresipError(Exception):
    """baresip did not start, or a ctrl_tcp exchange failed."""


@dataclass(slots=True)
class BaresipAccount:
    """One ``accounts`` line: a SIP Digest account at an outbound proxy (the P-CSCF)."""

    aor: str
    """``sip:alice@home1.net``."""
    auth_user: str
    """SIP Digest user name (the IMPI, ``alice@home1.net``)."""
    password: str
    outbound: str
    """``sip:127.0.0.1:5060`` (baresip adds ``;lr`` itself)."""
    regint: int = 600
    pubint: int = 600
    """Publication lifetime; 0 turns the presence publisher off."""

    def line(self) -> str:
        return (
            f"<{self.aor}>;auth_user={self.auth_user};auth_pass={self.password}"
            f';outbound="{self.outbound}";regint={self.regint};pubint={self.pubint}'
            ";answermode=manual"
        )


@dataclass(slots=True)
class Baresip:
    """A headless baresip process driven through ctrl_tcp."""

    binary: str
    home: Path
    """Its configuration directory (config, accounts, contacts)."""
    sip_port: int
    ctrl_port: int
    account: BaresipAccount
    contacts: Sequence[str] = ()
    """Address-book lines, e.g. ``"Bob" <sip:bob@home1.net>;presence=p2p`` (then watched)."""
    proc: asyncio.subprocess.Process | None = None
    lines: list[str] = field(default_factory=list)
    """Console output so far (ANSI colours removed)."""
    events: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None
    _ctrl_reader: asyncio.Task[None] | None = None
    _ctrl_writer: asyncio.StreamWriter | None = None
    _pending: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _token: int = 0

    def write_config(self) -> None:
        """config, accounts and contacts in ``home``.

        libre listens on TCP and TLS too, TLS on ``sip_port + 1``: the ctrl port
        must be elsewhere.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        modules = "".join(f"module_app\t\t{m}\n" for m in BARESIP_MODULES)
        (self.home / "config").write_text(
            "poll_method\t\tepoll\n"
            f"sip_listen\t\t127.0.0.1:{self.sip_port}\n"
            "sip_trans_def\t\tudp\n"
            f"module_path\t\t{_baresip_module_path(self.binary)}\n"
            f"{modules}"
            f"ctrl_tcp_listen\t\t127.0.0.1:{self.ctrl_port}\n"
            "audio_player\t\tnone,none\n"
            "audio_source\t\tnone,none\n"
            "audio_alert\t\tnone,none\n"
        )
        (self.home / "accounts").write_text(self.account.line() + "\n")
        (self.home / "contacts").write_text("".join(c + "\n" for c in self.contacts))

    async def start(self, *, within: float = 10.0) -> None:
        """Start baresip (with the SIP trace on) and connect to its ctrl_tcp port."""
        self.write_config()
        self.proc = await asyncio.create_subprocess_exec(
            self.binary, "-f", str(self.home), "-s",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read_output())
        try:
            await self.wait_output(r"^baresip is ready", within=within)
            reader, self._ctrl_writer = await asyncio.open_connection("127.0.0.1", self.ctrl_port)
        except BaseException:
            await self.stop(grace=1.0)  # never leave a baresip behind
            raise
        self._ctrl_reader = asyncio.create_task(self._read_ctrl(reader))

    async def stop(self, *, grace: float = 5.0) -> int | None:
        """Ask baresip to quit (it un-publishes, un-subscribes, de-registers first).

        When it is still running after ``grace`` seconds: SIGTERM, then SIGKILL.
        The console output is read to its end.
        """
        proc = self.proc
        asked = False
        if self._ctrl_writer is not None:
            if proc is not None and proc.returncode is None:
                data = json.dumps({"command": "quit", "params": "", "token": "quit"}).encode()
                with contextlib.suppress(ConnectionError, RuntimeError):
                    self._ctrl_writer.write(b"%d:%s," % (len(data), data))
                    await self._ctrl_writer.drain()
                    asked = True
            self._ctrl_writer.close()
        if proc is not None and proc.returncode is None:
            if not asked:
                proc.send_signal(signal.SIGTERM)
            for sig in (signal.SIGTERM if asked else signal.SIGKILL, signal.SIGKILL, None):
                try:
                    await asyncio.wait_for(proc.wait(), grace)
                    break
                except TimeoutError:
                    if sig is not None:
                        with contextlib.suppress(ProcessLookupError):
                            proc.send_signal(sig)
        if self._reader is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._reader, 2.0)
        if self._ctrl_reader is not None:
            self._ctrl_reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ctrl_reader
        return proc.returncode if proc is not None else None

    # -- console output ------------------------------------------------------------------------
    async def _read_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            raw = await self.proc.stdout.readline()
            if not raw:
                break
            self.lines.append(_ANSI.sub("", raw.decode(errors="replace")).rstrip("\r\n"))
            self._changed.set()
        self._changed.set()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def wait_output(
        self, pattern: str, *, within: float = 10.0, after: int = 0, count: int = 1
    ) -> int:
        """Wait until ``count`` output lines from index ``after`` on match ``pattern``.

        Returns the index just past the last matching line (to chain waits).
        Raises BaresipError when baresip exits or ``within`` seconds pass.
        """
        regex = re.compile(pattern)
        try:
            async with asyncio.timeout(within):
                while True:
                    seen = 0
                    for i in range(after, len(self.lines)):
                        if regex.search(self.lines[i]):
                            seen += 1
                            if seen == count:
                                return i + 1
                    if self.proc is not None and self.proc.returncode is not None:
                        raise BaresipError(f"baresip exited ({self.proc.returncode}) before {pattern!r}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise BaresipError(
                f"no {pattern!r} from baresip within {within} s; last output:\n"
                + "\n".join(self.lines[-60:])
            ) from None

    def sip_messages(self, after: int = 0) -> list[str]:
        """SIP messages of the ``-s`` trace from line ``after`` on (each one as text)."""
        out: list[str] = []
        current: list[str] | None = None
        for line in self.lines[after:]:
            if line == "#":
                if current:
                    out.append("\n".join(current))
                current = []
                continue
            if current is not None:
                if line.startswith(("UDP ", "TCP ", "TLS ")) and not current:
                    continue
                current.append(line)
        if current:
            out.append("\n".join(current))
        return out

    # -- ctrl_tcp ----------------------------------------------------------------------------------
    async def _read_ctrl(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                size = await reader.readuntil(b":")
                payload = await reader.readexactly(int(size[:-1]))
                if await reader.readexactly(1) != b",":
                    raise BaresipError("ctrl_tcp: bad netstring")
            except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                break
            message = json.loads(payload)
            if message.get("response"):
                future = self._pending.pop(str(message.get("token")), None)
                if future is not None and not future.done():
                    future.set_result(message)
            elif message.get("event"):
                self.events.put_nowait(message)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BaresipError("ctrl_tcp connection closed"))

    async def command(self, command: str, params: str = "", *, within: float = 5.0) -> dict[str, Any]:
        """Run one baresip command; returns the response (``ok``, ``data``)."""
        if self._ctrl_writer is None:
            raise BaresipError("not connected to ctrl_tcp")
        self._token += 1
        token = f"t{self._token}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        data = json.dumps({"command": command, "params": params, "token": token}).encode()
        self._ctrl_writer.write(b"%d:%s," % (len(data), data))
        await self._ctrl_writer.drain()
        async with asyncio.timeout(within):
            return await future

    async def contact_status(self, uri: str) -> str:
        """The presence baresip shows for a contact (``Online``, ``Offline``, ``Busy``, ``Unknown``)."""
        response = await self.command("contacts")
        for line in _ANSI.sub("", str(response.get("data", ""))).splitlines():
            if uri in line:
                words = line.replace(">", " ").split()
                for word in words:
                    if word in _STATUSES:
                        return word
        raise BaresipError(f"contact {uri} not listed: {response!r}")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STATUSES = ("Online", "Offline", "Busy", "Unknown")


def _baresip_module_path(binary: str) -> str:
    for candidate in ("/usr/lib/baresip/modules", "/usr/local/lib/baresip/modules"):
        if (Path(candidate) / "ctrl_tcp.so").is_file():
            return candidate
    prefix = Path(binary).resolve().parent.parent
    return str(prefix / "lib" / "baresip" / "modules")


def baresip_has_modules(binary: str) -> list[str]:
    """The modules this test needs that the installation lacks."""
    folder = Path(_baresip_module_path(binary))
    return [m for m in BARESIP_MODULES if not (folder / m).is_file()]


# -- our side ----------------------------------------------------------------------------------


def bob_doc(basic: Literal["open", "closed"], activity: str | None = None) -> bytes:
    """A PIDF document of bob's, with an RPID activity when given."""
    persons = (pidf.Person("p1", activities=Activities((activity,))),) if activity else ()
    return pidf.build(pidf.PresenceDocument(BOB, (pidf.PresenceTuple("bob-ue", basic),), persons))


async def until_basic(sub: ClientSubscription, basic: str, within: float = 10.0) -> Notification:
    """The next NOTIFY of ``sub`` whose document has a tuple with ``basic`` (others are skipped)."""
    seen: list[str] = []
    while True:
        try:
            note = await sub.next(within)
        except TimeoutError:
            raise AssertionError(f"no NOTIFY with basic {basic} within {within} s; saw {seen}") from None
        if note.body:
            states = [t.basic for t in pidf.parse(note.body).tuples]
            seen.append(f"{note.state}:{states}")
            if basic in states:
                return note
        else:
            seen.append(f"{note.state}:<no body>")
