"""The S-CSCF: registrar (IMS AKA, SIP Digest), reg event (Pi), iFC routing (ISC)."""

from .node import Scscf, ScscfConfig

__all__ = ["Scscf", "ScscfConfig"]
