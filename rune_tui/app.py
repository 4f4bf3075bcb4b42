"""The Textual application: decides what to show first and owns what every screen shares.

No account yet → the setup wizard. An account → its key is unlocked (keyring, or a
passphrase prompt for the encrypted-file fallback) off the event loop, then the inbox.
The service layer (and so the crypto and TLS stack) is imported only once it is needed,
so the first frame is painted before any of that is loaded.
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

    from .screens.wizard import Registered

STYLES = Path(__file__).parent / "styles"

# Hidden bindings (cursor moves and the like) are not commands, except these.
_ALWAYS_OFFERED = frozenset({"app.quit"})


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
        if settings.theme in self.available_themes:
            self.theme = settings.theme
        else:
            self.notify(f"Unknown theme {settings.theme!r}; using the default.", severity="warning")
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
        self.open_wizard()

    @on(Button.Pressed, "#start-quit")
    def _quit(self) -> None:
        self.exit()

    # -- the two ways in ----------------------------------------------------------------

    def open_wizard(self) -> None:
        from .screens.wizard import WizardScreen

        self.set_status("Setting up an account…")
        wizard = WizardScreen(self.paths, self.config, server=self.server)
        self.push_screen(wizard, callback=self._registered)

    def _registered(self, result: Registered | None) -> None:
        if result is None:  # the wizard was left without registering
            self.exit()
            return
        self.config = result.config
        self.notify(f"Welcome to Rune, {result.account.address}!", title="Registered")
        self.open_inbox(result.account, result.identity)

    def open_inbox(self, account: Account, identity: Identity) -> None:
        from .screens.inbox import InboxScreen
        from .service import Mailbox

        self.account = account
        self.sub_title = str(account.address)
        self.set_status(f"Signed in as {account.address}.")
        mailbox = Mailbox(self.paths, account, identity)
        self.push_screen(InboxScreen(mailbox, self.config.settings))

    # -- palette and settings -------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Only the generic commands that make sense in a mail client; Quit comes from keys."""
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


def _load_with_passphrase(paths: Paths, account: Account, passphrase: str) -> Identity:
    from .service import load_identity

    return load_identity(paths, account, passphrase)
