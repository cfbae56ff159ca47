"""The four ESP SAs that sec-agree sets up between a UE and its P-CSCF.

Specifications: 3GPP TS 33.203 section 7.1 (the SAs and their ports), 7.2 (the
SPIs: each SA's SPI is chosen by its receiver), Annex H (the ``ipsec-3gpp``
parameters) and Annex I (keys from IK and CK, :func:`~.esp.derive_keys`).

The UE offers ``spi-c``, ``spi-s``, ``port-c`` and ``port-s`` in its
Security-Client; the P-CSCF answers with its own in Security-Server.  All four
SAs use the same algorithms and keys::

    flow                             SPI (chosen by the receiver)
    UE port-c     -> P-CSCF port-s   P-CSCF spi-s    (UE requests)
    P-CSCF port-s -> UE port-c       UE spi-c        (responses to them)
    P-CSCF port-c -> UE port-s       UE spi-s        (P-CSCF requests)
    UE port-s     -> P-CSCF port-c   P-CSCF spi-c    (responses to them)

:func:`make_sa_set` builds them for one side (``ue`` or ``pcscf``), split into
the two it receives on and the two it sends on; :func:`install` and
:func:`remove` put them into, and take them out of, an :class:`~.esp.SADatabase`.
Sans-IO: no sockets, no clock; lifetimes are absolute times on the caller's clock.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Final, Literal

from .esp import (
    AUTH_ALGORITHMS,
    ENC_ALGORITHMS,
    EspError,
    SADatabase,
    SecurityAssociation,
    derive_keys,
)
from .secagree import IPSEC_3GPP, SecurityMechanism

__all__ = [
    "SPI_MIN",
    "Role",
    "SecAgreeSaSet",
    "allocate_spis",
    "extend",
    "install",
    "make_sa_set",
    "remove",
    "wireshark_esp_sa",
]

Role = Literal["ue", "pcscf"]

SPI_MIN: Final = 256
"""SPIs 1..255 are reserved by IANA (RFC 4303 section 2.1); 0 is never sent."""

SPI_MAX: Final = 0xFFFFFFFF

_ALLOCATE_TRIES = 64


@dataclass(frozen=True, slots=True)
class SecAgreeSaSet:
    """The four SAs of one UE / P-CSCF pair, seen from one side (``role``)."""

    role: Role
    """Whose view this is: ``ue`` or ``pcscf``."""
    alg: str
    """Integrity algorithm of all four SAs."""
    ealg: str
    """Encryption algorithm of all four SAs (``null`` when the offer had none)."""
    local_host: str
    """This side's address (normalised IP text)."""
    local_port_c: int
    """This side's protected client port (requests leave from it)."""
    local_port_s: int
    """This side's protected server port (requests arrive on it)."""
    peer_host: str
    """The other side's address (normalised IP text)."""
    peer_port_c: int
    """The other side's protected client port."""
    peer_port_s: int
    """The other side's protected server port."""
    inbound: tuple[SecurityAssociation, SecurityAssociation]
    """The SAs this side receives on: (peer port-c -> our port-s, peer port-s -> our port-c)."""
    outbound: tuple[SecurityAssociation, SecurityAssociation]
    """The SAs this side sends on: (our port-c -> peer port-s, our port-s -> peer port-c)."""

    @property
    def sas(self) -> tuple[SecurityAssociation, ...]:
        """All four SAs, inbound first."""
        return self.inbound + self.outbound

    @property
    def inbound_spis(self) -> frozenset[int]:
        """The SPIs this side chose (the ones it receives on)."""
        return frozenset(sa.spi for sa in self.inbound)

    @property
    def expires_at(self) -> float | None:
        """The common lifetime of the four SAs."""
        return self.inbound[0].expires_at


def _ip(host: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        raise EspError("invalid_sa", f"{what} {host!r} is not an IP address") from None


def _check(m: SecurityMechanism, who: str) -> tuple[int, int, int, int]:
    if m.name != IPSEC_3GPP:
        raise EspError("invalid_sa", f"{who} mechanism is {m.name!r}, not {IPSEC_3GPP}")
    if m.prot not in (None, "esp") or m.mod not in (None, "trans"):
        raise EspError("invalid_sa", f"{who} asks for {m.prot}/{m.mod}, only esp/trans exist here")
    if m.spi_c is None or m.spi_s is None or m.port_c is None or m.port_s is None:
        raise EspError("invalid_sa", f"{who} lacks spi-c, spi-s, port-c or port-s")
    if m.spi_c == m.spi_s:
        raise EspError("invalid_sa", f"{who} spi-c and spi-s are both {m.spi_c}")
    if m.port_c == m.port_s:
        raise EspError("invalid_sa", f"{who} port-c and port-s are both {m.port_c}")
    return m.spi_c, m.spi_s, m.port_c, m.port_s


def make_sa_set(
    *,
    role: Role,
    ue_host: str,
    pcscf_host: str,
    client: SecurityMechanism,
    server: SecurityMechanism,
    ik: bytes,
    ck: bytes,
    expires_at: float | None,
) -> SecAgreeSaSet:
    """The four SAs of TS 33.203 section 7.1 for ``role``.

    ``client`` is the UE's chosen Security-Client offer, ``server`` the
    P-CSCF's Security-Server; both name the algorithms used (they must agree),
    ``server``'s ealg deciding when one of them omits it (absent means null).
    Raises ``EspError("invalid_sa")`` on mechanisms that cannot make SAs.
    """
    if role not in ("ue", "pcscf"):
        raise EspError("invalid_sa", f"role must be 'ue' or 'pcscf', not {role!r}")
    ue_spi_c, ue_spi_s, ue_port_c, ue_port_s = _check(client, "Security-Client")
    pc_spi_c, pc_spi_s, pc_port_c, pc_port_s = _check(server, "Security-Server")
    alg, ealg = server.alg, server.effective_ealg
    if alg not in AUTH_ALGORITHMS or ealg not in ENC_ALGORITHMS:
        raise EspError("invalid_sa", f"unsupported algorithms alg={alg} ealg={ealg}")
    if (client.alg, client.effective_ealg) != (alg, ealg):
        raise EspError(
            "invalid_sa",
            f"client offer {client.alg}/{client.effective_ealg} is not the server's {alg}/{ealg}",
        )
    ue = _ip(ue_host, "UE host")
    pc = _ip(pcscf_host, "P-CSCF host")
    if (":" in ue) != (":" in pc):
        raise EspError("invalid_sa", f"UE {ue} and P-CSCF {pc} are not of one IP version")
    auth_key, enc_key = derive_keys(ik, ck, alg, ealg)

    def sa(spi: int, src: tuple[str, int], dst: tuple[str, int]) -> SecurityAssociation:
        return SecurityAssociation(spi, alg, ealg, auth_key, enc_key, src, dst, expires_at)

    ue_c_to_pc_s = sa(pc_spi_s, (ue, ue_port_c), (pc, pc_port_s))
    pc_s_to_ue_c = sa(ue_spi_c, (pc, pc_port_s), (ue, ue_port_c))
    pc_c_to_ue_s = sa(ue_spi_s, (pc, pc_port_c), (ue, ue_port_s))
    ue_s_to_pc_c = sa(pc_spi_c, (ue, ue_port_s), (pc, pc_port_c))
    if role == "ue":
        return SecAgreeSaSet(
            role=role,
            alg=alg,
            ealg=ealg,
            local_host=ue,
            local_port_c=ue_port_c,
            local_port_s=ue_port_s,
            peer_host=pc,
            peer_port_c=pc_port_c,
            peer_port_s=pc_port_s,
            inbound=(pc_c_to_ue_s, pc_s_to_ue_c),
            outbound=(ue_c_to_pc_s, ue_s_to_pc_c),
        )
    return SecAgreeSaSet(
        role=role,
        alg=alg,
        ealg=ealg,
        local_host=pc,
        local_port_c=pc_port_c,
        local_port_s=pc_port_s,
        peer_host=ue,
        peer_port_c=ue_port_c,
        peer_port_s=ue_port_s,
        inbound=(ue_c_to_pc_s, ue_s_to_pc_c),
        outbound=(pc_c_to_ue_s, pc_s_to_ue_c),
    )


def _same(a: SecurityAssociation, b: SecurityAssociation) -> bool:
    """Equal but for the lifetime (``SADatabase.set_expiry`` changes it in place)."""
    return replace(a, expires_at=None) == replace(b, expires_at=None)


def install(sadb: SADatabase, sa_set: SecAgreeSaSet, *, window: int = 64) -> None:
    """Add the set's inbound and outbound SAs to ``sadb``, all or none.

    Raises ``EspError("invalid_sa")`` when an inbound SPI is already in use
    (nothing of the set stays installed then).  Outbound SAs replace any SA
    of the same flow, as :meth:`SADatabase.add_outbound` does.
    """
    added: list[SecurityAssociation] = []
    try:
        for sa in sa_set.inbound:
            sadb.add_inbound(sa, window=window)
            added.append(sa)
    except EspError:
        for sa in added:
            sadb.delete(sa)
        raise
    for sa in sa_set.outbound:
        sadb.add_outbound(sa)


def remove(sadb: SADatabase, sa_set: SecAgreeSaSet) -> list[SecurityAssociation]:
    """Take the set's SAs out of ``sadb`` (whatever their lifetime is now); the removed ones.

    SAs of the same SPI or flow that belong to another set are left alone.
    """
    removed: list[SecurityAssociation] = []
    for sa in sa_set.inbound:
        current = sadb.lookup(sa.spi)
        if current is not None and _same(current, sa) and sadb.delete(current):
            removed.append(current)
    for sa in sa_set.outbound:
        current = sadb.lookup_outbound(sa.src, sa.dst)
        if current is not None and _same(current, sa) and sadb.delete(current):
            removed.append(current)
    return removed


def extend(sadb: SADatabase, sa_set: SecAgreeSaSet, expires_at: float | None) -> SecAgreeSaSet:
    """Give the installed SAs of the set a new lifetime (after the 200 OK to REGISTER).

    Counters and replay windows are kept.  Raises ``EspError("no_sa")`` when
    one of them is not installed.
    """

    def one(sa: SecurityAssociation, current: SecurityAssociation | None) -> SecurityAssociation:
        if current is None or not _same(current, sa):
            raise EspError("no_sa", f"SA {sa.spi} {sa.src} -> {sa.dst} is not installed")
        return sadb.set_expiry(current, expires_at)

    in0, in1 = (one(sa, sadb.lookup(sa.spi)) for sa in sa_set.inbound)
    out0, out1 = (one(sa, sadb.lookup_outbound(sa.src, sa.dst)) for sa in sa_set.outbound)
    return replace(sa_set, inbound=(in0, in1), outbound=(out0, out1))


def allocate_spis(rng: random.Random, in_use: Collection[int] = ()) -> tuple[int, int]:
    """Two fresh SPIs ``(spi_c, spi_s)`` for a Security-Client or -Server.

    Both are in 256..2^32-1, differ from each other and from ``in_use`` (the
    SPIs of the node's SA database, and ones offered but not yet installed).
    Pass ``random.SystemRandom()`` in production; a seeded ``random.Random``
    in tests.  Raises ``EspError("invalid_sa")`` if ``rng`` keeps hitting used values.
    """
    chosen: list[int] = []
    for _ in range(_ALLOCATE_TRIES):
        spi = rng.randrange(SPI_MIN, SPI_MAX + 1)
        if spi not in in_use and spi not in chosen:
            chosen.append(spi)
            if len(chosen) == 2:
                return chosen[0], chosen[1]
    raise EspError("invalid_sa", "could not find two free SPIs")


_WS_ENC = {
    "null": "NULL",
    "aes-cbc": "AES-CBC [RFC3602]",
    "des-ede3-cbc": "TripleDES-CBC [RFC2451]",
}
_WS_AUTH = {"hmac-sha-1-96": "HMAC-SHA-1-96 [RFC2404]", "hmac-md5-96": "HMAC-MD5-96 [RFC2403]"}


def wireshark_esp_sa(sa: SecurityAssociation) -> str:
    """The value of one Wireshark/tshark ``uat:esp_sa`` entry for ``sa``.

    Use as ``tshark -o 'uat:esp_sa:<value>'``; it carries the keys, so it is
    for debugging captures, never for logs.
    """
    version = "IPv6" if ":" in sa.src[0] else "IPv4"
    enc_key = f"0x{sa.enc_key.hex()}" if sa.enc_key else ""
    fields = (
        version,
        sa.src[0],
        sa.dst[0],
        f"0x{sa.spi:08x}",
        _WS_ENC[sa.enc_alg],
        enc_key,
        _WS_AUTH[sa.auth_alg],
        f"0x{sa.auth_key.hex()}",
    )
    return ",".join(f'"{field}"' for field in fields)
