"""XCAP server (RFC 4825) for presence rules and buddy lists: Ut, the Peu "HTTP" part.

* :mod:`.selector`: sans-IO XCAP URIs and node selectors, GET/PUT/DELETE of
  elements and attributes over lxml trees (:class:`XcapError` for every failure);
* :mod:`.usages`: the application usages ``pres-rules``, ``resource-lists`` and
  ``xcap-caps`` with their validation;
* :mod:`.auth`: HTTP Digest (RFC 7616, MD5, qop=auth) against SIP Digest passwords;
* :mod:`.server`: :class:`XcapServer`, the aiohttp server.
"""

from .selector import NodeSelector, XcapError, XcapUri, parse_node_selector, parse_uri
from .usages import PRES_RULES, RESOURCE_LISTS, XCAP_CAPS, ApplicationUsage, default_usages

__all__ = [
    "PRES_RULES",
    "RESOURCE_LISTS",
    "XCAP_CAPS",
    "ApplicationUsage",
    "NodeSelector",
    "XcapError",
    "XcapServer",
    "XcapUri",
    "default_usages",
    "parse_node_selector",
    "parse_uri",
]


def __getattr__(name: str) -> object:
    # The server pulls in aiohttp; import it only when asked for.
    if name == "XcapServer":
        from .server import XcapServer

        return XcapServer
    raise AttributeError(name)
