"""Sending, listing, retrieving and deleting, and what the server may and may not know."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable

from rune_proto import status
from rune_proto.address import random_address
from rune_proto.envelope import (
    Attachment,
    Content,
    open_message,
    open_stored_message,
    seal_client_message,
    seal_message,
)
from rune_proto.events import (
    Delete,
    Deleted,
    ErrorReply,
    Listing,
    ListMessages,
    Message,
    Noop,
    Ok,
    Retrieve,
    Retrieved,
    Roger,
    Send,
    SendReady,
)
from rune_proto.keys import Identity
from tests.server_process import RuneServerProcess, ServerFactory

from .conftest import User, register_user
from .wire_client import WireClient, client_payload

NOT_FOUND = ErrorReply(status.NOT_FOUND, "not found")


def _logged_in(server: RuneServerProcess, user: User) -> WireClient:
    client = WireClient.to(server)
    assert client.login(*user, server.server_public_key).code == status.AUTHENTICATED
    return client


def _round_trip(server: RuneServerProcess, alice: User, bob: User, content: Content) -> None:
    with _logged_in(server, alice) as client:
        assert client.send_message(alice[0], alice[1], bob[0], content) == Roger()
    with _logged_in(server, bob) as client:
        listing = client.request(ListMessages())
        assert isinstance(listing, Listing) and len(listing.entries) == 1
        ((message_id, size),) = listing.entries
        retrieved = client.request(Retrieve(message_id))
        assert isinstance(retrieved, Retrieved) and len(retrieved.blob) == size
        stored = open_stored_message(bob[1], bob[0], server.server_public_key, retrieved.blob)
        assert stored.sender == alice[0] and stored.server_signature_ok
        opened = open_message(bob[1], bob[0], stored.sealed_message)
        assert opened.sender == alice[0] and opened.sender_key == alice[1].public
        assert opened.content == content
        assert client.request(Delete(message_id)) == Deleted(message_id)
        assert client.request(ListMessages()) == Listing(())
        assert client.request(Retrieve(message_id)) == NOT_FOUND
        assert client.request(Delete(message_id)) == NOT_FOUND


def test_send_list_retrieve_delete(
    shared_server: RuneServerProcess, new_user: Callable[[], User]
) -> None:
    content = Content("Lunch?", "Tomorrow at noon, the usual place. — A")
    _round_trip(shared_server, new_user(), new_user(), content)


def test_send_list_retrieve_delete_with_attachments(
    shared_server: RuneServerProcess, new_user: Callable[[], User]
) -> None:
    content = Content(
        "Photos",
        "Two files attached.",
        (Attachment("a.bin", os.urandom(20_000)), Attachment("ünïcode.txt", "héllo".encode())),
    )
    _round_trip(shared_server, new_user(), new_user(), content)


def test_another_users_message_is_neither_readable_nor_deletable(
    shared_server: RuneServerProcess, new_user: Callable[[], User]
) -> None:
    alice, bob, mallory = new_user(), new_user(), new_user()
    with _logged_in(shared_server, alice) as client:
        assert client.send_message(*alice, bob[0], Content("private", "for bob")) == Roger()
    with _logged_in(shared_server, bob) as client:
        listing = client.request(ListMessages())
        assert isinstance(listing, Listing)
        ((message_id, _),) = listing.entries
    random_id = str(uuid.uuid4())
    with _logged_in(shared_server, mallory) as client:
        assert client.request(ListMessages()) == Listing(())
        assert client.request(Retrieve(message_id)) == client.request(Retrieve(random_id))
        assert client.request(Retrieve(message_id)) == NOT_FOUND
        assert client.request(Delete(message_id)) == client.request(Delete(random_id))
        assert client.request(Delete(message_id)) == NOT_FOUND
    with _logged_in(shared_server, bob) as client:
        assert isinstance(client.request(Retrieve(message_id)), Retrieved)


def test_unknown_recipient_is_404(
    shared_server: RuneServerProcess, new_user: Callable[[], User]
) -> None:
    with _logged_in(shared_server, new_user()) as client:
        assert client.request(Send(random_address(shared_server.domain))) == NOT_FOUND
        assert client.request(Send(random_address("otherdomain"))) == NOT_FOUND
        assert client.request(Noop()) == Ok()


def test_payload_over_the_limit_is_413_and_the_session_goes_on(
    shared_server: RuneServerProcess, new_user: Callable[[], User]
) -> None:
    alice, bob = new_user(), new_user()
    big = Content("big", "", (Attachment("big.bin", os.urandom(300 * 1024)),))
    with _logged_in(shared_server, alice) as client:
        ready = client.request(Send(bob[0]))
        assert isinstance(ready, SendReady) and ready.max_payload == 256 * 1024
        payload = client_payload(alice[0], alice[1], bob[0], ready, big)
        assert len(payload) > ready.max_payload
        reply = client.request(Message(alice[0], payload))
        assert isinstance(reply, ErrorReply) and reply.status == status.PAYLOAD_TOO_LARGE
        assert client.request(Noop()) == Ok()
        small = Content("small", "fits")
        assert client.send_message(alice[0], alice[1], bob[0], small) == Roger()


def test_sender_other_than_the_logged_in_address_is_412_and_closes(
    shared_server: RuneServerProcess, new_user: Callable[[], User]
) -> None:
    alice, bob, carol = new_user(), new_user(), new_user()
    with _logged_in(shared_server, alice) as client:
        ready = client.request(Send(bob[0]))
        assert isinstance(ready, SendReady)
        forged = client_payload(carol[0], carol[1], bob[0], ready, Content("hi", "from carol"))
        reply = client.request(Message(carol[0], forged))
        assert reply == ErrorReply(status.BAD_SIGNATURE, "sender is not the logged-in address")
        assert client.is_closed()


def test_bad_signature_is_412_and_closes(
    shared_server: RuneServerProcess, new_user: Callable[[], User]
) -> None:
    alice, bob = new_user(), new_user()
    impostor = Identity.generate()
    with _logged_in(shared_server, alice) as client:
        ready = client.request(Send(bob[0]))
        assert isinstance(ready, SendReady)
        sealed = seal_message(alice[0], impostor, bob[0], ready.receiver_key, Content("x", "y"))
        payload = seal_client_message(alice[0], impostor, bob[0], ready.server_key, sealed)
        reply = client.request(Message(alice[0], payload))
        assert reply == ErrorReply(status.BAD_SIGNATURE, "message signature invalid")
        assert client.is_closed()
    with _logged_in(shared_server, bob) as client:
        assert client.request(ListMessages()) == Listing(())


def test_full_mailbox_is_415(rune_server: ServerFactory) -> None:
    server = rune_server(mailbox_quota_mib=0.05)  # 52 KiB: two 16 KiB-padded messages fit
    alice, bob = register_user(server), register_user(server)
    with _logged_in(server, alice) as client:
        for _ in range(2):
            assert client.send_message(*alice, bob[0], Content("s", "b")) == Roger()
        reply = client.send_message(*alice, bob[0], Content("s", "b"))
        assert reply == ErrorReply(status.MAILBOX_FULL, "mailbox full")
        assert client.request(Noop()) == Ok()
    with _logged_in(server, bob) as client:
        listing = client.request(ListMessages())
        assert isinstance(listing, Listing) and len(listing.entries) == 2


def test_the_store_holds_no_plaintext_sender_subject_or_body(
    shared_server: RuneServerProcess, new_user: Callable[[], User]
) -> None:
    alice, bob = new_user(), new_user()
    subject, body = "Subject-7f3a9c-secret", "Body-b81d22-plaintext"
    with _logged_in(shared_server, alice) as client:
        assert client.send_message(*alice, bob[0], Content(subject, body)) == Roger()
    uri = f"file:{shared_server.database}?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        tables = {
            name: [col[1] for col in db.execute(f"PRAGMA table_info({name})")]
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        query = "SELECT blob FROM messages WHERE receiver = ?"
        blobs = [blob for (blob,) in db.execute(query, (str(bob[0]),))]
    db.close()
    assert tables == {
        "accounts": ["address", "public_key"],
        "mailbox": ["receiver", "id", "size", "slots", "epoch"],  # keys only (server/schema.py)
        "chunks": ["slot", "receiver", "id", "seq", "data"],  # blob pieces (server/slots.py)
        "holes": ["slot"],
        "usage": ["receiver", "bytes", "count"],
        "invitations": ["token_hash", "address", "expires_at"],
        "holds": ["address", "kind"],  # blocked or deleted by the operator (server/admin.py)
        "layout": ["name", "value"],
        "limits": ["key", "ends", "count"],  # abuse-limit counters (server/limits.py)
        "failures": ["kind", "key", "count", "last_at"],  # the throttle (server/failures.py)
    }
    assert len(blobs) == 1
    for needle in (subject.encode(), body.encode(), str(alice[0]).encode()):
        assert needle not in blobs[0]
    for path in shared_server.data_dir.iterdir():  # database, WAL, everything on disk
        data = path.read_bytes()
        assert subject.encode() not in data and body.encode() not in data, path.name


def test_large_message_round_trip(rune_server: ServerFactory) -> None:
    """Over 1 MiB: the codec and the crypto run on worker threads; the result is the same."""
    server = rune_server()
    content = Content("big", "see attachment", (Attachment("big.bin", os.urandom(1_600_000)),))
    _round_trip(server, register_user(server), register_user(server), content)


def test_sealed_message_of_an_impossible_size_is_refused(
    shared_server: RuneServerProcess, new_user: Callable[[], User]
) -> None:
    """Correctly signed, but no real MESSAGE has this length: it would stand out at rest."""
    alice, bob = new_user(), new_user()
    with _logged_in(shared_server, alice) as client:
        ready = client.request(Send(bob[0]))
        assert isinstance(ready, SendReady)
        odd = os.urandom(5000)
        payload = seal_client_message(alice[0], alice[1], bob[0], ready.server_key, odd)
        reply = client.request(Message(alice[0], payload))
        assert reply == ErrorReply(status.BAD_SIGNATURE, "message signature invalid")
    with _logged_in(shared_server, bob) as client:
        assert client.request(ListMessages()) == Listing(())
