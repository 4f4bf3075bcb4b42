"""``rune-server passphrase``, ``renew-cert`` and SIGHUP, on a running server (issue 18)."""

from __future__ import annotations

import signal
import ssl
import time

import pytest

from rune_proto.events import Listing, ListMessages
from tests.server_process import RuneServerProcess, ServerFactory, run_cli

from .conftest import register_user
from .test_admin import DEADLINE, logged_in
from .wire_client import WireClient


def _cli(server: RuneServerProcess, *args: str) -> str:
    result = run_cli(*args[:1], "--data-dir", str(server.data_dir), *args[1:])
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_passphrase_change_then_restart_works_with_the_new_one_only(
    rune_server: ServerFactory,
) -> None:
    server = rune_server()
    alice = register_user(server)
    old_file = server.passphrase_file
    new_file = server.root / "new-passphrase"
    new_file.write_text("a brand new passphrase\n")
    new_file.chmod(0o600)
    before = {name: (server.data_dir / name).read_bytes() for name in ("tls.key", "identity.key")}
    # While the server runs: it keeps serving with the keys it holds.
    out = _cli(
        server, "passphrase", "--passphrase-file", str(old_file),
        "--new-passphrase-file", str(new_file),
    )  # fmt: skip
    assert "new passphrase" in out
    for name, old in before.items():
        path = server.data_dir / name
        assert path.read_bytes() != old and path.stat().st_mode & 0o777 == 0o600
    with logged_in(server, alice) as client:
        assert isinstance(client.request(ListMessages()), Listing)
    server.stop()
    with pytest.raises(RuntimeError, match="did not become ready"):
        server.start()  # the old passphrase no longer opens the keys
    assert "passphrase" in server.stderr_text().splitlines()[-1]
    server.passphrase_file = new_file
    server.start()
    with logged_in(server, alice) as client:
        assert client.tls_pin == server.tls_pin
    # A wrong current passphrase changes nothing.
    wrong = run_cli(
        "passphrase", "--data-dir", str(server.data_dir), "--passphrase-file", str(old_file),
        "--new-passphrase-file", str(old_file),
    )  # fmt: skip
    assert wrong.returncode == 2 and "same" in wrong.stderr
    other = server.root / "other"
    other.write_text("other\n")
    wrong = run_cli(
        "passphrase", "--data-dir", str(server.data_dir), "--passphrase-file", str(other),
        "--new-passphrase-file", str(old_file),
    )  # fmt: skip
    assert wrong.returncode == 2 and "does not open" in wrong.stderr


def test_renew_cert_keeps_the_key_so_pins_hold(rune_server: ServerFactory) -> None:
    server = rune_server()
    alice = register_user(server)
    cert = server.data_dir / "tls.crt"
    old_cert = cert.read_bytes()
    out = _cli(server, "renew-cert", "--passphrase-file", str(server.passphrase_file))
    assert server.tls_pin in out and "unchanged" in out
    assert cert.read_bytes() != old_cert
    server.restart()
    with WireClient.to(server) as client:
        der = client.sock.getpeercert(binary_form=True)
        assert der is not None and der != ssl.PEM_cert_to_DER_cert(old_cert.decode())  # new cert
        assert client.tls_pin == server.tls_pin  # ... for the same key
    with logged_in(server, alice) as client:
        assert isinstance(client.request(ListMessages()), Listing)


def test_sighup_is_ignored_and_the_server_keeps_serving(rune_server: ServerFactory) -> None:
    server = rune_server()
    alice = register_user(server)
    assert server.process is not None
    with logged_in(server, alice) as session:
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + DEADLINE
        while "SIGHUP ignored" not in server.stderr_text():
            assert server.process.poll() is None, "SIGHUP killed the server"
            assert time.monotonic() < deadline, "no log line for SIGHUP"
            time.sleep(0.02)
        assert isinstance(session.request(ListMessages()), Listing)
    assert server.process.poll() is None
    with logged_in(server, alice) as client:
        assert isinstance(client.request(ListMessages()), Listing)
    # teardown: SIGTERM must still give exit 0
