"""A registered sender who signs whatever content bytes they like.

``seal_message`` takes a :class:`Content`, which refuses invalid content; a hostile sender
does not use our writer. :func:`seal_raw_message` builds the MESSAGE body exactly as
``rune_proto.envelope.seal_message`` does (same fields, same canonical signed bytes, same
padding and HPKE seal) around raw ``content_json`` bytes, so the receiver sees a correctly
signed message whose only fault is its content. :func:`send_raw` delivers one through a
real server over a logged-in :class:`Session`, as ``Session.send`` would.
"""

from __future__ import annotations

import os
import struct
import time

from rune_proto.address import Address
from rune_proto.client import Session
from rune_proto.encoding import canonical, lp
from rune_proto.envelope import seal_client_message
from rune_proto.events import Message, Roger, Send, SendReady
from rune_proto.keys import Identity, PublicKey
from rune_proto.padding import pad
from rune_proto.suite import CTX_MESSAGE, seal

POISON_DATA_ARRAY = b'{"subject":"poison","body":"b","attachments":[{"filename":"x","data":[]}]}'


def seal_raw_message(
    sender: Address,
    identity: Identity,
    receiver: Address,
    receiver_key: PublicKey,
    content_json: bytes,
    *,
    message_id: bytes | None = None,
    sent_at_ms: int | None = None,
) -> bytes:
    """A sealed MESSAGE around ``content_json`` as given, correctly signed by ``identity``."""
    mid = os.urandom(16) if message_id is None else message_id
    when = struct.pack(">Q", int(time.time() * 1000) if sent_at_ms is None else sent_at_ms)
    signed = canonical(
        CTX_MESSAGE,
        sender.encode(),
        identity.public.raw,
        receiver.encode(),
        receiver_key.raw,
        mid,
        when,
        content_json,
    )
    body = lp(sender.encode(), identity.public.raw, receiver.encode(), mid, when, content_json)
    return seal(receiver_key.kem, pad(body + identity.sign(signed)), CTX_MESSAGE)


async def send_raw(session: Session, receiver: Address, content_json: bytes) -> None:
    """Deliver raw content through the server, signed by the session's logged-in user.

    Uses the session's own request loop (``_exchange``) for SEND and MESSAGE, so the
    bytes travel exactly as a hostile client would put them on the wire.
    """

    sender, identity = session._require_login()
    async with session._lock:
        ready = await session._exchange(Send(receiver), SendReady)
        sealed = seal_raw_message(sender, identity, receiver, ready.receiver_key, content_json)
        payload = seal_client_message(sender, identity, receiver, ready.server_key, sealed)
        await session._exchange(Message(sender, payload), Roger)
