"""presence-ims: a runnable 3GPP IMS presence network."""

__version__ = "0.1.0"
