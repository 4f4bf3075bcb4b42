"""`make demo`: a real Rune server on this computer, a welcome bot, and rune-tui pointed at them.

Everything lives in one temporary folder: the server's data, its passphrase file, the
bot's log and rune-tui's profile. The server listens on 127.0.0.1 only, on a free port.
The bot registers ``welcome@demo``, watches the server's accounts table (read-only)
and greets every new account with a first message, then answers replies. When rune-tui
exits — or the terminal closes — the bot and the server stop and the folder is removed.
The server is also told to die with this process, so it can never be left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

from rune_proto.address import Address, parse_address
from rune_proto.client import Session, connect
from rune_proto.keys import Identity
from rune_proto.server.config import DataDir, load_config, write_config
from rune_proto.server.datadir import read_fingerprints

DOMAIN = "demo"
HOST = "127.0.0.1"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_READY = re.compile(r"rune-server listening on (\S+):(\d+)")
SERVER_WELCOME = "Rune demo server, on this computer for as long as rune-tui is open."


@dataclass(frozen=True, slots=True)
class LocalServer:
    host: str
    port: int
    tls_pin: str
    domain: str
    database: Path
    log: Path


def _die_with_parent() -> None:
    """In the server's process: get SIGTERM if the demo dies, even from SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _server_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "rune_proto.server", *args]


@contextlib.contextmanager
def local_server(
    root: Path,
    *,
    domain: str = DOMAIN,
    registration: str = "free",
    welcome: str = SERVER_WELCOME,
) -> Iterator[LocalServer]:
    """``rune-server init`` + ``serve --port 0`` under ``root``; stopped when the block ends."""
    passphrase = root / "server-passphrase"
    passphrase.write_text(secrets.token_urlsafe(24) + "\n")
    passphrase.chmod(0o600)
    data = DataDir(root / "server")
    subprocess.run(
        _server_cli(
            "init", "--data-dir", str(data.root), "--domain", domain,
            "--registration", registration, "--passphrase-file", str(passphrase),
            "--welcome", welcome,
        ),
        check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    # A throwaway server on loopback: every account it gets comes from 127.0.0.1, so
    # the abuse limits (on by default) would stop the demo's dozen senders.
    unlimited = replace(load_config(data.config), register_limit=0, send_limit=0, inflow_limit=0)
    write_config(data.config, unlimited)
    log = root / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            _server_cli(
                "serve", "--data-dir", str(data.root), "--host", HOST, "--port", "0",
                "--passphrase-file", str(passphrase),
            ),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
    try:
        port = _wait_until_ready(process, log)
        prints = read_fingerprints(data)
        yield LocalServer(HOST, port, prints.tls_pin, prints.domain, data.database, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_ready(process: subprocess.Popen[bytes], log: Path) -> int:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        match = _READY.search(log.read_text(errors="replace"))
        if match:
            return int(match.group(2))
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"rune-server did not start:\n{log.read_text(errors='replace')}")


# -- the welcome bot ----------------------------------------------------------------------

WELCOME_SUBJECT = "Welcome to Rune"
WELCOME_BODY = """\
Hello {address}!

This is your first Rune message. It was encrypted for your key alone before it left
the sender and signed by it, so rune-tui could check who wrote it: see the
verification mark next to {bot}.

The server of this demo runs on your own computer ({where}). It stores messages it
cannot read, knows who each one is for but not what it says, and forgets a message
once you delete it.

Keys to try:
  j / k, arrows   move through the inbox
  Enter           open a message (q or Esc goes back)
  r               reply to this message
  c or m          write a new message (Ctrl+S sends it)
  d               delete a message
  R               check for new mail
  ?               every key of the current screen
  Ctrl+P          the command palette
  q               quit (the demo server stops with rune-tui)

Reply to this message and I will write back.

-- the welcome bot, {bot}
"""
ANSWER_BODY = """\
Your reply reached {bot}: encrypted on your computer, stored by the server as a
sealed blob, opened here. You wrote:

{quote}

That is the whole loop. Write to anyone with an address on a Rune server, or
press q to quit; the demo server stops with rune-tui.
"""


# rune-tui's "On <date>, <address> wrote:" line, which comes right before the quote.
_ATTRIBUTION = re.compile(r"On [^\n]*, \S+@\S+ wrote:\s*$")


def own_words(body: str) -> list[str]:
    """The lines a person wrote in a reply: without the quote they answered and its
    "On …, … wrote:" line (rune-tui's reply puts both above the cursor)."""
    lines = body.splitlines()
    mine: list[str] = []
    for index, line in enumerate(lines):
        if line.lstrip().startswith(">"):
            continue
        after = lines[index + 1] if index + 1 < len(lines) else ""
        attribution = _ATTRIBUTION.search(line)
        if attribution is not None and after.lstrip().startswith(">"):
            line = line[: attribution.start()]  # words typed in front of it are kept
        if line.strip() or (mine and mine[-1]):  # one blank line where the quote was
            mine.append(line.rstrip())
    while mine and not mine[0]:
        mine.pop(0)
    while mine and not mine[-1]:
        mine.pop()
    return mine


class WelcomeBot:
    """Greets each new account once and answers each reply once; logs, never raises."""

    def __init__(self, server: LocalServer, log: Path) -> None:
        self.server = server
        self.log_file = log
        self.address = parse_address(f"welcome@{server.domain}")
        self.identity = Identity.generate()
        self.greeted: set[str] = {str(self.address)}

    def log(self, text: str) -> None:
        with self.log_file.open("a") as out:
            out.write(f"{time.strftime('%H:%M:%S')} {text}\n")

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        async with connect(
            self.server.host, self.server.port, tls_fingerprint=self.server.tls_pin, ephemeral=True
        ) as session:
            yield session

    async def run(self, stop: asyncio.Event) -> None:
        async with self.session() as session:
            await session.register(self.address, self.identity)
        self.log(f"registered {self.address}")
        while not stop.is_set():
            try:
                for address in self.new_accounts():
                    await self.greet(address)
                if len(self.greeted) > 1:
                    await self.answer_replies()
            except Exception as exc:  # a demo bot shrugs and tries again next second
                self.log(f"trouble: {type(exc).__name__}: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    def new_accounts(self) -> list[Address]:
        uri = f"file:{self.server.database}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=1.0)) as db:
            rows = db.execute("SELECT address FROM accounts").fetchall()
        return [parse_address(a) for (a,) in rows if a not in self.greeted]

    async def greet(self, address: Address) -> None:
        body = WELCOME_BODY.format(
            address=address, bot=self.address, where=f"{self.server.host}:{self.server.port}"
        )
        async with self.session() as session:
            await session.login(self.address, self.identity)
            await session.send(address, WELCOME_SUBJECT, body)
        self.greeted.add(str(address))
        self.log(f"greeted {address}")

    async def answer_replies(self) -> None:
        async with self.session() as session:
            await session.login(self.address, self.identity)
            for info in await session.list():
                message = await session.retrieve(info.id)
                if message.sender is not None:
                    lines = own_words(message.body)[:6] or ["(nothing but the quote)"]
                    quote = "\n".join(f"> {line}" if line else ">" for line in lines)
                    subject = message.subject or "your message"
                    if not subject.lower().startswith("re:"):
                        subject = f"Re: {subject}"
                    await session.send(
                        message.sender,
                        subject,
                        ANSWER_BODY.format(bot=self.address, quote=quote),
                        in_reply_to=message.message_id,
                    )
                    self.log(f"{message.sender} wrote {message.subject!r}; answered")
                await session.delete(info.id)


class BotThread(threading.Thread):
    """The bot's own event loop, so rune-tui can own the terminal in the foreground."""

    def __init__(self, bot: WelcomeBot) -> None:
        super().__init__(name="welcome-bot", daemon=True)
        self.bot = bot
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop, self._stop_event = asyncio.get_running_loop(), asyncio.Event()
        try:
            await self.bot.run(self._stop_event)
        except Exception as exc:
            self.bot.log(f"stopped: {type(exc).__name__}: {exc}")

    def stop(self) -> None:
        if self._loop is not None and self._stop_event is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stop_event.set)
        self.join(timeout=STOP_TIMEOUT)


# -- the demo -----------------------------------------------------------------------------


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: nothing stays behind


def _terminal_gone(parent: int, had_terminal: bool) -> bool:
    """The window was closed: our parent (make, the shell) died or the terminal hung up.

    A closed terminal signals only its session leader (make waits for us meanwhile), not
    this process or rune-tui, so without this check both would linger with the server.
    """
    if os.getppid() != parent:
        return True
    if not had_terminal:
        return False
    try:
        os.tcgetpgrp(sys.stdin.fileno())
    except OSError:  # EIO once the terminal has hung up
        return True
    return False


def run_in_foreground(command: list[str]) -> int:
    """Run rune-tui on this terminal; stop it if the terminal goes away."""
    parent, had_terminal = os.getppid(), sys.stdin.isatty()
    with subprocess.Popen(command) as tui:
        try:
            while True:
                try:
                    return tui.wait(timeout=0.5)
                except subprocess.TimeoutExpired:
                    if _terminal_gone(parent, had_terminal):
                        tui.terminate()
                        tui.wait(timeout=STOP_TIMEOUT)
                        return 129
        except BaseException:
            tui.kill()
            raise


def _forget_keyring_keys(profile: Path) -> None:
    """A demo key put in the desktop keyring must not outlive the demo."""
    from rune_proto.local.keystore import KeyringStore, KeystoreError
    from rune_tui.config import Paths, load_config

    with contextlib.suppress(OSError, ValueError):
        for account in load_config(Paths.from_profile(profile)).accounts:
            if account.keystore == "keyring":
                with contextlib.suppress(KeystoreError):
                    KeyringStore().delete(account.key_name)


def main() -> int:
    from rune_tui.config import Config, Paths, Settings, save_config

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)
    with tempfile.TemporaryDirectory(prefix="rune-demo-") as tmp:
        root = Path(tmp)
        profile = root / "profile"
        print("rune demo: starting a Rune server on 127.0.0.1 …", flush=True)
        with local_server(root) as server:
            bot = BotThread(WelcomeBot(server, root / "bot.log"))
            bot.start()
            # Check for mail often, so the welcome message shows up without pressing R.
            save_config(Paths.from_profile(profile), Config(settings=Settings(poll_seconds=5)))
            where = f"{server.host}:{server.port}"
            print(f"rune demo: server {where}, domain {server.domain}; starting rune-tui")
            try:
                tui = [sys.executable, "-m", "rune_tui", "--profile", str(profile)]
                code = run_in_foreground([*tui, "--server", where])
            finally:
                bot.stop()
                _forget_keyring_keys(profile)
    print("rune demo: the server has stopped and its files are gone.")
    return code


if __name__ == "__main__":
    sys.exit(main())
