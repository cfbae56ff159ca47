"""The PS in several worker processes behind one UDP address (decision D13).

Real processes (spawned), one shared UDP socket, UAs built on our stack. Each
presentity lives in one worker; whichever worker reads a datagram hands it to
the owner, so every step of a presentity's life (publish, modify by entity tag,
subscribe, refresh and end a dialog, the answers to NOTIFYs, rule edits over
XCAP, a restart with another number of workers) must reach the one process that
holds its state. A datagram read by the wrong worker shows up here as a 412, a
481, a missing NOTIFY or a NOTIFY with the wrong document.

``PS_WORKERS_LOG=debug`` shows the workers' logs (every message, with its worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import DigestAuthMiddleware

from presence_ims.documents import pidf
from presence_ims.nodes.ps.config import PsConfig
from presence_ims.nodes.ps.core import canonical_key
from presence_ims.nodes.ps.node import PsStartError
from presence_ims.nodes.ps.shard import shard_of
from presence_ims.nodes.ps.workers import PsCluster
from psagents import Agents

USERS = [f"sip:user{i}@home1.net" for i in range(10)]


def doc(entity: str, note: str, basic: str = "open") -> bytes:
    return pidf.build(
        pidf.PresenceDocument(entity, (pidf.PresenceTuple("t1", basic, notes=(pidf.Note(note),)),))
    )


def note_of(body: bytes) -> str:
    return pidf.parse(body).tuples[0].notes[0].text


@contextlib.asynccontextmanager
async def cluster(workers: int = 2, **config: Any) -> AsyncIterator[PsCluster]:
    values: dict[str, Any] = {
        "trust": "open", "sip": ("udp:127.0.0.1:0",), "store": "memory", "workers": workers,
    }
    values.update(config)
    ps = PsCluster(PsConfig(**values), log_level=os.environ.get("PS_WORKERS_LOG", "warning"))
    await ps.start()
    try:
        yield ps
    finally:
        await ps.stop()


def test_the_users_cover_every_worker() -> None:
    """The tests below mean something only if their presentities live in different workers."""
    for workers in (2, 3):
        assert {shard_of(canonical_key(u, {}), workers) for u in USERS} == set(range(workers))


async def test_each_presentity_is_served_whole_by_its_worker() -> None:
    async with cluster(2) as ps:
        assert len(set(ps.pids)) == 2 and os.getpid() not in ps.pids
        agents = Agents(ps.port())
        try:
            watcher = await agents.ua("sip:watcher@home1.net")
            etags = {}
            for user in USERS:
                r = await (await agents.ua(user)).publish(doc(user, f"{user} here"))
                assert r.status == 200
                etags[user] = r.headers.get("sip-etag")
            subs = {}
            for user in USERS:
                sub = await watcher.subscribe(user, expires=600)
                assert sub.response is not None and sub.response.status == 200
                n = await sub.next()
                assert n.state == "active" and note_of(n.body) == f"{user} here"
                subs[user] = sub
            for user in USERS:
                # modify by entity tag: only the owner knows the tag (412 elsewhere)
                publisher = await agents.ua(user)
                r = await publisher.publish(doc(user, f"{user} moved", "closed"), etag=etags[user])
                assert r.status == 200, (user, r.status)
                n = await subs[user].next()
                assert note_of(n.body) == f"{user} moved"
                # in-dialog refresh and end: the PS's To tag leads to the owner (481 elsewhere)
                r = await watcher.refresh(subs[user], expires=300)
                assert r.status == 200, (user, r.status)
                assert (await subs[user].next()).state == "active"
                r = await watcher.unsubscribe(subs[user])
                assert r.status == 200, (user, r.status)
                end = await subs[user].next()
                assert end.state == "terminated" and end.params["reason"] == "timeout"
        finally:
            await agents.close()


async def test_rules_edited_over_xcap_reach_the_owner_of_the_presentity() -> None:
    block = (
        b'<cp:ruleset xmlns:cp="urn:ietf:params:xml:ns:common-policy" '
        b'xmlns:pr="urn:ietf:params:xml:ns:pres-rules"><cp:rule id="r1"><cp:conditions>'
        b'<cp:identity><cp:one id="sip:watcher@home1.net"/></cp:identity></cp:conditions>'
        b"<cp:actions><pr:sub-handling>block</pr:sub-handling></cp:actions></cp:rule></cp:ruleset>"
    )
    credentials = {f"user{i}@home1.net": f"pw{i}" for i in range(len(USERS))}
    identities = {f"user{i}@home1.net": (USERS[i],) for i in range(len(USERS))}
    async with cluster(2, xcap="http:127.0.0.1:0", credentials=credentials,
                       identities=identities) as ps:
        agents = Agents(ps.port())
        try:
            watcher = await agents.ua("sip:watcher@home1.net")
            subs = {}
            for user in USERS:
                subs[user] = await watcher.subscribe(user, expires=600)
                assert (await subs[user].next()).state == "active"
            root = f"http://127.0.0.1:{ps.xcap.port}/xcap-root"
            for i, user in enumerate(USERS):
                auth = DigestAuthMiddleware(f"user{i}@home1.net", f"pw{i}")
                async with aiohttp.ClientSession(middlewares=(auth,)) as http:
                    r = await http.put(f"{root}/pres-rules/users/{user}/index", data=block,
                                       headers={"Content-Type": "application/auth-policy+xml"})
                    assert r.status in (200, 201), await r.text()
                end = await subs[user].next()
                assert end.state == "terminated" and end.params["reason"] == "rejected", user
        finally:
            await agents.close()


async def test_a_restart_with_more_workers_resumes_every_subscription(tmp_path: Path) -> None:
    store = f"sqlite:{tmp_path / 'ps.db'}"
    async with cluster(2, store=store) as ps:
        port = ps.port()
        agents = Agents(port)
        watcher = await agents.ua("sip:watcher@home1.net")
        etags, subs = {}, {}
        for user in USERS:
            r = await (await agents.ua(user)).publish(doc(user, f"{user} before"))
            etags[user] = r.headers.get("sip-etag")
            subs[user] = await watcher.subscribe(user, expires=600)
            assert note_of((await subs[user].next()).body) == f"{user} before"
    try:
        # three workers now: presentities move, tags and the restored state move alike
        async with cluster(3, store=store, sip=(f"udp:127.0.0.1:{port}",)) as ps:
            for user in USERS:
                resumed = await subs[user].next()
                assert resumed.state == "active" and note_of(resumed.body) == f"{user} before"
            for user in USERS:
                r = await (await agents.ua(user)).publish(doc(user, f"{user} after"), etag=etags[user])
                assert r.status == 200, (user, r.status)
                assert note_of((await subs[user].next()).body) == f"{user} after"
                r = await watcher.refresh(subs[user], expires=300)
                assert r.status == 200, (user, r.status)
                assert (await subs[user].next()).state == "active"
    finally:
        await agents.close()


async def test_a_worker_that_dies_fails_the_whole_ps() -> None:
    async with cluster(2) as ps:
        assert ps.failed is not None
        os.kill(ps.pids[1], signal.SIGKILL)
        reason = await asyncio.wait_for(ps.failed, 10)
        assert "PS worker 1" in reason and "exited" in reason


async def test_workers_serve_udp_only() -> None:
    with pytest.raises(PsStartError, match="exactly one UDP listener"):
        async with cluster(2, sip=("udp:127.0.0.1:0", "tcp:127.0.0.1:0")):
            pass


async def test_the_workers_die_with_their_parent_even_by_sigkill() -> None:
    """A worker left alone would go on answering for its presentities on the port."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "presence_ims", "node", "ps", "--trust", "open",
        "--sip", "udp:127.0.0.1:0", "--workers", "2", "--log-level", "error",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    pidfds: list[int] = []
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.startswith(b"ready: ps") and b"workers=2" in line
        pidfds = _children_pidfds(proc.pid)
        assert len(pidfds) >= 2  # the workers (and multiprocessing's resource tracker)
        proc.kill()
        # a pidfd becomes readable when its process has exited: no polling
        ready = await asyncio.to_thread(_wait_readable, pidfds, 15.0)
        survivors = [fd for fd in pidfds if fd not in ready]
        for fd in survivors:  # they hold the pipe that proc.wait() waits for: end them
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        assert not survivors, f"{len(survivors)} worker(s) outlived their parent"
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        for fd in pidfds:
            os.close(fd)


@pytest.mark.parametrize("workers", [1, 2])
async def test_an_open_ps_says_so_in_its_first_log_line_once(workers: int) -> None:
    """Issue #3: the explicit ``open`` trust mode says so in its first log line; with
    workers, the parent says it and the workers do not repeat it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "presence_ims", "node", "ps", "--trust", "open",
        "--sip", "udp:127.0.0.1:0", "--workers", str(workers), "--log-level", "info",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.startswith(b"ready: ps"), line
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
    events = [json.loads(raw)["event"] for raw in err.splitlines() if raw.startswith(b"{")]
    assert events and events[0] == "trust_mode_open", events[:5]
    assert events.count("trust_mode_open") == 1, events


def _children_pidfds(pid: int) -> list[int]:
    """pidfds of the processes whose parent is ``pid`` (from /proc/*/stat: field 4)."""
    fds = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rpartition(")")[2].split()[1])
            if ppid == pid:
                fds.append(os.pidfd_open(int(entry)))
        except (OSError, ValueError, IndexError):  # gone meanwhile
            continue
    return fds


def _wait_readable(fds: list[int], timeout: float) -> list[int]:
    done: list[int] = []
    deadline = time.monotonic() + timeout
    while len(done) < len(fds) and time.monotonic() < deadline:
        readable, _, _ = select.select([f for f in fds if f not in done], [], [],
                                       max(0.0, deadline - time.monotonic()))
        done.extend(readable)
    return done


async def test_a_rules_document_of_the_largest_size_reaches_its_worker() -> None:
    """XCAP takes documents up to 64 KiB; the edit travels to the owner as one control
    datagram, whatever characters the document holds."""
    ones = "".join(f'<cp:one id="sip:\u00fcser{i}@home1.net"/>' for i in range(1650))
    ruleset = (
        '<cp:ruleset xmlns:cp="urn:ietf:params:xml:ns:common-policy" '
        'xmlns:pr="urn:ietf:params:xml:ns:pres-rules"><cp:rule id="r1"><cp:conditions>'
        f'<cp:identity><cp:one id="sip:watcher@home1.net"/>{ones}</cp:identity></cp:conditions>'
        "<cp:actions><pr:sub-handling>block</pr:sub-handling></cp:actions></cp:rule></cp:ruleset>"
    ).encode()
    assert 60_000 < len(ruleset) <= 64 * 1024
    user = USERS[0]
    async with cluster(2, xcap="http:127.0.0.1:0", credentials={"user0@home1.net": "pw0"},
                       identities={"user0@home1.net": (user,)}) as ps:
        agents = Agents(ps.port())
        try:
            watcher = await agents.ua("sip:watcher@home1.net")
            sub = await watcher.subscribe(user, expires=600)
            assert (await sub.next()).state == "active"
            auth = DigestAuthMiddleware("user0@home1.net", "pw0")
            async with aiohttp.ClientSession(middlewares=(auth,)) as http:
                r = await http.put(f"http://127.0.0.1:{ps.xcap.port}/xcap-root/pres-rules/users/{user}/index",
                                   data=ruleset, headers={"Content-Type": "application/auth-policy+xml"})
                assert r.status in (200, 201), await r.text()
            end = await sub.next()
            assert end.state == "terminated" and end.params["reason"] == "rejected"
        finally:
            await agents.close()
