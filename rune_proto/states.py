"""The state table of ``rune/1``: which command is legal where, and where a reply leads.

Kept apart from :mod:`.connection`, which runs it for both roles, so the table can be
read (and checked against docs/protocol.md §13) on one page.
"""

from __future__ import annotations

from enum import Enum

from . import status
from .events import (
    Authenticated,
    BoundSend,
    Bye,
    Capa,
    Challenge,
    ChallengeAccepted,
    Command,
    Delete,
    Done,
    ErrorReply,
    ListMessages,
    Login,
    LoginNonce,
    Lookup,
    Message,
    Noop,
    Ok,
    Proof,
    Quit,
    Register,
    Registered,
    RegisterInvitation,
    Reply,
    Retrieve,
    Roger,
    Send,
    SendReady,
    Wait,
    WaitEnded,
)


class State(Enum):
    GREETING = "greeting"
    IDLE = "idle"
    AWAIT_ANSWER = "await-answer"
    AWAIT_PROOF = "await-proof"
    AUTHENTICATED = "authenticated"
    SENDING = "sending"
    WAITING = "waiting"
    CLOSED = "closed"


ALLOWED: dict[State, frozenset[type[Command]]] = {
    State.IDLE: frozenset({Capa, Register, RegisterInvitation, Login, Noop, Quit}),
    State.AWAIT_ANSWER: frozenset({ChallengeAccepted, Quit}),
    State.AWAIT_PROOF: frozenset({Proof, Quit}),
    State.AUTHENTICATED: frozenset(
        {Capa, Send, BoundSend, ListMessages, Retrieve, Delete, Lookup, Noop, Quit, Wait}
    ),
    State.SENDING: frozenset({Message, Noop, Quit}),
    State.WAITING: frozenset({Done}),
}
NEEDS_LOGIN: frozenset[type[Command]] = frozenset(
    {Send, BoundSend, ListMessages, Retrieve, Delete, Lookup, Wait}
)

# (state, command, reply type) -> next state. Anything not listed keeps the state,
# except that errors leave the sub-states and closing replies close.
TRANSITIONS: dict[tuple[State, type[Command], type[Reply]], State] = {
    (State.IDLE, Register, Challenge): State.AWAIT_ANSWER,
    (State.IDLE, RegisterInvitation, Challenge): State.AWAIT_ANSWER,
    (State.AWAIT_ANSWER, ChallengeAccepted, Registered): State.IDLE,
    (State.IDLE, Login, LoginNonce): State.AWAIT_PROOF,
    (State.AWAIT_PROOF, Proof, Authenticated): State.AUTHENTICATED,
    (State.AUTHENTICATED, Send, SendReady): State.SENDING,
    (State.AUTHENTICATED, BoundSend, SendReady): State.SENDING,
    (State.SENDING, Message, Roger): State.AUTHENTICATED,
    (State.SENDING, Noop, Ok): State.AUTHENTICATED,
}
_FALLBACK = {
    State.AWAIT_ANSWER: State.IDLE,
    State.AWAIT_PROOF: State.IDLE,
    State.SENDING: State.AUTHENTICATED,
    State.WAITING: State.AUTHENTICATED,
}


def rejection(state: State, command: type[Command]) -> int | None:
    """The status for a command that is not legal in ``state``, or None if it is."""
    if state in ALLOWED and command in ALLOWED[state]:
        return None
    if command in NEEDS_LOGIN and state not in (State.AUTHENTICATED, State.SENDING, State.WAITING):
        return status.LOGIN_REQUIRED
    return status.BAD_SEQUENCE


def next_state(state: State, command: type[Command] | None, reply: Reply) -> State:
    if isinstance(reply, Bye):
        return State.CLOSED
    if isinstance(reply, ErrorReply):
        if status.closes(reply.status):
            return State.CLOSED
        return _FALLBACK.get(state, state)
    if command is None:
        return state
    if state is State.WAITING and isinstance(reply, WaitEnded):
        return State.AUTHENTICATED
    return TRANSITIONS.get((state, command, type(reply)), state)
