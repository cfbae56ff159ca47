"""The Peu and Pw scenario from a UE host of its own (run inside a network namespace).

    python ue_scenario.py --config configs/compose.toml --pcscf 10.201.60.14:5060 \
        --host 10.201.60.254 --auth digest --tag run1

alice registers at the P-CSCF and publishes; bob registers and subscribes to
alice; alice publishes a change.  Every step is printed as one JSON line
(``{"event": "notify", ...}`` carries what the watcher received, body
included) so the test can assert on it; the last line is ``{"event": "done"}``
or ``{"event": "error", "reason": ...}`` (exit code 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.request
from typing import Any, Literal

from presence_ims.config import NetworkSettings, load
from presence_ims.documents import pidf
from presence_ims.documents.rpid import Note
from presence_ims.nodes.ue import UeConfig, UserEquipment
from presence_ims.ua import ClientSubscription, Notification


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def document(entity: str, basic: Literal["open", "closed"], note: str) -> bytes:
    tuple_ = pidf.PresenceTuple("t1", basic, notes=(Note(note),))
    return pidf.build(pidf.PresenceDocument(entity, (tuple_,)))


def ue_config(settings: NetworkSettings, user: str, args: argparse.Namespace) -> UeConfig:
    sub = next(s for s in settings.subscribers if s.impi.split("@")[0] == user)
    return UeConfig(
        impi=sub.impi, impu=sub.default_impu, domain=settings.domain, pcscf=args.pcscf,
        host=args.host, auth=args.auth, k=sub.k, op=sub.op, opc=sub.opc,
        password=sub.digest_password,
    )


def xcap_probe(url: str) -> None:
    """An unauthenticated GET at the XCAP root: the server must answer (401 with a challenge)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            emit("xcap", status=resp.status, www_authenticate=None)
    except urllib.error.HTTPError as exc:
        emit("xcap", status=exc.code, www_authenticate=exc.headers.get("WWW-Authenticate"))
    except OSError as exc:
        emit("xcap", status=None, reason=str(exc))


def notified(n: Notification) -> None:
    vias = [str(v) for v in n.request.headers.get_all("via")]
    emit("notify", state=n.state, content_type=n.content_type, vias=vias,
         body=n.body.decode(errors="replace"))


async def scenario(args: argparse.Namespace) -> None:
    settings = load(args.config)
    alice = UserEquipment(ue_config(settings, "alice", args), node="ue-alice")
    bob = UserEquipment(ue_config(settings, "bob", args), node="ue-bob")
    sub: ClientSubscription | None = None
    try:
        await alice.start()
        reg = await alice.register()
        emit("registered", user="alice", protected=alice.protected, impus=reg.impus)
        r = await alice.agent.publish(document(alice.config.impu, "open", f"desk {args.tag}"))
        etag = r.headers.get("sip-etag")
        emit("published", user="alice", status=r.status, etag=etag)
        await bob.start()
        reg = await bob.register()
        emit("registered", user="bob", protected=bob.protected, impus=reg.impus)
        sub = await bob.agent.subscribe(alice.config.impu)
        emit("subscribed", status=sub.response.status if sub.response else None)
        notified(await sub.next(10))
        r = await alice.agent.publish(
            document(alice.config.impu, "closed", f"away {args.tag}"), etag=etag
        )
        etag = r.headers.get("sip-etag") or etag
        emit("published", user="alice", status=r.status, etag=etag)
        notified(await sub.next(10))
        r = await bob.agent.unsubscribe(sub)
        emit("unsubscribed", status=r.status)
        sub = None
        r = await alice.agent.publish(None, expires=0, etag=etag)
        emit("unpublished", status=r.status)
    finally:
        for ue in (bob, alice):
            try:
                await ue.stop(deregister=ue.registration is not None)
            except Exception as exc:  # report, but let the scenario's own error win
                emit("stop_failed", user=ue.config.impi, reason=f"{type(exc).__name__}: {exc}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--pcscf", required=True, help="HOST:PORT of the P-CSCF")
    parser.add_argument("--host", required=True, help="this UE host's address")
    parser.add_argument("--auth", choices=["aka", "digest"], default="digest")
    parser.add_argument("--xcap", help="XCAP root URL to probe")
    parser.add_argument("--tag", default="t")
    parser.add_argument("--timeout", type=float, default=40.0)
    args = parser.parse_args()
    if args.xcap:
        xcap_probe(args.xcap)

    async def run() -> None:
        async with asyncio.timeout(args.timeout):
            await scenario(args)

    try:
        asyncio.run(run())
    except Exception as exc:
        emit("error", reason=f"{type(exc).__name__}: {exc}")
        return 1
    emit("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
