"""The memory budget's grant rule (rune_proto/server/budget.py), and pieced replies.

No server here: the rule that keeps the budget from deadlocking is checked directly,
and a RETRIEVE reply written in pieces must be byte for byte the reply in one piece.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from rune_proto.connection import Connection, Role
from rune_proto.events import Greeting, Retrieve, Retrieved
from rune_proto.server.budget import MemoryBudget
from rune_proto.wire import format_command, format_reply, retrieved_pieces

MESSAGE_ID = "70f58b0a-7215-4518-98c1-7370b3ecfc2b"


def test_a_request_that_fits_is_granted_and_one_that_does_not_waits() -> None:
    budget = MemoryBudget(100)
    first, second = object(), object()
    assert budget.try_take(first, 60)
    assert budget.try_take(second, 30)
    assert not budget.try_take(second, 20)  # over, and second is not the largest holder
    budget.give(first, 60)
    assert budget.try_take(second, 20)
    assert budget.used == 50 and budget.held(second) == 50


def test_one_request_larger_than_the_whole_budget_passes_alone() -> None:
    budget = MemoryBudget(100)
    alone = object()
    assert budget.try_take(alone, 250)  # nothing else is held: no deadlock on a big message
    assert not budget.try_take(object(), 1)
    budget.give_all(alone)
    assert budget.used == 0


def test_partial_holders_that_fill_the_budget_do_not_wait_on_each_other() -> None:
    """The largest holder may grow past the limit, so one line can always finish."""
    budget = MemoryBudget(100)
    big, small = object(), object()
    assert budget.try_take(big, 60) and budget.try_take(small, 40)
    assert not budget.try_take(small, 10)
    assert budget.try_take(big, 10) and budget.try_take(big, 10)
    assert budget.used == 120  # over by what the largest holder took: bounded by one line


async def test_a_waiter_is_granted_on_release_and_a_cancelled_one_takes_nothing() -> None:
    budget = MemoryBudget(100)
    holder, waiter, quitter = object(), object(), object()
    assert budget.try_take(holder, 100)
    waiting = asyncio.create_task(budget.take(waiter, 50))
    quitting = asyncio.create_task(budget.take(quitter, 80))
    await asyncio.sleep(0)
    assert not waiting.done() and not quitting.done()
    quitting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await quitting
    budget.give(holder, 100)
    async with asyncio.timeout(5):
        await waiting
    assert budget.held(waiter) == 50 and budget.held(quitter) == 0 and budget.used == 50


@pytest.mark.parametrize("size", [1, 2, 3, 4, 1000, 65536, 300_001])
def test_a_reply_in_pieces_is_the_reply_in_one_piece(size: int) -> None:
    reply = Retrieved(MESSAGE_ID, os.urandom(size))
    pieces = list(retrieved_pieces(reply, 1024))
    assert b"".join(pieces) == format_reply(reply)
    assert max(len(piece) for piece in pieces) <= 1024


def test_the_server_state_moves_on_when_a_reply_is_sent_in_pieces() -> None:
    conn = Connection(Role.SERVER)
    conn.send(Greeting(("rune/1",), "hi"))
    conn.state = conn.state.AUTHENTICATED  # as after a login
    conn.receive_data(format_command(Retrieve(MESSAGE_ID)))
    assert isinstance(conn.next_event(), Retrieve)
    reply = Retrieved(MESSAGE_ID, b"blob" * 100)
    assert b"".join(conn.send_pieces(reply, 64)) == format_reply(reply)
    assert conn.state is conn.state.AUTHENTICATED and conn.buffered == 0
