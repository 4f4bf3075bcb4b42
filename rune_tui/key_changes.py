"""A changed contact key waiting for review: plain data shared by the service layer,
which finds them, and the widgets and screens that show them (so a widget can name it
without importing the service layer).
"""

from __future__ import annotations

from dataclasses import dataclass

from rune_proto.address import Address
from rune_proto.keys import PublicKey


@dataclass(frozen=True, slots=True)
class PendingKeyChange:
    """A contact whose newest key is not the pinned one, and the change not yet accepted.

    ``pinned`` and ``offered`` are fingerprint texts. The offered key itself comes from
    ``key`` (a send that met it) or from the cached message ``message_id`` signed with it,
    opened only when the user asks to review it (see :meth:`Mailbox.offered_key`).
    """

    address: Address
    pinned: str
    offered: str
    message_id: str | None = None
    key: PublicKey | None = None
