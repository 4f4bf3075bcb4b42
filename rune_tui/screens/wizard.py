"""The first-run wizard: from a server's host name to a registered address and an inbox.

Server → trust its fingerprints → choose an address → decide where the key lives →
register. Each step checks its answers before moving on, Escape (or Back) returns to
the previous one, and every failure — refused connection, taken address, bad
invitation — is shown in words on the step where it can be fixed. The network calls
run in workers, so the wizard keeps drawing while it waits.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Button, ContentSwitcher, Footer, Input, RadioSet, Static

from rune_proto.address import AddressError, random_part, validate_part
from rune_proto.transport import DEFAULT_PORT

from .. import service
from ..config import Account, Config, Paths
from ..service import ServerProbe
from .wizard_steps import (
    STEPS,
    AddressStep,
    KeysStep,
    RegisterStep,
    ServerStep,
    Step,
    TrustStep,
    step_line,
)

if TYPE_CHECKING:
    from rune_proto.keys import Identity

SHORT_HEIGHT = 24  # rows: below this the wizard's title and margins go
NARROW_WIDTH = 80  # columns: below this the step line shows only the current step's name


@dataclass(frozen=True, slots=True)
class Registered:
    """What the wizard hands the app: the saved config, the new account and its key."""

    config: Config
    account: Account
    identity: Identity


class WizardScreen(Screen[Registered | None]):
    """Set up an account. Dismisses with :class:`Registered` once it is saved.

    For the first account there is no way back (Ctrl+Q quits); when adding another
    (``cancellable``), Escape on the first step returns to where the user was.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="wizard.back"),
        Binding("ctrl+r", "random_username", "Random name", id="wizard.random"),
        Binding("f1", "help", "Help", id="wizard.help"),
        # A short terminal cannot show a whole step: these scroll it (Tab scrolls too).
        # Priority: a one-line Input would take page keys for itself and do nothing.
        Binding("pagedown", "scroll_page(1)", "Scroll", id="wizard.page_down", priority=True),
        Binding(
            "pageup", "scroll_page(-1)", "Scroll up", id="wizard.page_up", show=False, priority=True
        ),
    ]

    def __init__(
        self,
        paths: Paths,
        config: Config,
        *,
        server: tuple[str, int] | None = None,
        cancellable: bool = False,
    ) -> None:
        super().__init__()
        self.paths = paths
        self.config = config
        # Adding another account: Escape on the first step leaves (dismisses with None).
        self.cancellable = cancellable
        self.server = server or ("", DEFAULT_PORT)
        self.probe: ServerProbe | None = None
        self.keystore: tuple[str, str] | None = None  # ("keyring" | "file", why)
        self.current = "server"
        self.registering = False  # then Back must wait: the server may already know us

    def compose(self) -> ComposeResult:
        yield Static("Rune · set up your account", id="wizard-title")
        with Vertical(id="wizard-body"):
            yield Static(step_line("server"), id="wizard-steps")
            with ContentSwitcher(initial="step-server", id="wizard-pages"):
                yield ServerStep(*self.server)
                yield TrustStep()
                yield AddressStep()
                yield KeysStep()
                yield RegisterStep()
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#username", Input).value = random_part()
        self.go("server")

    # -- moving between steps -------------------------------------------------------------

    def page(self, step: str) -> Step:
        return self.query_one(f"#step-{step}", Step)

    def go(self, step: str) -> None:
        """Show ``step`` and put the cursor where the user is most likely to type."""
        self.current = step
        self.query_one(ContentSwitcher).current = f"step-{step}"
        self.query_one("#wizard-steps", Static).update(step_line(step, narrow=self.narrow))
        self.refresh_bindings()
        self.query_one(self._focus_target(step)).focus()
        self.call_after_refresh(self._settled)  # the page is laid out only then

    def _focus_target(self, step: str) -> str:
        if step == "server":
            return "#connect" if self.server[0] else "#host"
        if step == "keys" and self.keystore is not None and self.keystore[0] == "file":
            return "#passphrase"
        return {
            "trust": "#trust",
            "address": "#username",
            "keys": "#keys-next",
            "register": "#register",
        }[step]

    @property
    def narrow(self) -> bool:
        return self.size.width < NARROW_WIDTH

    def on_resize(self, event: events.Resize) -> None:
        """A small terminal drops the frills (title, margins, step names), so fields fit."""
        self.set_class(event.size.height < SHORT_HEIGHT, "-short")
        self.refresh_bindings()
        self.query_one("#wizard-steps", Static).update(step_line(self.current, narrow=self.narrow))
        self.query_one(TrustStep).reflow(self.narrow)
        self.call_after_refresh(self._settled)

    def _settled(self) -> None:
        """After layout (a page just shown has none before): the focused field in view."""
        if self.focused is not None:
            self.focused.scroll_visible(animate=False, immediate=True)

    def action_scroll_page(self, direction: int) -> None:
        page = self.page(self.current)
        page.scroll_relative(y=direction * max(1, page.scrollable_content_region.height - 1))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "scroll_page":  # in the footer of a short terminal, where steps overflow
            return self.has_class("-short")
        if action == "back":
            # Nothing before the first step: hide Back, unless it leaves the wizard.
            return self.current != "server" or self.cancellable
        if action == "random_username":
            return self.current == "address"
        return True

    def action_back(self) -> None:
        """Leave a step: cancel what it was waiting for, and show the one before."""
        if self.registering:
            self.notify("Registering: one moment, please.", title="Setup")
            return
        self.workers.cancel_group(self, "wizard")
        self._busy(False)
        if self.current == "server" and self.cancellable:
            self.dismiss(None)
            return
        index = STEPS.index(self.current)
        if index > 0:
            self.go(STEPS[index - 1])

    def action_help(self) -> None:
        from .help import HelpScreen  # only when asked: it brings Markdown with it

        self.app.push_screen(HelpScreen(self, title="Setup"))

    @on(Button.Pressed, ".back")
    def _back_button(self) -> None:
        self.action_back()

    def _busy(self, busy: bool, text: str = "") -> None:
        """While a worker runs, its step says what it waits for and its buttons rest."""
        page = self.page(self.current)
        self.registering = busy and self.current == "register"
        for button in page.query(Button):
            # Back may cancel a wait, but never a registration half done on the server.
            if self.registering or not button.has_class("back"):
                button.disabled = busy
        if busy:
            page.status(text)

    def _fail(self, page: Step, exc: BaseException) -> str:
        text = service.describe_error(exc)
        page.status(text, error=True)
        self.notify(text, title="Setup", severity="error")
        return text

    # -- 1. server ------------------------------------------------------------------------

    @on(Button.Pressed, "#connect")
    @on(Input.Submitted, "#host, #port")
    def _connect(self) -> None:
        target = self.query_one(ServerStep).read()
        if target is not None:
            host, port = target
            self._busy(True, f"Connecting to {host}:{port}…")
            self.connect(host, port)

    @work(exclusive=True, group="wizard", exit_on_error=False)
    async def connect(self, host: str, port: int) -> None:
        page = self.page("server")
        try:
            probe = await service.probe_server(host, port)
        except Exception as exc:  # the boundary: every failure becomes words on screen
            self._busy(False)
            self._fail(page, exc)
            return
        self._busy(False)
        page.status()
        self.show_probe(probe)

    def show_probe(self, probe: ServerProbe) -> None:
        """Fill the trust and address steps for this server and show the first of them."""
        self.probe = probe
        self.query_one(TrustStep).show(probe)
        self.query_one(AddressStep).show(probe)
        self._preview_address()
        self.go("trust")

    @on(Button.Pressed, "#import-backup")
    def action_import_backup(self) -> None:
        """An address made elsewhere: add it from its backup instead of registering."""
        from .backup import ImportBackupScreen

        self.app.push_screen(ImportBackupScreen(self.paths, self.config), self._imported)

    def _imported(self, added: object) -> None:
        if isinstance(added, tuple):
            self.dismiss(Registered(*added))

    # -- 2. trust -------------------------------------------------------------------------

    @on(Button.Pressed, "#trust")
    def _trusted(self) -> None:
        self.go("address")

    # -- 3. address -----------------------------------------------------------------------

    @on(Button.Pressed, "#random")
    def action_random_username(self) -> None:
        field = self.query_one("#username", Input)
        field.value = random_part()
        field.focus()

    @on(Input.Changed, "#username")
    def _preview_address(self) -> None:
        """Validate as the user types, and show the address it makes."""
        step = self.query_one(AddressStep)
        text = self.query_one("#username", Input).value
        error = self.query_one("#username-error", Static)
        domain = self.probe.domain if self.probe else "…"
        try:
            username = validate_part("username", text)
        except AddressError as exc:
            error.update(service.describe_error(exc) if text else "")
            step.query_one("#address-preview", Static).update("")
            return
        error.update("")
        step.query_one("#address-preview", Static).update(f"Your address: {username}@{domain}")

    @on(RadioSet.Changed, "#method")
    def _method_changed(self) -> None:
        """Another way of joining: what the server said about the old one no longer holds."""
        if self.probe is not None:
            step = self.query_one(AddressStep)
            step.update_token_field(self.probe.registration)
            step.status()
            self.query_one("#token-error", Static).update("")

    @on(Input.Changed, "#token")
    def _check_token(self, event: Input.Changed) -> None:
        error = self.query_one("#token-error", Static)
        try:
            service.check_invitation(event.value)
        except ValueError as exc:
            error.update(service.describe_error(exc) if event.value else "")
        else:
            error.update("")

    @on(Button.Pressed, "#address-next")
    @on(Input.Submitted, "#username, #token")
    def _address_chosen(self) -> None:
        if self.read_address() is not None:
            self.query_one(AddressStep).status()
            self.go("keys")
            if self.keystore is None:
                self.choose_keystore()

    def read_address(self) -> tuple[str, str | None] | None:
        """The username and the invitation token (None for free registration), if valid."""
        step = self.query_one(AddressStep)
        assert self.probe is not None
        modes = self.probe.registration
        if not modes:
            step.field_error("method", "This server is not taking new accounts.")
            return None
        try:
            username = validate_part("username", self.query_one("#username", Input).value)
        except AddressError as exc:
            step.field_error("username", service.describe_error(exc))
            return None
        if not step.invited(modes):
            return username, None
        try:
            token = service.check_invitation(self.query_one("#token", Input).value)
        except ValueError as exc:
            step.field_error("invitation", service.describe_error(exc))
            return None
        return username, token

    # -- 4. keys --------------------------------------------------------------------------

    @work(exclusive=True, group="wizard", exit_on_error=False)
    async def choose_keystore(self) -> None:
        """Asking the keyring may block on D-Bus, so it runs in a thread."""
        self._busy(True)
        try:
            choice = await asyncio.to_thread(service.keystore_choice)
        except Exception as exc:  # the boundary: every failure becomes words on screen
            choice = ("file", service.describe_error(exc).rstrip("."))
        self._busy(False)
        self.show_keystore(*choice)

    def show_keystore(self, kind: str, reason: str) -> None:
        self.keystore = (kind, reason)
        self.query_one(KeysStep).show(kind, reason, service.key_file_dir(self.paths))
        if self.current == "keys":
            self.query_one(self._focus_target("keys")).focus()

    @on(Input.Submitted, "#passphrase")
    def _passphrase_typed(self) -> None:
        """Enter in the first field moves on to the second, once it is long enough."""
        if self.query_one(KeysStep).check_length():
            self.query_one("#passphrase-again", Input).focus()

    @on(Input.Changed, "#passphrase")
    def _passphrase_changed(self) -> None:
        self.query_one(KeysStep).forget_fixed_error()

    @on(Button.Pressed, "#keys-next")
    @on(Input.Submitted, "#passphrase-again")
    def _keys_chosen(self) -> None:
        if self.keystore is None:
            return  # still asking the keyring; the Next button is resting anyway
        if self.keystore[0] == "file" and self.query_one(KeysStep).read_passphrase() is None:
            return
        self.show_summary()
        self.go("register")

    # -- 5. register ----------------------------------------------------------------------

    def show_summary(self) -> None:
        answers = self.read_address()
        assert self.probe is not None and self.keystore is not None and answers is not None
        username, token = answers
        domain = self.probe.domain
        method = f"{domain} with an invitation token" if token else f"{domain} by free registration"
        if self.keystore[0] == "keyring":
            keys = "the system keyring"
        else:
            keys = f"an encrypted file in {service.key_file_dir(self.paths)}"
        server = f"{self.probe.host}:{self.probe.port}"
        page = self.query_one(RegisterStep)
        page.show(f"{username}@{domain}", server, method, keys)
        page.status()  # a refusal of other answers (a taken name, a bad token) is history now

    @on(Button.Pressed, "#register")
    def _register(self) -> None:
        answers = self.read_address()
        assert self.probe is not None and self.keystore is not None
        if answers is None:
            self.go("address")
            return
        username, token = answers
        passphrase = None
        if self.keystore[0] == "file":
            passphrase = self.query_one("#passphrase", Input).value
        self._busy(True, f"Making your keys and registering {username}@{self.probe.domain}…")
        self.register(self.probe, username, token, self.keystore[0], passphrase)

    @work(exclusive=True, group="wizard", exit_on_error=False)
    async def register(
        self,
        probe: ServerProbe,
        username: str,
        token: str | None,
        keystore: str,
        passphrase: str | None,
    ) -> None:
        try:
            config, account, identity = await service.register_account(
                self.paths,
                self.config,
                probe,
                username,
                invitation=token,
                keystore=keystore,
                passphrase=passphrase,
            )
        except Exception as exc:  # the boundary: every failure becomes words on screen
            self._busy(False)
            text = self._fail(self.page("register"), exc)
            field = service.blamed_field(exc)
            if field is not None:  # take the user to the answer the server refused
                self.go("address")
                self.query_one(AddressStep).field_error(field, text)
            return
        self._busy(False)
        self.dismiss(Registered(config, account, identity))
