"""The product as users run it: ``presence-ims up`` and ``presence-ims ue`` as processes.

The network is started exactly as ``make run`` does (only with free ports and
a temporary state directory), then UEs are run from the command line.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from netharness import network_config, write_toml

pytestmark = pytest.mark.slow
EXE = [sys.executable, "-m", "presence_ims"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=timeout, env=ENV, check=False)


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Path]:
    # as make run: every node of configs/home1.toml, the PNA included
    data = network_config("home1", tmp_path, {"pna": {"enabled": True}})
    config = write_toml(data, tmp_path / "home1.toml")
    proc = subprocess.Popen(
        [*EXE, "up", "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=ENV,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the banner, then "ready:"
            if line.startswith("ready:"):
                break
        else:
            pytest.fail(f"up ended without ready: {proc.stderr.read() if proc.stderr else ''}")
        yield config
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "up did not stop cleanly on SIGTERM"


def test_ue_publishes_and_another_watches(network: Path) -> None:
    r = run("ue", "--user", "alice", "--config", str(network), "publish", "--status", "open",
            "--activity", "meeting", "--note", "planning")
    assert r.returncode == 0, r.stderr
    assert "published: open, meeting" in r.stdout
    r = run("ue", "--user", "bob", "--config", str(network), "watch", "alice", "--count", "1", "--timeout", "10")
    assert r.returncode == 0, r.stderr
    # alice's one-shot command de-registered as it ended: the PNA's IMS tuple says closed,
    # her publication (open, meeting) stays until it expires
    assert 'sip:alice@home1.net: closed/open; activity meeting; "planning"' in r.stdout
    # a Digest client (like an ordinary SIP phone) sees the same
    r = run("ue", "--user", "bob", "--digest", "--config", str(network), "watch", "alice", "--count", "1", "--timeout", "10")
    assert r.returncode == 0 and "activity meeting" in r.stdout


def test_rules_block_then_allow(network: Path) -> None:
    r = run("ue", "--user", "alice", "--digest", "--config", str(network), "rules", "block", "bob")
    assert r.returncode == 0, r.stderr
    r = run("ue", "--user", "bob", "--config", str(network), "watch", "alice", "--count", "1", "--timeout", "5")
    assert r.returncode == 2 and "403" in r.stderr
    r = run("ue", "--user", "alice", "--digest", "--config", str(network), "rules", "allow", "bob")
    assert r.returncode == 0
    r = run("ue", "--user", "bob", "--config", str(network), "watch", "alice", "--count", "1", "--timeout", "5")
    assert r.returncode == 0


def test_one_shot_watch_ends_its_subscription(network: Path) -> None:
    """A one-shot ``watch`` un-SUBSCRIBEs before it de-registers: no watcher is left behind."""
    watcher = subprocess.Popen(
        [*EXE, "ue", "--user", "bob", "--config", str(network), "watch", "alice", "--count", "2",
         "--timeout", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().startswith("registered")
        assert watcher.stdout.readline().startswith("sip:alice@home1.net:")
        # while bob watches, alice's watcher list has him
        r = run("ue", "--user", "alice", "--config", str(network), "winfo", "--count", "1", "--timeout", "10")
        assert r.returncode == 0, r.stderr
        assert "watcher sip:bob@home1.net: active" in r.stdout
        # alice's publication is bob's second NOTIFY: his command ends
        r = run("ue", "--user", "alice", "--config", str(network), "publish", "--status", "open")
        assert r.returncode == 0, r.stderr
        assert watcher.wait(timeout=20) == 0, watcher.stderr.read() if watcher.stderr else ""
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    r = run("ue", "--user", "alice", "--config", str(network), "winfo", "--count", "1", "--timeout", "10")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("registered")
    assert "sip:bob@home1.net" not in r.stdout


def test_invalid_config_missing_file_and_taken_port(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[pcscf]\nport = "not a number"\n[bogus]\nx = 1\n')
    r = run("up", "--config", str(bad))
    assert r.returncode == 2
    assert "pcscf.port" in r.stderr and "bogus" in r.stderr and "Traceback" not in r.stderr
    r = run("up", "--config", str(tmp_path / "missing.toml"))
    assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr
    r = run("config", "check", str(bad))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    data = network_config("home1", tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", data["pcscf"]["port"]))
        config = write_toml(data, tmp_path / "home1.toml")
        r = run("up", "--config", str(config))
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.startswith("presence-ims:")]
    assert len(lines) == 1 and "pcscf" in lines[0] and "in use" in lines[0]
    assert "Traceback" not in r.stderr


def test_config_check_and_aka() -> None:
    r = run("config", "check", "configs/home1.toml")
    assert r.returncode == 0 and "valid" in r.stdout
    r = run("aka", "--k", "465b5ce8b199b49faa5f0a2ee238a6bc", "--op", "cdc202d5123e20f62b6d676ac72cb318",
            "--rand", "23553cbe9637a89d218ae64dae47bf35", "--sqn", "ff9bb4d0b607", "--amf", "b9b9")
    assert r.returncode == 0
    assert '"res": "a54211d5e3ba50bf"' in r.stdout and '"mac_a": "4a9ffac354dfafb3"' in r.stdout


def test_ctrl_c_sends_final_notifies(tmp_path: Path) -> None:
    config = write_toml(network_config("home1", tmp_path), tmp_path / "home1.toml")
    up = subprocess.Popen([*EXE, "up", "--config", str(config)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=ENV)
    watcher = None
    try:
        assert up.stdout is not None
        assert any(line.startswith("ready:") for line in up.stdout)
        watcher = subprocess.Popen(
            [*EXE, "ue", "--user", "bob", "--config", str(config), "watch", "alice", "--count", "2",
             "--timeout", "30"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
        )
        assert watcher.stdout is not None
        assert watcher.stdout.readline().startswith("registered")
        first = watcher.stdout.readline()
        assert first.startswith("sip:alice@home1.net:")
        up.send_signal(2)  # Ctrl-C
        assert up.wait(timeout=20) == 0
        rest = watcher.stdout.read()
        assert "subscription terminated (deactivated)" in rest
    finally:
        for p in (watcher, up):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
