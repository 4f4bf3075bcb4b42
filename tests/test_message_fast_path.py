"""MESSAGE lines parsed from bytes (no text round trip of the payload) give exactly
what the general, text path gives: the same command, or the same status and text."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rune_proto import wire_readers
from rune_proto.encoding import b64encode
from rune_proto.errors import RemoteProtocolError
from rune_proto.events import Command, Message
from rune_proto.wire_readers import parse_command, parse_command_text

MAX_PAYLOAD = 64


def outcome(parse: object, line: bytes) -> Command | tuple[int, str]:
    try:
        return parse(line, max_payload=MAX_PAYLOAD)  # type: ignore[operator, no-any-return]
    except RemoteProtocolError as exc:
        return (exc.status, str(exc))


pieces = st.sampled_from(
    [
        b"MESSAGE ",
        b"message ",
        b"a@example.org",
        b"b@exa mple.org",
        b" ",
        b"",
        b"QUJD",
        b"QUI",
        b"QUJ",  # a non-canonical tail
        b"AA==",
        b"+/",
        b"\r",
        b"\0",
        b"\xc3\xa9",
        b"\xff",
        b"-_",
        b"A" * 90,  # decodes to more than MAX_PAYLOAD
    ]
)


@given(st.lists(pieces, min_size=1, max_size=6))
def test_the_bytes_path_agrees_with_the_text_path(parts: list[bytes]) -> None:
    line = b"MESSAGE " + b"".join(parts)
    assert outcome(parse_command, line) == outcome(parse_command_text, line)


def test_a_real_message_line_takes_the_bytes_path(monkeypatch: pytest.MonkeyPatch) -> None:
    payload = os.urandom(18_724)
    line = f"MESSAGE alice@example.org {b64encode(payload)}".encode("ascii")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the text path decoded a valid MESSAGE line")

    monkeypatch.setattr(wire_readers, "parse_command_text", refuse)
    command = parse_command(line, max_payload=1 << 20)
    assert isinstance(command, Message) and command.payload == payload
    assert str(command.sender) == "alice@example.org"
