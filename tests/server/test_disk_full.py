"""A full disk, on a real small file system: a tmpfs of a few MiB mounted for the test.

Seen before: sends got ``500`` and the log said ``OperationalError`` rather than
"disk full"; DELETE failed too, so users could not free space; after a restart the
database would not open. Now: ``451`` saying "disk full", every ``202`` message is
still there, DELETE works (the reserve, rune_proto/server/diskspace.py, is given up
for it), and the server starts on the full disk. Needs root (``mount -t tmpfs``);
skipped elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rune_proto import status
from rune_proto.envelope import Attachment, Content
from rune_proto.events import (
    Delete,
    Deleted,
    ErrorReply,
    Listing,
    ListMessages,
    Retrieve,
    Retrieved,
    Roger,
)
from tests.server_process import RuneServerProcess, create_server

from .conftest import User, register_user
from .wire_client import WireClient

FS_MIB = 6
MAX_SENDS = 200  # bound: 6 MiB fill with far fewer 150 KiB messages


@contextlib.contextmanager
def small_filesystem(where: Path) -> Iterator[Path]:
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={FS_MIB}m,mode=0700", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _logged_in(server: RuneServerProcess, user: User) -> WireClient:
    client = WireClient.to(server)
    assert client.login(*user, server.server_public_key).code == status.AUTHENTICATED
    return client


def _fill(where: Path) -> None:
    """Take whatever room is left on the file system."""
    with open(where / f"filler-{uuid.uuid4()}", "wb") as filler, contextlib.suppress(OSError):
        for _ in range(FS_MIB * 64):
            filler.write(os.urandom(16 * 1024))
            filler.flush()


def test_a_full_disk_is_451_keeps_every_acknowledged_message_and_deletes_work(
    tmp_path: Path,
) -> None:
    root = tmp_path / "server"  # its logs stay on the big disk; its data on the small one
    root.mkdir()
    with small_filesystem(root / "data") as small:
        server = create_server(root, disk_reserve_mib=1, mailbox_quota_mib=1024)
        try:
            alice, bob = register_user(server), register_user(server)
            acknowledged = 0
            big = Content("big", "", (Attachment("big.bin", os.urandom(150 * 1024)),))
            with _logged_in(server, alice) as client:
                for _ in range(MAX_SENDS):
                    reply = client.send_message(*alice, bob[0], big)
                    if reply != Roger():
                        break
                    acknowledged += 1
            assert reply == ErrorReply(status.TRY_AGAIN, "disk full, nothing stored; try later")
            assert acknowledged > 0
            assert "disk full" in server.stderr_text()
            assert "OperationalError" not in server.stderr_text()
            assert "Traceback" not in server.stderr_text()
            _fill(small)  # the 451 may have left a few KiB: none at all now
            with _logged_in(server, bob) as client:
                listing = client.request(ListMessages())
                assert isinstance(listing, Listing) and len(listing.entries) == acknowledged
                first, _ = listing.entries[0]
                assert isinstance(client.request(Retrieve(first)), Retrieved)
                assert client.request(Delete(first)) == Deleted(first)
            assert "released the 1 MiB reserve" in server.stderr_text()
            _fill(small)
            server.restart()  # starts on a full disk, and serves what it holds
            with _logged_in(server, bob) as client:
                listing = client.request(ListMessages())
                assert isinstance(listing, Listing) and len(listing.entries) == acknowledged - 1
                second, _ = listing.entries[0]
                assert isinstance(client.request(Retrieve(second)), Retrieved)
            assert server.stop() == 0
            log = server.stderr_text()
            assert "Traceback" not in log and "order pass failed (disk full)" in log
        finally:
            if server.process is not None:
                server.stop()
