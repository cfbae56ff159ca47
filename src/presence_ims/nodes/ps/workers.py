"""The Presence Server in several worker processes behind one UDP address (D13).

One Python process answers on one core. ``workers = N`` starts N PS processes
(``multiprocessing``, spawned) that all read one UDP socket bound by the
parent; each owns the presentities that :mod:`.shard` gives it and hands the
datagrams of the others over (:mod:`...transport.shared_udp`). What a
presentity has (publications, watchers, rules) lives in its worker, so a
PUBLISH is composed and notified where its watchers are.

The parent binds the socket, reads the run markers of the store (did every
worker stop cleanly last time?), starts the workers and waits until each has
restored its share of the store and is serving, runs the XCAP server (an edit
of a user's pres-rules goes to the worker that owns the user as a control
message), and stops the workers with SIGTERM. A worker that dies stops the
whole PS (``failed``): half a presence service answering is worse than none.

Stores: ``memory`` gives each worker its own (nothing needs sharing: a
presentity lives in one worker); ``sqlite:PATH`` is one file, opened by every
worker and by the parent (XCAP documents), in WAL mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import signal
import socket
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from ...logging import get_logger
from ...storage import Store, StoreError, open_store
from ...transport.resolve import Resolver
from ...transport.shared_udp import SharedUdpTransport, control_message, inbox_pair
from ...transport.spec import parse_listen
from ...transport.udp import bind_udp
from .config import PsConfig
from .core import canonical_key
from .node import RUN_MARKER, PsStartError, WorkerPlan, say_trust_mode, start_xcap
from .shard import Router, shard_of

PR_SET_PDEATHSIG = 1
"""prctl option: the signal a process gets when its parent dies (linux/prctl.h)."""
START_TIMEOUT = 60.0
"""Seconds a worker may take to start (imports, restoring its share of the store)."""
STOP_TIMEOUT = 10.0
"""Seconds a worker may take to stop after SIGTERM before it is killed."""


@dataclass
class _WorkerArgs:
    """Everything a worker process gets (pickled by ``multiprocessing``; sockets pass as fds)."""

    config: PsConfig
    index: int
    count: int
    sock: socket.socket
    inbox: socket.socket
    outboxes: list[socket.socket]
    resolver: Resolver | None
    initial_rules: dict[str, list[str]]
    unclean: bool
    log_level: str
    conn: Connection
    parent: int


class PsCluster:
    """``config.workers`` PS processes; the same start/stop/port surface as PresenceServer."""

    def __init__(
        self,
        config: PsConfig,
        *,
        resolver: Resolver | None = None,
        server_ssl: Any = None,
        log_level: str = "info",
    ) -> None:
        self.config = config
        self.resolver = resolver
        self.server_ssl = server_ssl
        self.log_level = log_level
        self.log = get_logger(node="ps", net=config.domain)
        self.initial_rules: dict[str, list[str]] = {}
        self.store: Store = open_store(config.store)
        self.xcap: Any = None
        self.failed: asyncio.Future[str] | None = None
        """Resolves with a reason when a worker dies while the PS runs."""
        self.pids: list[int] = []
        self._sock: socket.socket | None = None
        self._outboxes: list[socket.socket] = []
        self._processes: list[Any] = []
        self._stopping = False
        self._aliases = dict(config.aliases)

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        specs = [parse_listen(s) for s in self.config.sip]
        if len(specs) != 1 or specs[0].transport != "udp":
            raise PsStartError(
                f"workers = {self.config.workers} needs exactly one UDP listener "
                f"(got {', '.join(self.config.sip) or 'none'}): TCP and TLS are served by one process"
            )
        spec = specs[0]
        say_trust_mode(self.config, self.log)
        self.failed = asyncio.get_running_loop().create_future()
        try:
            await self.store.open()
            unclean = await self._read_run_markers()
        except StoreError as exc:
            raise PsStartError(str(exc)) from None
        try:
            self._sock = bind_udp(spec.host, spec.port)
        except OSError as exc:
            await self.store.close()
            raise PsStartError(f"PS cannot listen on {spec}: {exc.strerror or exc}") from None
        try:
            await self._spawn(unclean)
            if self.config.xcap:
                self.xcap = await start_xcap(self.config, self.store, self._xcap_changed, self.server_ssl)
        except BaseException:
            await self.stop()
            raise
        self.log.info(
            "listening", transport="udp", host=spec.host, port=self.port(), workers=self.config.workers
        )

    async def _read_run_markers(self) -> bool:
        """Did some worker (or a single PS) of the last run not stop? Then forget the markers:
        each worker writes its own again."""
        markers = await self.store.load(RUN_MARKER[0])
        unclean = any(isinstance(v, dict) and not v.get("clean", True) for v in markers.values())
        for key in markers:
            self.store.delete(RUN_MARKER[0], key)
        await self.store.flush()
        return unclean

    async def _spawn(self, unclean: bool) -> None:
        assert self._sock is not None
        count = self.config.workers
        pairs = [inbox_pair() for _ in range(count)]
        self._outboxes = [sender for sender, _ in pairs]
        worker_config = self.config.model_copy(update={"xcap": None})
        context = multiprocessing.get_context("spawn")
        conns: list[Connection] = []
        try:
            for index in range(count):
                parent_end, child_end = context.Pipe(duplex=False)
                args = _WorkerArgs(
                    config=worker_config,
                    index=index,
                    count=count,
                    sock=self._sock,
                    inbox=pairs[index][1],
                    outboxes=self._outboxes,
                    resolver=self.resolver,
                    initial_rules=self.initial_rules,
                    unclean=unclean,
                    log_level=self.log_level,
                    conn=child_end,
                    parent=os.getpid(),
                )
                process = context.Process(
                    target=_worker_main, args=(args,), name=f"presence-ims-ps-{index}", daemon=True
                )
                process.start()
                child_end.close()
                self._processes.append(process)
                conns.append(parent_end)
        finally:
            for _, receiving in pairs:  # the workers have their own copies
                receiving.close()
        for index, conn in enumerate(conns):
            ready = await asyncio.to_thread(conn.poll, START_TIMEOUT)
            try:
                message = conn.recv() if ready else ("error", "did not start in time")
            except EOFError:
                message = ("error", "exited while starting")
            conn.close()
            if message[0] != "ready":
                raise PsStartError(f"PS worker {index}: {message[1]}")
            self.pids.append(int(message[1]))
        loop = asyncio.get_running_loop()
        for index, process in enumerate(self._processes):
            loop.add_reader(process.sentinel, self._worker_exited, index)

    def _worker_exited(self, index: int) -> None:
        process = self._processes[index]
        asyncio.get_running_loop().remove_reader(process.sentinel)
        if self._stopping:
            return
        process.join(0)
        reason = f"PS worker {index} (pid {process.pid}) exited with code {process.exitcode}"
        self.log.error("worker_exited", worker=index, pid=process.pid, exitcode=process.exitcode)
        if self.failed is not None and not self.failed.done():
            self.failed.set_result(reason)

    async def stop(self) -> None:
        self._stopping = True
        loop = asyncio.get_running_loop()
        if self.xcap is not None:
            await self.xcap.stop()
            self.xcap = None
        for process in self._processes:
            loop.remove_reader(process.sentinel)
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        for index, process in enumerate(self._processes):
            await asyncio.to_thread(process.join, STOP_TIMEOUT)
            if process.is_alive():
                self.log.warning("worker_killed", worker=index, pid=process.pid)
                process.kill()
                await asyncio.to_thread(process.join, STOP_TIMEOUT)
        self._processes.clear()
        for sock in [*self._outboxes, *([self._sock] if self._sock else [])]:
            sock.close()
        self._outboxes.clear()
        self._sock = None
        try:
            await self.store.close()
        except StoreError as exc:
            self.log.error("store_close_failed", reason=str(exc))

    def port(self, transport: str = "udp") -> int:
        if transport != "udp" or self._sock is None:
            raise KeyError(transport)
        return int(self._sock.getsockname()[1])

    # -- rules -----------------------------------------------------------------------------------
    def worker_of(self, uri: str) -> int:
        return shard_of(canonical_key(uri, self._aliases), self.config.workers)

    def _xcap_changed(self, auid: str, xui: str, name: str, content: bytes | None) -> None:
        if auid != "pres-rules" or name != "index":
            return
        self.send_control(
            self.worker_of(xui), {"op": "rules", "auid": auid, "xui": xui, "name": name}, content
        )

    def send_control(self, worker: int, message: dict[str, Any], content: bytes | None = None) -> None:
        try:
            self._outboxes[worker].send(control_message(message, content))
        except (OSError, ValueError) as exc:
            self.log.error("control_message_lost", worker=worker, op=message.get("op"),
                           reason=str(exc))


# -- in the worker process ------------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """SIGTERM this process when the parent dies, even by SIGKILL (Linux prctl
    PR_SET_PDEATHSIG): a worker left alone would go on serving its share of the
    presentities, and the port, behind the back of the next start."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)


def _worker_main(args: _WorkerArgs) -> None:
    """Entry point of a worker process: Ctrl-C is the parent's; SIGTERM (from it, or its
    death) stops it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(args.parent)
    from ... import logging as plog
    from ...cli import run_async

    plog.configure(args.log_level)
    run_async(lambda: _run_worker(args))


async def _run_worker(args: _WorkerArgs) -> int:
    from .node import PresenceServer

    aliases = dict(args.config.aliases)
    router = Router(args.count, lambda uri: canonical_key(uri, aliases))

    def transport(endpoint: Any, on_control: Any) -> SharedUdpTransport:
        return SharedUdpTransport(
            endpoint,
            args.sock,
            index=args.index,
            inbox=args.inbox,
            outboxes=args.outboxes,
            route=router.route,
            host=args.config.advertise,
            on_control=on_control,
        )

    plan = WorkerPlan(args.index, args.count, transport, unclean=args.unclean)
    node = PresenceServer(args.config, resolver=args.resolver, worker=plan)
    node.initial_rules = {
        presentity: watchers
        for presentity, watchers in args.initial_rules.items()
        if plan.owns(canonical_key(presentity, aliases))
    }
    try:
        await node.start()
    except (PsStartError, StoreError, OSError) as exc:
        args.conn.send(("error", str(exc)))
        return 1
    args.conn.send(("ready", os.getpid()))
    args.conn.close()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await node.stop()
    return 0
