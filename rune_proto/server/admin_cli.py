"""``rune-server accounts|invitations|mailbox|passphrase|renew-cert``: administration.

Every command here is safe while the server runs: it opens the same database, the
SQLite file or PostgreSQL (adminstore.py; admin.py says how a running server
notices), or rewrites a key file whole (keyfiles.py). Output shows what the server
is meant to know and nothing more:
addresses, and per mailbox a message count and a byte total; no senders, no ids,
no sizes of single messages, no times beyond an invitation's expiry.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..address import AddressError, parse_address
from . import admin
from .adminstore import AdminStore, open_admin
from .config import DataDir, OperatorError, ServerConfig, load_config, read_passphrase
from .dburl import locate
from .keyfiles import certificate_expiry, change_passphrase, renew_certificate

NEW_PASSPHRASE_ENV = "RUNE_SERVER_NEW_PASSPHRASE"
Command = Callable[..., argparse.ArgumentParser]  # (name, help, *, data_dir=True)


def database_option(parser: argparse.ArgumentParser, text: str | None = None) -> None:
    """``--database URL``: overrides the config's ``database`` for this command."""
    parser.add_argument(
        "--database",
        metavar="URL",
        help=text or "a postgresql:// URL (default: the config's database, else the SQLite file)",
    )


@contextmanager
def store_of(args: argparse.Namespace, config: ServerConfig | None = None) -> Iterator[AdminStore]:
    """The data directory's store (``--database`` first), closed afterwards."""
    data = DataDir(args.data_dir)
    data.check()
    config = config or load_config(data.config)
    db = open_admin(locate(data, config, args.database))
    try:
        yield db
    finally:
        db.close()


def _address(text: str) -> str:
    try:
        return str(parse_address(text))
    except AddressError as exc:
        raise OperatorError(f"bad address: {exc}") from exc


def _accounts_list(args: argparse.Namespace) -> int:
    with store_of(args) as db:
        rows = db.list_accounts()
        reserved = sorted(a for a, kind in db.held().items() if kind == admin.DELETED)
    width = max((len(r.address) for r in rows), default=7)
    width = max([width, 7, *(len(a) for a in reserved)])
    print(f"{'address':<{width}}  {'state':<8}  {'messages':>8}  {'bytes':>12}")
    for row in rows:
        state = admin.BLOCKED if row.blocked else "active"
        print(f"{row.address:<{width}}  {state:<8}  {row.messages:>8}  {row.bytes:>12}")
    for address in reserved:
        print(f"{address:<{width}}  {'reserved':<8}  {0:>8}  {0:>12}")
    return 0


def _accounts_count(args: argparse.Namespace) -> int:
    with store_of(args) as db:
        counts = db.count()
    print(f"accounts: {counts.accounts} ({counts.blocked} blocked)")
    print(f"reserved addresses: {counts.reserved}")
    print(f"messages: {counts.messages} ({counts.bytes} bytes)")
    return 0


def _accounts_block(args: argparse.Namespace) -> int:
    address = _address(args.address)
    with store_of(args) as db:
        if not db.block(address):
            raise OperatorError(f"no account {address}")
    print(f"blocked {address}: its sessions end within a second; it cannot log in")
    return 0


def _accounts_unblock(args: argparse.Namespace) -> int:
    address = _address(args.address)
    with store_of(args) as db:
        if not db.unblock(address):
            raise OperatorError(f"{address} is not blocked")
    print(f"unblocked {address}")
    return 0


def _accounts_delete(args: argparse.Namespace) -> int:
    address = _address(args.address)
    if not args.yes:
        raise OperatorError(f"this deletes {address} and all its mail: add --yes to go ahead")
    with store_of(args) as db:
        if not db.delete_account(address):
            raise OperatorError(f"no account {address}")
        messages, size = _erase(db, address)
    print(f"deleted {address} and {messages} messages ({size} bytes)")
    print(f"{address} stays reserved until: rune-server accounts release {address}")
    return 0


def _accounts_release(args: argparse.Namespace) -> int:
    address = _address(args.address)
    with store_of(args) as db:
        _erase(db, address)  # anything that arrived while the deletion took effect
        if not db.release(address):
            raise OperatorError(f"{address} is not a deleted, reserved address")
    print(f"released {address}: it can be registered again")
    return 0


def _mailbox_erase(args: argparse.Namespace) -> int:
    address = _address(args.address)
    with store_of(args) as db:
        messages, size = _erase(db, address)
    print(f"erased {messages} messages ({size} bytes) from {address}")
    return 0


def _erase(db: AdminStore, address: str) -> tuple[int, int]:
    """The whole mailbox, a batch a transaction; then the deleted bytes leave the file."""
    messages = size = 0
    while True:
        count, freed = db.erase_batch(address)
        if not count:
            break
        messages, size = messages + count, size + freed
    db.finish_erase()
    return messages, size


def _invitations_list(args: argparse.Namespace) -> int:
    with store_of(args) as db:
        rows = db.list_invitations()
    now = dt.datetime.now(dt.UTC)
    for row in rows:
        expires = dt.datetime.fromtimestamp(row.expires_at, dt.UTC)
        note = "  (expired)" if expires <= now else ""
        print(f"{row.address}  expires {expires:%Y-%m-%d %H:%M} UTC{note}")
    if not rows:
        print("no invitations")
    return 0


def _invitations_revoke(args: argparse.Namespace) -> int:
    address = _address(args.address)
    with store_of(args) as db:
        revoked = db.revoke_invitations(address)
    if not revoked:
        raise OperatorError(f"no invitation for {address}")
    print(f"revoked {revoked} invitation{'s' if revoked != 1 else ''} for {address}")
    return 0


def _passphrase(args: argparse.Namespace) -> int:
    data = DataDir(args.data_dir)
    data.check()
    old = read_passphrase(args.passphrase_file, prompt="current passphrase: ")
    new = read_passphrase(
        args.new_passphrase_file,
        confirm=True,
        env=NEW_PASSPHRASE_ENV,
        prompt="new passphrase: ",
        option="--new-passphrase-file",
    )
    change_passphrase(data, old, new)
    print("the TLS key and the server identity are now sealed with the new passphrase")
    print("a running server goes on; it needs the new passphrase when it starts again")
    return 0


def _renew_cert(args: argparse.Namespace) -> int:
    data = DataDir(args.data_dir)
    data.check()
    pin = renew_certificate(data, read_passphrase(args.passphrase_file))
    print(f"new certificate, valid until {certificate_expiry(data):%Y-%m-%d}, for the SAME key:")
    print(f"tls fingerprint: {pin} (unchanged: clients' pins hold)")
    print("restart the server to serve it")
    return 0


def add_commands(command: Command) -> None:
    """Add the administration commands; ``command(name, help)`` makes one subparser."""

    def group(name: str, text: str) -> Callable[[str, str], argparse.ArgumentParser]:
        sub = command(name, text, data_dir=False)
        actions = sub.add_subparsers(dest="action", required=True, metavar="ACTION")

        def action(verb: str, help_text: str) -> argparse.ArgumentParser:
            leaf = actions.add_parser(verb, help=help_text, description=help_text)
            leaf.add_argument("--data-dir", type=Path, required=True, metavar="DIR")
            database_option(leaf)
            return leaf

        return action

    accounts = group("accounts", "list, count, block, unblock, delete or release accounts")
    accounts("list", "addresses, state, message count and bytes").set_defaults(func=_accounts_list)
    accounts("count", "how many accounts, blocked, reserved; messages, bytes").set_defaults(
        func=_accounts_count
    )
    for verb, text, func in (
        ("block", "end its sessions and refuse its logins (416)", _accounts_block),
        ("unblock", "let a blocked account log in again", _accounts_unblock),
        ("release", "let a deleted address be registered again", _accounts_release),
    ):
        leaf = accounts(verb, text)
        leaf.add_argument("address", metavar="ADDRESS")
        leaf.set_defaults(func=func)
    delete = accounts("delete", "delete an account and its mail; its address stays reserved")
    delete.add_argument("address", metavar="ADDRESS")
    delete.add_argument("--yes", action="store_true", help="really delete")
    delete.set_defaults(func=_accounts_delete)

    invitations = group("invitations", "list or revoke invitations")
    invitations("list", "bound addresses and expiry").set_defaults(func=_invitations_list)
    revoke = invitations("revoke", "revoke every invitation bound to ADDRESS")
    revoke.add_argument("address", metavar="ADDRESS")
    revoke.set_defaults(func=_invitations_revoke)

    mailbox = group("mailbox", "erase a user's mail")
    erase = mailbox("erase", "delete every message of ADDRESS (quota freed at once)")
    erase.add_argument("address", metavar="ADDRESS")
    erase.set_defaults(func=_mailbox_erase)

    passphrase = command("passphrase", "change the passphrase of the TLS key and the identity")
    passphrase.add_argument("--passphrase-file", type=Path, metavar="F", help="the current one")
    passphrase.add_argument("--new-passphrase-file", type=Path, metavar="F")
    passphrase.set_defaults(func=_passphrase)

    renew = command("renew-cert", "a new TLS certificate for the same key (pins hold)")
    renew.add_argument("--passphrase-file", type=Path, metavar="F")
    renew.set_defaults(func=_renew_cert)
