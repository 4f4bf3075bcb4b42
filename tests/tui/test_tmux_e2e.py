"""rune-tui in a real terminal (tmux), driven key by key as a person would.

Wizard → register → compose → Ctrl+S, then the client library checks that the other
account really received the message; a reply (quoted, threaded) and a contact whose key
really changed on the server (the warning, and sending blocked until it is accepted);
and ``scripts/demo.py`` end to end: the welcome message arrives, a reply reaches the
bot, and quitting leaves no server behind.
Skipped without tmux, unless RUNE_REQUIRE_TMUX=1 (then a missing tmux fails).
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rune_proto.address import Address, parse_address, random_part
from rune_proto.client import ReceivedMessage, connect
from rune_proto.keys import Identity
from rune_tui import service
from rune_tui.config import Config, Paths
from tests.server_process import RuneServerProcess, ServerFactory

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PASSPHRASE = "tmux passphrase"
WAIT = 30.0  # generous: a loaded CI box may be slow to start Python and TLS
SETTLE = 0.4  # seconds for the app to move its focus after a screen or field change
NO_KEYRING = "env PYTHON_KEYRING_BACKEND=keyring.backends.fail.Keyring"


# The tmux server (and so every pane) inherits this. pytest exports COLUMNS=80 and
# LINES=24, which Textual would believe over the real 120×40 pane; NO_COLOR changes output.
_PANE_ENV = {
    k: v for k, v in os.environ.items() if k not in {"COLUMNS", "LINES", "NO_COLOR", "TMUX"}
}


class Terminal:
    """One tmux session on a private server socket, 120×40, running ``command``."""

    def __init__(self, command: str, workdir: Path) -> None:
        self.socket = f"rune-test-{secrets.token_hex(4)}"
        # Our own config, not the developer's; and the size set before the pane exists, so
        # the program never starts at tmux's default 80×24 and then misses the resize.
        self.config = workdir / "tmux.conf"
        self.config.write_text("set -g default-size 120x40\nset -g history-limit 100\n")
        self._tmux("new-session", "-d", "-s", "t", "-x", "120", "-y", "40", command)

    def _tmux(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, "-f", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=10,
            env=_PANE_ENV,
        )
        if result.returncode != 0:
            raise AssertionError(f"tmux {args[0]} failed: {result.stderr.strip()}")
        return result.stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "t")

    def keys(self, *keys: str) -> None:
        """Named keys (Enter, Tab, C-s, …), one after another."""
        for key in keys:
            self._tmux("send-keys", "-t", "t", key)

    def next_field(self, key: str = "Tab") -> None:
        """Move to the next field, then give the app a moment to move its focus.

        A burst of keys is routed to the widget focused when each key was read, so text
        sent at machine speed right after Tab would still land in the old field. A person
        is never that fast; this pause stands in for them."""
        self.keys(key)
        time.sleep(SETTLE)

    def type(self, text: str) -> None:
        self._tmux("send-keys", "-t", "t", "-l", text)

    def wait_for(self, pattern: str, timeout: float = WAIT) -> str:
        """Poll the screen until ``pattern`` (a regex) shows; fail with the screen if not."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            try:
                screen = self.screen()
            except AssertionError:  # the session ended: show what we last saw
                break
            if re.search(pattern, screen):
                time.sleep(SETTLE)  # the app moves its focus just after it draws
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} did not appear; the screen was:\n{screen}")

    def fill(self, text: str, shows: str) -> None:
        """Clear the focused field and type ``text`` until the screen ``shows`` it.

        Keys read while the app is still moving its focus land in the old field and are
        lost; a person would look and type again, and so does this (three times at most)."""
        for _ in range(3):
            self.keys("C-u")
            self.type(text)
            try:
                self.wait_for(shows, timeout=5.0)
                return
            except AssertionError:
                continue
        self.wait_for(shows, timeout=0.1)  # fails with the screen in the message

    def accept_key(self, then: str) -> None:
        """Type ``accept`` in the key review and press Enter; wait for ``then``.

        The review's field shows the word itself as its placeholder, so the screen cannot
        tell typed keys from keys lost while the app was still moving its focus. So first
        an ``x`` is typed until the field shows it (lost ones are harmless: nothing else
        is focused), then the field is cleared and the word typed.
        """
        typed_x = r"type accept:[^\n]*\n[^\n]*┃\s+x+\s"  # the field's line, not its placeholder
        for _ in range(5):
            self.type("x")
            try:
                self.wait_for(typed_x, timeout=2.0)
                break
            except AssertionError:
                continue
        else:
            self.wait_for(typed_x, timeout=0.1)  # fails with the screen in the message
        self.keys("C-u")
        self.type("accept")
        self.keys("Enter")
        self.wait_for(then)

    def refresh_until(self, pattern: str, timeout: float = WAIT) -> None:
        """In the inbox: press R (check for mail) until ``pattern`` shows."""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.screen()):
            assert time.monotonic() < deadline, f"{pattern!r} never came:\n{self.screen()}"
            self.keys("R")
            time.sleep(1.0)

    def wait_until_gone(self, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = subprocess.run(
                ["tmux", "-L", self.socket, "has-session", "-t", "t"], capture_output=True
            )
            if result.returncode != 0:
                return
            time.sleep(0.1)
        raise AssertionError(f"the program did not exit; the screen was:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def terminal() -> Iterator[list[Terminal]]:
    if shutil.which("tmux") is None:
        if os.environ.get("RUNE_REQUIRE_TMUX") == "1":
            pytest.fail("tmux is required (RUNE_REQUIRE_TMUX=1) but not installed")
        pytest.skip("tmux is not installed")
    opened: list[Terminal] = []
    try:
        yield opened
    finally:
        for term in opened:
            term.close()


def command(*args: str) -> str:
    """A shell command line for tmux: no keyring (the key-file path is the one typed here),
    colours on, and the program kept on screen for a moment if it fails."""
    rune_tui = Path(sys.executable).with_name("rune-tui")
    program = [str(rune_tui)] if rune_tui.exists() else [sys.executable, "-m", "rune_tui"]
    return f"{NO_KEYRING} {shlex.join([*program, *args])} || sleep 30"


def go_through_wizard(term: Terminal, username: str) -> None:
    """The keystrokes a person types to register ``username`` with a key file."""
    term.wait_for("Which server?")
    term.keys("Enter")  # Connect: --server filled the step in
    term.wait_for("Is this the right server?")
    term.keys("Enter")  # Trust this server
    term.wait_for("Choose your address")
    term.fill(username, f"Your address: {re.escape(username)}@")  # over the random name
    term.keys("Enter")
    term.wait_for("kept in an encrypted file")
    hidden = "•" * len(PASSPHRASE)
    term.fill(PASSPHRASE, rf"Passphrase\s+▊\s+{hidden} ")
    term.next_field("Enter")
    term.fill(PASSPHRASE, rf"Again\s+▊\s+{hidden} ")
    term.keys("Enter")
    term.wait_for("Ready to register")
    term.keys("Enter")


async def test_register_and_send_in_a_real_terminal(
    terminal: list[Terminal], rune_server: ServerFactory, tmp_path: Path
) -> None:
    server = rune_server("free")
    bob = parse_address(f"bob-{random_part(6)}@{server.domain}")
    bob_key = Identity.generate()
    async with connect(
        server.host, server.port, tls_fingerprint=server.tls_pin, ephemeral=True
    ) as session:
        await session.register(bob, bob_key)

    alice = f"alice-{random_part(6)}"
    where = f"{server.host}:{server.port}"
    term = Terminal(command("--profile", str(tmp_path / "alice"), "--server", where), tmp_path)
    terminal.append(term)
    go_through_wizard(term, alice)
    term.wait_for(rf"{alice}@{server.domain} — 0 unread")

    term.keys("c")
    term.wait_for("Subject")
    term.fill(str(bob), re.escape(str(bob)))
    term.next_field()
    term.fill("Hello from tmux", "Hello from tmux")
    term.next_field()
    term.fill("Typed key by key into a real terminal.", "into a real terminal[.]")
    term.keys("C-s")  # only now: Ctrl+S must not overtake the last keys
    term.wait_for(rf"{alice}@{server.domain} — 0 unread")  # back in the inbox once sent

    async with connect(
        server.host, server.port, tls_fingerprint=server.tls_pin, ephemeral=True
    ) as session:
        await session.login(bob, bob_key)
        listing = await session.list()
        assert len(listing) == 1
        message = await session.retrieve(listing[0].id)
    assert str(message.sender) == f"{alice}@{server.domain}"
    assert message.subject == "Hello from tmux"
    assert message.body.strip() == "Typed key by key into a real terminal."
    assert message.verification.sender_signature

    term.keys("q")
    term.wait_for("Quit rune-tui?")  # q asks first (settings.confirm_quit)
    term.keys("y")
    term.wait_until_gone()


class Person:
    """Someone on the other side, driven with the client library."""

    def __init__(self, server: RuneServerProcess, address: Address, key: Identity) -> None:
        self.server, self.address, self.key = server, address, key

    async def send(self, to: str, subject: str, body: str) -> str:
        server = self.server
        async with connect(
            server.host, server.port, tls_fingerprint=server.tls_pin, ephemeral=True
        ) as session:
            await session.login(self.address, self.key)
            return await session.send(to, subject, body)

    async def inbox(self) -> list[ReceivedMessage]:
        server = self.server
        async with connect(
            server.host, server.port, tls_fingerprint=server.tls_pin, ephemeral=True
        ) as session:
            await session.login(self.address, self.key)
            return [await session.retrieve(info.id) for info in await session.list()]

    async def new_key_after_deletion(self) -> None:
        """The account is deleted on the server and the address registered again.

        The server has no command for it: an operator would stop the server, delete the
        account and its mail from the database, and start it again (a running server keeps
        the keys it has sent out, as they never change otherwise). Then the same address
        registers with a new key."""
        self.server.stop()
        with sqlite3.connect(self.server.database) as db:
            db.execute("DELETE FROM accounts WHERE address = ?", (str(self.address),))
            db.execute("DELETE FROM messages WHERE receiver = ?", (str(self.address),))
        db.close()
        self.server.start()
        self.key = Identity.generate()
        server = self.server
        async with connect(
            server.host, server.port, tls_fingerprint=server.tls_pin, ephemeral=True
        ) as session:
            await session.register(self.address, self.key)


async def alice_profile(server: RuneServerProcess, profile: Path) -> str:
    """A profile registered the way the wizard does it (key in a file); alice's address."""
    probe = await service.probe_server(server.host, server.port)
    name = f"alice-{random_part(6)}"
    await service.register_account(
        Paths.from_profile(profile), Config(), probe, name, keystore="file", passphrase=PASSPHRASE
    )
    return f"{name}@{server.domain}"


def unlock(term: Terminal) -> None:
    term.wait_for("Unlock your key")
    term.fill(PASSPHRASE, "•" * len(PASSPHRASE))
    term.keys("Enter")


async def test_reply_and_a_changed_key_in_a_real_terminal(
    terminal: list[Terminal], rune_server: ServerFactory, tmp_path: Path
) -> None:
    server = rune_server("free")
    alice = await alice_profile(server, tmp_path / "alice")
    bob_address = parse_address(f"bob-{random_part(6)}@{server.domain}")
    bob = Person(server, bob_address, Identity.generate())
    async with connect(
        server.host, server.port, tls_fingerprint=server.tls_pin, ephemeral=True
    ) as session:
        await session.register(bob.address, bob.key)
    first_id = await bob.send(alice, "Plans for Saturday", "Lunch at the river?\nAt one.")

    term = Terminal(command("--profile", str(tmp_path / "alice")), tmp_path)
    terminal.append(term)
    unlock(term)
    inbox = rf"{re.escape(alice)} — \d+ unread"
    term.wait_for(inbox)
    term.refresh_until(rf"{re.escape(str(bob.address))}\s+Plans for Saturday")

    # A reply: open the message, r, type above the quote, send.
    term.keys("Enter")
    term.wait_for("Lunch at the river[?]")
    term.keys("r")
    term.wait_for("Re: Plans for Saturday")
    term.wait_for(rf"{re.escape(str(bob.address))} wrote:")  # the attribution, quoted below
    term.type("Yes, see you there.")  # the body has the focus, below the quote
    term.wait_for("Yes, see you there[.]")
    term.keys("C-s")
    term.wait_for("Lunch at the river[?]")  # back in the reader once sent
    term.keys("Escape")
    term.wait_for(inbox)
    [reply] = [m for m in await bob.inbox() if m.subject == "Re: Plans for Saturday"]
    assert str(reply.sender) == alice and reply.verification.sender_signature
    assert reply.in_reply_to == first_id  # filed under the original in bob's threads
    lines = reply.body.strip().splitlines()
    assert lines[0].startswith("On ") and lines[0].endswith(f", {bob.address} wrote:")
    assert lines[1:] == ["> Lunch at the river?", "> At one.", "", "Yes, see you there."]

    # bob's key changes on the server; his next message carries the warning.
    await bob.new_key_after_deletion()
    await bob.send(alice, "New laptop", "I had to set everything up again.")
    term.refresh_until(r"⚠\s+" + re.escape(str(bob.address)) + r"\s+New laptop")
    term.keys("g")  # the newest, at the top; the preview below follows the cursor
    term.wait_for("I had to set everything up again")
    term.keys("Enter")
    term.wait_for(rf"The key of {re.escape(str(bob.address))} changed")
    term.wait_for("Press K to review it")
    term.keys("Escape")
    term.wait_for(inbox)

    # Writing to him is blocked until the new key is accepted on the side-by-side screen.
    term.keys("c")
    term.wait_for(r"To\s+username@domain")  # compose's empty To field (the inbox has Subject)
    term.fill(str(bob.address), rf"To\s+{re.escape(str(bob.address))}")
    term.wait_for(r"is blocked until you review it: press Ctrl\+K")  # compose's banner, at once
    term.next_field()
    term.fill("Your new key", r"Subject\s+Your new key")
    term.next_field()
    term.fill("Got it, thanks.", "Got it, thanks[.]")
    term.keys("C-s")
    screen = term.wait_for(rf"The key of {re.escape(str(bob.address))} has changed")
    assert "To accept the NEW key, type accept" in screen
    assert await bob.inbox() == []  # nothing was sent with the old pin in doubt
    term.accept_key(inbox)  # accepting sends the message
    [sent] = await bob.inbox()
    assert (sent.subject, sent.body.strip()) == ("Your new key", "Got it, thanks.")
    assert sent.verification.sender_signature

    term.keys("q")
    term.wait_for("Quit rune-tui?")  # q asks first (settings.confirm_quit)
    term.keys("y")
    term.wait_until_gone()


def demo_processes() -> list[str]:
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    return [line for line in ps.stdout.splitlines() if "rune-demo-" in line]


async def test_make_demo_welcomes_answers_and_cleans_up(
    terminal: list[Terminal], tmp_path: Path
) -> None:
    before = set(demo_processes())
    demo = f"{shlex.quote(sys.executable)} {shlex.quote(str(ROOT / 'scripts' / 'demo.py'))}"
    term = Terminal(f"cd {shlex.quote(str(ROOT))} && {NO_KEYRING} {demo}; sleep 30", tmp_path)
    terminal.append(term)
    go_through_wizard(term, "newcomer")
    term.wait_for(r"newcomer@demo — \d+ unread")
    term.refresh_until(r"welcome@demo\s+Welcome to Rune")  # the bot's first message
    term.keys("Enter")  # open it
    term.wait_for("Reply to this message and I will write back")
    term.keys("r")
    term.wait_for("Re: Welcome to Rune")
    term.type("Hello, bot!")  # above the quote; no C-u here, it would eat a quoted line
    term.wait_for("Hello, bot!")
    term.keys("C-s")
    term.wait_for("Reply to this message and I will write back")  # back in the reader
    term.keys("Escape")
    term.wait_for(r"newcomer@demo — \d+ unread")
    term.refresh_until(r"welcome@demo\s+Re: Welcome to Rune")  # the bot's answer
    term.keys("g", "Enter")  # it quotes what was typed, not its own welcome
    term.wait_for("> Hello, bot!")
    term.keys("Escape")
    term.wait_for(r"newcomer@demo — \d+ unread")
    term.keys("S")  # the reply is kept in Sent
    term.wait_for(r"➤ To welcome@demo\s+Re: Welcome to Rune")
    term.keys("Escape")
    term.wait_for(r"newcomer@demo — \d+ unread")
    term.keys("t")  # and sits between the welcome and the answer in the conversation
    term.wait_for(r"Welcome to Rune[^\n]*\n[^\n]*➤ To welcome@demo[^\n]*\n[^\n]*welcome@demo")
    term.keys("q")
    term.wait_for("Quit rune-tui?")
    term.keys("y")
    term.wait_for("the server has stopped and its files are gone")
    assert set(demo_processes()) == before  # no server, no bot, no rune-tui left
