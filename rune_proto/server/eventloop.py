"""Which event loop rune-server runs on: uvloop when it is there, else asyncio's own.

uvloop (libuv, in C) runs the transports, the TLS records and the loop's own
bookkeeping for less CPU than asyncio's selector loop: measured under load, the part
of a message's server CPU spent outside the crypto and the store drops by about a
third (docs/performance.md). asyncio's loop stays fully supported: the ``event_loop``
setting picks one (``auto``: uvloop when importable; ``uvloop``: refuse to start
without it; ``asyncio``: always the standard library's), and the tests run the server
both ways. uvloop has no Windows build, where ``auto`` means asyncio.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

EVENT_LOOPS = ("auto", "uvloop", "asyncio")

_T = TypeVar("_T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


class EventLoopUnavailable(Exception):
    """``event_loop = "uvloop"`` on a machine without uvloop."""


def uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def loop_factory(choice: str) -> tuple[str, LoopFactory | None]:
    """The loop's name and how to make it (None: asyncio's default loop)."""
    if choice not in EVENT_LOOPS:
        raise ValueError(f"event_loop is one of {', '.join(EVENT_LOOPS)}")
    if choice == "asyncio" or (choice == "auto" and not uvloop_available()):
        return "asyncio", None
    try:
        import uvloop
    except ImportError as exc:
        raise EventLoopUnavailable(
            "event_loop = uvloop, but uvloop is not installed"
            " (pip install uvloop, or set event_loop = auto or asyncio)"
        ) from exc
    return "uvloop", uvloop.new_event_loop


def run(main: Callable[[], Coroutine[Any, Any, _T]], choice: str) -> _T:
    """``asyncio.run(main())`` on the loop ``choice`` names (the coroutine is made only
    once the loop is known, so a refused choice leaves none un-awaited)."""
    _, factory = loop_factory(choice)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())


def running_loop_name() -> str:
    """What the running loop is, for the start-up log line."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"
