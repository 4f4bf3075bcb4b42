"""Sending a message: one round trip when the receiver's key is pinned, else two.

A :class:`Session` inherits these. With a pin for the receiver and a server that
announces ``PIPELINE SEND`` (docs/protocol.md §9.9), the client seals to the pinned
key and writes a bound SEND and its MESSAGE together, then reads both replies: half
the waits, reads and writes of SEND, ``201``, MESSAGE, ``202``. Without a pin (the
first message to someone) or against an older server it is the lock-step exchange,
where ``201`` shows the receiver's key before anything is sealed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from contextlib import suppress

from .. import status
from ..address import Address
from ..envelope import Attachment, Content, new_message_id, seal_client_message, seal_message
from ..events import BoundSend, Message, Noop, Ok, Roger, Send, SendReady
from ..keys import Identity, PublicKey
from .channel import Channel
from .contacts import ContactBook
from .errors import ClientError, ContactKeyChanged, PayloadTooLarge, ServerError

_THREAD_THRESHOLD = 256 * 1024  # seal big messages off the event loop


class Sender(Channel):
    """``send``, on top of the request/reply loop."""

    _lock: asyncio.Lock
    contacts: ContactBook

    def _require_login(self) -> tuple[Address, Identity]:  # pragma: no cover - Session's
        raise NotImplementedError

    def _as_receiver(self, to: str | Address) -> Address:  # pragma: no cover - Session's
        raise NotImplementedError

    @property
    def pipelines_send(self) -> bool:
        """Whether the server announced the bound SEND (``PIPELINE SEND`` in CAPA)."""
        return bool(self.capabilities and "SEND" in self.capabilities.pipeline)

    async def send(
        self,
        to: str | Address,
        subject: str,
        body: str,
        attachments: Iterable[Attachment | tuple[str, bytes]] = (),
        *,
        in_reply_to: str | None = None,
    ) -> str:
        """Encrypt, sign and deliver a message; returns its message id (hex).

        Blocks (raises :class:`ContactKeyChanged`) when the receiver's key differs
        from the pinned one, without sending anything the receiver could read.
        """
        sender, identity = self._require_login()
        receiver = self._as_receiver(to)
        files = tuple(a if isinstance(a, Attachment) else Attachment(*a) for a in attachments)
        content = Content(subject, body, files, in_reply_to)
        message_id = new_message_id()
        async with self._lock:
            pinned = self.contacts.get(receiver)
            if pinned is not None and self.pipelines_send:
                sent = await self._send_bound(
                    sender, identity, receiver, pinned.key, content, message_id
                )
                if sent:
                    return message_id.hex()
                # 417: the server holds another key now; 201 below shows it, and the
                # pin check refuses it (ContactKeyChanged) as it would have at first.
            await self._send_lock_step(sender, identity, receiver, content, message_id)
        return message_id.hex()

    async def _send_bound(
        self,
        sender: Address,
        identity: Identity,
        receiver: Address,
        key: PublicKey,
        content: Content,
        message_id: bytes,
    ) -> bool:
        """SEND bound to ``key`` and its MESSAGE in one write; False on ``417``."""
        assert self.capabilities is not None  # pipelines_send
        ready = SendReady(self.capabilities.max_payload, key, self.server_key)
        payload = await self._seal(sender, identity, receiver, ready, content, message_id)
        if len(payload) > ready.max_payload:
            raise PayloadTooLarge(len(payload), ready.max_payload)
        bound, message = BoundSend(receiver, key.fingerprint()), Message(sender, payload)
        await self._transmit(bound, message)
        try:
            answer = await self._reply(bound, SendReady)
        except ServerError as exc:
            if not self.closed:  # the MESSAGE's own answer: 402, it was dropped unread
                with suppress(ServerError):
                    await self._reply(message, Roger)
            if exc.code == status.KEY_CHANGED and not self.closed:
                return False
            raise
        self._check_server_key(answer.server_key, "201")
        if answer.receiver_key != key:
            raise self._violation("the server took a SEND bound to another key than its 201's")
        await self._reply(message, Roger)
        return True

    async def _send_lock_step(
        self,
        sender: Address,
        identity: Identity,
        receiver: Address,
        content: Content,
        message_id: bytes,
    ) -> None:
        ready = await self._exchange(Send(receiver), SendReady)
        try:
            self._check_server_key(ready.server_key, "201")
            check = self.contacts.check(receiver, ready.receiver_key, "first send")
            if check.changed:
                raise ContactKeyChanged(
                    str(receiver),
                    check.contact.fingerprint,
                    ready.receiver_key.fingerprint_text(),
                    ready.receiver_key,
                )
            payload = await self._seal(sender, identity, receiver, ready, content, message_id)
            if len(payload) > ready.max_payload:
                raise PayloadTooLarge(len(payload), ready.max_payload)
        except ClientError:
            if not self.closed:  # abandon the send; its failure must not hide ours
                with suppress(ClientError):
                    await self._exchange(Noop(), Ok)
            raise
        await self._exchange(Message(sender, payload), Roger)

    async def _seal(
        self,
        sender: Address,
        identity: Identity,
        receiver: Address,
        ready: SendReady,
        content: Content,
        message_id: bytes,
    ) -> bytes:
        def work() -> bytes:
            sealed = seal_message(
                sender, identity, receiver, ready.receiver_key, content, message_id=message_id
            )
            return seal_client_message(sender, identity, receiver, ready.server_key, sealed)

        size = sum(len(a.data) for a in content.attachments) + len(content.body)
        return await asyncio.to_thread(work) if size > _THREAD_THRESHOLD else work()
