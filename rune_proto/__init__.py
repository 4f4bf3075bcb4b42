"""Rune is Not Email: the protocol core (addresses, keys, envelopes, wire codec)."""

# The only place the version is written: setuptools reads it at build time
# ([tool.setuptools.dynamic] in pyproject.toml) and both commands' --version print it.
__version__ = "0.1.0.dev0"
