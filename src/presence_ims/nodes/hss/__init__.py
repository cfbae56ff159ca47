"""The HSS: subscriber data, AKA vectors, registration state; Cx/Px and Sh/Ph."""

from .logic import (
    AuthVectorLike,
    HssError,
    HssLogic,
    Registration,
    SendRequest,
    ShSubscription,
    VectorSource,
    ifc_from_config,
)
from .model import HssConfig, IfcConfig, SubscriberConfig
from .node import HssNode, MilenageVectorSource

__all__ = [
    "AuthVectorLike",
    "HssConfig",
    "HssError",
    "HssLogic",
    "HssNode",
    "IfcConfig",
    "MilenageVectorSource",
    "Registration",
    "SendRequest",
    "ShSubscription",
    "SubscriberConfig",
    "VectorSource",
    "ifc_from_config",
]
