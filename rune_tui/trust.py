"""When a server stops matching its pins: notice it at any network call, and say what changed.

Every network call of the app goes through :meth:`Mailbox.session`; the app gives each
account a :class:`WatchedMailbox` whose sessions report a TLS pin mismatch or a changed
server key to the app before the error goes on to the screen that made the call (which
shows it in words as usual). The app then asks the server what it presents now
(:func:`find_server_change`) and shows the old and new fingerprints side by side; only
an explicit accept changes the pins in the config.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

from rune_proto.client import ServerKeyChanged, Session, TLSPinMismatch
from rune_proto.keys import PublicKey
from rune_proto.tlspin import normalise_pin, pin_text

from .config import Account
from .service import Mailbox, probe_server

TRUST_ERRORS = (TLSPinMismatch, ServerKeyChanged)


@dataclass(frozen=True, slots=True)
class ServerChange:
    """What a server presents now against what the account pinned at registration."""

    account: Account
    tls_pin: str  # what the server presents now (sha256:…)
    server_key: str  # the server's key token, as presented now

    @property
    def tls_changed(self) -> bool:
        return normalise_pin(self.tls_pin) != normalise_pin(self.account.tls_pin)

    @property
    def key_changed(self) -> bool:
        return self.server_key != self.account.server_key

    @property
    def changed(self) -> bool:
        return self.tls_changed or self.key_changed

    @property
    def where(self) -> str:
        return f"{self.account.host}:{self.account.port}"

    def old_tls_text(self) -> str:
        return _pin_text(self.account.tls_pin)

    def new_tls_text(self) -> str:
        return _pin_text(self.tls_pin)

    def old_key_text(self) -> str:
        return _key_text(self.account.server_key)

    def new_key_text(self) -> str:
        return _key_text(self.server_key)

    def accepted(self) -> Account:
        """The account with the new pins, to save once the user accepted them."""
        return replace(self.account, tls_pin=self.tls_pin, server_key=self.server_key)


def _pin_text(pin: str) -> str:
    try:
        return pin_text(pin)
    except ValueError:
        return f"(not a valid pin: {pin})"


def _key_text(token: str) -> str:
    try:
        return PublicKey.from_token(token).fingerprint_text()
    except ValueError:
        return "(not a valid key)"


async def find_server_change(account: Account) -> ServerChange:
    """Connect without pins (nothing is sent but CAPA) and compare what the server shows."""
    probe = await probe_server(account.host, account.port)
    return ServerChange(account, probe.tls_pin, probe.server_key)


class WatchedMailbox(Mailbox):
    """A Mailbox whose sessions tell ``on_trust_error`` when the server breaks its pins.

    The error is still raised: the screen that called keeps the draft, shows the reason,
    and so on. The app only learns about it, to offer the key-changed screen.
    """

    on_trust_error: Callable[[WatchedMailbox, Exception], None] | None = None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        try:
            async with super().session() as session:
                yield session
        except TRUST_ERRORS as exc:
            if self.on_trust_error is not None:
                self.on_trust_error(self, exc)
            raise
