"""Watcher information (RFC 3858), plus the XCAP documents: resource lists (RFC 4826)
and xcap-error bodies (RFC 4825)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from presence_ims.documents import DocumentError, resourcelists, validate, winfo, xcaperror
from presence_ims.documents.resourcelists import (
    DisplayName,
    Entry,
    EntryRef,
    External,
    ResourceList,
    ResourceLists,
)
from presence_ims.documents.winfo import Watcher, WatcherInfo, WatcherList
from presence_ims.documents.xcaperror import CONDITIONS, Exists, XcapError


def _conformance_xsd() -> Path:
    """shared/conformance/xsd: $PRESENCE_IMS_SHARED, beside the checkout, or /work/shared."""
    env = os.environ.get("PRESENCE_IMS_SHARED")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[2].parent / "shared", Path("/work/shared")]
    for base in candidates:
        if (base / "conformance" / "xsd").is_dir():
            return base / "conformance" / "xsd"
    return candidates[-1] / "conformance" / "xsd"


EXTERNAL = _conformance_xsd() / "validate"
needs_external = pytest.mark.skipif(
    not EXTERNAL.exists(), reason="shared conformance validator not present (shared/ absent)"
)


def external_ok(data: bytes) -> None:
    result = subprocess.run(
        [sys.executable, str(EXTERNAL), "-"], input=data, capture_output=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def watcher_info() -> WatcherInfo:
    return WatcherInfo(
        version=7,
        state="full",
        lists=(
            WatcherList(
                "sip:alice@home1.net",
                "presence",
                (
                    Watcher("w-9f2c", "active", "approved", "sip:bob@home1.net", "Bob", 509, 3091),
                    Watcher(
                        "w-11aa", "pending", "subscribe", "sip:carol@home2.net", "Carol", lang="en"
                    ),
                    Watcher("w-77b0", "waiting", "subscribe", "sip:anonymous@anonymous.invalid"),
                    Watcher(
                        "w-0001",
                        "terminated",
                        "rejected",
                        "sip:mallory@evil.example",
                        duration_subscribed=0,
                        expiration=0,
                    ),
                ),
            ),
            WatcherList("sip:alice@home1.net", "presence.winfo"),
        ),
    )


ALL_EVENTS = (
    "subscribe",
    "approved",
    "deactivated",
    "probation",
    "rejected",
    "timeout",
    "giveup",
    "noresource",
)


def test_round_trip_and_validation() -> None:
    info = watcher_info()
    data = winfo.build(info)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert winfo.parse(data) == info
    assert validate.errors(data) == []


def test_every_status_and_event_round_trips() -> None:
    watchers = tuple(
        Watcher(f"w{i}", status, event, f"sip:u{i}@home1.net")  # type: ignore[arg-type]
        for i, (status, event) in enumerate(
            (s, e) for s in ("pending", "active", "waiting", "terminated") for e in ALL_EVENTS
        )
    )
    info = WatcherInfo(0, "partial", (WatcherList("sip:alice@home1.net", "presence", watchers),))
    data = winfo.build(info)
    assert winfo.parse(data) == info
    validate.validate(data)


@needs_external
def test_external_validator_accepts_built_winfo() -> None:
    external_ok(winfo.build(watcher_info()))
    external_ok(winfo.build(WatcherInfo(0, "partial")))


def test_unknown_extension_elements_are_skipped() -> None:
    body = (
        b'<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" xmlns:x="urn:x" version="1" '
        b'state="full"><watcher-list resource="sip:a@b" package="presence">'
        b'<watcher id="1" status="active" event="approved">sip:c@d</watcher><x:y/>'
        b"</watcher-list><x:z/></watcherinfo>"
    )
    info = winfo.parse(body)
    assert info.lists[0].watchers[0].uri == "sip:c@d"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            b'<watcherinfo xmlns="urn:x" version="0" state="full"/>',
            "not a watcherinfo document: root is {urn:x}watcherinfo",
        ),
        (
            b'<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" state="full"/>',
            "watcherinfo has no version",
        ),
        (
            b'<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" version="-1" state="full"/>',
            "bad watcherinfo version: '-1'",
        ),
        (
            b'<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" version="1" state="some"/>',
            "bad watcherinfo state: 'some'",
        ),
        (
            b'<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" version="1" state="full">'
            b'<watcher-list resource="sip:a@b" package="presence"><watcher id="1" event="approved">'
            b"sip:c@d</watcher></watcher-list></watcherinfo>",
            "bad watcher status: None",
        ),
        (
            b'<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" version="1" state="full">'
            b'<watcher-list resource="sip:a@b" package="presence"><watcher id="1" status="active" '
            b'event="gone">sip:c@d</watcher></watcher-list></watcherinfo>',
            "bad watcher event: 'gone'",
        ),
        (
            b'<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" version="1" state="full">'
            b'<watcher-list package="presence"/></watcherinfo>',
            "watcher-list has no resource",
        ),
        (
            b'<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" version="1" state="full">'
            b'<watcher-list resource="sip:a@b" package="presence"><watcher status="active" '
            b'event="approved">sip:c@d</watcher></watcher-list></watcherinfo>',
            "watcher has no id",
        ),
    ],
)
def test_bad_winfo(body: bytes, reason: str) -> None:
    with pytest.raises(DocumentError) as info:
        winfo.parse(body)
    assert info.value.reason == reason


def test_build_refuses_bad_values() -> None:
    bad = Watcher("w", "maybe", "approved", "sip:a@b")  # type: ignore[arg-type]
    with pytest.raises(DocumentError, match="bad watcher status"):
        winfo.build(WatcherInfo(0, "full", (WatcherList("sip:x@y", "presence", (bad,)),)))
    with pytest.raises(DocumentError, match="bad expiration"):
        winfo.build(
            WatcherInfo(
                0,
                "full",
                (
                    WatcherList(
                        "sip:x@y",
                        "presence",
                        (Watcher("w", "active", "approved", "sip:a@b", expiration=-1),),
                    ),
                ),
            )
        )


# --- resource lists -------------------------------------------------------------------


def buddy_lists() -> ResourceLists:
    return ResourceLists(
        (
            ResourceList(
                "buddies",
                DisplayName("My buddies", "en"),
                (
                    Entry("sip:bob@home1.net", DisplayName("Bob")),
                    Entry("sip:carol@home2.net"),
                    EntryRef(
                        "resource-lists/users/sip:alice@home1.net/index/~~/"
                        "resource-lists/list%5b@name=%22work%22%5d",
                        DisplayName("ref"),
                    ),
                    ResourceList("family", None, (Entry("tel:+49891234", DisplayName("Mum")),)),
                    External(
                        "http://xcap.home2.net/resource-lists/users/sip:carol@home2.net/index"
                    ),
                ),
            ),
            ResourceList("work"),
        )
    )


def test_resource_lists_round_trip_and_validate() -> None:
    lists = buddy_lists()
    data = resourcelists.build(lists)
    assert resourcelists.parse(data) == lists
    validate.validate(data)
    assert [e.uri for e in resourcelists.entries(lists)] == [
        "sip:bob@home1.net",
        "sip:carol@home2.net",
        "tel:+49891234",
    ]


@needs_external
def test_external_validator_accepts_built_resource_lists() -> None:
    external_ok(resourcelists.build(buddy_lists()))


@pytest.mark.parametrize(
    ("inner", "reason"),
    [
        (b'<list name="a"/><list name="a"/>', "duplicate list name a"),
        (b"<list><entry/></list>", "entry has no uri"),
        (b"<list><bogus/></list>", "unexpected element in list: bogus"),
        (
            b"<entry uri='sip:a@b'/>",
            "unexpected element in resource-lists: {urn:ietf:params:xml:ns:resource-lists}entry",
        ),
    ],
)
def test_bad_resource_lists(inner: bytes, reason: str) -> None:
    body = (
        b'<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">'
        + inner
        + (b"</resource-lists>")
    )
    with pytest.raises(DocumentError) as info:
        resourcelists.parse(body)
    assert info.value.reason == reason


# --- xcap-error -----------------------------------------------------------------------


def _error_for(condition: str) -> XcapError:
    if condition == "no-parent":
        return XcapError(
            "no-parent",
            "parent missing",
            ancestor="http://xcap.home1.net/pres-rules/users/sip:alice@home1.net/index",
        )
    if condition == "uniqueness-failure":
        return XcapError(
            "uniqueness-failure",
            None,
            exists=(Exists("ruleset/rule/@id", ("r2", "r3")), Exists("a/@b")),
        )
    return XcapError(condition, f"{condition} happened")  # type: ignore[arg-type]


@pytest.mark.parametrize("condition", CONDITIONS)
def test_xcap_errors_round_trip_and_validate(condition: str) -> None:
    error = _error_for(condition)
    data = xcaperror.build(error)
    assert xcaperror.parse(data) == error
    validate.validate(data)


@needs_external
def test_external_validator_accepts_xcap_errors() -> None:
    for condition in ("no-parent", "uniqueness-failure", "schema-validation-error"):
        external_ok(xcaperror.build(_error_for(condition)))


def test_xcap_error_build_checks_its_shape() -> None:
    with pytest.raises(DocumentError, match="needs at least one exists"):
        xcaperror.build(XcapError("uniqueness-failure"))
    with pytest.raises(DocumentError, match="ancestor only belongs to no-parent"):
        xcaperror.build(XcapError("cannot-insert", ancestor="http://x"))
    with pytest.raises(DocumentError, match="unknown XCAP error condition"):
        xcaperror.build(XcapError("on-fire"))  # type: ignore[arg-type]
