"""A big synthetic mailbox for benchmarks: real sealed blobs in rune-tui's local cache,
and the same messages as a Maildir for neomutt.

    .venv/bin/python bench/make_cache.py PROFILE [--count 10000] [--seed 20250314]
        [--maildir DIR] [--passphrase bench] [--keystore file|keyring] [--port 1]

PROFILE becomes a rune-tui profile (``rune-tui --profile PROFILE``): ``config/config.toml``
with one account, ``alice@bench.example``, pinned to a server identity made here; the
account's key in ``data/keys/`` sealed with the passphrase (or in the OS keyring); and
``data/cache/…`` holding every message as the server would have stored it — a STORED
MESSAGE sealed by that server identity around a MESSAGE sealed and signed by its sender —
exactly as a refresh leaves the cache: blobs, the sealed index, read marks, the replay log
and the senders pinned on first sight. No server runs: the account points at
127.0.0.1:PORT (nothing listens on port 1), so rune-tui opens the cache offline and its
refresh fails at once, which only the status line shows.

Everything except the randomness inside the encryption is a function of the seed:
identities, server ids, senders (60 people), subjects, bodies (200 B to 8 KiB of text),
times (newest 2025-06-01 12:00 UTC, a few hours apart), replies (about 20%, threaded by
in-reply-to) and which 30% (exactly) are unread. ``--maildir`` writes the same messages, same flags,
as RFC 5322 files (``new/`` unread, ``cur/`` read).

Building 10,000 takes about 15 s (two seals and one full open per message).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from rune_proto.address import Address, parse_address
from rune_proto.client.vault import Vault
from rune_proto.envelope import Content, seal_message, seal_stored_message
from rune_proto.keys import PRIVATE_KEY_SIZE, Identity
from rune_proto.local.keystore import EncryptedFileStore, KeyringStore
from rune_tui.config import Account, Config, Paths, save_config
from rune_tui.service import Mailbox, key_file_dir
from rune_tui.service_registration import opaque_account_id, seal_address

DEFAULT_COUNT = 10_000
DEFAULT_SEED = 20250314
DEFAULT_PASSPHRASE = "bench"
ACCOUNT = "alice@bench.example"
NEWEST = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
UNREAD_SHARE = 0.30
REPLY_SHARE = 0.20
BODY_BYTES = (200, 8 * 1024)

_FIRST = (  # noqa: SIM905 - a word list reads better as text
    "ada anders bea bruno carol chen dmitri dora erin ezra fatima femi grace gus hana ivan "
    "jonas kemal lena liu mara nils olga omar priya quinn rosa sven tara uma"
).split()
_LAST = (  # noqa: SIM905 - a word list reads better as text
    "lovelace okafor novak silva jones tanaka weber haddad"
).split()
_DOMAINS = ("xyz", "mail.example", "lists.example", "coop.example")
_TOPICS = (
    "the garden rota",
    "quarterly budget",
    "train times",
    "release notes",
    "the planning meeting",
    "photos from the weekend",
    "invoice 2025-031",
    "server migration",
    "lunch on Thursday",
    "the draft for Friday",
    "choir practice",
    "flat viewing",
    "bike repair",
    "conference travel",
    "book club",
    "tax forms",
)
_OPENERS = (
    "Quick question about {t}",
    "Re: {t}",
    "Notes on {t}",
    "{T}?",
    "Update: {t}",
    "About {t}, and one more thing that makes this subject rather long",
    "Reminder: {t}",
    "{T}",
)
_WORDS = (  # noqa: SIM905 - a word list reads better as text
    "the a and of to in we it that is for on with as this was be at by not are from or have "
    "an they which you were her his all she there would their will when who more garden "
    "budget train meeting tomorrow morning evening draft review numbers plan message think "
    "agree sorry thanks maybe later earlier week month kitchen window"
).split()


@dataclass(frozen=True, slots=True)
class Synthetic:
    """One generated message, before it is sealed."""

    server_id: str
    sender: int  # index into the sender list
    subject: str
    body: str
    received_at: datetime
    sent_at_ms: int
    message_id: bytes  # the sender's 16-byte id
    in_reply_to: str | None
    unread: bool


def identity_from(rng: random.Random) -> Identity:
    """A valid identity from the seed (any 128 bytes are a valid rune/1 private key)."""
    return Identity(rng.randbytes(PRIVATE_KEY_SIZE))


def listed_rows(count: int, seed: int) -> list[tuple[str, str]]:
    """(sender, subject) of each message newest first, as :func:`make_profile` builds them
    from the same seed: what either program's list should show."""
    rng = random.Random(seed)
    rng.randbytes(PRIVATE_KEY_SIZE)  # the server identity
    rng.randbytes(PRIVATE_KEY_SIZE)  # the account's identity
    people = senders(rng)
    messages = synthetic_messages(count, seed + 1, len(people))
    return [(str(people[m.sender]), m.subject) for m in reversed(messages)]


def senders(rng: random.Random, count: int = 60) -> list[Address]:
    people: list[Address] = []
    while len(people) < count:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        name = rng.choice((first, f"{first}.{last}", f"{first}_{last[0]}", f"{first}{last}"))
        address = parse_address(f"{name}@{rng.choice(_DOMAINS)}")
        if address not in people:
            people.append(address)
    return people


def _body(rng: random.Random, size: int, signature: str) -> str:
    lines = ["Hello,", ""]
    length = 8
    while length < size - len(signature) - 4:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 14))]
        line = " ".join(words).capitalize() + "."
        lines.append(line)
        length += len(line) + 1
        if rng.random() < 0.15:
            lines.append("")
            length += 1
    text = "\n".join([*lines, "", signature])
    return text[:size]


def synthetic_messages(count: int, seed: int, people: int) -> list[Synthetic]:
    """``count`` messages, oldest first, all decided by ``seed``."""
    rng = random.Random(seed)
    when = NEWEST
    stamps = []
    for _ in range(count):
        stamps.append(when)
        when -= timedelta(minutes=rng.randint(1, 360))
    stamps.reverse()
    unread = set(rng.sample(range(count), round(count * UNREAD_SHARE)))  # exactly 30%
    out: list[Synthetic] = []
    for index in range(count):
        sender = rng.randrange(people)
        message_id = rng.randbytes(16)
        in_reply_to = None
        if out and rng.random() < REPLY_SHARE:
            parent = out[rng.randrange(max(0, len(out) - 200), len(out))]
            in_reply_to = parent.message_id.hex()
            base = parent.subject.removeprefix("Re: ")
            subject = f"Re: {base}"
        else:
            topic = rng.choice(_TOPICS)
            template = rng.choice(_OPENERS)
            subject = template.format(t=topic, T=topic[:1].upper() + topic[1:])
        received = stamps[index]
        body = _body(rng, rng.randint(*BODY_BYTES), f"-- \nperson {sender}")
        out.append(
            Synthetic(
                server_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                sender=sender,
                subject=subject,
                body=body,
                received_at=received,
                sent_at_ms=int(received.timestamp() * 1000) - rng.randint(200, 90_000),
                message_id=message_id,
                in_reply_to=in_reply_to,
                unread=index in unread,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class BenchProfile:
    paths: Paths
    account: Account
    identity: Identity
    messages: list[Synthetic]
    people: list[Address]


def make_profile(
    profile: Path,
    *,
    count: int = DEFAULT_COUNT,
    seed: int = DEFAULT_SEED,
    passphrase: str = DEFAULT_PASSPHRASE,
    keystore: str = "file",
    port: int = 1,
    progress: bool = False,
) -> BenchProfile:
    """Write a rune-tui profile whose cache holds ``count`` real sealed messages."""
    rng = random.Random(seed)
    server = identity_from(rng)
    identity = identity_from(rng)
    people = senders(rng)
    keys = [identity_from(rng) for _ in people]
    messages = synthetic_messages(count, seed + 1, len(people))

    paths = Paths.from_profile(profile)
    address = parse_address(ACCOUNT)
    pin = "sha256:" + "00" * 32  # never checked: nothing listens there
    vault = Vault(identity)  # the account is named by an opaque id, as the wizard does it
    account_id = opaque_account_id(vault, address)
    account = Account(
        address,
        "127.0.0.1",
        port,
        pin,
        server.public.token(),
        keystore,
        id=account_id,
        sealed_address=seal_address(vault, account_id, address),
    )
    save_config(paths, Config().with_account(account))
    store = (
        KeyringStore()
        if keystore == "keyring"
        else EncryptedFileStore(key_file_dir(paths), passphrase)
    )
    store.save(account_id, identity.private_bytes())

    mailbox = Mailbox(paths, account, identity)
    started = time.perf_counter()
    for done, m in enumerate(messages, 1):
        sender = people[m.sender]
        sealed = seal_message(
            sender,
            keys[m.sender],
            address,
            identity.public,
            Content(m.subject, m.body, (), m.in_reply_to),
            message_id=m.message_id,
            sent_at_ms=m.sent_at_ms,
        )
        blob = seal_stored_message(server, address, identity.public, sender, sealed, m.received_at)
        mailbox.ingest(m.server_id, blob)
        if not m.unread:
            mailbox.cache.read.set_quietly(m.server_id, True)
        if done % 1000 == 0:
            mailbox.cache.save(partial=True)
            if progress:
                rate = done / (time.perf_counter() - started)
                print(f"  {done:,} of {count:,} ({rate:,.0f}/s)", file=sys.stderr)
    mailbox.cache.save()
    if mailbox.cache.error:
        raise OSError(mailbox.cache.error)
    return BenchProfile(paths, account, identity, messages, people)


def write_maildir(folder: Path, bench: BenchProfile) -> None:
    """The same messages for neomutt: ``new/`` unread, ``cur/`` read (flag S)."""
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    receiver = str(bench.account.address)
    domains = {m.message_id.hex(): bench.people[m.sender].domain for m in bench.messages}
    for index, m in enumerate(bench.messages):
        sender = bench.people[m.sender]
        headers = [
            f"From: {sender}",
            f"To: {receiver}",
            f"Subject: {m.subject}",
            f"Date: {format_datetime(m.received_at)}",
            f"Message-ID: <{m.message_id.hex()}@{sender.domain}>",
        ]
        if m.in_reply_to is not None and m.in_reply_to in domains:
            headers.append(f"In-Reply-To: <{m.in_reply_to}@{domains[m.in_reply_to]}>")
        headers += [
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
        ]
        text = "\n".join(headers) + "\n\n" + m.body + "\n"
        stamp = int(m.received_at.timestamp())
        name = f"{stamp}.{index:06d}.bench"
        path = folder / "new" / name if m.unread else folder / "cur" / f"{name}:2,S"
        path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path, help="the rune-tui profile folder to create")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--maildir", type=Path, help="also write the messages as a Maildir")
    parser.add_argument("--passphrase", default=DEFAULT_PASSPHRASE)
    parser.add_argument("--keystore", choices=("file", "keyring"), default="file")
    parser.add_argument("--port", type=int, default=1, help="where the account's server is")
    args = parser.parse_args(argv)
    if args.profile.exists() and any(args.profile.iterdir()):
        parser.error(f"{args.profile} is not empty")
    started = time.perf_counter()
    bench = make_profile(
        args.profile,
        count=args.count,
        seed=args.seed,
        passphrase=args.passphrase,
        keystore=args.keystore,
        port=args.port,
        progress=True,
    )
    if args.maildir is not None:
        write_maildir(args.maildir, bench)
    unread = sum(m.unread for m in bench.messages)
    print(
        f"{len(bench.messages):,} messages ({unread:,} unread) for {bench.account.address} "
        f"in {args.profile} in {time.perf_counter() - started:.1f} s"
        + (f"; Maildir in {args.maildir}" if args.maildir else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
