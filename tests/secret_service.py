"""A private, throwaway Secret Service for tests: its own D-Bus session bus and keyring daemon.

Tests that touch the OS keyring must never see the developer's real login keyring, and CI
has no desktop session at all. So we start a fresh ``dbus-daemon`` and a
``gnome-keyring-daemon`` unlocked with a known password, both living in a temporary
directory, and point ``DBUS_SESSION_BUS_ADDRESS`` at that bus for as long as we need it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PROGRAMS = ("dbus-daemon", "gnome-keyring-daemon", "secret-tool")
APT_PACKAGES = "gnome-keyring dbus dbus-x11 libsecret-tools"
KEYRING_PASSWORD = "rune-test-login-password"
SECRETS_BUS_NAME = "org.freedesktop.secrets"
LOGIN_COLLECTION = "/org/freedesktop/secrets/collection/login"
BACKEND = "keyring.backends.SecretService.Keyring"
START_TIMEOUT = 10.0


def missing_programs() -> list[str]:
    """The programs this fixture needs that are not on PATH."""
    return [name for name in PROGRAMS if shutil.which(name) is None]


def skip_or_fail(reason: str) -> None:
    """Skip a keyring test where the tools are absent, unless CI demands them (then fail)."""
    if os.environ.get("RUNE_REQUIRE_KEYRING") == "1":
        pytest.fail(f"{reason} (RUNE_REQUIRE_KEYRING=1, so this is an error, not a skip)")
    pytest.skip(f"{reason}; install them with: apt-get install {APT_PACKAGES}")


@dataclass
class SecretServiceDaemons:
    """A running private bus + keyring daemon; ``env`` is what a client needs to reach it."""

    root: Path
    bus_address: str
    bus: subprocess.Popen[str]
    keyring: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        return (self.root / "gnome-keyring.log").read_text(errors="replace")

    def lock_login_collection(self) -> None:
        """Lock the login keyring, as a screen lock or a fresh boot would.

        ``secret-tool lock`` locks but then hangs waiting on a prompt, so we ask over D-Bus.
        """
        import secretstorage
        from jeepney.io.blocking import open_dbus_connection

        with open_dbus_connection(self.bus_address) as connection:
            collection = secretstorage.Collection(connection, LOGIN_COLLECTION)
            collection.lock()
            if not collection.is_locked():
                raise RuntimeError("the test keyring refused to lock")

    def stop(self) -> None:
        _stop(self.keyring)
        _stop(self.bus)
        shutil.rmtree(self.root, ignore_errors=True)


def _stop(process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def _name_has_owner(bus_address: str, name: str) -> bool:
    """Ask the bus itself, so a call can't D-Bus-activate a second, locked keyring daemon."""
    from jeepney import DBusAddress, new_method_call
    from jeepney.io.blocking import open_dbus_connection

    bus = DBusAddress(
        "/org/freedesktop/DBus", bus_name="org.freedesktop.DBus", interface="org.freedesktop.DBus"
    )
    with open_dbus_connection(bus_address) as connection:
        reply = connection.send_and_get_reply(new_method_call(bus, "NameHasOwner", "s", (name,)))
    return bool(reply.body[0])


def start_secret_service() -> SecretServiceDaemons:
    """Start a private session bus and an unlocked gnome-keyring on it.

    Calls :func:`skip_or_fail` if the programs are missing; raises RuntimeError if they
    are present but do not come up.
    """
    missing = missing_programs()
    if missing:
        skip_or_fail(f"the Secret Service tests need {', '.join(missing)}")

    # Short path: gnome-keyring puts a unix socket under XDG_RUNTIME_DIR (108-byte limit).
    root = Path(tempfile.mkdtemp(prefix="rune-keyring-"))
    env = {
        key: value
        for key, value in os.environ.items()
        # No display: an unlock prompt must fail at once, not pop up on a developer's desktop.
        if key not in {"DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS"}
    }
    for name in ("HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        path = root / name.lower()
        path.mkdir(mode=0o700)
        env[name] = str(path)

    # --nofork keeps the bus our child, so teardown can stop and reap it by its pid. Its
    # chatter goes to a file: a pipe nobody reads would fill up and stall the bus.
    with (root / "dbus-daemon.log").open("wb") as log:
        bus = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--print-address=1"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    assert bus.stdout is not None
    bus_address = bus.stdout.readline().strip()
    if not bus_address:
        _stop(bus)
        log_text = (root / "dbus-daemon.log").read_text(errors="replace")
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"dbus-daemon did not start; its output:\n{log_text}")
    env["DBUS_SESSION_BUS_ADDRESS"] = bus_address

    # --foreground keeps the daemon our child, so teardown knows its pid; --unlock reads the
    # login keyring's password from stdin (creating the keyring on first use).
    with (root / "gnome-keyring.log").open("wb") as log:
        keyring_daemon = subprocess.Popen(
            ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    daemons = SecretServiceDaemons(root, bus_address, bus, keyring_daemon, env)
    assert keyring_daemon.stdin is not None
    keyring_daemon.stdin.write(KEYRING_PASSWORD.encode())
    keyring_daemon.stdin.close()

    deadline = time.monotonic() + START_TIMEOUT
    while not _name_has_owner(bus_address, SECRETS_BUS_NAME):
        if keyring_daemon.poll() is not None or time.monotonic() > deadline:
            log_text = daemons.log()
            daemons.stop()
            raise RuntimeError(f"gnome-keyring-daemon did not come up; its output:\n{log_text}")
        time.sleep(0.02)
    return daemons


@contextmanager
def secret_service_session() -> Iterator[SecretServiceDaemons]:
    """Run the daemons and point this process (keyring, secret-tool children) at them."""
    import keyring
    from keyring.backends import SecretService

    try:
        daemons = start_secret_service()
    except RuntimeError as e:
        pytest.fail(str(e))
    previous = keyring.get_keyring()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("DBUS_SESSION_BUS_ADDRESS", daemons.bus_address)
            mp.setenv("PYTHON_KEYRING_BACKEND", BACKEND)
            keyring.set_keyring(SecretService.Keyring())
            yield daemons
    finally:
        keyring.set_keyring(previous)
        daemons.stop()
