"""The Textual application: decides what to show first and owns what every screen shares.

No account yet → the setup wizard. An account → its key is unlocked (keyring, or a
passphrase prompt for the encrypted-file fallback) off the event loop, then the inbox.
The service layer (and so the crypto and TLS stack) is imported only once it is needed,
so the first frame is painted before any of that is loaded.

The app also owns what is not one screen's business: contacts (``C``), your own key
(``M``), Sent (``S``), drafts, the accounts (switch, add), and the server's pins — any
session that meets a changed TLS certificate or server key reports it here, and the app
shows old and new side by side.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.command import Provider
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.theme import Theme
from textual.widgets import Button, LoadingIndicator, Static

from .app_notices import NewMailNotices
from .app_trust import ServerTrust
from .commands import NOT_MAIL_SCREENS, ScreenCommands, system_commands
from .config import Account, Config, Paths, load_config, save_config
from .messages import SaveFolderChosen, UnlockStarted
from .preload import preload_inbox, preload_service

if TYPE_CHECKING:
    from rune_proto.keys import Identity

    from .drafts import Draft
    from .screens.wizard import Registered
    from .service import Mailbox, Unlocked

STYLES = Path(__file__).parent / "styles"
# Shipped in the package (a link to docs/settings.md in the source tree), so the path a
# settings warning names exists in an installed wheel too.
SETTINGS_DOC = Path(__file__).parent / "settings.md"

__all__ = ["RuneApp", "ScreenCommands"]


class RuneApp(ServerTrust, NewMailNotices):
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
        Binding("M", "my_key", "My key", id="app.my_key", show=False),
        Binding("S", "sent", "Sent", id="app.sent", show=False),
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
            self.call_after_refresh(preload_service)  # once the prompt is on screen
        else:
            self.set_status(f"Opening the system keyring for {account.label}…", busy=True)
            self.unlock_from_keyring(account)

    def settings_problem(self, text: str) -> None:
        """A setting in config.toml that could not be used: say so, once, and go on."""
        self.notify(
            f"{text}.\nSee {SETTINGS_DOC}; the file is {self.paths.config_file}.",
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
            unlocked = await asyncio.to_thread(service.unlock, self.paths, account)
        except Exception as exc:  # the boundary: every failure becomes words on screen
            self.set_status(
                f"Cannot open the key of {account.label}.\n{service.describe_error(exc)}",
                problem=True,
            )
            return
        self._open_unlocked(unlocked)

    def ask_passphrase(self, account: Account, *, switching: bool = False) -> None:
        """The prompt for a key file; when ``switching``, the open account stays underneath."""
        from .screens.passphrase import PassphraseScreen

        back_to = self.account.label if switching and self.account else None
        if back_to is None:
            self.set_status(f"Waiting for the passphrase of {account.label}…")
        unlock = partial(_unlock_with_passphrase, self.paths, account)
        prompt = PassphraseScreen(
            account.label,
            self.paths.data_dir / "keys",  # service.key_file_dir, without importing it yet
            unlock,
            _describe_error,
            back_to=back_to,
        )
        self.push_screen(prompt, callback=partial(self._unlocked, account, back_to is not None))

    def _unlocked(self, account: Account, switching: bool, unlocked: Unlocked | None) -> None:
        if unlocked is not None and switching:
            self.call_later(self._switched, unlocked)
        elif unlocked is not None:
            self._open_unlocked(unlocked)
        elif switching:  # Escape while switching: the open account simply stays
            self.notify(f"The key of {account.label} stays locked.", title="Not switched")
        else:
            self.set_status("The key stays locked.", problem=True)

    def on_unlock_started(self, _event: UnlockStarted) -> None:
        """While scrypt runs in its thread, import the inbox and read its stylesheet.

        Textual reads a screen's CSS_PATH when the screen is first pushed, and re-parses
        every stylesheet of the app to do it (~30-60 ms before the inbox's first frame);
        here it overlaps the scrypt instead, and costs only its own parse. Its rules are
        scoped to the mail screens.
        """
        from .screens import STYLES

        preload_inbox()
        if not self.stylesheet.has_source(str(STYLES), ""):
            self.stylesheet.read(STYLES)
            # parse(), not Textual's reparse(): that parses every source again in a fresh
            # Stylesheet (~60 ms); parse() keeps the rules already parsed and adds these.
            self.stylesheet.parse()
            self.stylesheet.update(self)

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

    def _contacts_problem(self, text: str) -> None:
        self.notify(text, title="Contact book not opened", severity="error", timeout=60)

    def _open_unlocked(self, unlocked: Unlocked) -> None:
        self._remember_conversion(unlocked)
        self.open_inbox(unlocked.account, unlocked.identity)

    def _remember_conversion(self, unlocked: Unlocked) -> None:
        """An older entry named by its address is now named by an opaque id: save that,
        then drop the key stored under the address (never before: the config must be
        able to find the key at every moment)."""
        if unlocked.was is None:
            return
        from . import service

        self.config = self.config.replacing(unlocked.account, was=unlocked.was)
        try:
            save_config(self.paths, self.config)
            service.forget_old_key(self.paths, unlocked)
        except Exception as exc:  # the boundary: the account opens all the same
            self.notify(
                f"Could not finish hiding the address in the config: {exc}", severity="warning"
            )

    def open_inbox(self, account: Account, identity: Identity) -> None:
        # Not from .screens.compose: the compose stack is imported when first used.
        from .screens.compose_drafts import drafts_notice
        from .screens.inbox import InboxScreen
        from .trust import WatchedMailbox

        self.account = account
        self.sub_title = str(account.address)
        self.set_status(f"Signed in as {account.address}.")
        mailbox = WatchedMailbox(self.paths, account, identity)
        mailbox.on_trust_error = self._trust_error
        mailbox.sent_attachment_limit = self.config.settings.sent_attachment_limit_mib << 20
        mailbox.on_contacts_problem = self._contacts_problem
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
        if action in ("contacts", "my_key", "drafts", "check_server", "sent", "export_backup"):
            return self.mailbox is not None and type(self.screen).__name__ not in NOT_MAIL_SCREENS
        return True

    def action_contacts(self) -> None:
        from .screens.contacts import ContactsScreen

        if self.mailbox is not None:
            date_format = self.config.settings.date_format
            self.push_screen(ContactsScreen(self.mailbox, date_format=date_format))

    def action_my_key(self) -> None:
        from .screens.my_key import MyKeyScreen

        if self.mailbox is not None:
            self.push_screen(MyKeyScreen(self.mailbox))

    def action_export_backup(self) -> None:
        from .screens.backup import ExportBackupScreen

        if self.mailbox is not None:
            folder = Path(self.config.settings.save_folder or "~").expanduser()
            self.push_screen(ExportBackupScreen(self.mailbox, self.config, folder))

    def action_sent(self) -> None:
        from .screens.sent import SentScreen

        if self.mailbox is not None and type(self.screen).__name__ != "SentScreen":
            self.push_screen(SentScreen(self.mailbox, self.config.settings))

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
        current = self.account.config_key if self.account else None
        if account is None or (account.config_key == current and self.mailbox is not None):
            return
        self.call_later(self._switch_now, account)

    def _switch_now(self, account: Account) -> None:
        """A key file is unlocked over the open inbox, so Escape can go back to it."""
        if account.keystore == "file" and self.mailbox is not None:
            self.ask_passphrase(account, switching=True)
            return
        self._make_default(account)
        self.close_mailbox()
        self.start()

    def _switched(self, unlocked: Unlocked) -> None:
        self._remember_conversion(unlocked)
        self._make_default(unlocked.account)
        self.close_mailbox()
        self.open_inbox(unlocked.account, unlocked.identity)

    def _make_default(self, account: Account) -> None:
        """The account switched to is the one opened at the next start."""
        self.config = self.config.with_default(account)
        try:
            save_config(self.paths, self.config)
        except (OSError, ValueError) as exc:
            self.notify(f"Could not remember the default account: {exc}", severity="warning")

    def action_add_account(self) -> None:
        self.open_wizard(adding=True)

    # -- palette and settings -------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Only the generic commands that make sense in a mail client; Quit comes from keys."""
        return system_commands(
            self,
            screen,
            signed_in=self.mailbox is not None,
            has_accounts=bool(self.config.accounts),
            keymap=self.config.settings.keymap,
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

    def on_save_folder_chosen(self, event: SaveFolderChosen) -> None:
        """The folder attachments were saved in becomes the default of the next start."""
        settings = self.config.settings
        if event.folder == settings.save_folder or not self.config.accounts:
            return
        self.config = replace(self.config, settings=replace(settings, save_folder=event.folder))
        try:
            save_config(self.paths, self.config)
        except (OSError, ValueError) as exc:
            self.notify(f"Could not remember the folder: {exc}", severity="warning")


def _describe_error(exc: BaseException) -> str:
    """service.describe_error, imported when there is an error to describe.

    The passphrase prompt needs it only on a failure; importing the service layer (the
    client library, TLS, x509: ~57 ms) before the prompt is drawn delays its first paint.
    """
    from .service import describe_error

    return describe_error(exc)


def _unlock_with_passphrase(paths: Paths, account: Account, passphrase: str) -> Unlocked:
    from .service import unlock

    return unlock(paths, account, passphrase)
