"""Moved to :mod:`rune_proto.local.atomicfile` (out of the sans-I/O core); kept for imports."""

from .local.atomicfile import sync_folder as sync_folder
from .local.atomicfile import write_atomically as write_atomically
