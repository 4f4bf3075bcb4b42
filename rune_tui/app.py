"""The Textual application: decides what to show first and owns what every screen shares.

No account yet → the setup wizard. An account → its key is unlocked (keyring, or a
passphrase prompt for the encrypted-file fallback) off the event loop, then the inbox.
The service layer (and so the crypto and TLS stack) is imported only once it is needed,
so the first frame is painted before any of that is loaded.

The app also owns what is not one screen's business: contacts (``C``) and drafts, the
accounts (switch, add), and the server's pins — any session that meets a changed TLS
certificate or server key reports it here, and the app shows old and new side by side.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.theme import Theme
from textual.widgets import Button, LoadingIndicator, Static

from .config import Account, Config, Paths, load_config, save_config

if TYPE_CHECKING:
    from rune_proto.keys import Identity

    from .drafts import Draft
    from .screens.wizard import Registered
    from .service import Mailbox
    from .trust import ServerChange, WatchedMailbox

STYLES = Path(__file__).parent / "styles"

# Hidden bindings (cursor moves and the like) are not commands, except these.
_ALWAYS_OFFERED = frozenset({"app.quit"})
# Screens where the app-wide mail commands (contacts, drafts) make no sense.
_NOT_MAIL_SCREENS = frozenset({"WizardScreen", "ContactsScreen", "PassphraseScreen"})


class ScreenCommands(Provider):
    """The current screen's bindings as palette commands, so it offers only what fits here.

    Generated from the bindings rather than listed by hand, the palette can never offer a
    command the screen does not have, and a user's keymap shows up in its help text.
    """

    def _commands(self) -> Iterator[tuple[str, str, Callable[[], Any]]]:
        seen: set[str] = set()
        for active in self.screen.active_bindings.values():
            binding = active.binding
            name = binding.description
            if not name or binding.system or not active.enabled or name in seen:
                continue
            if not binding.show and binding.id not in _ALWAYS_OFFERED:
                continue  # j/k, page up/down: keys to press, not things to look up
            seen.add(name)
            keys = self.app.get_key_display(binding)
            help_text = f"{binding.tooltip or name} ({keys})"
            yield name, help_text, partial(self.app.run_action, binding.action, active.node)

    async def discover(self) -> Hits:
        for name, help_text, command in self._commands():
            yield DiscoveryHit(name, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, command in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), command, help=help_text)


class RuneApp(App[None]):
    """Rune's terminal client."""

    TITLE = "Rune"
    SUB_TITLE = "private messages"
    # The mail screens bring their own stylesheet (styles/mail.tcss) with them.
    CSS_PATH: ClassVar[list[str | PurePath]] = [STYLES / "global.tcss", STYLES / "wizard.tcss"]
    COMMANDS: ClassVar[set[type[Provider] | Callable[[], type[Provider]]]] = {
        *App.COMMANDS,
        ScreenCommands,
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", id="app.quit", priority=True, show=False),
        # Capital C: printable, so a focused Input keeps it (typing "C" in compose types).
        Binding("C", "contacts", "Contacts", id="app.contacts", show=False),
    ]

    def __init__(
        self,
        paths: Paths,
        config: Config | None = None,
        *,
        server: tuple[str, int] | None = None,
    ) -> None:
        super().__init__()
        self.paths = paths
        self.config = config if config is not None else load_config(paths)
        self.server = server  # pre-fills the wizard
        self.account: Account | None = None
        self.mailbox: Mailbox | None = None
        self._checking_server = False  # a server-key check or prompt is under way
        self._refused_servers: set[str] = set()  # accounts whose new server pins were refused

    # -- start-up ---------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        """The start view: a status line while the key unlocks, and choices if it cannot."""
        with Vertical(id="start"):
            yield Static("Rune", id="start-title")
            yield LoadingIndicator(id="start-busy")
            yield Static("Starting…", id="start-status", markup=False)
            with Horizontal(id="start-actions", classes="buttons"):
                yield Button("Try again", id="start-retry", variant="primary")
                yield Button("Set up a new account", id="start-wizard")
                yield Button("Quit", id="start-quit", variant="error")

    def on_mount(self) -> None:
        settings = self.config.settings
        for problem in self.config.problems:
            self.settings_problem(problem)
        if settings.theme in self.available_themes:
            self.theme = settings.theme
        else:
            self.settings_problem(
                f"settings.theme {settings.theme!r} is not a theme "
                "(pick one with Theme in the command palette); using the default"
            )
        if settings.keymap:
            self.set_keymap(settings.keymap)
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        self.query_one("#start-actions").display = False
        self.start()

    def start(self) -> None:
        """Open the wizard, or unlock the current account's key and open its inbox."""
        account = self.config.current
        if account is None:
            self.open_wizard()
        elif account.keystore == "file":
            self.ask_passphrase(account)
        else:
            self.set_status(f"Opening the system keyring for {account.address}…", busy=True)
            self.unlock_from_keyring(account)

    def settings_problem(self, text: str) -> None:
        """A setting in config.toml that could not be used: say so, once, and go on."""
        self.notify(
            f"{text}.\nSee docs/settings.md; the file is {self.paths.config_file}.",
            title="Settings",
            severity="warning",
            timeout=12,
        )

    def set_status(self, text: str, *, busy: bool = False, problem: bool = False) -> None:
        status = self.query_one("#start-status", Static)
        status.update(text)
        status.set_class(problem, "error")
        self.query_one("#start-busy").display = busy
        self.query_one("#start-actions").display = problem
        if problem:
            self.query_one("#start-retry").focus()

    @work(exclusive=True, group="identity", exit_on_error=False)
    async def unlock_from_keyring(self, account: Account) -> None:
        """Keyring calls block on D-Bus (and maybe an unlock prompt): run them in a thread."""
        from . import service

        try:
            identity = await asyncio.to_thread(service.load_identity, self.paths, account)
        except Exception as exc:  # the boundary: every failure becomes words on screen
            self.set_status(
                f"Cannot open the key of {account.address}.\n{service.describe_error(exc)}",
                problem=True,
            )
            return
        self.open_inbox(account, identity)

    def ask_passphrase(self, account: Account) -> None:
        from . import service
        from .screens.passphrase import PassphraseScreen

        self.set_status(f"Waiting for the passphrase of {account.address}…")
        unlock = partial(_load_with_passphrase, self.paths, account)
        prompt = PassphraseScreen(
            str(account.address), service.key_file_dir(self.paths), unlock, service.describe_error
        )
        self.push_screen(prompt, callback=partial(self._unlocked, account))

    def _unlocked(self, account: Account, identity: Identity | None) -> None:
        if identity is None:
            self.set_status("The key stays locked.", problem=True)
        else:
            self.open_inbox(account, identity)

    @on(Button.Pressed, "#start-retry")
    def _retry(self) -> None:
        self.start()

    @on(Button.Pressed, "#start-wizard")
    def _new_account(self) -> None:
        # With accounts already configured, leaving the wizard comes back here.
        self.open_wizard(adding=bool(self.config.accounts))

    @on(Button.Pressed, "#start-quit")
    def _quit(self) -> None:
        self.exit()

    # -- the two ways in ----------------------------------------------------------------

    def open_wizard(self, *, adding: bool = False) -> None:
        """The setup wizard; ``adding`` another account lets Escape leave it again."""
        from .screens.wizard import WizardScreen

        if not adding:
            self.set_status("Setting up an account…")
        wizard = WizardScreen(self.paths, self.config, server=self.server, cancellable=adding)
        self.push_screen(wizard, callback=partial(self._registered, adding))

    def _registered(self, adding: bool, result: Registered | None) -> None:
        if result is None:  # the wizard was left without registering
            if not adding:
                self.exit()
            return
        self.config = result.config
        self.notify(f"Welcome to Rune, {result.account.address}!", title="Registered")
        if adding:
            self.call_later(self._reopen, result.account, result.identity)
        else:
            self.open_inbox(result.account, result.identity)

    def _reopen(self, account: Account, identity: Identity) -> None:
        self.close_mailbox()
        self.open_inbox(account, identity)

    def open_inbox(self, account: Account, identity: Identity) -> None:
        from .screens.compose import drafts_notice
        from .screens.inbox import InboxScreen
        from .trust import WatchedMailbox

        self.account = account
        self.sub_title = str(account.address)
        self.set_status(f"Signed in as {account.address}.")
        mailbox = WatchedMailbox(self.paths, account, identity)
        mailbox.on_trust_error = self._trust_error
        self.mailbox = mailbox
        self.push_screen(InboxScreen(mailbox, self.config.settings))
        notice = drafts_notice(mailbox)
        if notice:
            self.notify(notice, title="Drafts", timeout=10)
        if self.config.settings.keymap:
            self.call_after_refresh(self._check_keymap)

    def close_mailbox(self) -> None:
        """Back to the start view: every screen of the current account is closed."""
        self.mailbox = None
        self.account = None
        self.sub_title = self.SUB_TITLE
        while len(self.screen_stack) > 1:
            self.pop_screen()

    def _check_keymap(self) -> None:
        from .keymap import unknown_ids

        for binding_id in unknown_ids(self.config.settings.keymap):
            self.settings_problem(
                f"keymap.{binding_id} is not a binding id (a typo?); it changes nothing"
            )

    # -- contacts, drafts, accounts ----------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("contacts", "drafts", "check_server"):
            return self.mailbox is not None and type(self.screen).__name__ not in (
                _NOT_MAIL_SCREENS
            )
        return True

    def action_contacts(self) -> None:
        from .screens.contacts import ContactsScreen

        if self.mailbox is not None:
            date_format = self.config.settings.date_format
            self.push_screen(ContactsScreen(self.mailbox, date_format=date_format))

    def action_drafts(self) -> None:
        from .drafts import DraftStore
        from .screens.drafts import DraftsScreen

        mailbox = self.mailbox
        if mailbox is None:
            return
        picker = DraftsScreen(
            DraftStore.for_mailbox(mailbox), date_format=self.config.settings.date_format
        )
        self.push_screen(picker, callback=partial(self._resume_draft, mailbox))

    def _resume_draft(self, mailbox: Mailbox, draft: Draft | None) -> None:
        from .screens.compose import ComposeScreen

        if draft is not None and mailbox is self.mailbox:
            self.push_screen(ComposeScreen.from_draft(mailbox, draft))

    def action_switch_account(self) -> None:
        from .screens.accounts import AccountsScreen

        self.push_screen(AccountsScreen(self.config, self.account), callback=self._switch_to)

    def _switch_to(self, account: Account | None) -> None:
        if account is None or (account == self.account and self.mailbox is not None):
            return
        self.config = self.config.with_default(account)
        try:
            save_config(self.paths, self.config)
        except (OSError, ValueError) as exc:
            self.notify(f"Could not remember the default account: {exc}", severity="warning")
        self.call_later(self._switch_now)

    def _switch_now(self) -> None:
        self.close_mailbox()
        self.start()

    def action_add_account(self) -> None:
        self.open_wizard(adding=True)

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

    # -- palette and settings -------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Only the generic commands that make sense in a mail client; Quit comes from keys."""
        if self.mailbox is not None and type(screen).__name__ not in _NOT_MAIL_SCREENS:
            keys = self.get_key_display(_binding(self, "app.contacts"))
            yield SystemCommand(
                "Contacts",
                f"Pinned keys, first seen, how verified ({keys})",
                self.action_contacts,
            )
            yield SystemCommand(
                "Drafts", "Resume a message you have not sent yet", self.action_drafts
            )
            yield SystemCommand(
                "Check the server",
                "Compare the server's certificate and key with the pinned ones",
                self.action_check_server,
            )
        if self.config.accounts and type(screen).__name__ != "WizardScreen":
            yield SystemCommand(
                "Switch account", "Open the inbox of another account", self.action_switch_account
            )
            yield SystemCommand(
                "Add account", "Register another address (runs the wizard)", self.action_add_account
            )
        yield SystemCommand("Theme", "Change the colours (remembered)", self.action_change_theme)
        yield SystemCommand(
            "Screenshot",
            "Save an SVG picture of this screen in the current folder",
            lambda: self.set_timer(0.1, self.deliver_screenshot),
        )

    def _remember_theme(self, theme: Theme) -> None:
        """A theme picked in the palette is saved, so the next start uses it too."""
        settings = self.config.settings
        if theme.name == settings.theme:
            return
        self.config = replace(self.config, settings=replace(settings, theme=theme.name))
        try:
            save_config(self.paths, self.config)
        except (OSError, ValueError) as exc:
            self.notify(f"Could not save the theme: {exc}", severity="warning")


def _binding(app: App[Any], binding_id: str) -> Binding:
    """The app's binding with this id, with the user's keymap applied (for its keys)."""
    bindings = app._bindings.copy()
    if app._keymap:
        bindings.apply_keymap(app._keymap)
    for binding_list in bindings.key_to_bindings.values():
        for binding in binding_list:
            if binding.id == binding_id:
                return binding
    raise KeyError(binding_id)


def _load_with_passphrase(paths: Paths, account: Account, passphrase: str) -> Identity:
    from .service import load_identity

    return load_identity(paths, account, passphrase)
