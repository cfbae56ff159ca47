"""Fixtures of the interoperability tests: the peers (SIPp, baresip) and an open PS.

Each peer fixture skips the test, with the reason and the Debian package to
install, when the program is not on this machine (CI installs them in
``.ci/run``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from interop_peers import baresip_has_modules, find_tool, tool_version

from presence_ims.nodes.ps.config import PsConfig
from presence_ims.nodes.ps.node import PresenceServer


@pytest.fixture(scope="session")
def sipp() -> str:
    """The ``sipp`` executable (Debian package ``sip-tester``)."""
    path = find_tool("sipp")
    if path is None:
        pytest.skip("SIPp is not installed (apt-get install sip-tester)")
    return path


@pytest.fixture(scope="session")
def sipp_version(sipp: str) -> tuple[int, ...]:
    return tool_version(sipp, "-v")


@pytest.fixture(scope="session")
def baresip() -> str:
    """The ``baresip`` executable with the modules the tests load (``baresip-core``)."""
    path = find_tool("baresip")
    if path is None:
        pytest.skip("baresip is not installed (apt-get install baresip-core)")
    missing = baresip_has_modules(path)
    if missing:
        pytest.skip(f"baresip lacks the modules {', '.join(missing)} (apt-get install baresip-core)")
    return path


@pytest.fixture
async def open_ps() -> AsyncIterator[PresenceServer]:
    """The Presence Server alone, in ``open`` trust mode, on a free UDP port of 127.0.0.1."""
    ps = PresenceServer(PsConfig(trust="open", sip=("udp:127.0.0.1:0",), store="memory"))
    await ps.start()
    try:
        yield ps
    finally:
        await ps.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """Where the peers write their logs and configuration."""
    path = tmp_path / "peer"
    path.mkdir()
    return path
