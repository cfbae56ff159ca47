"""SIPp and baresip against ``presence-ims up`` itself (a subprocess, as a user runs it).

The same flows as the other interop tests, but through the command line
contract: the network comes up from a TOML file (every port free, state in
the test's folder), says ``ready:``, and stops cleanly on SIGINT.  alice is
SIPp, then baresip (SIP Digest at the P-CSCF); bob is our UE (IMS AKA with
sec-agree) in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from interop_peers import (
    ALICE,
    BOB,
    SCENARIOS,
    Baresip,
    BaresipAccount,
    bob_doc,
    run_sipp,
    until_basic,
)

from netharness import ROOT, free_port, network_config, write_toml
from presence_ims.config import NetworkSettings, load
from presence_ims.documents import pidf
from presence_ims.nodes.ue import UeConfig, UserEquipment

pytestmark = [pytest.mark.interop, pytest.mark.slow, pytest.mark.timeout(90)]


def write_config(folder: Path) -> Path:
    """configs/home1.toml with free ports and its state under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path: Path = write_toml(network_config("home1", folder), folder / "home1.toml")
    return path


@contextlib.asynccontextmanager
async def presence_ims_up(folder: Path) -> AsyncIterator[NetworkSettings]:
    """``python -m presence_ims up --config FILE`` until its ``ready:`` line; SIGINT at the end."""
    config = write_config(folder)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "presence_ims", "up", "--config", str(config),
        "--log-level", "warning", cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(30):
            while True:
                line = (await proc.stdout.readline()).decode(errors="replace")
                if not line:
                    raise AssertionError("presence-ims up exited:\n" + "".join(seen))
                seen.append(line)
                if line.startswith("ready:"):
                    break
    except TimeoutError:
        proc.kill()
        raise AssertionError("no ready: line from presence-ims up:\n" + "".join(seen)) from None
    drain = asyncio.create_task(proc.stdout.read())
    try:
        yield load(config)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        rest = (await drain).decode(errors="replace")
        assert proc.returncode == 0, "".join(seen) + rest


async def bob_ue(settings: NetworkSettings) -> UserEquipment:
    sub = next(s for s in settings.subscribers if s.impi == "bob@home1.net")
    ue = UserEquipment(UeConfig(
        impi=sub.impi, impu=sub.default_impu, domain=settings.domain,
        pcscf=f"127.0.0.1:{settings.pcscf.port}", k=sub.k, op=sub.op, opc=sub.opc,
        password=sub.digest_password,
    ), node="ue-bob")
    await ue.start()
    await ue.register()
    return ue


async def test_sipp_and_baresip_against_presence_ims_up(
    tmp_path: Path, sipp: str, baresip: str, workdir: Path
) -> None:
    async with presence_ims_up(tmp_path / "net") as settings:
        pcscf = f"127.0.0.1:{settings.pcscf.port}"
        bob = await bob_ue(settings)
        try:
            watch = await bob.agent.subscribe(ALICE)
            assert watch.response is not None and watch.response.status == 200
            await watch.next()

            # SIPp: REGISTER with SIP Digest, PUBLISH along the Service-Route, removal
            result = await run_sipp(
                sipp, pcscf, SCENARIOS / "register_digest.xml", workdir,
                calls=1, rows=[("alice",)],
                keys={"domain": "home1.net", "expires": "600", "note": "sipp-via-up"},
                options=["-au", "alice@home1.net", "-ap", "alice-demo", "-auth_uri", "home1.net"],
                local_port=free_port(),
            )
            assert result.returncode == 0 and result.successful == 1, result.describe()
            note = await until_basic(watch, "open")
            assert pidf.parse(note.body).tuples[0].notes[0].text == "sipp-via-up"

            # baresip: registers, publishes; its change reaches bob, bob's reaches it
            bs = Baresip(
                baresip, workdir / "baresip", free_port(), free_port(),
                BaresipAccount(ALICE, "alice@home1.net", "alice-demo", f"sip:{pcscf}"),
                contacts=[f'"Bob" <{BOB}>;presence=p2p'],
            )
            await bs.start()
            try:
                await bs.wait_output(r"alice@home1\.net: \{0/UDP/v4\} 200 OK")
                await until_basic(watch, "open")
                assert (await bs.command("presence_offline"))["ok"]
                await until_basic(watch, "closed")
                mark = await bs.wait_output(r'entity="sip:bob@home1\.net"', within=10)
                assert (await bob.agent.publish(bob_doc("open"))).status == 200
                await bs.wait_output(
                    r'entity="sip:bob@home1\.net".*<basic>open</basic>', after=mark, within=10
                )
                assert await bs.contact_status(BOB) == "Online"
            finally:
                await bs.stop()
        finally:
            await bob.stop()
