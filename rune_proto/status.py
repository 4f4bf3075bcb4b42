"""Every status code of ``rune/1``, its meaning, and whether the server then closes.

The seed draft's codes (205, 210, 405-408, 410) keep their numbers and texts.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Status:
    code: int
    text: str
    closes: bool = False


_TABLE = (
    Status(200, "OK"),
    Status(201, "send ready: max payload, receiver key, server key"),
    Status(202, "ROGER"),
    Status(205, "registration challenge"),
    Status(210, "registered"),
    Status(211, "capabilities follow"),
    Status(220, "login nonce"),
    Status(221, "bye", closes=True),
    Status(230, "authenticated"),
    Status(240, "message list follows"),
    Status(250, "message follows"),
    Status(260, "deleted"),
    Status(270, "public key"),
    Status(280, "new mail"),
    Status(281, "wait over"),
    Status(400, "syntax error"),
    Status(401, "log in first"),
    Status(402, "bad sequence of commands"),
    Status(403, "address not valid on this server"),
    Status(404, "not found"),
    Status(405, "free registration not available"),
    Status(406, "invitation registration not available"),
    Status(407, "invitation token invalid", closes=True),
    Status(408, "invitation token expired", closes=True),
    Status(409, "address already registered"),
    Status(410, "registration challenge failed", closes=True),
    Status(411, "authentication failed"),
    Status(412, "message signature invalid", closes=True),
    Status(413, "payload too large"),
    Status(414, "line too long"),
    Status(415, "mailbox full"),
    Status(416, "account blocked", closes=True),
    Status(417, "receiver key changed"),
    Status(421, "service closing connection", closes=True),
    Status(429, "too many failures", closes=True),
    Status(451, "local error, nothing stored; try again"),
    Status(452, "registration limit reached for your network; try later"),
    Status(453, "sending limit reached; try later"),
    Status(454, "receiver is getting too many messages; try later"),
    Status(500, "internal server error", closes=True),
)

STATUSES: dict[int, Status] = {s.code: s for s in _TABLE}

OK = 200
SEND_READY = 201
ROGER = 202
CHALLENGE = 205
REGISTERED = 210
CAPABILITIES = 211
LOGIN_NONCE = 220
BYE = 221
AUTHENTICATED = 230
LISTING = 240
RETRIEVED = 250
DELETED = 260
KEY_FOUND = 270
NEW_MAIL = 280
WAIT_OVER = 281
SYNTAX_ERROR = 400
LOGIN_REQUIRED = 401
BAD_SEQUENCE = 402
BAD_ADDRESS = 403
NOT_FOUND = 404
FREE_REGISTRATION_UNAVAILABLE = 405
INVITATION_REGISTRATION_UNAVAILABLE = 406
INVITATION_INVALID = 407
INVITATION_EXPIRED = 408
ADDRESS_TAKEN = 409
CHALLENGE_FAILED = 410
AUTHENTICATION_FAILED = 411
BAD_SIGNATURE = 412
PAYLOAD_TOO_LARGE = 413
LINE_TOO_LONG = 414
MAILBOX_FULL = 415
ACCOUNT_BLOCKED = 416
KEY_CHANGED = 417
CLOSING = 421
TOO_MANY_FAILURES = 429
TRY_AGAIN = 451
REGISTRATION_LIMIT = 452
SEND_LIMIT = 453
INFLOW_LIMIT = 454
INTERNAL_ERROR = 500


def closes(code: int) -> bool:
    """Whether the server closes the connection after sending this code."""
    status = STATUSES.get(code)
    return status.closes if status else code >= 500


def default_text(code: int) -> str:
    status = STATUSES.get(code)
    return status.text if status else "error"
