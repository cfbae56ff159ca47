"""``presence-ims ue``: a UE on the command line, interactive or one-shot.

    presence-ims ue --user alice                      # interactive
    presence-ims ue --user alice publish --status open --activity busy --note "in a call"
    presence-ims ue --user bob watch alice --count 1 --timeout 10
    presence-ims ue --user alice rules allow bob      # XCAP

Credentials come from the network configuration (the demo subscribers) or
from flags, so the same command can register at somebody else's IMS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import sys
from dataclasses import dataclass
from typing import Any, Literal

from .documents import pidf, presrules
from .documents.rpid import Activities, Note
from .documents.xml import DocumentError
from .nodes.ue import RegistrationError, UeConfig, UserEquipment
from .ua import ClientSubscription, Notification

COMMANDS_HELP = """commands:
  publish [--status open|closed] [--activity A] [--note TEXT]   publish my presence
  unpublish                                                     remove my publication
  watch USER [--count N] [--timeout S] [--xml]                  subscribe and print NOTIFYs
  unwatch USER                                                  end a subscription
  winfo [--count N] [--timeout S]                               who watches me
  rules [show | allow USER | block USER | polite-block USER | confirm USER]
  help, quit"""


class CliError(Exception):
    """A user mistake; printed as one line."""


@dataclass
class Session:
    ue: UserEquipment
    domain: str
    xcap: str | None
    password: str | None
    etag: str | None = None
    watches: dict[str, ClientSubscription] | None = None

    def __post_init__(self) -> None:
        self.watches = {}


def user_uri(text: str, domain: str) -> str:
    """``alice`` -> ``sip:alice@home1.net``; URIs pass unchanged."""
    if text.startswith(("sip:", "sips:", "tel:", "pres:")):
        return text
    if "@" in text:
        return f"sip:{text}"
    if text.startswith("+"):
        return f"tel:{text}"
    return f"sip:{text}@{domain}"


def describe(n: Notification, *, xml: bool = False) -> str:
    """A NOTIFY as one readable line (and the document with ``xml``)."""
    head = n.state if n.state != "active" else "active"
    if n.state == "terminated":
        return f"subscription terminated ({n.params.get('reason', 'no reason')})"
    if not n.body:
        return f"{head}: no presence information yet (waiting for approval)" if n.state == "pending" else head
    try:
        doc = pidf.parse(n.body)
    except DocumentError as exc:
        return f"{head}: unreadable document ({exc.reason})"
    parts = []
    basics = [t.basic for t in doc.tuples if t.basic]
    parts.append("/".join(dict.fromkeys(basics)) or "unknown")
    for person in doc.persons:
        if person.activities and person.activities.values:
            parts.append("activity " + ",".join(person.activities.values))
        for note in person.notes:
            parts.append(f'"{note.text}"')
        if person.location is not None:
            parts.append("location known")
    for t in doc.tuples:
        for note in t.notes:
            parts.append(f'"{note.text}"')
    line = f"{doc.entity}: " + "; ".join(parts)
    if xml:
        line += "\n" + n.body.decode("utf-8", "replace")
    return line


def publish_document(
    entity: str, status: Literal["open", "closed"], activity: str | None, note: str | None
) -> bytes:
    persons: tuple[pidf.Person, ...] = ()
    notes = (Note(note),) if note else ()
    if activity:
        persons = (pidf.Person("p1", activities=Activities((activity,))),)
    return pidf.build(
        pidf.PresenceDocument(entity, (pidf.PresenceTuple("ue", status, notes=notes),), persons)
    )


async def run_command(session: Session, argv: list[str], out: Any) -> bool:
    """Run one command; False means quit."""
    if not argv:
        return True
    cmd, rest = argv[0], argv[1:]
    ue = session.ue
    if cmd in ("quit", "exit"):
        return False
    if cmd == "help":
        print(COMMANDS_HELP, file=out)
        return True
    if cmd == "publish":
        p = _parser("publish")
        p.add_argument("--status", choices=["open", "closed"], default="open")
        p.add_argument("--activity")
        p.add_argument("--note")
        p.add_argument("--expires", type=int, default=3600)
        a = p.parse_args(rest)
        if a.activity and a.activity not in _ACTIVITIES:
            raise CliError(f"unknown activity {a.activity!r}: one of {', '.join(sorted(_ACTIVITIES))}")
        body = publish_document(ue.config.impu, a.status, a.activity, a.note)
        r = await ue.agent.publish(body, etag=session.etag, expires=a.expires)
        if r.status == 412 and session.etag:
            session.etag = None
            r = await ue.agent.publish(body, expires=a.expires)
        if r.status != 200:
            raise CliError(f"PUBLISH refused: {r.status} {r.reason}")
        session.etag = r.headers.get("sip-etag")
        print(f"published: {a.status}" + (f", {a.activity}" if a.activity else "") + (f', "{a.note}"' if a.note else ""), file=out)
        return True
    if cmd == "unpublish":
        if not session.etag:
            raise CliError("nothing published")
        r = await ue.agent.publish(None, etag=session.etag, expires=0)
        session.etag = None
        print(f"unpublished ({r.status})", file=out)
        return True
    if cmd in ("watch", "winfo"):
        p = _parser(cmd)
        if cmd == "watch":
            p.add_argument("user")
        p.add_argument("--count", type=int, default=0, help="stop after N notifications (0: forever)")
        p.add_argument("--timeout", type=float, default=0, help="give up after S seconds (0: never)")
        p.add_argument("--xml", action="store_true")
        a = p.parse_args(rest)
        target = user_uri(a.user, session.domain) if cmd == "watch" else ue.config.impu
        event = "presence" if cmd == "watch" else "presence.winfo"
        sub = await ue.agent.subscribe(target, event=event)
        if sub.response is None or sub.response.status >= 300:
            status = sub.response.status if sub.response else "no answer"
            reason = sub.response.reason if sub.response else ""
            raise CliError(f"SUBSCRIBE refused: {status} {reason}")
        assert session.watches is not None
        session.watches[target] = sub
        await _print_notifications(sub, a.count, a.timeout, a.xml, out, winfo_mode=cmd == "winfo")
        return True
    if cmd == "unwatch":
        p = _parser("unwatch")
        p.add_argument("user")
        a = p.parse_args(rest)
        assert session.watches is not None
        found = session.watches.pop(user_uri(a.user, session.domain), None)
        if found is None:
            raise CliError(f"not watching {a.user}")
        r = await ue.agent.unsubscribe(found)
        print(f"unwatched {a.user} ({r.status})", file=out)
        return True
    if cmd == "rules":
        await _rules(session, rest, out)
        return True
    raise CliError(f"unknown command {cmd!r} (try help)")


_ACTIVITIES = {
    "appointment", "away", "breakfast", "busy", "dinner", "holiday", "in-transit",
    "looking-for-work", "lunch", "meal", "meeting", "on-the-phone", "other", "performance",
    "permanent-absence", "playing", "presentation", "shopping", "sleeping", "spectator",
    "steering", "travel", "tv", "unknown", "vacation", "working", "worship",
}  # fmt: skip


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, add_help=False, exit_on_error=False)
    return p


async def _print_notifications(
    sub: ClientSubscription, count: int, limit: float, xml: bool, out: Any, *, winfo_mode: bool
) -> None:
    from .documents import winfo

    seen = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit if limit > 0 else None
    while count == 0 or seen < count:
        wait = (deadline - loop.time()) if deadline is not None else 3600.0
        if wait <= 0:
            break
        try:
            n = await sub.next(wait=wait)
        except TimeoutError:
            if deadline is not None:
                break
            continue
        seen += 1
        if winfo_mode and n.body:
            try:
                info = winfo.parse(n.body)
                for lst in info.lists:
                    for w in lst.watchers:
                        print(f"watcher {w.uri}: {w.status} ({w.event})", file=out, flush=True)
            except DocumentError as exc:
                print(f"unreadable watcherinfo ({exc.reason})", file=out, flush=True)
        else:
            print(describe(n, xml=xml), file=out, flush=True)
        if n.state == "terminated":
            break
    if count and seen < count:
        raise CliError(f"timed out after {seen} of {count} notification(s)")


async def _rules(session: Session, rest: list[str], out: Any) -> None:
    import aiohttp

    if session.xcap is None or session.password is None:
        raise CliError("rules need an XCAP root (--xcap) and a digest password")
    url = f"{session.xcap}/pres-rules/users/{session.ue.config.impu}/index"
    auth = aiohttp.DigestAuthMiddleware(session.ue.config.impi, session.password)
    async with aiohttp.ClientSession(middlewares=(auth,)) as http:
        r = await http.get(url)
        if r.status == 404:
            ruleset = presrules.Ruleset(())
        elif r.status == 200:
            ruleset = presrules.parse(await r.read())
        else:
            raise CliError(f"XCAP GET failed: {r.status} {r.reason}")
        if not rest or rest[0] == "show":
            for rule in ruleset.rules:
                names = ", ".join(rule.conditions.identity.ones) if rule.conditions.identity else "anyone"
                print(f"{rule.id}: {rule.actions.sub_handling or '-'} for {names}", file=out)
            if not ruleset.rules:
                print("no rules (everyone gets: confirm)", file=out)
            return
        action, who = rest[0], rest[1:]
        if action not in ("allow", "block", "polite-block", "confirm") or len(who) != 1:
            raise CliError("rules allow|block|polite-block|confirm USER")
        watcher = user_uri(who[0], session.domain)
        body = _rules_with(ruleset, watcher, action)
        r = await http.put(url, data=body, headers={"Content-Type": "application/auth-policy+xml"})
        if r.status not in (200, 201):
            raise CliError(f"XCAP PUT failed: {r.status} {await r.text()}")
        print(f"{action}: {watcher}", file=out)


def _rules_with(ruleset: presrules.Ruleset, watcher: str, action: str) -> bytes:
    """The ruleset with ``watcher`` moved into a rule of its own with ``action``."""
    from dataclasses import replace

    kept = []
    for rule in ruleset.rules:
        ident = rule.conditions.identity
        if ident is not None and watcher in ident.ones:
            ones = tuple(o for o in ident.ones if o != watcher)
            if not ones and not ident.manys:
                continue
            rule = replace(rule, conditions=replace(rule.conditions, identity=replace(ident, ones=ones)))
        kept.append(rule)
    rid = "w-" + "".join(c if c.isalnum() else "-" for c in watcher)[:60]
    template = presrules.parse(
        (
            '<cp:ruleset xmlns:cp="urn:ietf:params:xml:ns:common-policy" '
            'xmlns:pr="urn:ietf:params:xml:ns:pres-rules">'
            f'<cp:rule id="{rid}"><cp:conditions><cp:identity><cp:one id="{watcher}"/></cp:identity>'
            f"</cp:conditions><cp:actions><pr:sub-handling>{action}</pr:sub-handling></cp:actions>"
            "<cp:transformations>"
            + (
                "<pr:provide-services><pr:all-services/></pr:provide-services>"
                "<pr:provide-persons><pr:all-persons/></pr:provide-persons>"
                "<pr:provide-devices><pr:all-devices/></pr:provide-devices>"
                "<pr:provide-all-attributes/>"
                if action == "allow"
                else ""
            )
            + "</cp:transformations></cp:rule></cp:ruleset>"
        ).encode()
    )
    return presrules.build(replace(ruleset, rules=(*kept, *template.rules)))


# -- entry point -------------------------------------------------------------------------------


def add_parser(sub: Any) -> None:
    ue = sub.add_parser(
        "ue",
        help="act as a UE: register, publish, watch, manage rules",
        description="Register a UE and run one command, or an interactive session.\n\n" + COMMANDS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ue.add_argument("--user", help="demo subscriber name (alice, bob, carol)")
    ue.add_argument("--config", default=None, help="network configuration (default configs/home1.toml, or home2 for carol)")
    ue.add_argument("--digest", action="store_true", help="SIP Digest instead of IMS AKA + sec-agree")
    ue.add_argument("--impi")
    ue.add_argument("--impu")
    ue.add_argument("--password")
    ue.add_argument("--k")
    ue.add_argument("--op")
    ue.add_argument("--opc")
    ue.add_argument("--pcscf", help="P-CSCF HOST:PORT")
    ue.add_argument("--domain")
    ue.add_argument("--xcap", help="XCAP root URL (http://HOST:PORT/xcap-root)")
    ue.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    ue.add_argument("--host", help="local address to bind and put in Contact (default 127.0.0.1)")
    ue.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    ue.add_argument("command", nargs=argparse.REMAINDER, help="one command to run, then exit")
    ue.set_defaults(func=cmd_ue)


def _settings_for(args: argparse.Namespace) -> tuple[UeConfig, str | None, str]:
    from .cli import UsageError
    from .config import ConfigError, load

    values: dict[str, Any] = {}
    xcap = args.xcap
    domain = args.domain
    if args.user:
        path = args.config or ("configs/home2.toml" if args.user == "carol" else "configs/home1.toml")
        try:
            settings = load(path)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
        sub = next((s for s in settings.subscribers if s.impi.split("@")[0] == args.user or s.impi == args.user), None)
        if sub is None:
            names = ", ".join(s.impi for s in settings.subscribers)
            raise UsageError(f"no subscriber {args.user!r} in {path} ({names})")
        domain = domain or settings.domain
        values = {
            "impi": sub.impi, "impu": sub.default_impu, "k": sub.k, "op": sub.op, "opc": sub.opc,
            "password": sub.digest_password,
            "pcscf": f"{settings.host_of('pcscf')}:{settings.pcscf.port}",
        }
        if xcap is None and settings.ps.xcap_port is not None:
            xcap = f"http://{settings.host_of('xcap')}:{settings.ps.xcap_port}/xcap-root"
    for name in ("impi", "impu", "password", "k", "op", "opc", "pcscf"):
        value = getattr(args, name)
        if value is not None:
            values[name] = value
    if "impi" not in values or "impu" not in values:
        raise UsageError("give --user NAME, or --impi and --impu")
    domain = domain or values["impi"].split("@")[-1]
    values["domain"] = domain
    values["auth"] = "digest" if args.digest else "aka"
    values["transport"] = args.transport
    if args.host:
        values["host"] = args.host
    if values["auth"] == "aka" and not values.get("k"):
        raise UsageError("IMS AKA needs --k and --op/--opc (or use --digest)")
    try:
        return UeConfig(**values), xcap, domain
    except Exception as exc:
        raise UsageError(f"bad UE settings: {exc}") from None


async def _run(args: argparse.Namespace) -> int:
    from .cli import UsageError

    config, xcap, domain = _settings_for(args)
    ue = UserEquipment(config, node=f"ue-{config.impi.split('@')[0]}")
    try:
        await ue.start()
    except OSError as exc:
        raise UsageError(f"cannot open a socket: {exc.strerror or exc}") from None
    out = sys.stdout
    session: Session | None = None
    try:
        try:
            async with asyncio.timeout(15):
                reg = await ue.register()
        except RegistrationError as exc:
            raise UsageError(f"registration failed: {exc}") from None
        except TimeoutError:
            raise UsageError(f"no answer from the P-CSCF at {config.pcscf}") from None
        channel = "IMS AKA + ESP (" + (f"{ue.sa_set.alg}, {ue.sa_set.ealg}" if ue.sa_set else "") + ")" if reg.protected else config.auth
        print(f"registered {config.impu} ({channel}); identities: {', '.join(reg.impus)}", file=out, flush=True)
        session = Session(ue, domain, xcap, config.password)
        if args.command:
            try:
                await run_command(session, list(args.command), out)
            except (CliError, argparse.ArgumentError) as exc:
                raise UsageError(str(exc)) from None
            return 0
        print("type 'help' for commands", file=out, flush=True)
        while True:
            print(f"{config.impi.split('@')[0]}> ", end="", file=out, flush=True)
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                break
            try:
                if not await run_command(session, shlex.split(line), out):
                    break
            except (CliError, argparse.ArgumentError, ValueError) as exc:
                print(f"error: {exc}", file=out, flush=True)
            except SystemExit:
                print("error: bad arguments (try help)", file=out, flush=True)
        return 0
    finally:
        if session is not None:  # end what we watch before we go: no NOTIFY left for a gone UE
            await _unwatch_all(session)
        await ue.stop(deregister=True)


async def _unwatch_all(session: Session) -> None:
    subs = [s for s in (session.watches or {}).values() if not s.terminated]
    if not subs:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(3):
            await asyncio.gather(*(session.ue.agent.unsubscribe(s) for s in subs), return_exceptions=True)


def cmd_ue(args: argparse.Namespace) -> int:
    from . import logging as plog
    from .cli import run_async

    plog.configure(args.log_level)
    if args.command and args.command[0] == "--":
        args.command = args.command[1:]
    return run_async(lambda: _run(args))
