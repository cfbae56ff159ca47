"""MILENAGE, the 3GPP example algorithm set f1, f1*, f2, f3, f4, f5 and f5*.

Specification: 3GPP TS 35.206 (algorithm specification, section 4), with the
conformance test data of TS 35.207/35.208 used by the unit tests.

With ``E_K`` the AES-128 block cipher under the subscriber key K (TS 35.206
section 4.1, the kernel):

- ``OPc = OP xor E_K(OP)``
- ``TEMP = E_K(RAND xor OPc)``, ``IN1 = SQN || AMF || SQN || AMF``
- ``OUT1 = E_K(TEMP xor rot(IN1 xor OPc, r1) xor c1) xor OPc``;
  ``f1 = MAC-A = OUT1[0:8]``, ``f1* = MAC-S = OUT1[8:16]``
- ``OUTi = E_K(rot(TEMP xor OPc, ri) xor ci) xor OPc`` for i = 2..5;
  ``f5 = AK = OUT2[0:6]``, ``f2 = RES = OUT2[8:16]``, ``f3 = CK = OUT3``,
  ``f4 = IK = OUT4``, ``f5* = AK* = OUT5[0:6]``

with the rotations r1..r5 = 64, 0, 32, 64, 96 bits (towards the most significant
bit) and the constants c1..c5 = 0, 1, 2, 4, 8 (as 128-bit integers).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from .errors import SecurityError

__all__ = ["Milenage", "MilenageError", "compute_opc"]

_BLOCK = 16
# (rotation in bytes, constant) for OUT1..OUT5; TS 35.206 section 4.1.
_R1, _R2, _R3, _R4, _R5 = 8, 0, 4, 8, 12
_C1, _C2, _C3, _C4, _C5 = 0, 1, 2, 4, 8


class MilenageError(SecurityError):
    """A MILENAGE input of the wrong type or length."""


def _check(name: str, value: object, length: int) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise MilenageError(f"{name} must be bytes")
    data = bytes(value)
    if len(data) != length:
        raise MilenageError(f"{name} must be {length} bytes, got {len(data)}")
    return data


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _rot(block: bytes, nbytes: int) -> bytes:
    """Cyclic rotation of a 128-bit block towards the most significant bit."""
    return block[nbytes:] + block[:nbytes]


def _xor_const(block: bytes, const: int) -> bytes:
    return (int.from_bytes(block, "big") ^ const).to_bytes(_BLOCK, "big")


def _aes_ecb(k: bytes) -> CipherContext:
    # ECB carries no state between blocks, so one encryptor serves every call.
    return Cipher(algorithms.AES(k), modes.ECB()).encryptor()


def compute_opc(k: bytes, op: bytes) -> bytes:
    """``OPc = OP xor E_K(OP)`` (TS 35.206 section 4.1)."""
    k = _check("K", k, 16)
    op = _check("OP", op, 16)
    return _xor(op, _aes_ecb(k).update(op))


class Milenage:
    """The MILENAGE functions for one subscriber key K and one OP or OPc.

    Exactly one of ``op`` (the operator variant field, from which OPc is
    derived) and ``opc`` must be given.  The AES cipher is set up once per
    instance.  Inputs are raw bytes: RAND 16, SQN 6, AMF 2.
    """

    __slots__ = ("_enc", "opc")

    opc: bytes
    """OPc, the value all functions use (derived from OP when OP was given)."""

    def __init__(self, k: bytes, *, op: bytes | None = None, opc: bytes | None = None) -> None:
        k = _check("K", k, 16)
        if (op is None) == (opc is None):
            raise MilenageError("give exactly one of OP and OPc")
        self._enc = _aes_ecb(k)
        if op is not None:
            op = _check("OP", op, 16)
            self.opc = _xor(op, self._enc.update(op))
        else:
            assert opc is not None
            self.opc = _check("OPc", opc, 16)

    def __repr__(self) -> str:
        return "Milenage(<key hidden>)"

    def _e(self, block: bytes) -> bytes:
        return self._enc.update(block)

    def _temp(self, rand: bytes) -> bytes:
        return self._e(_xor(_check("RAND", rand, 16), self.opc))

    def _out1(self, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
        temp = self._temp(rand)
        sqn = _check("SQN", sqn, 6)
        amf = _check("AMF", amf, 2)
        in1 = sqn + amf + sqn + amf
        x = _xor_const(_xor(temp, _rot(_xor(in1, self.opc), _R1)), _C1)
        return _xor(self._e(x), self.opc)

    def _out(self, temp: bytes, rot: int, const: int) -> bytes:
        x = _xor_const(_rot(_xor(temp, self.opc), rot), const)
        return _xor(self._e(x), self.opc)

    def f1(self, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
        """f1: the network authentication code MAC-A (8 bytes)."""
        return self._out1(rand, sqn, amf)[:8]

    def f1star(self, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
        """f1*: the resynchronisation authentication code MAC-S (8 bytes)."""
        return self._out1(rand, sqn, amf)[8:]

    def f2345(self, rand: bytes) -> tuple[bytes, bytes, bytes, bytes]:
        """f2..f5: ``(RES (8), CK (16), IK (16), AK (6))``."""
        temp = self._temp(rand)
        out2 = self._out(temp, _R2, _C2)
        ck = self._out(temp, _R3, _C3)
        ik = self._out(temp, _R4, _C4)
        return out2[8:], ck, ik, out2[:6]

    def f5star(self, rand: bytes) -> bytes:
        """f5*: the resynchronisation anonymity key AK* (6 bytes)."""
        return self._out(self._temp(rand), _R5, _C5)[:6]
