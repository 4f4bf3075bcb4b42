"""Local storage used by the client and the server: files written atomically, TOML files
people edit, and the private-key stores (system keyring, encrypted file).

Kept out of the sans-I/O core (rune_proto/*.py: bytes in, events out). Import each module
from here (``from rune_proto.local.keystore import KeyringStore``); the old names
``rune_proto.keystore``, ``rune_proto.atomicfile`` and ``rune_proto.tomlfile`` still work.
"""
