"""``presence-ims pea``: act as an external source toward the PEA.

    presence-ims pea submit --source calendar-bob --user bob --activity meeting --until 15:00 --note "Design review"
    presence-ims pea submit --source calendar-bob --user bob --calendar configs/calendar/bob.ics
    presence-ims pea submit --source calendar-bob --user bob --clear
    presence-ims pea keygen                        # a new Ed25519 key pair for [[pea.sources]]
    presence-ims pea demo-keys                     # the DEMO ONLY keys of the demo sources

The key comes from ``--key`` (HMAC secret), ``--key-file`` (a file holding the
secret, or an Ed25519 seed as 64 hex digits with ``--ed25519``), or, for the
demo sources of a demo network, from the built-in demo keys.  ``--until
15:00`` means today at 15:00 local time (tomorrow if that has passed); ISO
8601 with an offset is taken as is.  Exit 0 when the PEA accepted, 1 when it
refused (the status and reason are printed), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["parse_until", "register_cli"]

_CLOCK = re.compile(r"(\d{1,2}):(\d{2})\Z")


def parse_until(text: str, now: datetime) -> str:
    """``15:00`` -> the next 15:00 local time as ISO 8601 with offset; ISO text unchanged."""
    m = _CLOCK.match(text.strip())
    if m is None:
        return text
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour > 23 or minute > 59:
        raise ValueError(f"bad time {text!r}")
    local = now.astimezone()
    moment = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if moment <= local:
        moment += timedelta(days=1)
    return moment.isoformat()


def _read_text(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


def _key(args: argparse.Namespace, demo: bool) -> Any:
    from ...cli import UsageError
    from .client import SigningKey
    from .config import DEMO_ED25519_SEED, DEMO_HMAC_KEY

    if args.key is not None:
        secret = args.key
    elif args.key_file is not None:
        try:
            secret = Path(args.key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"cannot read {args.key_file}: {exc.strerror or exc}") from None
    elif demo and args.source == "calendar-bob":
        return SigningKey.hmac("calendar-bob", DEMO_HMAC_KEY)
    elif demo and args.source == "iot-alice":
        return SigningKey.ed25519("iot-alice", DEMO_ED25519_SEED)
    else:
        raise UsageError("give --key or --key-file (demo keys exist only for the demo sources)")
    if args.ed25519:
        return SigningKey.ed25519(args.source, secret)  # PeaError: a usage error in _submit
    return SigningKey.hmac(args.source, secret)


async def _submit(args: argparse.Namespace) -> int:
    from ...cli import UsageError
    from ...config import ConfigError, load
    from .client import submit
    from .errors import PeaError

    try:
        settings = load(args.config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    url = args.url or f"http://{settings.host_of('pea')}:{settings.pea.port}"
    try:
        key = _key(args, settings.network.demo)
    except PeaError as exc:
        raise UsageError(exc.reason) from None
    user = args.user
    presentity = user if ":" in user else f"sip:{user}@{settings.domain}"
    payload: dict[str, Any] = {"presentity": presentity}
    if args.clear:
        payload["clear"] = True
    elif args.calendar:
        try:
            payload["calendar"] = _read_text(args.calendar)
        except OSError as exc:
            raise UsageError(f"cannot read {args.calendar}: {exc.strerror or exc}") from None
    else:
        if args.activity:
            payload["activities"] = args.activity
        if args.note:
            payload["note"] = args.note
        if args.mood:
            payload["mood"] = args.mood
        if args.place_type:
            payload["place_type"] = args.place_type
        if args.sphere:
            payload["sphere"] = args.sphere
        if args.lat is not None or args.lon is not None:
            if args.lat is None or args.lon is None:
                raise UsageError("--lat and --lon go together")
            payload["location"] = {"lat": args.lat, "lon": args.lon}
        try:
            if args.until:
                payload["until"] = parse_until(args.until, datetime.now().astimezone())
            if args.start:
                payload["from"] = parse_until(args.start, datetime.now().astimezone())
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if args.expires is not None:
        payload["expires"] = args.expires
    try:
        status, answer = await submit(url, key, payload)
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"cannot reach the PEA at {url}: {exc}") from None
    except Exception as exc:  # aiohttp's client errors
        raise UsageError(f"cannot reach the PEA at {url}: {type(exc).__name__}: {exc}") from None
    if 200 <= status < 300:
        print(f"accepted ({status}): {answer.get('presentity', presentity)}")
        return 0
    print(f"refused ({status}): {answer.get('error', '?')}: {answer.get('reason', '')}")
    return 1


def cmd_submit(args: argparse.Namespace) -> int:
    from ...cli import run_async

    return run_async(lambda: _submit(args))


def cmd_keygen(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()).hex()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    print(f"private seed (keep it with the source, --key-file): {seed}")
    print(f"public key (key = ... in [[pea.sources]], algorithm = \"ed25519\"): {public}")
    return 0


def cmd_demo_keys(args: argparse.Namespace) -> int:
    from .config import DEMO_ED25519_SEED, DEMO_HMAC_KEY, demo_sources

    print("DEMO ONLY: these keys are published with the code.")
    for source in demo_sources():
        print(f"  {source.id:<14} {source.algorithm:<12} presentities {', '.join(source.presentities)}"
              f"  attributes {', '.join(source.attributes)}")  # fmt: skip
    print(f"  calendar-bob   HMAC secret  {DEMO_HMAC_KEY}")
    print(f"  iot-alice      Ed25519 seed {DEMO_ED25519_SEED}")
    return 0


def register_cli(subparsers: Any) -> None:
    """Add ``pea`` to the ``presence-ims`` command line (``subparsers`` of the top parser)."""
    parser = subparsers.add_parser("pea", help="act as an external source toward the PEA")
    sub = parser.add_subparsers(dest="pea_command", required=True)

    submit = sub.add_parser("submit", help="sign and send a submission")
    submit.add_argument("--config", default="configs/home1.toml", help="network configuration (TOML)")
    submit.add_argument("--url", help="PEA base URL (default: from the configuration)")
    submit.add_argument("--source", required=True, help="source id")
    submit.add_argument("--key", help="HMAC secret (or Ed25519 seed with --ed25519)")
    submit.add_argument("--key-file", help="file holding the secret or seed")
    submit.add_argument("--ed25519", action="store_true", help="the key is an Ed25519 seed (hex)")
    submit.add_argument("--user", required=True, help="presentity: user name (bob) or URI")
    submit.add_argument("--activity", action="append", help="RPID activity (repeatable)")
    submit.add_argument("--note", help="free text")
    submit.add_argument("--mood", action="append", help="RPID mood (repeatable)")
    submit.add_argument("--place-type", action="append", help="RFC 4589 place type (repeatable)")
    submit.add_argument("--sphere", choices=["home", "work", "unknown"])
    submit.add_argument("--lat", type=float)
    submit.add_argument("--lon", type=float)
    submit.add_argument("--start", help="from: HH:MM (next) or ISO 8601")
    submit.add_argument("--until", help="until: HH:MM (next) or ISO 8601")
    submit.add_argument("--expires", type=int, help="seconds it holds")
    submit.add_argument("--calendar", help="an iCalendar file the PEA should follow")
    submit.add_argument("--clear", action="store_true", help="withdraw what this source set")
    submit.set_defaults(func=cmd_submit)

    keygen = sub.add_parser("keygen", help="make an Ed25519 key pair for a source")
    keygen.set_defaults(func=cmd_keygen)
    demo = sub.add_parser("demo-keys", help="print the DEMO ONLY keys of the demo sources")
    demo.set_defaults(func=cmd_demo_keys)
