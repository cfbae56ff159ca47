"""Capture the message flows shown in docs/interfaces/ from a real run.

    .venv/bin/python tools/capture_flows.py docs/interfaces/flows

Starts home1.net and home2.net in-process (free ports, temporary state),
runs registration (IMS AKA + sec-agree), Peu (PUBLISH), Pw (SUBSCRIBE and
NOTIFY, same network and cross network) and the reg event, with every node
logging at debug level, and writes one ``presence-ims trace`` rendering per
flow.  Addresses and times differ from run to run; the flows do not.
"""

from __future__ import annotations

import asyncio
import io
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from netharness import running_networks  # noqa: E402
from presence_ims import logging as plog  # noqa: E402
from presence_ims.documents import pidf  # noqa: E402
from presence_ims.trace import render  # noqa: E402


async def capture() -> tuple[list[str], dict[str, str]]:
    log = io.StringIO()
    plog.configure("debug", json=True, stream=log)
    flows: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        async with running_networks(Path(tmp)) as (home1, home2):
            alice = await home1.ue("alice", subscribe_reg=False)
            flows["register-aka"] = alice.call_id
            bob = await home1.ue("bob")
            carol = await home2.ue("carol", subscribe_reg=False)
            body = pidf.build(pidf.PresenceDocument("sip:alice@home1.net", (pidf.PresenceTuple("t1", "open"),)))
            r = await alice.agent.publish(body)
            flows["peu-publish"] = r.headers.get("call-id") or ""
            sub = await bob.agent.subscribe("sip:alice@home1.net")
            await sub.next()
            flows["pw-subscribe"] = sub.call_id
            xsub = await carol.agent.subscribe("sip:alice@home1.net")
            await xsub.next()
            flows["pw-cross-network"] = xsub.call_id
            async with asyncio.timeout(5):
                await bob.reg_event_active.wait()
            assert bob.reg_sub is not None
            flows["reg-event"] = bob.reg_sub.call_id
    return log.getvalue().splitlines(), flows


def main(out_dir: Path) -> None:
    lines, flows = asyncio.run(capture())
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, call_id in flows.items():
        (out_dir / f"{name}.txt").write_text(render(lines, call_id=call_id) + "\n")
        print(f"wrote {out_dir / (name + '.txt')}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/interfaces/flows"))
