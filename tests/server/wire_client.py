"""A tiny blocking test client: ``ssl`` sockets plus the core's sans-I/O Connection.

Deliberately independent of ``rune_proto.client``: the server is tested against the
protocol core alone. ``request()`` sends a typed command; ``raw()`` sends any bytes
and returns the one reply line, for commands the core would refuse to send.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

from rune_proto.address import Address
from rune_proto.connection import Connection, Role
from rune_proto.envelope import Content, seal_client_message, seal_message
from rune_proto.events import (
    NEED_DATA,
    Challenge,
    ChallengeAccepted,
    Command,
    ConnectionClosed,
    ErrorReply,
    Event,
    Login,
    LoginNonce,
    Message,
    Proof,
    Register,
    RegisterInvitation,
    Reply,
    Send,
    SendReady,
)
from rune_proto.handshake import answer_challenge, login_proof
from rune_proto.keys import Identity, PublicKey
from rune_proto.tlspin import spki_fingerprint
from rune_proto.wire import split_reply

TIMEOUT = 10.0


def client_context(**options: Any) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # tests compare the SPKI pin instead
    for name, value in options.items():
        setattr(context, name, value)
    return context


class WireClient:
    """One TLS connection; ``greeting`` is the server's first line (or its refusal)."""

    def __init__(self, host: str, port: int, *, timeout: float = TIMEOUT, **tls: Any) -> None:
        raw = socket.create_connection((host, port), timeout=timeout)
        self.sock = client_context(**tls).wrap_socket(raw)
        der = self.sock.getpeercert(binary_form=True)
        assert der is not None
        self.tls_pin = spki_fingerprint(der)
        self.tls_version = self.sock.version()
        self._file = self.sock.makefile("rb")
        self.conn = Connection(Role.CLIENT)
        self.greeting: Event = self._next()

    @classmethod
    def to(cls, server: Any, **kwargs: Any) -> WireClient:
        return cls(server.host, server.port, **kwargs)

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()
        self.sock.close()

    # --- low level ------------------------------------------------------------

    def _next(self) -> Event:
        while True:
            event = self.conn.next_event()
            if event is not NEED_DATA:
                return event
            self.conn.receive_data(self._file.readline())

    def request(self, command: Command) -> Reply:
        self.sock.sendall(self.conn.send(command))
        reply = self._next()
        assert isinstance(reply, Reply), reply
        return reply

    def pipeline(self, *commands: Command) -> list[Event]:
        """Write several commands in one go, as a pipelining client does; their replies."""
        self.sock.sendall(b"".join([self.conn.send(command) for command in commands]))
        return [self._next() for _ in commands]

    def raw(self, line: bytes) -> tuple[int, str]:
        """Send raw bytes; the status and text of the single reply line."""
        self.sock.sendall(line)
        return self.read_line()

    def read_line(self) -> tuple[int, str]:
        line = self._file.readline()
        assert line, "the server closed the connection"
        return split_reply(line.rstrip(b"\r\n"))

    def is_closed(self) -> bool:
        """True once the server has closed its side (EOF, close_notify, or reset)."""
        try:
            return self._file.readline() == b""
        except (ssl.SSLError, ConnectionError):
            return True

    # --- protocol steps ---------------------------------------------------------

    def register(
        self, address: Address, identity: Identity, invitation: str | None = None
    ) -> Reply:
        """REGISTER (or REGISTER_INVITATION) and, if challenged, the answer."""
        command: Command = (
            Register(address, identity.public)
            if invitation is None
            else RegisterInvitation(address, invitation, identity.public)
        )
        reply = self.request(command)
        if not isinstance(reply, Challenge):
            return reply
        answer = answer_challenge(identity, address, reply.server_key, reply.challenge)
        return self.request(ChallengeAccepted(answer))

    def login(self, address: Address, identity: Identity, server_key: PublicKey) -> Reply:
        nonce = self.request(Login(address))
        assert isinstance(nonce, LoginNonce), nonce
        return self.request(Proof(login_proof(identity, address, server_key, nonce.nonce)))

    def send_message(
        self, sender: Address, identity: Identity, receiver: Address, content: Content
    ) -> Reply:
        """SEND then MESSAGE, sealed exactly as a real client seals it."""
        ready = self.request(Send(receiver))
        if not isinstance(ready, SendReady):
            return ready
        payload = client_payload(sender, identity, receiver, ready, content)
        return self.request(Message(sender, payload))


def client_payload(
    sender: Address, identity: Identity, receiver: Address, ready: SendReady, content: Content
) -> bytes:
    sealed = seal_message(sender, identity, receiver, ready.receiver_key, content)
    return seal_client_message(sender, identity, receiver, ready.server_key, sealed)


def code_of(reply: Event) -> int:
    """The status code of a reply (error or success); 0 for the greeting, -1 for EOF."""
    if isinstance(reply, ErrorReply):
        return reply.status
    if isinstance(reply, ConnectionClosed):
        return -1
    if isinstance(reply, Reply):
        return reply.code
    raise AssertionError(f"not a reply: {reply!r}")
