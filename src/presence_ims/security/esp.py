"""ESP in transport mode, emulated in software for the Gm reference point.

Specifications: RFC 4303 (ESP: packet format section 2, padding 2.4, sequence
numbers and anti-replay 3.3.3 and 3.4.3, ICV 3.3.4 and 3.4.4), RFC 2403
(HMAC-MD5-96), RFC 2404 (HMAC-SHA-1-96), RFC 3602 (AES-CBC), RFC 2451 (3DES-CBC),
3GPP TS 33.203 section 6.3 and Annex I/H (keys from IK and CK).

Wire format (no extended sequence numbers)::

    SPI (4) || Sequence Number (4) || IV || ciphertext || ICV (12)
    plaintext = payload || 01 02 03 .. || pad length (1) || next header (1)

The plaintext is padded to the cipher block size (16 for AES-CBC, 8 for
3DES-CBC, 4-byte alignment with NULL encryption, which also has no IV). The ICV
is an HMAC over SPI through the end of the ciphertext, truncated to 96 bits.

Keys (TS 33.203 section 6.3 / Annex I): hmac-md5-96 uses IK (16 bytes);
hmac-sha-1-96 uses IK || 32 zero bits (20 bytes); aes-cbc uses CK (16 bytes);
des-ede3-cbc uses CK || CK[0:8] (24 bytes).

Payloads with next header 17 are a UDP header followed by the SIP message
(:func:`udp_wrap`), which is what Wireshark expects when it decrypts ESP.

Nothing here reads a clock: expiry takes ``now`` from the caller.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Final, Literal

from cryptography.hazmat.primitives.ciphers import BlockCipherAlgorithm, Cipher, algorithms, modes

from .errors import SecurityError

try:  # cryptography >= 43 keeps 3DES among the "decrepit" algorithms
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES as _TripleDES
except ImportError:  # pragma: no cover - older cryptography
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from cryptography.hazmat.primitives.ciphers.algorithms import (  # type: ignore[attr-defined,no-redef,unused-ignore]
            TripleDES as _TripleDES,
        )

__all__ = [
    "AUTH_ALGORITHMS",
    "ENC_ALGORITHMS",
    "ICV_LEN",
    "NEXT_HEADER_UDP",
    "EspError",
    "EspErrorKind",
    "EspReceiver",
    "EspSender",
    "InboundPacket",
    "SADatabase",
    "SecurityAssociation",
    "derive_keys",
    "udp_unwrap",
    "udp_wrap",
]

ICV_LEN: Final = 12
"""Both integrity algorithms truncate the HMAC to 96 bits."""

NEXT_HEADER_UDP: Final = 17
"""IP protocol number of UDP, the next header of SIP-over-ESP payloads."""

SEQ_MAX: Final = 0xFFFFFFFF
"""The last sequence number a sender may use (RFC 4303 3.3.3: no cycling)."""

AUTH_ALGORITHMS: Final = ("hmac-sha-1-96", "hmac-md5-96")
"""Integrity algorithms by name (TS 33.203 ``alg``), preferred first."""

ENC_ALGORITHMS: Final = ("aes-cbc", "des-ede3-cbc", "null")
"""Encryption algorithms by name (TS 33.203 ``ealg``), preferred first."""

_AUTH_KEY_LEN = {"hmac-md5-96": 16, "hmac-sha-1-96": 20}
_AUTH_HASH = {"hmac-md5-96": hashlib.md5, "hmac-sha-1-96": hashlib.sha1}
_ENC_KEY_LEN = {"null": 0, "aes-cbc": 16, "des-ede3-cbc": 24}
_ENC_IV_LEN = {"null": 0, "aes-cbc": 16, "des-ede3-cbc": 8}
_ENC_ALIGN = {"null": 4, "aes-cbc": 16, "des-ede3-cbc": 8}
_HEADER = struct.Struct(">II")
_UDP = struct.Struct(">HHHH")

EspErrorKind = Literal[
    "short",
    "unknown_spi",
    "replay",
    "bad_icv",
    "bad_padding",
    "expired",
    "invalid_sa",
    "seq_exhausted",
    "no_sa",
    "bad_udp",
]
"""Why a packet was dropped (the first six) or an operation refused.

``invalid_sa``: an SA with unknown algorithms or wrong key lengths;
``seq_exhausted``: the sender used sequence number 2^32-1 (RFC 4303 3.3.3);
``no_sa``: no outbound SA for a flow; ``bad_udp``: a malformed inner UDP header.
"""


class EspError(SecurityError):
    """A packet that must be dropped, or an ESP operation that is refused."""

    def __init__(self, kind: EspErrorKind, reason: str) -> None:
        super().__init__(reason)
        self.kind: EspErrorKind = kind

    def __str__(self) -> str:
        return f"{self.kind}: {self.reason}"


def derive_keys(ik: bytes, ck: bytes, alg: str, ealg: str) -> tuple[bytes, bytes]:
    """ESP ``(auth_key, enc_key)`` from the AKA IK and CK (TS 33.203 Annex I).

    ``alg`` is ``hmac-md5-96`` or ``hmac-sha-1-96``; ``ealg`` is ``null``,
    ``aes-cbc`` or ``des-ede3-cbc``.  ``enc_key`` is empty for ``null``.
    """
    if len(ik) != 16 or len(ck) != 16:
        raise EspError("invalid_sa", "IK and CK must be 16 bytes each")
    if alg == "hmac-md5-96":
        auth_key = bytes(ik)
    elif alg == "hmac-sha-1-96":
        auth_key = bytes(ik) + bytes(4)
    else:
        raise EspError("invalid_sa", f"unknown integrity algorithm {alg!r}")
    if ealg == "null":
        enc_key = b""
    elif ealg == "aes-cbc":
        enc_key = bytes(ck)
    elif ealg == "des-ede3-cbc":
        enc_key = bytes(ck) + bytes(ck[:8])
    else:
        raise EspError("invalid_sa", f"unknown encryption algorithm {ealg!r}")
    return auth_key, enc_key


@dataclass(frozen=True, slots=True)
class SecurityAssociation:
    """One unidirectional ESP SA in transport mode (RFC 4301 section 4.4.2)."""

    spi: int
    """The SPI, chosen by the receiving side; 1..2^32-1 (0 never goes on the wire)."""
    auth_alg: str
    """Integrity algorithm: ``hmac-md5-96`` or ``hmac-sha-1-96``."""
    enc_alg: str
    """Encryption algorithm: ``null``, ``aes-cbc`` or ``des-ede3-cbc``."""
    auth_key: bytes
    """Integrity key (16 bytes for MD5, 20 for SHA-1; see :func:`derive_keys`)."""
    enc_key: bytes
    """Encryption key (empty for null, 16 for AES, 24 for 3DES)."""
    src: tuple[str, int]
    """Sending endpoint (host, port)."""
    dst: tuple[str, int]
    """Receiving endpoint (host, port)."""
    expires_at: float | None = None
    """Time (same clock as ``now``) after which the SA is unusable; None: never."""

    def __post_init__(self) -> None:
        if not 0 < self.spi <= 0xFFFFFFFF:
            raise EspError("invalid_sa", f"SPI {self.spi} is outside 1..2^32-1")
        if _AUTH_KEY_LEN.get(self.auth_alg) != len(self.auth_key):
            raise EspError("invalid_sa", f"bad integrity algorithm or key for {self.auth_alg!r}")
        if _ENC_KEY_LEN.get(self.enc_alg) != len(self.enc_key):
            raise EspError("invalid_sa", f"bad encryption algorithm or key for {self.enc_alg!r}")

    def __repr__(self) -> str:  # keys stay out of logs
        return (
            f"SecurityAssociation(spi={self.spi}, auth_alg={self.auth_alg!r}, "
            f"enc_alg={self.enc_alg!r}, src={self.src!r}, dst={self.dst!r}, "
            f"expires_at={self.expires_at!r})"
        )

    def expired(self, now: float) -> bool:
        """Whether the SA's lifetime is over at ``now``."""
        return self.expires_at is not None and now >= self.expires_at


class _Transform:
    """The cryptographic transform of one SA: cipher plus truncated HMAC."""

    __slots__ = ("align", "auth_key", "cipher_alg", "digest", "iv_len")

    def __init__(self, sa: SecurityAssociation) -> None:
        self.auth_key = sa.auth_key
        self.digest = _AUTH_HASH[sa.auth_alg]
        self.iv_len = _ENC_IV_LEN[sa.enc_alg]
        self.align = _ENC_ALIGN[sa.enc_alg]
        self.cipher_alg: BlockCipherAlgorithm | None
        if sa.enc_alg == "aes-cbc":
            self.cipher_alg = algorithms.AES(sa.enc_key)
        elif sa.enc_alg == "des-ede3-cbc":
            self.cipher_alg = _TripleDES(sa.enc_key)
        else:
            self.cipher_alg = None

    def icv(self, data: bytes) -> bytes:
        return hmac.digest(self.auth_key, data, self.digest)[:ICV_LEN]

    def encrypt(self, iv: bytes, plaintext: bytes) -> bytes:
        if self.cipher_alg is None:
            return plaintext
        enc = Cipher(self.cipher_alg, modes.CBC(iv)).encryptor()
        return enc.update(plaintext) + enc.finalize()

    def decrypt(self, iv: bytes, ciphertext: bytes) -> bytes:
        if self.cipher_alg is None:
            return ciphertext
        dec = Cipher(self.cipher_alg, modes.CBC(iv)).decryptor()
        return dec.update(ciphertext) + dec.finalize()


class EspSender:
    """Protects outgoing packets on one SA (RFC 4303 section 3.3)."""

    __slots__ = ("_t", "sa", "seq")

    def __init__(self, sa: SecurityAssociation) -> None:
        self.sa = sa
        """The SA; replace it (same SPI and keys) to change its lifetime."""
        self.seq = 0
        """The last sequence number used; the first packet carries 1."""
        self._t = _Transform(sa)

    def protect(
        self, payload: bytes, next_header: int = NEXT_HEADER_UDP, iv: bytes | None = None
    ) -> bytes:
        """One ESP packet carrying ``payload``.

        ``iv`` defaults to fresh random bytes; pass one only for known-answer
        tests.  Raises ``EspError("seq_exhausted")`` once 2^32-1 was used: the
        SA must then be replaced (RFC 4303 3.3.3).
        """
        t = self._t
        if not 0 <= next_header <= 255:
            raise EspError("invalid_sa", f"next header {next_header} is not one byte")
        if iv is None:
            iv = os.urandom(t.iv_len)
        elif len(iv) != t.iv_len:
            raise EspError("invalid_sa", f"{self.sa.enc_alg} needs an IV of {t.iv_len} bytes")
        if self.seq >= SEQ_MAX:
            raise EspError("seq_exhausted", "sequence number space exhausted; rekey the SA")
        self.seq += 1
        pad_len = -(len(payload) + 2) % t.align
        plaintext = b"".join((payload, bytes(range(1, pad_len + 1)), bytes((pad_len, next_header))))
        signed = _HEADER.pack(self.sa.spi, self.seq) + bytes(iv) + t.encrypt(bytes(iv), plaintext)
        return signed + t.icv(signed)


class EspReceiver:
    """Verifies incoming packets on one SA, with the RFC 4303 3.4.3 anti-replay window.

    The window covers the ``window`` sequence numbers ending at the highest one
    received so far: with ``window=64`` and highest ``T``, ``T-63 .. T`` are
    accepted once each and anything below ``T-63`` is too old.
    """

    __slots__ = ("_bitmap", "_t", "highest", "sa", "window")

    def __init__(self, sa: SecurityAssociation, window: int = 64) -> None:
        if window < 1:
            raise EspError("invalid_sa", "the replay window needs at least one slot")
        self.sa = sa
        """The SA; replace it (same SPI and keys) to change its lifetime."""
        self.window = window
        """Width of the anti-replay window."""
        self.highest = 0
        """The right edge of the window: highest authenticated sequence number."""
        self._bitmap = 0  # bit i set: highest - i was received
        self._t = _Transform(sa)

    def _check_replay(self, seq: int) -> None:
        if seq == 0:
            raise EspError("replay", "sequence number 0 is never sent")
        if seq > self.highest:
            return
        diff = self.highest - seq
        if diff >= self.window:
            raise EspError("replay", f"sequence number {seq} is left of the window")
        if self._bitmap >> diff & 1:
            raise EspError("replay", f"sequence number {seq} was already received")

    def _update_window(self, seq: int) -> None:
        if seq > self.highest:
            shift = seq - self.highest
            mask = (1 << self.window) - 1
            self._bitmap = ((self._bitmap << shift) | 1) & mask if shift < self.window else 1
            self.highest = seq
        else:
            self._bitmap |= 1 << (self.highest - seq)

    def unprotect(self, packet: bytes, now: float) -> tuple[bytes, int]:
        """Verify and open one packet: ``(payload, next header)``.

        Order (RFC 4303 3.4): SPI, lifetime, replay check, ICV (constant time),
        window update, decryption, padding.  Raises :class:`EspError`.
        """
        t = self._t
        if len(packet) < _HEADER.size + t.iv_len + t.align + ICV_LEN:
            raise EspError("short", f"{len(packet)} bytes is too short for ESP on this SA")
        spi, seq = _HEADER.unpack_from(packet)
        if spi != self.sa.spi:
            raise EspError("unknown_spi", f"SPI {spi} is not this SA's")
        if self.sa.expired(now):
            raise EspError("expired", f"SA {spi} expired")
        self._check_replay(seq)
        body = len(packet) - ICV_LEN
        if not hmac.compare_digest(t.icv(packet[:body]), packet[body:]):
            raise EspError("bad_icv", "integrity check failed")
        self._update_window(seq)
        start = _HEADER.size + t.iv_len
        ciphertext = packet[start:body]
        if len(ciphertext) % t.align:
            raise EspError("bad_padding", "ciphertext is not a whole number of blocks")
        plaintext = t.decrypt(packet[_HEADER.size : start], ciphertext)
        pad_len, next_header = plaintext[-2], plaintext[-1]
        end = len(plaintext) - 2 - pad_len
        if end < 0 or plaintext[end:-2] != bytes(range(1, pad_len + 1)):
            raise EspError("bad_padding", "padding is not 1, 2, 3, ...")
        return plaintext[:end], next_header


@dataclass(frozen=True, slots=True)
class InboundPacket:
    """A packet that passed every check of an inbound SA."""

    sa: SecurityAssociation
    """The SA it arrived on (its ``src`` is the peer)."""
    payload: bytes
    """The decrypted payload (a UDP header + SIP when next_header is 17)."""
    next_header: int
    """The protocol of the payload."""


class SADatabase:
    """The SAs of one node: inbound ones by SPI, outbound ones by flow.

    Inbound SPIs are chosen locally, so they are unique here; outbound SPIs are
    chosen by each peer and may repeat across peers, hence the flow key
    ``(src, dst)`` for the outbound side.  Drops are counted per kind.
    """

    def __init__(self) -> None:
        self._inbound: dict[int, EspReceiver] = {}
        self._outbound: dict[tuple[tuple[str, int], tuple[str, int]], EspSender] = {}
        self._drops: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._inbound) + len(self._outbound)

    @property
    def drops(self) -> dict[str, int]:
        """Dropped inbound packets (and refused sends) by :data:`EspErrorKind`."""
        return dict(self._drops)

    def add_inbound(self, sa: SecurityAssociation, *, window: int = 64) -> EspReceiver:
        """Install an SA on which this node receives; its SPI must be free."""
        if sa.spi in self._inbound:
            raise EspError("invalid_sa", f"inbound SPI {sa.spi} is in use")
        receiver = EspReceiver(sa, window)
        self._inbound[sa.spi] = receiver
        return receiver

    def add_outbound(self, sa: SecurityAssociation) -> EspSender:
        """Install an SA on which this node sends; replaces one for the same flow."""
        sender = EspSender(sa)
        self._outbound[(sa.src, sa.dst)] = sender
        return sender

    def lookup(self, spi: int) -> SecurityAssociation | None:
        """The inbound SA with this SPI."""
        receiver = self._inbound.get(spi)
        return receiver.sa if receiver else None

    def lookup_outbound(
        self, src: tuple[str, int], dst: tuple[str, int]
    ) -> SecurityAssociation | None:
        """The outbound SA for the flow ``src -> dst``."""
        sender = self._outbound.get((src, dst))
        return sender.sa if sender else None

    def all(self) -> list[SecurityAssociation]:
        """Every SA, inbound first."""
        return [r.sa for r in self._inbound.values()] + [s.sa for s in self._outbound.values()]

    def delete(self, sa: SecurityAssociation) -> bool:
        """Remove this SA (inbound or outbound); whether it was present."""
        receiver = self._inbound.get(sa.spi)
        if receiver is not None and receiver.sa == sa:
            del self._inbound[sa.spi]
            return True
        sender = self._outbound.get((sa.src, sa.dst))
        if sender is not None and sender.sa == sa:
            del self._outbound[(sa.src, sa.dst)]
            return True
        return False

    def delete_for_peer(
        self, host: str, ports: Iterable[int] | None = None
    ) -> list[SecurityAssociation]:
        """Remove every SA whose remote end is ``host`` (and one of ``ports``)."""
        wanted = None if ports is None else set(ports)

        def remote(end: tuple[str, int]) -> bool:
            return end[0] == host and (wanted is None or end[1] in wanted)

        removed = [r.sa for r in self._inbound.values() if remote(r.sa.src)]
        removed += [s.sa for s in self._outbound.values() if remote(s.sa.dst)]
        for sa in removed:
            self.delete(sa)
        return removed

    def expire(self, now: float) -> list[SecurityAssociation]:
        """Remove and return every SA whose lifetime is over at ``now``."""
        removed = [sa for sa in self.all() if sa.expired(now)]
        for sa in removed:
            self.delete(sa)
        return removed

    def set_expiry(self, sa: SecurityAssociation, expires_at: float | None) -> SecurityAssociation:
        """Give an installed SA a new lifetime, keeping its counters and window."""
        new = replace(sa, expires_at=expires_at)
        receiver = self._inbound.get(sa.spi)
        if receiver is not None and receiver.sa == sa:
            receiver.sa = new
            return new
        sender = self._outbound.get((sa.src, sa.dst))
        if sender is not None and sender.sa == sa:
            sender.sa = new
            return new
        raise EspError("no_sa", f"SA {sa.spi} is not installed")

    def next_expiry(self) -> float | None:
        """The earliest ``expires_at`` of any SA (for the shell's timer)."""
        times = [sa.expires_at for sa in self.all() if sa.expires_at is not None]
        return min(times, default=None)

    def unprotect(
        self, packet: bytes, now: float, *, source: tuple[str, int] | None = None
    ) -> InboundPacket:
        """Verify an incoming packet on the SA named by its SPI.

        When ``source`` is given it must be the SA's ``src``: an SPI is bound to
        one peer.  Every failure is counted in :attr:`drops` and raised.
        """
        try:
            if len(packet) < _HEADER.size:
                raise EspError("short", f"{len(packet)} bytes is too short for ESP")
            (spi,) = struct.unpack_from(">I", packet)
            receiver = self._inbound.get(spi)
            if receiver is None:
                raise EspError("unknown_spi", f"no inbound SA with SPI {spi}")
            if source is not None and source != receiver.sa.src:
                raise EspError("unknown_spi", f"SPI {spi} does not belong to {source}")
            payload, next_header = receiver.unprotect(packet, now)
        except EspError as exc:
            self._drops[exc.kind] += 1
            raise
        return InboundPacket(receiver.sa, payload, next_header)

    def protect(
        self,
        src: tuple[str, int],
        dst: tuple[str, int],
        payload: bytes,
        now: float,
        next_header: int = NEXT_HEADER_UDP,
    ) -> bytes:
        """Protect ``payload`` on the outbound SA of the flow ``src -> dst``."""
        try:
            sender = self._outbound.get((src, dst))
            if sender is None:
                raise EspError("no_sa", f"no outbound SA for {src} -> {dst}")
            if sender.sa.expired(now):
                raise EspError("expired", f"SA {sender.sa.spi} expired")
            return sender.protect(payload, next_header)
        except EspError as exc:
            self._drops[exc.kind] += 1
            raise


def udp_wrap(src_port: int, dst_port: int, payload: bytes) -> bytes:
    """Prefix an 8-byte UDP header (checksum 0, RFC 768) to ``payload``."""
    length = _UDP.size + len(payload)
    if not (0 <= src_port <= 0xFFFF and 0 <= dst_port <= 0xFFFF):
        raise EspError("bad_udp", "UDP ports must be 0..65535")
    if length > 0xFFFF:
        raise EspError("bad_udp", f"{len(payload)} bytes do not fit in one UDP datagram")
    return _UDP.pack(src_port, dst_port, length, 0) + payload


def udp_unwrap(data: bytes) -> tuple[int, int, bytes]:
    """``(src_port, dst_port, payload)`` from a UDP header + payload."""
    if len(data) < _UDP.size:
        raise EspError("bad_udp", "shorter than a UDP header")
    src_port, dst_port, length, _checksum = _UDP.unpack_from(data)
    if length != len(data):
        raise EspError("bad_udp", f"UDP length {length} but {len(data)} bytes")
    return src_port, dst_port, bytes(data[_UDP.size :])
