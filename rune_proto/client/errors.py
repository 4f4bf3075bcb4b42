"""Typed errors of the client library: every failure a caller can act on has a class."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import status

if TYPE_CHECKING:
    from ..keys import PublicKey


class ClientError(Exception):
    """Base of every error the client library raises on purpose."""


class NotTrusted(ClientError):
    """Neither a TLS pin, a CA, nor trust-on-first-use was given: we refuse to guess."""


class ConnectionFailed(ClientError):
    """The server could not be reached, the TLS handshake failed, or the link dropped."""


class TLSPinMismatch(ClientError):
    """The server's certificate key is not the pinned one: maybe an impostor."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(
            "the server's TLS certificate changed: pinned "
            f"{expected}, server presented {actual}. Do not continue unless the server's "
            "operator confirms a new certificate."
        )
        self.expected = expected
        self.actual = actual


class ServerKeyChanged(ClientError):
    """The server's signing identity is not the pinned one."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"the server's key changed: pinned {expected}, now {actual}")
        self.expected = expected
        self.actual = actual


class ContactKeyChanged(ClientError):
    """A contact's key differs from the pinned one; sending is blocked until accepted."""

    def __init__(
        self, address: str, pinned: str, offered: str, offered_key: PublicKey | None = None
    ) -> None:
        super().__init__(
            f"the key of {address} changed (pinned {pinned}, now {offered}); "
            "accept the new key before sending"
        )
        self.address = address
        self.pinned = pinned
        self.offered = offered
        self.offered_key = offered_key  # what to pin if the user accepts the change


class PayloadTooLarge(ClientError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"the message is {size:,} bytes once encrypted; this server accepts {limit:,}"
        )
        self.size = size
        self.limit = limit


class ProtocolViolation(ClientError):
    """The server broke the protocol (malformed or unexpected reply): a bug or a lie."""


class ServerError(ClientError):
    """The server answered with an error status."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}".strip())
        self.code = code
        self.text = text

    @property
    def closes(self) -> bool:
        return status.closes(self.code)

    def explain(self) -> str:
        """The error in words for people, for the codes a user can meet."""
        if self.code == status.CLOSING and self.text in _OPERATOR_CLOSINGS:
            return _OPERATOR_CLOSINGS[self.text]
        return _EXPLANATIONS.get(self.code, f"The server refused: {self.text or self.code}.")


# 421 texts of the reference server when its operator ends a session (docs/server.md).
_OPERATOR_CLOSINGS = {
    "account blocked": "The server's operator has blocked this account; ask them why.",
    "account deleted": "The server's operator has deleted this account.",
}


_EXPLANATIONS = {
    status.BAD_ADDRESS: "That address is not valid on this server (check the domain).",
    status.NOT_FOUND: "No such address or message on this server.",
    status.FREE_REGISTRATION_UNAVAILABLE: (
        "This server does not allow free registration; ask its operator for an invitation."
    ),
    status.INVITATION_REGISTRATION_UNAVAILABLE: (
        "This server does not accept invitations; try free registration."
    ),
    status.INVITATION_INVALID: (
        "The invitation token is not valid for this address (mistyped, used, or for someone else)."
    ),
    status.INVITATION_EXPIRED: "The invitation has expired; ask for a new one.",
    status.ADDRESS_TAKEN: "That address is already taken; pick another username.",
    status.CHALLENGE_FAILED: "The server could not confirm your new keys; try again.",
    status.AUTHENTICATION_FAILED: (
        "Login failed: the server does not know this address with this key."
    ),
    status.BAD_SIGNATURE: "The server rejected the message's signature.",
    status.PAYLOAD_TOO_LARGE: "The message is larger than this server accepts.",
    status.MAILBOX_FULL: "The receiver's mailbox is full; try again later.",
    status.ACCOUNT_BLOCKED: "The server's operator has blocked this account; ask them why.",
    status.CLOSING: "The server closed the connection.",
    status.TOO_MANY_FAILURES: "Too many failed attempts; the server closed the connection.",
    status.TRY_AGAIN: "The server could not store the message; try again.",
    status.REGISTRATION_LIMIT: (
        "Too many accounts were registered from your network recently; try again later."
    ),
    status.SEND_LIMIT: "You have sent too many messages recently; try again later.",
    status.INFLOW_LIMIT: "The receiver is getting too many messages right now; try again later.",
}
