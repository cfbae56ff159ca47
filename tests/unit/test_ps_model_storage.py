"""PS records (to_dict/from_dict) and the storage backends (memory, SQLite).

Both backends are driven through the same tests: writes are enqueued, visible to
``load`` at once, durable after ``flush`` (SQLite: across a reopen). A corrupt
or unwritable database is a :class:`StoreError` naming the file.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from presence_ims.nodes.ps.model import PublicationRecord, SubscriptionRecord
from presence_ims.sip.dialog import Dialog
from presence_ims.storage import Store, StoreError, open_store
from presence_ims.storage.memory import MemoryStore
from presence_ims.storage.sqlite import SqliteStore


def publication(etag: str = "0123456789abcdef", body: bytes = b"<presence/>") -> PublicationRecord:
    return PublicationRecord(
        etag=etag,
        presentity="sip:alice@home1.net",
        event="presence",
        source_id="sip:alice@home1.net",
        source_class="ue",
        interface="Peu",
        asserted_identity="sip:alice@home1.net",
        received_at=1_800_000_000.25,
        expires_at=1_800_003_600.25,
        content_type="application/pidf+xml",
        body=body,
    )


def subscription(sub_id: str = "s1") -> SubscriptionRecord:
    dialog = Dialog(
        call_id="abc@192.0.2.1",
        local_tag="ps1",
        remote_tag="w1",
        local_uri="<sip:alice@home1.net>",
        remote_uri='"Bob" <sip:bob@home1.net>',
        remote_target="sip:bob@192.0.2.20:5070;transport=tcp",
        route_set=["<sip:scscf.home1.net:6060;lr>", "<sip:pcscf.home1.net;lr>"],
        local_cseq=7,
        remote_cseq=3,
        secure=False,
    )
    return SubscriptionRecord(
        id=sub_id,
        event="presence",
        presentity="sip:alice@home1.net",
        resource_uri="tel:+15550001",
        watcher="sip:bob@home1.net",
        watcher_display="Bob",
        authenticated=True,
        anonymous=False,
        dialog=dialog,
        expires_at=1_800_003_600.0,
        created_at=1_800_000_000.0,
        state="active",
        event_id="7",
        winfo_id="opaque",
        winfo_event="approved",
        polite_block=True,
        winfo_version=4,
        last_notify_at=1_800_000_100.5,
        contact="<sip:ps.home1.net:5065;transport=tcp>",
        destination={"transport": "tcp", "host": "127.0.0.1", "port": 5061},
        accept=["application/pidf+xml"],
    )


# -- records -----------------------------------------------------------------------------------


def test_publication_round_trip_through_json() -> None:
    record = publication()
    data = record.to_dict()
    assert data["body"] == "<presence/>"
    back = PublicationRecord.from_dict(json.loads(json.dumps(data)))
    assert back == record
    assert isinstance(back.body, bytes)


@given(st.binary(max_size=200))
def test_publication_body_survives_json_whatever_the_bytes(body: bytes) -> None:
    record = publication(body=body)
    back = PublicationRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert back.body == body


def test_from_dict_does_not_change_its_argument() -> None:
    data = publication().to_dict()
    PublicationRecord.from_dict(data)
    assert data["body"] == "<presence/>"
    sub = subscription().to_dict()
    SubscriptionRecord.from_dict(sub)
    assert isinstance(sub["dialog"], dict)


def test_subscription_round_trip_through_json() -> None:
    record = subscription()
    data = record.to_dict()
    assert data["dialog"]["route_set"] == [
        "<sip:scscf.home1.net:6060;lr>",
        "<sip:pcscf.home1.net;lr>",
    ]
    assert data["destination"] == {"transport": "tcp", "host": "127.0.0.1", "port": 5061}
    back = SubscriptionRecord.from_dict(json.loads(json.dumps(data)))
    assert back == record
    assert isinstance(back.dialog, Dialog)
    assert back.dialog.id == ("abc@192.0.2.1", "ps1", "w1")
    # the copy is independent of the original
    back.dialog.route_set.append("<sip:x;lr>")
    back.accept.append("*/*")
    assert record.dialog.route_set == data["dialog"]["route_set"]
    assert record.accept == ["application/pidf+xml"]


def test_subscription_defaults_round_trip() -> None:
    dialog = Dialog("c", "l", "r", "<sip:a@x>", "<sip:b@x>", "sip:b@192.0.2.1")
    record = SubscriptionRecord(
        "s", "presence.winfo", "sip:a@x", "sip:a@x", "sip:a@x", None, True, False, dialog, 10, 0
    )
    back = SubscriptionRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert back == record
    assert (back.state, back.reason, back.dialog.remote_cseq) == ("pending", None, None)


def _drop_wal(path: Path) -> None:
    """Remove the WAL files a closed store leaves (checkpointed: the data is in the file)."""
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# -- stores ------------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s: Store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "ps.db")
    await s.open()
    yield s
    await s.close()


async def test_put_is_visible_to_load_before_flush(store: Store) -> None:
    store.put("publication", "e1", {"a": 1})
    store.put("subscription", "s1", {"b": [1, 2]})
    assert await store.load("publication") == {"e1": {"a": 1}}
    assert await store.load("subscription") == {"s1": {"b": [1, 2]}}
    assert await store.load("rules") == {}


async def test_put_replaces_and_delete_removes(store: Store) -> None:
    store.put("publication", "e1", {"v": 1})
    await store.flush()
    store.put("publication", "e1", {"v": 2})
    store.put("publication", "e2", {"v": 3})
    assert await store.load("publication") == {"e1": {"v": 2}, "e2": {"v": 3}}
    store.delete("publication", "e1")
    assert await store.load("publication") == {"e2": {"v": 3}}
    await store.flush()
    assert await store.load("publication") == {"e2": {"v": 3}}
    store.delete("publication", "never-stored")
    store.delete("other-kind", "x")
    await store.flush()
    assert await store.load("publication") == {"e2": {"v": 3}}


async def test_the_last_write_of_a_key_wins(store: Store) -> None:
    store.put("k", "a", {"v": 1})
    store.delete("k", "a")
    assert await store.load("k") == {}
    store.put("k", "a", {"v": 2})
    await store.flush()
    assert await store.load("k") == {"a": {"v": 2}}


async def test_kinds_are_separate(store: Store) -> None:
    store.put("publication", "x", {"kind": "pub"})
    store.put("subscription", "x", {"kind": "sub"})
    await store.flush()
    store.delete("subscription", "x")
    assert await store.load("publication") == {"x": {"kind": "pub"}}
    assert await store.load("subscription") == {}


@pytest.mark.parametrize("flushed", [False, True])
async def test_loaded_records_are_copies(store: Store, flushed: bool) -> None:
    store.put("k", "a", {"list": [1]})
    if flushed:
        await store.flush()
    loaded = await store.load("k")
    loaded["a"]["list"].append(2)
    loaded["b"] = {}
    assert await store.load("k") == {"a": {"list": [1]}}
    await store.flush()
    assert await store.load("k") == {"a": {"list": [1]}}


async def test_records_survive_the_store(store: Store) -> None:
    pub = publication(body=b"\xff\xfe not utf-8 <x/>")
    sub = subscription()
    store.put("publication", pub.etag, pub.to_dict())
    store.put("subscription", sub.id, sub.to_dict())
    await store.flush()
    pubs = await store.load("publication")
    subs = await store.load("subscription")
    assert PublicationRecord.from_dict(pubs[pub.etag]) == pub
    assert SubscriptionRecord.from_dict(subs[sub.id]) == sub


async def test_sqlite_is_durable_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state" / "ps.db"  # the directory is created
    first = SqliteStore(path)
    await first.open()
    pub = publication()
    first.put("publication", pub.etag, pub.to_dict())
    first.put("publication", "gone", {"x": 1})
    first.put("rules", "sip:alice@home1.net", {"xml": "<cp:ruleset/>"})
    await first.flush()
    assert first.pending == 0
    first.delete("publication", "gone")
    first.put("subscription", "s1", subscription().to_dict())
    assert first.pending == 2
    await first.close()  # close flushes what is pending

    second = SqliteStore(path)
    await second.open()
    try:
        pubs = await second.load("publication")
        assert set(pubs) == {pub.etag}
        assert PublicationRecord.from_dict(pubs[pub.etag]) == pub
        assert await second.load("rules") == {"sip:alice@home1.net": {"xml": "<cp:ruleset/>"}}
        subs = await second.load("subscription")
        assert SubscriptionRecord.from_dict(subs["s1"]) == subscription()
    finally:
        await second.close()


async def test_sqlite_unflushed_writes_are_not_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "ps.db"
    store = SqliteStore(path)
    await store.open()
    store.put("publication", "e1", {"v": 1})
    await store.flush()
    store.put("publication", "e2", {"v": 2})
    with sqlite3.connect(path) as other:
        rows = other.execute("SELECT kind, key, value FROM records").fetchall()
    assert rows == [("publication", "e1", '{"v": 1}')]
    await store.close()


async def test_sqlite_failed_flush_keeps_every_write(tmp_path: Path) -> None:
    path = tmp_path / "ps.db"
    store = SqliteStore(path)
    await store.open()
    store.put("publication", "e1", {"v": 1})
    store.delete("publication", "e0")
    db = store._db
    assert db is not None
    db.close()  # the next transaction fails
    with pytest.raises(StoreError, match="cannot write database") as info:
        await store.flush()
    assert str(path) in str(info.value)
    assert store.pending == 2
    store.put("publication", "e2", {"v": 2})  # a newer write joins the batch
    store._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # as open() makes it: commits run in a worker thread
    await store.flush()
    assert store.pending == 0
    assert await store.load("publication") == {"e1": {"v": 1}, "e2": {"v": 2}}
    await store.close()


async def test_sqlite_not_open_is_a_store_error(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "ps.db")
    with pytest.raises(StoreError, match="store is not open"):
        await store.load("publication")
    store.put("publication", "e1", {})
    with pytest.raises(StoreError, match="store is not open"):
        await store.flush()
    await store.close()  # closing a store that never opened is harmless


async def test_sqlite_corrupt_file_is_a_store_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "ps.db"
    path.write_bytes(b"this is not a database, just some text\n" * 200)
    with pytest.raises(StoreError) as info:
        await SqliteStore(path).open()
    message = str(info.value)
    assert str(path) in message
    assert "not a database" in message


async def test_sqlite_damaged_pages_are_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "ps.db"
    store = SqliteStore(path)
    await store.open()
    for i in range(400):
        store.put("publication", f"e{i:04d}", {"body": "x" * 200})
    await store.close()
    _drop_wal(path)
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 4 * page
    for offset in range(page, len(data), page):  # every page but the header page
        data[offset : offset + 64] = b"\xa5" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError) as info:
        await SqliteStore(path).open()
    assert str(path) in str(info.value)


async def test_sqlite_parent_that_is_a_file_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where a directory should be")
    path = blocker / "ps.db"
    with pytest.raises(StoreError) as info:
        await SqliteStore(path).open()
    assert str(path) in str(info.value)
    assert "cannot create database" in str(info.value)


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions"
)
async def test_sqlite_unwritable_directory_is_a_store_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(StoreError) as info:
            await SqliteStore(locked / "ps.db").open()
        assert str(locked / "ps.db") in str(info.value)
    finally:
        locked.chmod(0o700)


async def test_sqlite_read_only_database_is_a_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ps.db"
    store = SqliteStore(path)
    await store.open()
    await store.close()
    _drop_wal(path)
    await _refused_read_only(path, monkeypatch)


_FIRST_SCHEMA = """
CREATE TABLE records (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
"""


def _records_sql(path: Path) -> str:
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT sql FROM sqlite_master WHERE name = 'records'").fetchone()
    return str(row[0])


async def test_sqlite_new_database_keeps_records_in_a_rowid_table(tmp_path: Path) -> None:
    path = tmp_path / "ps.db"
    store = SqliteStore(path)
    await store.open()
    await store.close()
    assert "WITHOUT ROWID" not in _records_sql(path).upper()


async def test_sqlite_database_of_the_first_schema_is_migrated_whole(tmp_path: Path) -> None:
    path = tmp_path / "ps.db"
    pub = publication(body='<presence entity="sip:a@b"/>\udcff'.encode("utf-8", "surrogateescape"))
    rows = [
        ("publication", pub.etag, json.dumps(pub.to_dict())),
        ("subscription", "s1", json.dumps(subscription().to_dict())),
        ("ps", "run", json.dumps({"clean": False})),
    ] + [("publication", f"e{i:03d}", json.dumps({"v": i})) for i in range(300)]
    with sqlite3.connect(path) as db:
        db.executescript(_FIRST_SCHEMA)
        db.executemany("INSERT INTO records VALUES (?, ?, ?)", rows)
    store = SqliteStore(path)
    await store.open()
    try:
        assert "WITHOUT ROWID" not in _records_sql(path).upper()
        pubs = await store.load("publication")
        assert len(pubs) == 301
        assert PublicationRecord.from_dict(pubs[pub.etag]) == pub
        assert [k for k in pubs if k != pub.etag] == [f"e{i:03d}" for i in range(300)]
        subs = await store.load("subscription")
        assert SubscriptionRecord.from_dict(subs["s1"]) == subscription()
        assert await store.load("ps") == {"run": {"clean": False}}
        store.put("publication", "e000", {"v": "new"})
        store.delete("publication", "e001")
    finally:
        await store.close()
    again = SqliteStore(path)
    await again.open()
    try:
        pubs = await again.load("publication")
        assert len(pubs) == 300
        assert pubs["e000"] == {"v": "new"}
        assert "e001" not in pubs
    finally:
        await again.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_sqlite_first_schema_read_only_is_a_store_error_and_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ps.db"
    with sqlite3.connect(path) as db:
        db.executescript(_FIRST_SCHEMA)
        db.execute("INSERT INTO records VALUES ('publication', 'e1', '{\"v\": 1}')")
    await _refused_read_only(path, monkeypatch)
    monkeypatch.undo()
    assert "WITHOUT ROWID" in _records_sql(path).upper()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT kind, key, value FROM records").fetchall() == [
            ("publication", "e1", '{"v": 1}')
        ]


def test_open_store_specs(tmp_path: Path) -> None:
    assert isinstance(open_store("memory"), MemoryStore)
    sqlite_store = open_store(f"sqlite:{tmp_path / 'x.db'}")
    assert isinstance(sqlite_store, SqliteStore)
    assert sqlite_store.path == tmp_path / "x.db"
    with pytest.raises(StoreError, match=r"sqlite store needs a path: sqlite:PATH"):
        open_store("sqlite:")
    with pytest.raises(StoreError, match=r"unknown store 'redis': memory or sqlite:PATH"):
        open_store("redis")


async def test_memory_store_open_close() -> None:
    store = MemoryStore()
    assert not store.opened
    await store.open()
    assert store.opened
    store.put("k", "a", {"v": 1})
    await store.close()
    assert not store.opened


def test_notify_address_is_shared_by_watchers_behind_one_address() -> None:
    """NOTIFY destinations are kept per resolved inputs: watchers at one host and port
    share an entry, and what resolves differently (port, transport, routes) does not."""
    from presence_ims.nodes.ps.config import PsConfig
    from presence_ims.nodes.ps.node import PresenceServer
    from presence_ims.sip import Headers, Request, parse_uri
    from presence_ims.sip.transaction import Address

    ps = PresenceServer(PsConfig(trust="open", sip=("udp:127.0.0.1:0",), store="memory"))
    ps.endpoint.transports = {"udp": object(), "tcp": object()}  # type: ignore[dict-item]
    dest = {"transport": "udp", "host": "192.0.2.7", "port": 5070}

    def address(target: str, routes: tuple[str, ...] = ()) -> Address:
        d = Dialog("c", "l", "r", "<sip:a@x>", "<sip:b@x>", target, list(routes))
        request = Request(Headers([("Route", r) for r in routes]), b"", "NOTIFY", parse_uri(target))
        return ps._notify_address(d, request, dest)

    a = address("sip:w1@192.0.2.7:5070")
    assert a == Address("udp", "192.0.2.7", 5070)
    assert address("sip:w2@192.0.2.7:5070") == a
    assert len(ps._addresses) == 1
    assert address("sip:w3@192.0.2.7:5071") == Address("udp", "192.0.2.7", 5071)
    assert address("sip:w1@192.0.2.7:5070;transport=tcp") == Address("tcp", "192.0.2.7", 5070)
    assert address("sip:w1@192.0.2.7:5070", ("<sip:192.0.2.9:5080;lr>",)) == Address(
        "udp", "192.0.2.9", 5080)
    assert len(ps._addresses) == 4


async def test_periodic_counter_write_goes_in_slices_and_survives_cancellation() -> None:
    """The periodic write of NOTIFY counters lets the loop run between slices, skips
    records written meanwhile, and gives back to the dirty set (for the final write at
    stop) what a cancellation left unwritten."""
    import asyncio

    from presence_ims.nodes.ps import node as ps_node
    from presence_ims.nodes.ps.config import PsConfig
    from presence_ims.nodes.ps.node import PresenceServer

    ps = PresenceServer(PsConfig(trust="open", sip=("udp:127.0.0.1:0",), store="memory"))
    await ps.store.open()
    n = 2 * ps_node.COUNTERS_SLICE + 10
    subs = [subscription(f"s{i}") for i in range(n)]
    for sub in subs:
        ps.core.subscriptions[sub.id] = sub
        ps._save_subscription(sub)  # first write: at once
        sub.dialog.local_cseq += 3  # then NOTIFYs: counters only, persisted lazily
        ps._save_subscription(sub)
    assert ps._counters_dirty == {s.id for s in subs}

    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    worker = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    start = turns
    await ps._persist_counters_sliced()
    assert turns - start >= 2  # the loop ran between the three slices
    stored = (await ps.store.load("subscription"))
    assert all(stored[s.id]["dialog"]["local_cseq"] == s.dialog.local_cseq for s in subs)
    assert ps._counters_dirty == set()

    # cancelled after the first slice: the rest goes back to the dirty set
    for sub in subs:
        sub.dialog.local_cseq += 1
        ps._save_subscription(sub)
    task = asyncio.create_task(ps._persist_counters_sliced())
    await asyncio.sleep(0)  # the first slice is written, then it yields
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    worker.cancel()
    left = ps._counters_dirty
    assert len(left) == n - ps_node.COUNTERS_SLICE
    stored = (await ps.store.load("subscription"))
    for sub in subs:
        written = stored[sub.id]["dialog"]["local_cseq"] == sub.dialog.local_cseq
        assert written == (sub.id not in left)
    ps._persist_counters()  # what stop() does
    stored = (await ps.store.load("subscription"))
    assert all(stored[s.id]["dialog"]["local_cseq"] == s.dialog.local_cseq for s in subs)


async def test_sqlite_commits_off_the_event_loop_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commit (and a WAL checkpoint's fsync) must not stall the loop: it runs in a worker thread."""
    import threading

    from presence_ims.storage import sqlite as sqlite_store

    threads: list[int] = []
    real = sqlite_store._commit

    def spy(*args: Any) -> None:
        threads.append(threading.get_ident())
        real(*args)

    monkeypatch.setattr(sqlite_store, "_commit", spy)
    store = SqliteStore(tmp_path / "ps.db")
    await store.open()
    store.put("publication", "e1", {"v": 1})
    await store.flush()
    assert threads and threads[0] != threading.get_ident()
    assert await store.load("publication") == {"e1": {"v": 1}}
    await store.close()


async def _refused_read_only(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening ``path`` through a read-only connection fails with a StoreError naming it.

    A read-only connection stands in for a file the process may not write (file
    permissions do not bind root, who runs CI containers).
    """
    original = sqlite3.connect

    def read_only(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection: sqlite3.Connection = original(
            f"file:{database}?mode=ro", *args, uri=True, **kwargs
        )
        return connection

    monkeypatch.setattr(sqlite3, "connect", read_only)
    with pytest.raises(StoreError) as info:
        await SqliteStore(path).open()
    assert str(path) in str(info.value)
    assert "readonly" in str(info.value)


async def test_sqlite_flush_cancelled_mid_commit_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop cancels the periodic flush while its commit runs in the worker thread: the
    commit goes on there, and the final flush (close) waits for it instead of starting a
    second transaction on the same connection (which SQLite refuses, losing that batch)."""
    import threading

    from presence_ims.storage import sqlite as sqlite_store

    started, release = threading.Event(), threading.Event()
    real_commit = sqlite_store._commit
    open_transaction = threading.Lock()
    overlaps: list[bool] = []

    def slow_commit(db: sqlite3.Connection, puts: Any, dels: Any) -> None:
        if not started.is_set():  # the first: holds its transaction open for a while
            with open_transaction:
                db.execute("BEGIN")
                started.set()
                release.wait(5)
                db.execute("ROLLBACK")
                real_commit(db, puts, dels)
            return
        overlaps.append(open_transaction.locked())
        real_commit(db, puts, dels)

    path = tmp_path / "ps.db"
    store = SqliteStore(path)
    await store.open()
    store.put("subscription", "s1", {"n": 1})
    monkeypatch.setattr(sqlite_store, "_commit", slow_commit)
    flush = asyncio.create_task(store.flush())
    await asyncio.to_thread(started.wait, 5)
    flush.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flush
    store.put("subscription", "s2", {"n": 2})
    # the commit in the thread ends a while after the stop began (a busy disk, another
    # process holding the lock): the final flush must neither overlap nor skip it
    timer = threading.Timer(0.3, release.set)
    timer.start()
    try:
        await store.close()  # no StoreError: nothing was refused
    finally:
        timer.cancel()
        release.set()
    assert overlaps == [False]
    again = SqliteStore(path)
    await again.open()
    try:
        assert sorted(await again.load("subscription")) == ["s1", "s2"]
    finally:
        await again.close()
