"""How big a message will be once sealed, from sizes alone: compose shows it as you type.

The byte layout is the core's (``Content.json_size``, ``sealed_message_size`` and
``client_message_size`` in rune_proto, beside the code that seals): nothing is recounted here.
"""

from __future__ import annotations

from collections.abc import Iterable

from rune_proto.content import Content
from rune_proto.envelope import client_message_size, sealed_message_size


def estimate_payload(
    sender: str,
    receiver: str,
    subject: str,
    body: str,
    attachments: Iterable[tuple[str, int]] = (),
    in_reply_to: str | None = None,
) -> int:
    """The size in bytes of the CLIENT MESSAGE that sending this would make (exact);
    attachment contents are not read, only their (name, size)."""
    content_size = Content.json_size(subject, body, attachments, in_reply_to)
    return client_message_size(sealed_message_size(sender, receiver, content_size))
