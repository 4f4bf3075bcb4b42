"""What a connection and the operator's reports see of the running server.

:class:`~.link.Link` and reporting.py read a few of the server's attributes; typing them
against this protocol, not against :class:`~.service.RuneServer`, keeps the arrows one
way (service.py imports link.py and reporting.py, never the reverse).
"""

from __future__ import annotations

import asyncio
import collections
from typing import Protocol

from .admission import Admission
from .budget import MemoryBudget
from .session import Services


class ServerHost(Protocol):
    """The running server as its links and reports use it (RuneServer is one)."""

    services: Services
    admission: Admission
    budget: MemoryBudget
    stats: collections.Counter[str]

    @property
    def stopping(self) -> asyncio.Future[None]: ...

    @property
    def open_connections(self) -> int: ...
