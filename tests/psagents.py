"""User agents on our SIP stack talking to a PS on 127.0.0.1 (``tests/e2e/test_ps*.py``)."""

from __future__ import annotations

from presence_ims.sip.transaction import Address
from presence_ims.transport import SipEndpoint
from presence_ims.ua import UserAgent


class Agents:
    """UAs, each on a UDP endpoint of its own, with the PS at ``port`` as outbound proxy."""

    def __init__(self, port: int) -> None:
        self.address = Address("udp", "127.0.0.1", port)
        self.endpoints: list[SipEndpoint] = []

    async def ua(self, aor: str) -> UserAgent:
        ep = SipEndpoint(node=aor.split(":")[1].split("@")[0])
        await ep.listen("udp", "127.0.0.1", 0)
        self.endpoints.append(ep)
        return UserAgent(ep, aor, outbound=self.address)

    async def close(self) -> None:
        for ep in self.endpoints:
            await ep.close()
