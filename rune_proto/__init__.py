"""Rune is Not Email: the protocol core (addresses, keys, envelopes, wire codec)."""

__version__ = "0.1.0.dev0"
