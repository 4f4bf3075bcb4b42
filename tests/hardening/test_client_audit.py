"""Privacy audit of a copied rune-tui profile (issue 12, section 2).

A thief with a copy of the profile folder (config and data) must not learn whom its
user writes to. A scripted session against a real ``rune-server``: two accounts
registered in ONE profile (key files, since tests have no keyring), a third person
using the client library with a ``state_dir``; messages both ways with distinctive
subjects, bodies and an attachment; contacts given local names and a comparison mark;
a draft; the attachment saved (outside the profile, where the user chose). Then every
file under the profile and the library's state directory is read as bytes, and every
file and folder name is read too, for every address, username, subject, body,
attachment name and content, local name, public key and fingerprint (hex, the grouped
form the UI shows and its short form). None may appear.

What may be plain is only what is needed to start (docs/client-cache.md, "What a copy
of the profile reveals"): the accounts' opaque ids, the server's host, port and pins,
the keystore kind and the settings. config.toml is scanned like every other file.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

from rune_proto.address import Address
from rune_proto.client import connect
from rune_proto.keys import Identity
from rune_tui.config import Account, Paths, load_config
from rune_tui.drafts import Draft, DraftStore, new_draft_id
from rune_tui.filenames import save_new_file
from rune_tui.screens.contacts import short_fingerprint
from rune_tui.service import Mailbox, probe_server, register_account
from tests.server_process import RuneServerProcess, ServerFactory

PASSPHRASE = "correct horse battery staple audit"
SUBJECTS = ("Marzipan lighthouse 5521", "Tangerine observatory 8812", "Re: walrus ledger 3307")
BODIES = (
    "The pelican accountant arrives on Thursday 6142.",
    "Bring the saffron umbrella, code 9931.",
    "Carol answers from the library: kumquat 4477.",
)
ATTACHMENT = ("zanzibar-itinerary-2291.txt", b"ATTACHED: obsidian caravan 7305\n")
DRAFT = ("Draft: unfinished quokka 1180", "Half a thought about the cormorant 6620.")
LOCAL_NAMES = ("Carolina Herrera-Audit", "Alicia Sommerfeld-Audit")


def files_under(*roots: Path) -> Iterator[Path]:
    for root in roots:
        yield from (p for p in root.rglob("*") if p.is_file())


def names_under(*roots: Path) -> Iterator[tuple[Path, str]]:
    """Every file and folder name below each root (the root's own name is the test's)."""
    for root in roots:
        for path in root.rglob("*"):
            yield path, str(path.relative_to(root))


def fingerprint_forms(identity: Identity) -> list[str]:
    key = identity.public
    text = key.fingerprint_text()
    hexed = key.fingerprint().hex()
    return [key.token(), hexed, text, short_fingerprint(text).rstrip(" …"), hexed[:16]]


async def scripted_session(
    server: RuneServerProcess, profile: Path, state: Path, downloads: Path
) -> list[str]:
    """Run the session; the secrets it used."""
    paths = Paths.from_profile(profile)
    probe = await probe_server(server.host, server.port)
    config = load_config(paths)
    opened: list[tuple[Account, Identity]] = []
    for username in ("auditalice", "auditbob"):
        config, account, identity = await register_account(
            paths, config, probe, username, keystore="file", passphrase=PASSPHRASE
        )
        opened.append((account, identity))
    (alice_account, alice_id), (bob_account, bob_id) = opened
    alice = Mailbox(paths, alice_account, alice_id)
    bob = Mailbox(paths, bob_account, bob_id)
    carol_id = Identity.generate()
    carol = Address("auditcarol", probe.domain.lower())
    pins = {"tls_fingerprint": server.tls_pin, "server_key": server.server_key}
    async with connect(server.host, server.port, ephemeral=True, **pins) as session:
        await session.register(carol, carol_id)

    await alice.send(str(bob.address), SUBJECTS[0], BODIES[0], [ATTACHMENT])
    await alice.send(str(carol), SUBJECTS[1], BODIES[1])
    async with connect(server.host, server.port, state_dir=state, **pins) as session:
        await session.login(carol, carol_id)
        (info,) = await session.list()
        assert (await session.retrieve(info.id)).subject == SUBJECTS[1]
        await session.send(alice.address, SUBJECTS[2], BODIES[2])
        await session.send(bob.address, SUBJECTS[2], BODIES[2])
        session.contacts.rename(alice.address, LOCAL_NAMES[1])

    for mailbox in (alice, bob):
        for server_id in await mailbox.refresh():
            message = mailbox.message(server_id)
            assert message.verified and message.body in BODIES
            mailbox.mark_read(server_id)
            for attachment in message.attachments:
                save_new_file(downloads, attachment.filename, attachment.data)
    assert (downloads / ATTACHMENT[0]).read_bytes() == ATTACHMENT[1]
    alice.contacts.rename(carol, LOCAL_NAMES[0])
    bob.contacts.rename(alice.address, LOCAL_NAMES[1])
    bob.contacts.mark_compared(alice.address, alice_id.public)
    DraftStore.for_mailbox(alice).save(Draft(new_draft_id(), str(carol), *DRAFT))
    for mailbox in (alice, bob):
        mailbox.flush()

    secrets = [str(a) for a in (alice.address, bob.address, carol)] + [
        "auditalice",
        "auditbob",
        "auditcarol",
    ]
    secrets += [*SUBJECTS, *BODIES, *ATTACHMENT[1].decode().split("\n")[:1], ATTACHMENT[0]]
    secrets += [*DRAFT, *LOCAL_NAMES]
    for identity in (alice_id, bob_id, carol_id):
        secrets += fingerprint_forms(identity)
        private = identity.private_bytes()  # the key files must hold it sealed only
        secrets += [private.hex(), base64.b64encode(private).decode(), private.decode("latin-1")]
    return [s for s in secrets if s]


async def test_a_copied_profile_shows_no_correspondent(
    rune_server: ServerFactory, tmp_path: Path
) -> None:
    server = rune_server()
    profile, state, downloads = tmp_path / "profile", tmp_path / "state", tmp_path / "downloads"
    downloads.mkdir()
    secrets = await scripted_session(server, profile, state, downloads)
    found: list[str] = []
    scanned = 0
    for path in files_under(profile, state):
        lowered = path.read_bytes().lower()
        for secret in secrets:
            encodings = (secret.encode("utf-8"), secret.encode("utf-16-le"))
            for encoded in (*encodings, secret.encode("latin-1", "ignore")):
                if encoded.lower() in lowered:
                    found.append(f"{secret[:40]!r} in the content of {path}")
        scanned += 1
    for path, name in names_under(profile, state):
        found += [f"{s[:40]!r} in the name {path}" for s in secrets if s.lower() in name.lower()]
    assert not found, "\n".join(found)
    assert scanned >= 10  # keys, books, logs, cache files, a draft: the scan saw them
    kinds = {p.relative_to(profile).parts[:2] for p in files_under(profile)}
    assert {("config", "contacts"), ("data", "seen"), ("data", "drafts")} <= kinds
    accounts = load_config(Paths.from_profile(profile)).accounts
    assert len(accounts) == 2 and all(not a.address_known for a in accounts)
