"""What a retrieved message looks like to a program, and how it is verified.

Opening never raises for a message that is merely suspicious: every check becomes
a field of :class:`Verification`, so a client can show an unverified message as
unverified instead of dropping it. Only a blob that cannot be decrypted at all comes
back without content, and even then as a message object with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..address import Address
from ..content import ContentError
from ..envelope import Attachment, open_message, open_stored_message
from ..keys import Identity, PublicKey
from ..suite import EnvelopeError
from .contacts import ContactBook, ReplayLog

# Failures no parser of ours should raise, caught all the same around each open: bad bytes
# from a sender must make one message unreadable, never end a refresh. Typed on purpose:
# an OSError (disk full while logging a replay) is the machine's, not the message's.
_UNEXPECTED = (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError)


@dataclass(frozen=True, slots=True)
class KeyChange:
    address: Address
    pinned: str  # fingerprint text
    offered: str


@dataclass(frozen=True, slots=True)
class Verification:
    """Each check a receiver makes; ``verified`` only when all pass."""

    decrypted: bool = False
    server_signature: bool = False
    sender_signature: bool = False
    addressed_to_me: bool = False
    sender_match: bool = False  # the server-asserted sender is the inner signer
    replay: bool = False
    key_change: KeyChange | None = None
    problems: tuple[str, ...] = ()

    @property
    def verified(self) -> bool:
        return (
            self.decrypted
            and self.server_signature
            and self.sender_signature
            and self.addressed_to_me
            and self.sender_match
            and not self.replay
            and self.key_change is None
        )

    def summary(self) -> str:
        if self.verified:
            return "verified"
        return "; ".join(self.problems) or "not verified"


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    id: str  # the server's id for this stored message (a UUID)
    size: int
    sender: Address | None
    received_at: datetime | None
    subject: str = ""
    body: str = ""
    attachments: tuple[Attachment, ...] = ()
    in_reply_to: str | None = None
    message_id: str | None = None  # the sender's id, used for replies and replay checks
    sent_at: datetime | None = None
    sender_key: PublicKey | None = None
    verification: Verification = field(default_factory=Verification)

    @property
    def verified(self) -> bool:
        return self.verification.verified

    @property
    def unreadable(self) -> bool:
        """Could not be opened at all: no content, only the reason in ``verification``."""
        return not self.verification.decrypted


def open_retrieved(
    server_id: str,
    blob: bytes,
    *,
    identity: Identity,
    address: Address,
    server_key: PublicKey,
    contacts: ContactBook,
    replays: ReplayLog,
) -> ReceivedMessage:
    """Open a STORED MESSAGE and run every receiver-side check.

    Never raises for anything in ``blob``: a message that cannot be opened comes back
    unreadable (``.unreadable``), with the reason as its one problem.
    """
    try:
        stored = open_stored_message(identity, address, server_key, blob, strict=False)
    except EnvelopeError as exc:
        return _unreadable(server_id, blob, None, None, f"could not decrypt: {exc.reason}")
    except _UNEXPECTED:  # a parser bug must cost one message, never the whole mailbox
        return _unreadable(server_id, blob, None, None, "could not decrypt: it is malformed")
    problems: list[str] = []
    if not stored.server_signature_ok:
        problems.append("the server's signature does not verify")
    try:
        inner = open_message(identity, address, stored.sealed_message, strict=False)
    except (EnvelopeError, *_UNEXPECTED) as exc:
        return _unreadable(
            server_id,
            blob,
            stored.sender,
            stored.received_at,
            _open_failure(exc),
            server_signature=stored.server_signature_ok,
        )
    problems.extend(inner.problems)
    sender_match = inner.sender == stored.sender
    if not sender_match:
        problems.append(f"the server says {stored.sender} sent it, but {inner.sender} signed it")
    replay = replays.is_replay(inner.message_id, server_id)
    if replays.was_deleted(inner.message_id, server_id):
        replay = True
        problems.append("deleted before, delivered again (a replay)")
    elif replay:
        problems.append("this message was delivered before (a replay)")
    key_change = None
    signature_ok = inner.signature_ok
    pinned = contacts.get(inner.sender)
    if signature_ok and pinned is not None and pinned.key != inner.sender_key:
        offered = inner.sender_key.fingerprint_text()
        key_change = KeyChange(inner.sender, pinned.fingerprint, offered)
        problems.append(f"{inner.sender}'s key differs from the one pinned")
    elif signature_ok and pinned is None and not problems:
        # First sight pins only a message that passed every other check: a message the
        # server re-labelled, another user signed under someone else's address, a
        # forwarded or a replayed one must not plant a key for later messages.
        contacts.check(inner.sender, inner.sender_key, "first message")
    content = inner.content
    return ReceivedMessage(
        id=server_id,
        size=len(blob),
        sender=inner.sender,
        received_at=stored.received_at,
        subject=content.subject,
        body=content.body,
        attachments=content.attachments,
        in_reply_to=content.in_reply_to,
        message_id=inner.message_id,
        sent_at=inner.sent_at,
        sender_key=inner.sender_key,
        verification=Verification(
            decrypted=True,
            server_signature=stored.server_signature_ok,
            sender_signature=signature_ok,
            addressed_to_me=inner.receiver == address,
            sender_match=sender_match,
            replay=replay,
            key_change=key_change,
            problems=tuple(problems),
        ),
    )


def _open_failure(exc: Exception) -> str:
    """The reason a sender's message is unreadable, short and without Python's words.

    Malformed content gets the content's own reason ("attachment 2 has no valid file
    name: it contains a path separator"): the sender signed it, so the reader should
    see exactly what is wrong with it.
    """
    if isinstance(exc.__cause__, ContentError):
        return exc.__cause__.reason
    if isinstance(exc, EnvelopeError):
        return f"could not open the sender's message: {exc.reason}"
    return "could not open the sender's message: it is malformed"


def _unreadable(
    server_id: str,
    blob: bytes,
    sender: Address | None,
    received_at: datetime | None,
    reason: str,
    *,
    server_signature: bool = False,
) -> ReceivedMessage:
    return ReceivedMessage(
        id=server_id,
        size=len(blob),
        sender=sender,
        received_at=received_at,
        verification=Verification(server_signature=server_signature, problems=(reason,)),
    )
