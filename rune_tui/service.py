"""The TUI's only door to the network and to keys: wraps the client library.

Screens call these coroutines from workers; nothing here touches Textual, so it is
tested on its own against a real server. Each operation opens a session, does its
work and closes it: a terminal mail client is idle most of the time, and a fresh
session means a dropped connection never leaves the app in a half state.

The door has two rooms: :mod:`rune_tui.service_registration` (probing a server,
registering, unlocking keys) and :mod:`rune_tui.service_mailbox` (one account's mail).
Everything is re-exported here, with :func:`describe_error` for every failure either
one raises, so screens import from this one module.
"""

from __future__ import annotations

import os

from rune_proto import status
from rune_proto.address import AddressError, parse_address
from rune_proto.client import ClientError, ConnectionFailed, ProtocolViolation, ServerError
from rune_proto.local.keystore import KeystoreError

from .key_changes import PendingKeyChange
from .payload import estimate_payload
from .service_mailbox import SAVE_EVERY, Mailbox
from .service_registration import (
    ServerProbe,
    Unlocked,
    blamed_field,
    check_invitation,
    forget_old_key,
    key_file_dir,
    key_store,
    keystore_choice,
    load_identity,
    probe_server,
    register_account,
    unlock,
)

__all__ = [
    "SAVE_EVERY",
    "Mailbox",
    "PendingKeyChange",
    "ServerProbe",
    "Unlocked",
    "blamed_field",
    "check_invitation",
    "describe_error",
    "describe_send_error",
    "estimate_payload",
    "forget_old_key",
    "key_file_dir",
    "key_store",
    "keystore_choice",
    "load_identity",
    "probe_server",
    "register_account",
    "unlock",
]


def describe_error(exc: BaseException) -> str:
    """One sentence a person can act on, for any failure the TUI meets at its boundary.

    Screens catch everything a worker raises and show this instead of a traceback.
    """
    if isinstance(exc, ServerError):
        return exc.explain()
    if isinstance(exc, AddressError):
        return _sentence(f"invalid address: {exc}")
    if isinstance(exc, ProtocolViolation):
        return _sentence(f"the server broke the protocol: {exc}")
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    cause = exc.__cause__
    # asyncio words a refused connection as "Connect call failed (...)"; errno says it
    # better ("connection refused"). Name-lookup errors have negative errnos: keep those.
    if (
        isinstance(exc, ConnectionFailed)
        and isinstance(cause, OSError)
        and (cause.errno or 0) > 0
        and text.startswith("cannot reach")
    ):
        text = f"{text.split(': ', 1)[0]}: {os.strerror(cause.errno or 0).lower()}"
    elif not isinstance(exc, ClientError | KeystoreError | OSError | ValueError):
        text = f"unexpected error ({type(exc).__name__}): {text}"
    return _sentence(text)


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def describe_send_error(exc: BaseException, to: str, own_domain: str) -> str:
    """Why a message was not sent, for the compose screen, and what to do next.

    The server answers NOT_FOUND both for an unknown user and for another domain (it only
    delivers to its own): tell those apart. A failed connection says the message waits
    here to be sent again, so nobody wonders whether it went.
    """
    if isinstance(exc, ServerError) and exc.code == status.NOT_FOUND:
        try:
            domain = parse_address(to).domain
        except AddressError:
            domain = own_domain
        if domain != own_domain:
            return f"This server only delivers to @{own_domain}; {to} is on another server."
        return f"No such address on this server: {to}."
    text = describe_error(exc)
    if isinstance(exc, ConnectionFailed | OSError):
        text += " The message is kept here: press Ctrl+S to try again when the server is back."
    return text
