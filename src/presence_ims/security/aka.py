"""UMTS AKA as IMS uses it: vectors, the UE's checks, resynchronisation.

Specifications: 3GPP TS 33.102 section 6.3 (authentication and key agreement)
and Annex C (sequence number management), RFC 3310 (the AKA nonce in HTTP/SIP
Digest), TS 33.203 section 6.1 (IMS AKA).

- HSS/AuC (TS 33.102 6.3.2): ``AUTN = (SQN xor AK) || AMF || MAC-A`` with
  ``MAC-A = f1(K, SQN, RAND, AMF)`` and ``AK = f5(K, RAND)``; the vector is
  ``(RAND, XRES, CK, IK, AUTN)``.
- UE/USIM (6.3.3): recompute AK, recover SQN, check MAC-A (a failure is a
  *MAC failure*), then check that SQN is fresh (Annex C; a failure is a
  *synchronisation failure* answered with ``AUTS = (SQN_MS xor AK*) || MAC-S``,
  ``MAC-S = f1*(K, SQN_MS, RAND, AMF=0000)``, ``AK* = f5*(K, RAND)``).
- HSS on resynchronisation (6.3.5): recover SQN_MS from AUTS, verify MAC-S,
  and continue from SQN_MS.
- RFC 3310 section 3.2: ``nonce = base64(RAND || AUTN || server data)``.

Sequence numbers (Annex C.1.1/C.1.2): ``SQN = SEQ || IND``, with a 5-bit IND
(an array of 32 entries in the USIM) and SEQ the upper 43 bits.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from .errors import SecurityError
from .milenage import Milenage, MilenageError

__all__ = [
    "AMF_RESYNC",
    "IND_BITS",
    "SQN_MAX",
    "AkaError",
    "AkaMacFailure",
    "AkaSyncFailure",
    "AuthVector",
    "SqnTracker",
    "UeResult",
    "aka_debug",
    "decode_nonce",
    "encode_nonce",
    "generate_vector",
    "next_sqn",
    "resync_sqn",
    "ue_authenticate",
]

SQN_MAX = (1 << 48) - 1
"""SQN is 48 bits (TS 33.102 6.3.7)."""

IND_BITS = 5
"""Length of IND in bits: an array of 32 SEQ_MS entries (Annex C.1.2, C.3.2)."""

AMF_RESYNC = b"\x00\x00"
"""The dummy AMF used to compute MAC-S in AUTS (TS 33.102 6.3.3)."""

_RAND_LEN = 16
_AUTN_LEN = 16
_AUTS_LEN = 14


class AkaError(SecurityError):
    """Malformed AKA input (nonce, AUTN, AUTS, SQN out of range)."""


class AkaMacFailure(AkaError):
    """MAC-A (at the UE) or MAC-S (at the HSS) does not verify."""


class AkaSyncFailure(AkaError):
    """The UE found SQN not fresh; ``auts`` goes back to the network."""

    def __init__(self, reason: str, auts: bytes) -> None:
        super().__init__(reason)
        self.auts = auts


@dataclass(frozen=True, slots=True)
class AuthVector:
    """An authentication vector (TS 33.102 6.3.2), as the HSS returns in a MAA."""

    rand: bytes
    """RAND, the 16-byte random challenge."""
    autn: bytes
    """AUTN = (SQN xor AK) || AMF || MAC-A, 16 bytes."""
    xres: bytes
    """XRES, the expected response (8 bytes with MILENAGE)."""
    ck: bytes
    """CK, the 16-byte cipher key (ESP encryption key source)."""
    ik: bytes
    """IK, the 16-byte integrity key (ESP authentication key source)."""


@dataclass(frozen=True, slots=True)
class UeResult:
    """What a successful UE-side authentication yields."""

    res: bytes
    """RES, the response; the AKAv1-MD5 digest password (raw bytes)."""
    ck: bytes
    """CK, the cipher key."""
    ik: bytes
    """IK, the integrity key."""
    sqn: int
    """The SQN that was accepted."""


def _check_sqn(sqn: int) -> int:
    if not 0 <= sqn <= SQN_MAX:
        raise AkaError(f"SQN {sqn} is outside 0..2^48-1")
    return sqn


def _sqn_bytes(sqn: int) -> bytes:
    return _check_sqn(sqn).to_bytes(6, "big")


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def generate_vector(m: Milenage, sqn: int, amf: bytes, rand: bytes) -> AuthVector:
    """Build an authentication vector for ``sqn`` (TS 33.102 6.3.2)."""
    sqn_b = _sqn_bytes(sqn)
    try:
        mac_a = m.f1(rand, sqn_b, amf)
        res, ck, ik, ak = m.f2345(rand)
    except MilenageError as exc:
        raise AkaError(exc.reason) from exc
    autn = _xor(sqn_b, ak) + bytes(amf) + mac_a
    return AuthVector(rand=bytes(rand), autn=autn, xres=res, ck=ck, ik=ik)


def next_sqn(sqn: int, ind: int | None = None) -> int:
    """The SQN the HSS uses after ``sqn``: SEQ + 1, same IND unless ``ind`` is given.

    A fresh subscriber may start from ``next_sqn(0)`` (SEQ 1): a UE accepts
    only SEQ values above the ones it holds, which start at 0 (Annex C.2.2).
    """
    _check_sqn(sqn)
    mask = (1 << IND_BITS) - 1
    new_ind = sqn & mask if ind is None else ind
    if not 0 <= new_ind <= mask:
        raise AkaError(f"IND {new_ind} is outside 0..{mask}")
    return _check_sqn((((sqn >> IND_BITS) + 1) << IND_BITS) | new_ind)


def encode_nonce(rand: bytes, autn: bytes) -> str:
    """``base64(RAND || AUTN)``, the AKA digest nonce (RFC 3310 section 3.2)."""
    if len(rand) != _RAND_LEN or len(autn) != _AUTN_LEN:
        raise AkaError("RAND and AUTN must be 16 bytes each")
    return base64.b64encode(bytes(rand) + bytes(autn)).decode("ascii")


def decode_nonce(nonce: str) -> tuple[bytes, bytes]:
    """Split an AKA nonce into ``(RAND, AUTN)``; trailing server data is ignored."""
    if not isinstance(nonce, str):
        raise AkaError("nonce must be text")
    try:
        raw = base64.b64decode(nonce.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise AkaError("nonce is not valid base64") from exc
    if len(raw) < _RAND_LEN + _AUTN_LEN:
        raise AkaError(f"nonce holds {len(raw)} bytes, RAND || AUTN needs 32")
    return raw[:_RAND_LEN], raw[_RAND_LEN : _RAND_LEN + _AUTN_LEN]


class SqnTracker:
    """The USIM's record of accepted sequence numbers (TS 33.102 Annex C.2, C.3).

    ``SQN = SEQ || IND``: one ``SEQ_MS(i)`` per IND value ``i`` (32 entries).
    An SQN is fresh when

    - ``SEQ > SEQ_MS(IND)`` (C.2.2; one vector per array slot), and
    - ``SEQ - SEQ_MS <= delta`` where ``SEQ_MS`` is the highest SEQ accepted in
      any slot (C.2.1, protection against a counter wrap-around), and
    - when ``age_limit`` (the limit L of C.2.2) is set,
      ``SEQ_MS - SEQ <= age_limit``.
    """

    __slots__ = ("_highest", "_seq", "age_limit", "delta")

    def __init__(self, *, delta: int = 1 << 28, age_limit: int | None = None) -> None:
        if delta < 1 or (age_limit is not None and age_limit < 0):
            raise AkaError("delta must be >= 1 and age_limit >= 0")
        self.delta = delta
        """Largest accepted jump of SEQ above the highest accepted SEQ."""
        self.age_limit = age_limit
        """L: largest accepted distance of SEQ below the highest accepted SEQ."""
        self._seq = [0] * (1 << IND_BITS)
        self._highest = 0

    @property
    def highest(self) -> int:
        """SQN_MS: the highest SQN accepted so far (0 before any), sent in AUTS."""
        return self._highest

    def check(self, sqn: int) -> bool:
        """Whether ``sqn`` is fresh; does not record it."""
        if not 0 <= sqn <= SQN_MAX:
            return False
        seq, ind = sqn >> IND_BITS, sqn & ((1 << IND_BITS) - 1)
        seq_ms = self._highest >> IND_BITS
        if seq <= self._seq[ind]:
            return False
        if seq - seq_ms > self.delta:
            return False
        return not (self.age_limit is not None and seq_ms - seq > self.age_limit)

    def accept(self, sqn: int) -> None:
        """Record ``sqn`` as used (call only for an SQN that passed :meth:`check`)."""
        _check_sqn(sqn)
        seq, ind = sqn >> IND_BITS, sqn & ((1 << IND_BITS) - 1)
        self._seq[ind] = max(self._seq[ind], seq)
        if seq > self._highest >> IND_BITS:
            self._highest = sqn


def _auts(m: Milenage, rand: bytes, sqn_ms: int) -> bytes:
    sqn_b = _sqn_bytes(sqn_ms)
    return _xor(sqn_b, m.f5star(rand)) + m.f1star(rand, sqn_b, AMF_RESYNC)


def ue_authenticate(m: Milenage, rand: bytes, autn: bytes, tracker: SqnTracker) -> UeResult:
    """The USIM's side of AKA (TS 33.102 6.3.3).

    Returns RES, CK and IK and records SQN in ``tracker``.  Raises
    :class:`AkaMacFailure` when MAC-A is wrong (the UE answers without
    credentials), :class:`AkaSyncFailure` carrying AUTS when SQN is not fresh.
    """
    if len(autn) != _AUTN_LEN:
        raise AkaError("AUTN must be 16 bytes")
    try:
        res, ck, ik, ak = m.f2345(rand)
    except MilenageError as exc:
        raise AkaError(exc.reason) from exc
    sqn_b = _xor(bytes(autn[:6]), ak)
    amf, mac = bytes(autn[6:8]), bytes(autn[8:16])
    if not hmac.compare_digest(m.f1(rand, sqn_b, amf), mac):
        raise AkaMacFailure("MAC-A does not verify")
    sqn = int.from_bytes(sqn_b, "big")
    if not tracker.check(sqn):
        raise AkaSyncFailure(f"SQN {sqn} is not fresh", _auts(m, rand, tracker.highest))
    tracker.accept(sqn)
    return UeResult(res=res, ck=ck, ik=ik, sqn=sqn)


def resync_sqn(m: Milenage, rand: bytes, auts: bytes) -> int:
    """Recover SQN_MS from AUTS at the HSS (TS 33.102 6.3.5), verifying MAC-S.

    ``rand`` is the RAND of the challenge the UE rejected.  The HSS then resumes
    from the returned SQN_MS (for example ``next_sqn(sqn_ms)``).
    """
    if len(auts) != _AUTS_LEN:
        raise AkaError(f"AUTS must be {_AUTS_LEN} bytes, got {len(auts)}")
    try:
        sqn_b = _xor(bytes(auts[:6]), m.f5star(rand))
        mac_s = m.f1star(rand, sqn_b, AMF_RESYNC)
    except MilenageError as exc:
        raise AkaError(exc.reason) from exc
    if not hmac.compare_digest(mac_s, bytes(auts[6:])):
        raise AkaMacFailure("MAC-S in AUTS does not verify")
    return int.from_bytes(sqn_b, "big")


def aka_debug(
    k: bytes,
    rand: bytes,
    sqn: int | bytes,
    amf: bytes,
    *,
    op: bytes | None = None,
    opc: bytes | None = None,
) -> dict[str, str]:
    """Every intermediate MILENAGE value as lowercase hex, for ``presence-ims aka``.

    Keys: ``opc, mac_a, mac_s, res, ck, ik, ak, ak_star``.
    """
    sqn_b = _sqn_bytes(sqn) if isinstance(sqn, int) else bytes(sqn)
    try:
        m = Milenage(k, op=op, opc=opc)
        mac_a = m.f1(rand, sqn_b, amf)
        mac_s = m.f1star(rand, sqn_b, amf)
        res, ck, ik, ak = m.f2345(rand)
        ak_star = m.f5star(rand)
    except MilenageError as exc:
        raise AkaError(exc.reason) from exc
    return {
        "opc": m.opc.hex(),
        "mac_a": mac_a.hex(),
        "mac_s": mac_s.hex(),
        "res": res.hex(),
        "ck": ck.hex(),
        "ik": ik.hex(),
        "ak": ak.hex(),
        "ak_star": ak_star.hex(),
    }
