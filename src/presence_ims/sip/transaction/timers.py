"""Timer values of RFC 3261 section 17 (Table 4), derived from T1, T2 and T4."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """Base timer values; every other timer derives from them."""

    t1: float = 0.5
    """Round-trip time estimate (seconds)."""
    t2: float = 4.0
    """Maximum retransmit interval for non-INVITE requests and INVITE responses (seconds)."""
    t4: float = 5.0
    """Maximum duration a message remains in the network (seconds)."""

    @property
    def a(self) -> float:
        """INVITE request retransmit interval (initial), unreliable transports."""
        return self.t1

    @property
    def b(self) -> float:
        """INVITE transaction timeout."""
        return 64 * self.t1

    def d(self, reliable: bool) -> float:
        """Wait time for response retransmits (ICT Completed)."""
        return 0.0 if reliable else max(32.0, 64 * self.t1)

    @property
    def e(self) -> float:
        """Non-INVITE request retransmit interval (initial), unreliable transports."""
        return self.t1

    @property
    def f(self) -> float:
        """Non-INVITE transaction timeout."""
        return 64 * self.t1

    @property
    def g(self) -> float:
        """INVITE response retransmit interval (initial)."""
        return self.t1

    @property
    def h(self) -> float:
        """Wait time for ACK receipt."""
        return 64 * self.t1

    def i(self, reliable: bool) -> float:
        """Wait time for ACK retransmits."""
        return 0.0 if reliable else self.t4

    def j(self, reliable: bool) -> float:
        """Wait time for non-INVITE request retransmits."""
        return 0.0 if reliable else 64 * self.t1

    def k(self, reliable: bool) -> float:
        """Wait time for response retransmits (NICT Completed)."""
        return 0.0 if reliable else self.t4

    @property
    def l(self) -> float:  # noqa: E743 - the RFC's name
        """Wait time for accepted INVITE request retransmits (RFC 6026)."""
        return 64 * self.t1

    @property
    def m(self) -> float:
        """Wait time for retransmission of 2xx to INVITE (RFC 6026)."""
        return 64 * self.t1


DEFAULT_TIMERS = TimerConfig()
