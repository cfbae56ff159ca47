"""Sans-IO codecs of the simulated network elements' interfaces toward the PNA.

* :mod:`.feed`: Pc (MSC/VLR) and Pg (SGSN), a versioned JSON-lines feed with
  an HMAC-SHA-256 per line, timestamps and sequence numbers;
* :mod:`.radius`: Pk (GGSN), RADIUS accounting (RFC 2866) over ``pyrad``;
* :mod:`.mlp`: Pl (GMLC), OMA MLP location answers and reports.

No sockets, no clocks: time is an argument.  Every bad input raises
:class:`ElementError` (``reason`` for people, ``kind`` for counters).
"""

from . import feed, mlp, radius
from .errors import ElementError

__all__ = ["ElementError", "feed", "mlp", "radius"]
