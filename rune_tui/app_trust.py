"""The app's part in server trust: a session that meets a changed TLS certificate or server
key reports it here, and the app shows old and new side by side (ServerKeyScreen).

A mixin of :class:`~rune_tui.app.RuneApp`, apart so that app.py stays about start-up.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual import work
from textual.app import App

from .config import Account, Config, Paths, save_config

if TYPE_CHECKING:
    from .service import Mailbox
    from .trust import ServerChange, WatchedMailbox


class ServerTrust(App[None]):
    """Checks a server's pins on demand or when a session reports a mismatch."""

    paths: Paths
    config: Config
    account: Account | None
    mailbox: Mailbox | None
    _checking_server: bool  # a server-key check or prompt is under way
    _refused_servers: set[str]  # accounts whose new server pins were refused

    # -- a server that no longer matches its pins --------------------------------------

    def _trust_error(self, mailbox: WatchedMailbox, exc: Exception) -> None:
        """A session met a changed TLS certificate or server key (called from a worker)."""
        if mailbox is not self.mailbox or self._checking_server:
            return
        if str(mailbox.account.address) in self._refused_servers:
            return  # asked already; "Check the server" in the palette asks again
        self._checking_server = True
        self.check_server(mailbox)

    def action_check_server(self) -> None:
        if self.mailbox is not None and not self._checking_server:
            self._checking_server = True
            self.check_server(self.mailbox, say_if_fine=True)

    @work(group="server-trust", exclusive=True, exit_on_error=False)
    async def check_server(self, mailbox: Mailbox, *, say_if_fine: bool = False) -> None:
        """Ask the server what it presents now; show the change, if any, side by side."""
        from .screens.key_change import ServerKeyScreen
        from .service import describe_error
        from .trust import find_server_change

        try:
            change = await find_server_change(mailbox.account)
        except Exception as exc:  # offline, say; the screen that failed already said why
            self._checking_server = False
            if say_if_fine:
                self.notify(describe_error(exc), title="Cannot check the server", severity="error")
            return
        if mailbox is not self.mailbox or not change.changed:
            self._checking_server = False
            if say_if_fine and mailbox is self.mailbox:
                self.notify("The server presents the pinned certificate and key.")
            return
        self.push_screen(
            ServerKeyScreen(change), callback=partial(self._server_answered, mailbox, change)
        )

    def _server_answered(
        self, mailbox: Mailbox, change: ServerChange, accepted: bool | None
    ) -> None:
        self._checking_server = False
        address = str(change.account.address)
        if not accepted:
            self._refused_servers.add(address)
            self.notify(
                "The old fingerprints stay pinned, so rune-tui will not log in to "
                f"{change.where}. Check the server in the command palette to decide again.",
                title="Server not trusted",
                severity="warning",
                timeout=12,
            )
            return
        self._refused_servers.discard(address)
        account = change.accepted()
        self.config = self.config.replacing(account)
        try:
            save_config(self.paths, self.config)
        except (OSError, ValueError) as exc:
            self.notify(f"Could not save the new pins: {exc}", severity="error")
        if mailbox is self.mailbox:
            mailbox.account = account
            self.account = account
        self.notify(f"New fingerprints of {change.where} pinned.", title="Server trusted")
        from .screens.inbox import InboxScreen

        for screen in self.screen_stack:
            if isinstance(screen, InboxScreen):
                screen.action_refresh()
