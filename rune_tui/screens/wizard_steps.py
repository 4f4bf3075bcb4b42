"""The five pages of the setup wizard: what each shows and how it reads its fields.

The pages only lay out and validate; the wizard screen moves between them and talks to
the server. Every explanation is written for someone who has never heard of Rune.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.content import Content
from textual.widgets import Button, Input, RadioButton, RadioSet, Static

from rune_proto.transport import DEFAULT_PORT

from ..service import ServerProbe

STEP_TITLES = {
    "server": "Server",
    "trust": "Trust",
    "address": "Address",
    "keys": "Keys",
    "register": "Register",
}
STEPS = tuple(STEP_TITLES)
MIN_PASSPHRASE = 8


def step_line(current: str, *, narrow: bool = False) -> Content:
    """``✓ 1 Server  ›  2 Trust  › …`` with the current step highlighted.

    ``narrow`` (a terminal under 80 columns): only the current step keeps its name, so
    the line stays one line.
    """
    index = STEPS.index(current)
    parts = []
    for i, step in enumerate(STEPS):
        label = f"{i + 1} {STEP_TITLES[step]}" if i == index or not narrow else str(i + 1)
        if i < index:
            parts.append(Content.from_markup("[$success]✓ $label[/]", label=label))
        elif i == index:
            parts.append(Content.from_markup("[b reverse $accent] $label [/]", label=label))
        else:
            parts.append(Content.from_markup("[$text-muted]$label[/]", label=label))
    return Content(" › " if narrow else "  ›  ").join(parts)


def fingerprint_lines(text: str, per_line: int = 8) -> str:
    """Groups of four digits, eight to a line: easier to compare than one long row."""
    groups = text.split()
    return "\n".join(" ".join(groups[i : i + per_line]) for i in range(0, len(groups), per_line))


def split_host_port(text: str) -> tuple[str, str | None]:
    """``host:port`` (or ``[v6]:port``) → (host, port text); anything else → (text, None)."""
    if text.startswith("["):  # [2001:db8::1] or [2001:db8::1]:7117
        inside, bracket, rest = text[1:].partition("]")
        if bracket and (not rest or (rest.startswith(":") and rest[1:].isdigit())):
            return inside, rest[1:] or None
        return text, None
    host, colon, port = text.rpartition(":")
    if colon and host and ":" not in host and port.isdigit():  # a bare IPv6 has several
        return host, port
    return text, None


class Step(Vertical):
    """One page: a title, an explanation, fields, a status line and a row of buttons."""

    step: ClassVar[str]
    heading: ClassVar[str]

    def __init__(self) -> None:
        super().__init__(id=f"step-{self.step}", classes="step")

    def on_resize(self) -> None:
        """Laid out (first shown, or the terminal changed): keep the focused field in view."""
        focused = self.screen.focused
        if focused is not None and self in focused.ancestors:
            self.scroll_to_widget(focused, animate=False, immediate=True)

    def compose_heading(self) -> ComposeResult:
        yield Static(self.heading, classes="title")

    def status(self, text: str = "", *, error: bool = False) -> None:
        """The step's one line of news: progress while busy, the problem when it failed."""
        line = self.query_one(".status", Static)
        line.update(text)
        line.set_class(error, "error")


class ServerStep(Step):
    step = "server"
    heading = "Which server?"

    def __init__(self, host: str, port: int) -> None:
        super().__init__()
        self._host, self._port = host, port

    def compose(self) -> ComposeResult:
        yield from self.compose_heading()
        yield Static(
            "Rune messages travel through a server, like e-mail. Whoever runs it told you "
            "its host name (or address) and port; the usual port is "
            f"{DEFAULT_PORT}.",
            classes="explain",
        )
        with Grid(classes="form"):
            yield Static("Host", classes="label")
            yield Input(self._host, placeholder="rune.example.org", id="host")
            yield Static("Port", classes="label")
            yield Input(str(self._port), type="integer", max_length=5, id="port")
        yield Static("", classes="status", markup=False)
        with Horizontal(classes="buttons"):
            yield Button("Connect", id="connect", variant="primary")
            yield Button("I already have an address", id="import-backup")

    def read(self) -> tuple[str, int] | None:
        """Host and port, or None after saying what is wrong.

        ``host:port`` typed in Host is understood (the port moves to its field); a number
        alone in Host is a port typed in the wrong place, not a host name.
        """
        host_field = self.query_one("#host", Input)
        port_field = self.query_one("#port", Input)
        host, typed_port = split_host_port(host_field.value.strip())
        if typed_port is not None:
            host_field.value, port_field.value = host, typed_port
        port_text = port_field.value.strip()
        if not host or any(c.isspace() for c in host):
            self.status("Type the server's host name or IP address.", error=True)
            host_field.focus()
            return None
        if host.isdigit():
            self.status(
                f"{host} looks like a port number: put it in Port, and the server's name "
                "or IP address in Host.",
                error=True,
            )
            host_field.focus()
            return None
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            self.status(
                f"The port is a number from 1 to 65535 (usually {DEFAULT_PORT}).", error=True
            )
            self.query_one("#port").focus()
            return None
        return host, int(port_text)


class TrustStep(Step):
    step = "trust"
    heading = "Is this the right server?"
    probe: ServerProbe | None = None
    narrow = False

    def compose(self) -> ComposeResult:
        yield from self.compose_heading()
        yield Static("", id="welcome", markup=False)
        with Grid(classes="facts"):
            yield Static("Domain", classes="label")
            yield Static("", id="domain", markup=False)
            yield Static("TLS certificate", classes="label")
            yield Static("", id="tls-pin", markup=False, classes="fingerprint")
            yield Static("Server key", classes="label")
            yield Static("", id="server-key", markup=False, classes="fingerprint")
        yield Static(
            "Compare both fingerprints with the ones the server's operator published (on a "
            "web page, in a signed note, or in person). If they match, you are talking to the "
            "real server and nobody can listen in between. Rune remembers them and warns you "
            "if they ever change.",
            classes="explain",
        )
        yield Static("", classes="status", markup=False)
        with Horizontal(classes="buttons"):
            yield Button("Back", id="trust-back", classes="back")
            yield Button("Trust this server", id="trust", variant="primary")

    def show(self, probe: ServerProbe) -> None:
        welcome = probe.welcome.strip() or "(the server sent no welcome text)"
        self.query_one("#welcome", Static).update(
            Content.from_markup(
                "[b]$where[/b] says: [i]$welcome[/i]",
                where=f"{probe.host}:{probe.port}",
                welcome=welcome,
            )
        )
        self.query_one("#domain", Static).update(
            Content.from_markup(
                "[b]$domain[/b]  (addresses here end in @$domain)", domain=probe.domain
            )
        )
        self.probe = probe
        self.reflow()

    def reflow(self, narrow: bool | None = None) -> None:
        """Eight groups a line, or four in a narrow terminal: a group never breaks."""
        if narrow is not None:
            self.narrow = narrow
        if self.probe is None:
            return
        per_line = 4 if self.narrow else 8
        pin = fingerprint_lines(self.probe.tls_pin_text, per_line)
        self.query_one("#tls-pin", Static).update(pin)
        key = fingerprint_lines(self.probe.server_key_text, per_line)
        self.query_one("#server-key", Static).update(key)


class AddressStep(Step):
    step = "address"
    heading = "Choose your address"

    def compose(self) -> ComposeResult:
        yield from self.compose_heading()
        yield Static(
            "Your address is how people write to you. A random username says nothing about "
            "who you are, so it is the more anonymous choice; one is filled in for you. Type "
            "your own if you prefer: 3 to 50 letters, digits, '.', '-' or '_'.",
            classes="explain",
        )
        with Horizontal(id="username-row"):
            yield Input(placeholder="username", max_length=50, id="username")
            yield Static("@", id="domain-suffix")
            yield Button("Random", id="random")
        yield Static("", id="username-error", markup=False, classes="error")
        yield Static("", id="address-preview", markup=False)
        with Horizontal(id="method-row"):
            yield Static("How do you join?", classes="label")
            with RadioSet(id="method"):
                yield RadioButton("Free registration", id="method-free", value=True)
                yield RadioButton("With an invitation token", id="method-invite")
        yield Static("", id="method-note", markup=False, classes="explain")
        yield Input(placeholder="invitation token from the server's operator", id="token")
        yield Static("", id="token-error", markup=False, classes="error")
        yield Static("", classes="status", markup=False)
        with Horizontal(classes="buttons"):
            yield Button("Back", id="address-back", classes="back")
            yield Button("Next", id="address-next", variant="primary")

    def show(self, probe: ServerProbe) -> None:
        """Offer only the ways of joining this server has."""
        modes = probe.registration
        self.query_one("#domain-suffix", Static).update(f"@{probe.domain}")
        self.query_one("#method-row").display = len(modes) > 1
        note = self.query_one("#method-note", Static)
        next_button = self.query_one("#address-next", Button)
        next_button.disabled = not modes
        if not modes:
            note.update("This server is not taking new accounts. Ask its operator.")
            note.add_class("error")
        elif modes == ("free",):
            note.update("This server lets anyone register for free.")
        elif modes == ("invite",):
            note.update("This server takes new accounts by invitation: paste your token.")
        note.display = len(modes) < 2  # with a choice, the choice speaks for itself
        if "invite" in modes and "free" not in modes:
            self.query_one("#method-invite", RadioButton).value = True
        elif "free" in modes:
            self.query_one("#method-free", RadioButton).value = True
        self.update_token_field(modes)

    def invited(self, modes: tuple[str, ...]) -> bool:
        if "invite" not in modes:
            return False
        return "free" not in modes or self.query_one("#method-invite", RadioButton).value

    def update_token_field(self, modes: tuple[str, ...]) -> None:
        invited = self.invited(modes)
        self.query_one("#token").display = invited
        self.query_one("#token-error").display = invited

    def field_error(self, field: str, text: str) -> None:
        """Show ``text`` under the field it is about, and put the cursor there."""
        if field == "method":
            self.status(text, error=True)
            if self.query_one("#method-row").display:
                self.query_one("#method").focus()
            return
        invitation = field == "invitation"
        self.query_one("#token-error" if invitation else "#username-error", Static).update(text)
        self.query_one("#token" if invitation else "#username").focus()


class KeysStep(Step):
    step = "keys"
    heading = "Where your private key will live"
    _too_short_shown = False  # the status line complains about the length right now

    def compose(self) -> ComposeResult:
        yield from self.compose_heading()
        yield Static(
            "Checking whether this computer has a system keyring…", id="keys-where", markup=False
        )
        with Grid(classes="form", id="passphrase-form"):
            yield Static("Passphrase", classes="label")
            yield Input(password=True, placeholder="at least 8 characters", id="passphrase")
            yield Static("Again", classes="label")
            yield Input(password=True, placeholder="the same again", id="passphrase-again")
        yield Static("", classes="status", markup=False)
        with Horizontal(classes="buttons"):
            yield Button("Back", id="keys-back", classes="back")
            yield Button("Next", id="keys-next", variant="primary")

    def show(self, kind: str, reason: str, key_dir: Path) -> None:
        where = self.query_one("#keys-where", Static)
        if kind == "keyring":
            where.update(
                Content.from_markup(
                    "This computer has a working system keyring: your private key will be kept "
                    "in [b]the system keyring[/b], which your desktop already guards with your "
                    "login password. There is nothing to choose here."
                )
            )
        else:
            where.update(
                Content.from_markup(
                    "Your private key can't go in a system keyring, because $reason. It will "
                    "be kept in [b]an encrypted file[/b] in $folder instead. Choose a "
                    "passphrase to protect it: you will type it each time rune-tui starts, "
                    "and nobody can recover it for you.",
                    reason=reason,
                    folder=str(key_dir),
                )
            )
        self.query_one("#passphrase-form").display = kind == "file"

    def check_length(self) -> bool:
        """True if the passphrase is long enough; else say what is needed, cursor there."""
        first = self.query_one("#passphrase", Input)
        if len(first.value) >= MIN_PASSPHRASE:
            return True
        if first.value:
            text = f"Use at least {MIN_PASSPHRASE} characters ({len(first.value)} so far)."
        else:
            text = (
                f"Type a passphrase of at least {MIN_PASSPHRASE} characters: without a "
                "keyring it is what protects your key."
            )
        self.status(text, error=True)
        self._too_short_shown = True
        first.focus()
        return False

    def forget_fixed_error(self) -> None:
        """A length complaint goes as soon as the passphrase is long enough."""
        long_enough = len(self.query_one("#passphrase", Input).value) >= MIN_PASSPHRASE
        if long_enough and self._too_short_shown:
            self._too_short_shown = False
            self.status()

    def read_passphrase(self) -> str | None:
        """The passphrase once both fields agree and it is long enough, else None."""
        first = self.query_one("#passphrase", Input)
        again = self.query_one("#passphrase-again", Input)
        if not self.check_length():
            return None
        if again.value != first.value:
            self.status("The two passphrases differ; type it again.", error=True)
            again.value = ""
            again.focus()
            return None
        self.status()
        return first.value


class RegisterStep(Step):
    step = "register"
    heading = "Ready to register"

    def compose(self) -> ComposeResult:
        yield from self.compose_heading()
        with Grid(classes="facts"):
            yield Static("Address", classes="label")
            yield Static("", id="summary-address", markup=False)
            yield Static("Server", classes="label")
            yield Static("", id="summary-server", markup=False)
            yield Static("Joining", classes="label")
            yield Static("", id="summary-method", markup=False)
            yield Static("Key kept in", classes="label")
            yield Static("", id="summary-keys", markup=False)
        yield Static(
            "Registering makes a new key pair on this computer. The server only ever gets the "
            "public half; your private key never leaves this machine.",
            classes="explain",
        )
        yield Static("", classes="status", markup=False)
        with Horizontal(classes="buttons"):
            yield Button("Back", id="register-back", classes="back")
            yield Button("Register", id="register", variant="primary")

    def show(self, address: str, server: str, method: str, keys: str) -> None:
        self.query_one("#summary-address", Static).update(
            Content.from_markup("[b]$address[/b]", address=address)
        )
        self.query_one("#summary-server", Static).update(server)
        self.query_one("#summary-method", Static).update(method)
        self.query_one("#summary-keys", Static).update(keys)
