"""What ``rune/1`` says about its transport that every side needs: the port.

One TCP port, implicit TLS from the first byte (docs/protocol.md §3). The server's
config, the client library and rune-tui's wizard all default to it; a module of its own
so that importing it costs nothing (rune-tui's option parser reads it before anything
heavy is loaded).
"""

from __future__ import annotations

DEFAULT_PORT = 7117
