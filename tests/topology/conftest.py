"""Fixtures of the topology tests: the parsed compose file, its config, a namespace lab."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from composelab import (
    COMPOSE_CONFIG,
    COMPOSE_FILE,
    NetnsLab,
    Topology,
    netns_unavailable,
    parse_compose,
    remove_stale_namespaces,
)

from presence_ims.config import NetworkSettings, load


@pytest.fixture(scope="module")
def topology() -> Topology:
    return parse_compose(COMPOSE_FILE)


@pytest.fixture(scope="module")
def compose_settings() -> NetworkSettings:
    return load(COMPOSE_CONFIG)


@pytest.fixture
def netns_lab(topology: Topology) -> Iterator[NetnsLab]:
    """A :class:`NetnsLab` on the compose subnet; skips where namespaces cannot be made.

    The test stops its processes before this teardown removes the namespaces;
    a namespace or link left behind fails the test.
    """
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(f"no network namespaces: {reason}")
    remove_stale_namespaces()
    lab = NetnsLab(topology.subnet)
    try:
        yield lab
    finally:
        problems = lab.close()
    assert not problems, "namespace clean-up left: " + "; ".join(problems)
