"""Configuration of the element simulator: the ``[sim]`` section of a network file.

The simulator plays the MSC/VLR, the SGSN, the GGSN and the GMLC toward the
PNA of the same network; the addresses and secrets it uses are the PNA's
(``[pna]``), so one file configures both sides.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

_MODEL = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class SimSection(BaseModel):
    """The element simulator node."""

    model_config = _MODEL

    enabled: bool = True
    """Run the simulator with the network (idle unless ``autostart``)."""
    scenario: str = "configs/scenarios/demo.toml"
    """Scenario file (TOML) the node runs when ``autostart`` is on."""
    autostart: bool = False
    """Run ``scenario`` when the network starts; off: stay idle (drive it with ``presence-ims sim``)."""
    loop: bool = False
    """Start the scenario again when it ends."""
    msc: str = "msc1"
    """Feed element id the MSC/VLR uses (its secret is ``[pna.feed_elements.<id>]``)."""
    sgsn: str = "sgsn1"
    """Feed element id the SGSN uses."""
    ggsn: str = "ggsn1"
    """NAS-Identifier of the simulated GGSN."""
    timeout: float = Field(2.0, gt=0)
    """Seconds to wait for an acknowledgement (feed ack, Accounting-Response, HTTP answer)."""
