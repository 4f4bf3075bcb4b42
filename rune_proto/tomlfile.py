"""Moved to :mod:`rune_proto.local.tomlfile` (out of the sans-I/O core); kept for imports."""

from .local.tomlfile import TomlError as TomlError
from .local.tomlfile import dumps as dumps
from .local.tomlfile import read as read
from .local.tomlfile import update as update
from .local.tomlfile import write as write
