"""Conversations: messages grouped by their ``in_reply_to`` chains, for the thread view.

Pure (no Textual, no network), so it is tested on its own. A message's parent is the
message whose sender-chosen ``message_id`` its ``in_reply_to`` names; a message whose
parent is not in the mailbox (never received, deleted, or no ``in_reply_to`` at all) is
the root of a thread. Threads are ordered by their newest message, newest first, so a
fresh reply brings its conversation to the top; inside a thread replies follow their
parent, oldest first, as a conversation reads.

:func:`conversations` interleaves both directions: your sent messages (``Sent``) join the
threads of the mail you received, so a reply of yours sits under what it answers and the
answer to it under yours. A thread made only of sent messages is left to the Sent view.

The ids are chosen by senders, so nothing here trusts them: a message that names
itself, two that name each other, or one id used twice never loops, loses a message or
shows one twice. The walk is iterative, so a 10,000-deep chain cannot blow the stack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

# Deeper replies are drawn at this depth: past it the tree only pushes subjects away.
MAX_INDENT = 6
_EPOCH = datetime.min.replace(tzinfo=UTC)


class Threadable(Protocol):
    """What threading reads from a message (ReceivedMessage or a cached summary row)."""

    @property
    def message_id(self) -> str | None: ...

    @property
    def in_reply_to(self) -> str | None: ...

    @property
    def received_at(self) -> datetime | None: ...


M = TypeVar("M", bound=Threadable)


@dataclass(frozen=True, slots=True)
class ThreadRow(Generic[M]):
    """One line of the thread view: the message, how deep it sits, and its tree drawing."""

    message: M
    depth: int  # 0 for a thread's root
    prefix: str  # "" for a root, else e.g. "│ └─▸ "


def _when(message: Threadable) -> datetime:
    return message.received_at or _EPOCH


def thread(messages: Iterable[M]) -> list[ThreadRow[M]]:
    """Every message exactly once, in thread order (see the module's docstring)."""
    items = list(messages)
    by_id: dict[str, int] = {}
    for index, message in enumerate(items):
        if message.message_id is not None:
            by_id.setdefault(message.message_id, index)  # a repeated id: the first one wins
    children: dict[int, list[int]] = {}
    roots: list[int] = []
    for index, message in enumerate(items):
        parent = by_id.get(message.in_reply_to) if message.in_reply_to is not None else None
        if parent is None or parent == index:
            roots.append(index)
        else:
            children.setdefault(parent, []).append(index)
    for kids in children.values():
        kids.sort(key=lambda i: _when(items[i]))

    rows: list[ThreadRow[M]] = []
    seen: set[int] = set()

    def walk(root: int) -> list[ThreadRow[M]]:
        """The thread under ``root``, depth first; marks what it visits."""
        out: list[ThreadRow[M]] = []
        # (index, depth, for each ancestor level below the root: does it have a later sibling)
        stack: list[tuple[int, int, tuple[bool, ...]]] = [(root, 0, ())]
        while stack:
            index, depth, more = stack.pop()
            if index in seen:
                continue
            seen.add(index)
            out.append(ThreadRow(items[index], depth, _prefix(more)))
            kids = [k for k in children.get(index, ()) if k not in seen]
            for position in range(len(kids) - 1, -1, -1):  # pushed in reverse: oldest first
                stack.append((kids[position], depth + 1, (*more, position < len(kids) - 1)))
        return out

    threads = [walk(root) for root in roots]
    # Messages in a reply cycle have no root; each cycle becomes a thread of its own,
    # rooted at its newest message.
    for index in sorted(range(len(items)), key=lambda i: _when(items[i]), reverse=True):
        if index not in seen:
            threads.append(walk(index))
    threads.sort(key=lambda rows_: max(_when(row.message) for row in rows_), reverse=True)
    for thread_rows in threads:
        rows.extend(thread_rows)
    return rows


def _prefix(more: tuple[bool, ...]) -> str:
    """Tree drawing for a reply: a rail per open ancestor, then an elbow or a tee."""
    if not more:
        return ""
    more = more[-MAX_INDENT:]
    rails = "".join("│ " if open_ else "  " for open_ in more[:-1])
    return rails + ("├─▸ " if more[-1] else "└─▸ ")


def conversations(
    received: Iterable[M], sent: Iterable[M], is_received: Callable[[M], bool]
) -> list[ThreadRow[M]]:
    """:func:`thread` over both directions, keeping only threads with a received message.

    Sent messages with no tie to received mail are left out before threading (a pass or
    two over the ids), so 10,000 of them cost the view little.
    """
    mail = list(received)
    linked: set[str] = set()
    for message in mail:
        linked.update(i for i in (message.message_id, message.in_reply_to) if i is not None)
    waiting = list(sent)
    joined: list[M] = []
    while waiting:  # a reply of yours to a reply of yours joins once the first one has
        still: list[M] = []
        for message in waiting:
            if message.message_id in linked or message.in_reply_to in linked:
                joined.append(message)
                linked.update(i for i in (message.message_id, message.in_reply_to) if i is not None)
            else:
                still.append(message)
        if len(still) == len(waiting):
            break
        waiting = still
    rows = thread([*mail, *joined])
    kept: list[ThreadRow[M]] = []
    start = 0
    for end in range(1, len(rows) + 1):
        if end == len(rows) or rows[end].depth == 0:
            group = rows[start:end]
            if any(is_received(row.message) for row in group):
                kept.extend(group)
            start = end
    return kept
