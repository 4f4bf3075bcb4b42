"""What the client library says when the server's operator blocks or deletes an account."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from rune_proto import status
from rune_proto.client import ClientError, ServerError
from tests.client.test_client import logged_in, new_user, open_session
from tests.server_process import run_cli

pytestmark = pytest.mark.asyncio
DEADLINE = 10.0


async def _ended(session: Any) -> ClientError:
    """NOOP until the session's end shows (bounded): the unsolicited 421 is read first."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            await session.noop()
        except ClientError as exc:
            return exc
        await asyncio.sleep(0.05)
    raise AssertionError("the session was not ended")


async def test_a_blocked_account_is_told_so_plainly(rune_server: Any) -> None:
    server = rune_server()
    alice, alice_id = await new_user(server, "alice")
    async with logged_in(server, alice, alice_id) as session:
        blocked = run_cli("accounts", "block", "--data-dir", str(server.data_dir), str(alice))
        assert blocked.returncode == 0, blocked.stderr
        ended = await _ended(session)
        assert isinstance(ended, ServerError), ended
        assert (ended.code, ended.text) == (status.CLOSING, "account blocked")
        assert "operator has blocked this account" in ended.explain()
    with pytest.raises(ServerError) as caught:
        async with open_session(server) as session:
            await session.login(alice, alice_id)
    assert caught.value.code == status.ACCOUNT_BLOCKED and caught.value.closes
    assert "operator has blocked this account" in caught.value.explain()


async def test_a_deleted_account_session_is_told_so(rune_server: Any) -> None:
    server = rune_server()
    alice, alice_id = await new_user(server, "alice")
    async with logged_in(server, alice, alice_id) as session:
        data = str(server.data_dir)
        deleted = run_cli("accounts", "delete", "--data-dir", data, str(alice), "--yes")
        assert deleted.returncode == 0, deleted.stderr
        ended = await _ended(session)
        assert isinstance(ended, ServerError) and "deleted this account" in ended.explain()
