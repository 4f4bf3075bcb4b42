"""The three message envelopes of ``rune/1``: MESSAGE, CLIENT MESSAGE, STORED MESSAGE.

MESSAGE (sender → receiver, the server cannot open it)::

    body   = lp(sender, sender_key, receiver, message_id, sent_at_ms, content_json) ‖ sig
    sig    = Ed25519_sender(canonical(CTX_MESSAGE, sender, sender_key, receiver,
                                      receiver_key, message_id, sent_at_ms, content_json))
    sealed = HPKE(receiver, pad(body), info=CTX_MESSAGE)

CLIENT MESSAGE (sender → server)::

    HPKE(server, lp(sealed) ‖ Ed25519_sender(canonical(CTX_CLIENT_MESSAGE, sender,
         sender_key, receiver, server_key, sealed)), info=CTX_CLIENT_MESSAGE)

STORED MESSAGE (server → receiver, at rest)::

    HPKE(receiver, sender_field(102) ‖ received_at(20) ‖ lp(sealed) ‖ Ed25519_server(
         canonical(CTX_STORED_MESSAGE, receiver, receiver_key, sender, received_at,
                   SHA-256(sealed))), info=CTX_STORED_MESSAGE)

Binding both addresses and both keys stops re-addressing (Davis 2001) and key swaps.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .address import MAX_ADDRESS_LENGTH, Address, AddressError, parse_address

# Attachment and Content are re-exported: callers have always imported them from here.
from .content import Attachment as Attachment
from .content import Content as Content
from .content import ContentError
from .encoding import EncodingError, FieldReader, canonical, lp
from .keys import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, Identity, InvalidKey, PublicKey
from .padding import MAX_PLAINTEXT, PaddingError, is_padded_size, pad, padded_size, unpad
from .suite import (
    CTX_CLIENT_MESSAGE,
    CTX_MESSAGE,
    CTX_STORED_MESSAGE,
    HPKE_OVERHEAD,
    EnvelopeError,
    open_sealed,
    seal,
)

MESSAGE_ID_SIZE = 16
SENT_AT_SIZE = 8  # milliseconds since the epoch, u64 big-endian
LENGTH_PREFIX_SIZE = 4  # each field of lp()
SENDER_FIELD_SIZE = 1 + MAX_ADDRESS_LENGTH  # u8 length + zero-padded address
TIMESTAMP_TEXT_SIZE = 20  # 2026-11-29T14:50:37Z
STORED_WRAP_SIZE = SENDER_FIELD_SIZE + TIMESTAMP_TEXT_SIZE + 4 + SIGNATURE_SIZE


def is_sealed_message_size(size: int) -> bool:
    """Every sealed MESSAGE is a padded block plus the HPKE overhead, nothing else."""
    return is_padded_size(size - HPKE_OVERHEAD)


def is_stored_message_size(size: int) -> bool:
    return is_sealed_message_size(size - STORED_WRAP_SIZE - HPKE_OVERHEAD)


@dataclass(frozen=True, slots=True)
class OpenedMessage:
    """A decrypted MESSAGE. ``problems`` is empty when everything verified."""

    sender: Address
    sender_key: PublicKey
    receiver: Address
    message_id: str
    sent_at: datetime
    content: Content
    problems: tuple[str, ...] = field(default=())
    signature_ok: bool = True

    @property
    def verified(self) -> bool:
        return not self.problems


def new_message_id() -> bytes:
    return os.urandom(MESSAGE_ID_SIZE)


def _message_signed_bytes(
    sender: Address,
    sender_key: PublicKey,
    receiver: Address,
    receiver_key: PublicKey,
    message_id: bytes,
    sent_at_ms: bytes,
    content_json: bytes,
) -> bytes:
    return canonical(
        CTX_MESSAGE,
        sender.encode(),
        sender_key.raw,
        receiver.encode(),
        receiver_key.raw,
        message_id,
        sent_at_ms,
        content_json,
    )


def seal_message(
    sender: Address,
    identity: Identity,
    receiver: Address,
    receiver_key: PublicKey,
    content: Content,
    *,
    message_id: bytes | None = None,
    sent_at_ms: int | None = None,
) -> bytes:
    """Sign and seal a MESSAGE to the receiver. Returns the sealed bytes."""
    mid = new_message_id() if message_id is None else message_id
    if len(mid) != MESSAGE_ID_SIZE:
        raise ValueError("message id must be 16 bytes")
    when = struct.pack(">Q", int(time.time() * 1000) if sent_at_ms is None else sent_at_ms)
    content_json = content.to_json()
    signature = identity.sign(
        _message_signed_bytes(
            sender, identity.public, receiver, receiver_key, mid, when, content_json
        )
    )
    body = lp(sender.encode(), identity.public.raw, receiver.encode(), mid, when, content_json)
    return seal(receiver_key.kem, pad(body + signature), CTX_MESSAGE)


def sealed_message_size(sender: Address | str, receiver: Address | str, content_size: int) -> int:
    """The length of :func:`seal_message`'s output for content JSON of ``content_size``
    bytes (:meth:`Content.json_size`): exact, from the layout above, without sealing.

    Past what one message can carry (``MAX_PLAINTEXT``), the excess is added to the
    largest sealed size: such a message cannot be sealed, and the number stays honest.
    """
    fields = (
        len(str(sender).encode()),
        PUBLIC_KEY_SIZE,
        len(str(receiver).encode()),
        MESSAGE_ID_SIZE,
        SENT_AT_SIZE,
        content_size,
    )
    inner = sum(fields) + LENGTH_PREFIX_SIZE * len(fields) + SIGNATURE_SIZE
    excess = max(0, inner - MAX_PLAINTEXT)
    return padded_size(inner - excess) + excess + HPKE_OVERHEAD


def _parse_address(raw: bytes, what: str) -> Address:
    try:
        return parse_address(raw.decode("ascii"))
    except (UnicodeDecodeError, AddressError) as exc:
        raise EnvelopeError(f"{what} address is malformed") from exc


def open_message(
    identity: Identity, receiver: Address, sealed: bytes, *, strict: bool = True
) -> OpenedMessage:
    """Open a MESSAGE sealed to us.

    Decryption and format failures always raise :class:`EnvelopeError`. With
    ``strict=False`` a bad signature or a foreign receiver is recorded in
    ``problems`` instead, so a client can show the message as unverified.
    """
    if not is_sealed_message_size(len(sealed)):
        raise EnvelopeError(f"a sealed message cannot be {len(sealed)} bytes long")
    block = open_sealed(identity.kem, sealed, CTX_MESSAGE, what="message")
    try:
        body = unpad(block)
        if len(body) < SIGNATURE_SIZE:
            raise EnvelopeError("message is too short")
        fields, signature = body[:-SIGNATURE_SIZE], body[-SIGNATURE_SIZE:]
        reader = FieldReader(fields)
        sender_raw = reader.field(MAX_ADDRESS_LENGTH)
        sender_key = PublicKey.from_bytes(reader.field())
        receiver_raw = reader.field(MAX_ADDRESS_LENGTH)
        mid = reader.field(MESSAGE_ID_SIZE)
        when = reader.field(8)
        content_json = reader.field()
        reader.end()
        if len(mid) != MESSAGE_ID_SIZE or len(when) != 8:
            raise EnvelopeError("message id or timestamp has the wrong size")
    except (PaddingError, EncodingError, InvalidKey) as exc:
        raise EnvelopeError(f"message is malformed: {exc}") from exc
    sender = _parse_address(sender_raw, "sender")
    named_receiver = _parse_address(receiver_raw, "receiver")
    try:
        content = Content.from_json(content_json)
    except ContentError as exc:
        raise EnvelopeError(f"message content is not valid: {exc.reason}") from exc
    problems: list[str] = []
    if named_receiver != receiver:
        problems.append(f"message was addressed to {named_receiver}, not to {receiver}")
    signed = _message_signed_bytes(
        sender, sender_key, named_receiver, identity.public, mid, when, content_json
    )
    signature_ok = sender_key.verify(signature, signed)
    if not signature_ok:
        problems.append("sender's signature does not verify")
    if problems and strict:
        raise EnvelopeError("; ".join(problems))
    (ms,) = struct.unpack(">Q", when)
    try:
        sent_at = datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, ValueError, OSError) as exc:
        raise EnvelopeError("message timestamp is out of range") from exc
    return OpenedMessage(
        sender=sender,
        sender_key=sender_key,
        receiver=named_receiver,
        message_id=mid.hex(),
        sent_at=sent_at,
        content=content,
        problems=tuple(problems),
        signature_ok=signature_ok,
    )


def _client_signed_bytes(
    sender: Address,
    sender_key: PublicKey,
    receiver: Address,
    server_key: PublicKey,
    sealed: bytes,
) -> bytes:
    return canonical(
        CTX_CLIENT_MESSAGE,
        sender.encode(),
        sender_key.raw,
        receiver.encode(),
        server_key.raw,
        sealed,
    )


def seal_client_message(
    sender: Address,
    identity: Identity,
    receiver: Address,
    server_key: PublicKey,
    sealed_message: bytes,
) -> bytes:
    """Wrap a sealed MESSAGE for the server, signed so it can check who sends it."""
    signature = identity.sign(
        _client_signed_bytes(sender, identity.public, receiver, server_key, sealed_message)
    )
    return seal(server_key.kem, lp(sealed_message) + signature, CTX_CLIENT_MESSAGE)


def client_message_size(sealed_size: int) -> int:
    """The length of :func:`seal_client_message`'s output around a sealed MESSAGE of
    ``sealed_size`` bytes (:func:`sealed_message_size`): the payload the server limits."""
    return LENGTH_PREFIX_SIZE + sealed_size + SIGNATURE_SIZE + HPKE_OVERHEAD


def open_client_message(
    server: Identity,
    sender: Address,
    sender_key: PublicKey,
    receiver: Address,
    blob: bytes,
) -> bytes:
    """Server side: open a CLIENT MESSAGE and return the sealed MESSAGE inside."""
    inner = open_sealed(server.kem, blob, CTX_CLIENT_MESSAGE, what="client message")
    try:
        reader = FieldReader(inner)
        sealed = reader.field()
        signature = reader.fixed(SIGNATURE_SIZE)
        reader.end()
    except EncodingError as exc:
        raise EnvelopeError(f"client message is malformed: {exc}") from exc
    signed = _client_signed_bytes(sender, sender_key, receiver, server.public, sealed)
    if not sender_key.verify(signature, signed):
        raise EnvelopeError("sender's signature on the client message does not verify")
    return sealed


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """The server's wrap, opened by the receiver."""

    sender: Address
    received_at: datetime
    sealed_message: bytes
    server_signature_ok: bool


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stored_signed_bytes(
    receiver: Address, receiver_key: PublicKey, sender: Address, received_at: bytes, sealed: bytes
) -> bytes:
    return canonical(
        CTX_STORED_MESSAGE,
        receiver.encode(),
        receiver_key.raw,
        sender.encode(),
        received_at,
        hashlib.sha256(sealed).digest(),
    )


def seal_stored_message(
    server: Identity,
    receiver: Address,
    receiver_key: PublicKey,
    sender: Address,
    sealed_message: bytes,
    received_at: datetime | None = None,
) -> bytes:
    """Server side: bind the verified sender and arrival time, sign, seal to the receiver.

    The sender and time fields are fixed-width, so every wrap of a 16 KiB-padded
    message has the same size and the outer layer leaks no length again.
    """
    stamp = format_timestamp(received_at or datetime.now(UTC)).encode("ascii")
    sender_raw = sender.encode()
    sender_field = bytes([len(sender_raw)]) + sender_raw.ljust(MAX_ADDRESS_LENGTH, b"\0")
    signature = server.sign(
        _stored_signed_bytes(receiver, receiver_key, sender, stamp, sealed_message)
    )
    plaintext = sender_field + stamp + lp(sealed_message) + signature
    return seal(receiver_key.kem, plaintext, CTX_STORED_MESSAGE)


def open_stored_message(
    identity: Identity,
    receiver: Address,
    server_key: PublicKey,
    blob: bytes,
    *,
    strict: bool = True,
) -> StoredMessage:
    """Receiver side: open the server's wrap and check the server's signature."""
    if not is_stored_message_size(len(blob)):
        raise EnvelopeError(f"a stored message cannot be {len(blob)} bytes long")
    inner = open_sealed(identity.kem, blob, CTX_STORED_MESSAGE, what="stored message")
    try:
        reader = FieldReader(inner)
        sender_field = reader.fixed(SENDER_FIELD_SIZE)
        stamp = reader.fixed(TIMESTAMP_TEXT_SIZE)
        sealed = reader.field()
        signature = reader.fixed(SIGNATURE_SIZE)
        reader.end()
    except EncodingError as exc:
        raise EnvelopeError(f"stored message is malformed: {exc}") from exc
    size = sender_field[0]
    if size > MAX_ADDRESS_LENGTH or any(sender_field[1 + size :]):
        raise EnvelopeError("stored message has a malformed sender field")
    sender = _parse_address(sender_field[1 : 1 + size], "sender")
    try:
        received_at = datetime.strptime(stamp.decode("ascii"), "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=UTC
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise EnvelopeError("stored message has a malformed timestamp") from exc
    ok = server_key.verify(
        signature, _stored_signed_bytes(receiver, identity.public, sender, stamp, sealed)
    )
    if not ok and strict:
        raise EnvelopeError("server's signature on the stored message does not verify")
    return StoredMessage(sender, received_at, sealed, ok)
