"""Sans-IO Diameter for presence-ims: the codec (RFC 6733) over python-diameter,
the base peer commands (CER/CEA, DWR/DWA, DPR/DPA), Cx/Px (TS 29.229) in
:mod:`.cx` and Sh/Ph (TS 29.329) in :mod:`.sh`.

No sockets and no clocks here; :mod:`presence_ims.transport.diameter` runs
these over TCP/TLS.  Every parse error is a :class:`DiameterError`.
"""

from . import base, cx, sh
from .base import (
    CX_APPLICATION,
    SH_APPLICATION,
    ApplicationId,
    Capabilities,
    result_name,
)
from .codec import (
    APP_BASE,
    APP_CX,
    APP_SH,
    VENDOR_3GPP,
    Avp,
    DiameterError,
    DiameterFramer,
    DiameterMessage,
    ExperimentalResult,
    Result,
    SessionIdGenerator,
    answer_for,
    decode,
    dump,
    encode,
)

__all__ = [
    "APP_BASE",
    "APP_CX",
    "APP_SH",
    "CX_APPLICATION",
    "SH_APPLICATION",
    "VENDOR_3GPP",
    "ApplicationId",
    "Avp",
    "Capabilities",
    "DiameterError",
    "DiameterFramer",
    "DiameterMessage",
    "ExperimentalResult",
    "Result",
    "SessionIdGenerator",
    "answer_for",
    "base",
    "cx",
    "decode",
    "dump",
    "encode",
    "result_name",
    "sh",
]
