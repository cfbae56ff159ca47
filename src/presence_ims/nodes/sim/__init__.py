"""The element simulator: MSC/VLR (Pc), SGSN (Pg), GGSN (Pk) and GMLC (Pl) toward the PNA.

* :mod:`.scenario`: scenario files (TOML), validated up front;
* :mod:`.client`: :class:`ElementSimulator`, the elements themselves;
* :mod:`.node`: the ``sim`` node of ``presence-ims up`` (idle, or playing a scenario);
* :mod:`.cli`: ``presence-ims sim ...`` (``register_cli(subparsers)``).

``build(settings, tls)`` is the hook :mod:`presence_ims.nodes.runner` calls.
"""

from __future__ import annotations

from typing import Any

from .config import SimSection
from .errors import SimError

__all__ = ["SimError", "SimSection", "build"]


def build(settings: Any, tls: Any) -> Any:
    """The simulator node of a network."""
    from .node import SimNode, targets_from_settings

    return SimNode(settings.sim, targets_from_settings(settings), domain=settings.domain)
