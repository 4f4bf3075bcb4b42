"""The waiting link's reconnect schedule: doubling from the first delay up to the cap,
told each time, reset once it is back. A real server that is stopped; the sleeps are
injected, so the test does not wait through them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from rune_proto.address import parse_address
from rune_proto.keys import Identity
from rune_tui.config import Account, Paths
from rune_tui.live import LinkDown, LinkStatus, LinkUp, watch_mailbox
from rune_tui.service import Mailbox
from tests.tui.test_mail_screens import registered_mailbox, unreachable_port


class _Enough(Exception):
    """Ends the watch once the schedule has been seen."""


async def test_reconnects_back_off_doubling_to_the_cap(rune_server: Any, tmp_path: Path) -> None:
    server = rune_server()
    mailbox = await registered_mailbox(server, "alice", tmp_path)
    told: list[LinkStatus] = []
    up = asyncio.Event()
    slept: list[float] = []

    def on_status(link: LinkStatus) -> None:
        told.append(link)
        if isinstance(link, LinkUp):
            up.set()

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 6:
            raise _Enough

    watch = asyncio.create_task(
        watch_mailbox(mailbox, lambda: None, on_status, poll_seconds=3600, max_delay=8, sleep=sleep)
    )
    await asyncio.wait_for(up.wait(), 30)
    server.stop()  # the waiting link drops; nothing answers any more
    with pytest.raises(_Enough):
        await asyncio.wait_for(watch, 60)
    assert slept == [1, 2, 4, 8, 8, 8]
    downs = [link for link in told if isinstance(link, LinkDown)]
    assert [link.retry_in for link in downs] == slept
    assert all(link.reason for link in downs)
    assert told[0] == LinkUp(again=False, live=True)


async def test_a_link_that_never_came_up_is_not_reported(tmp_path: Path) -> None:

    account = Account(
        parse_address("alice@example.org"),
        "127.0.0.1",
        unreachable_port(),
        "sha256:" + "0" * 64,
        Identity.generate().public.token(),
        "file",
    )
    mailbox = Mailbox(Paths(tmp_path / "c", tmp_path / "d"), account, Identity.generate())
    told: list[LinkStatus] = []
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            raise _Enough

    with pytest.raises(_Enough):
        await watch_mailbox(mailbox, lambda: None, told.append, poll_seconds=60, sleep=sleep)
    assert slept == [1, 2, 4] and told == []  # the refresh says why; the watch keeps trying
