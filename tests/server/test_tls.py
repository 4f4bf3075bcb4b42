"""TLS seen by an independent client: ``openssl s_client``, and a plaintext socket."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess

import pytest

from tests.server_process import RuneServerProcess

from .wire_client import WireClient

OPENSSL = shutil.which("openssl")
if OPENSSL is None and os.environ.get("RUNE_REQUIRE_OPENSSL") == "1":
    raise RuntimeError("openssl is required (RUNE_REQUIRE_OPENSSL=1) but not installed")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
# Let the *client* offer old protocols, so a refusal is the server's doing.
LEGACY = ["-cipher", "DEFAULT:@SECLEVEL=0"]


def s_client(server: RuneServerProcess, *options: str, stdin: str = "QUIT\n") -> str:
    assert OPENSSL is not None
    done = subprocess.run(
        [OPENSSL, "s_client", "-connect", f"{server.host}:{server.port}", "-quiet", *options],
        input=stdin.encode(),
        capture_output=True,
        timeout=15,
        check=False,
    )
    return done.stdout.decode(errors="replace")


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_greeting_arrives_over_tls_1_2_and_1_3(
    shared_server: RuneServerProcess, version: str
) -> None:
    out = s_client(shared_server, version)
    assert out.splitlines()[:2] == ["HOWDY rune/1 Rune is Not Email", "221 bye"]


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_tls_1_0_and_1_1_are_refused(shared_server: RuneServerProcess, version: str) -> None:
    assert "HOWDY" not in s_client(shared_server, version, *LEGACY)


def test_python_client_negotiates_tls_1_3(shared_server: RuneServerProcess) -> None:
    with WireClient.to(shared_server) as client:
        assert client.tls_version == "TLSv1.3"
    with WireClient.to(shared_server, maximum_version=ssl.TLSVersion.TLSv1_2) as client:
        assert client.tls_version == "TLSv1.2"


def test_plaintext_connection_gets_no_greeting(shared_server: RuneServerProcess) -> None:
    with socket.create_connection((shared_server.host, shared_server.port), timeout=10) as sock:
        sock.sendall(b"NOOP\r\nCAPA\r\n")
        received = b""
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except ConnectionResetError:
            pass
    assert b"HOWDY" not in received and b"200" not in received


def test_unknown_command_gets_400_then_noop_gets_200(shared_server: RuneServerProcess) -> None:
    out = s_client(shared_server, stdin="FROBNICATE\nNOOP\nQUIT\n").splitlines()
    assert out[0].startswith("HOWDY rune/1")
    assert out[1].startswith("400 ")
    assert out[2:4] == ["200 OK", "221 bye"]
