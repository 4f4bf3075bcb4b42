"""Index rows: the layout of one row, :class:`Summary` over it, and the sort key.

A row is a JSON list kept exactly as ``json.loads`` gave it back; :class:`Summary` reads it
by position and makes a Python object of a field only when it is read, so opening 10,000
rows costs one object each. Senders and verification outcomes repeat, so a row points into
tables (``MessageCache.senders`` / ``.checks``) instead of holding them.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Protocol

from rune_proto.address import Address, parse_address
from rune_proto.client import KeyChange, ReceivedMessage, Verification
from rune_proto.envelope import Attachment
from rune_proto.keys import PublicKey


class RowSource(Protocol):
    """What a :class:`Summary` reads from its cache (store.MessageCache is one): typed
    here so that rows.py need not import store.py, which imports it."""

    senders: list[Address | None]
    checks: list[Verification]

    def opened(self, summary: Summary) -> ReceivedMessage: ...


# A row of the index, as JSON gives it back (kept as is: Summary reads it by position).
ID, WHEN, SENDER, SUBJECT, SIZE, MID, REPLY, SENT, CHECK, FILES, READ = range(11)
FIELDS = 11

# Verification flags, one bit each.
_DECRYPTED, _SERVER_SIG, _SENDER_SIG, _TO_ME, _SENDER_MATCH, _REPLAY = (1, 2, 4, 8, 16, 32)


def encode_check(check: Verification) -> list[Any]:
    """A verification outcome as the index stores it: flags, problems, key change."""
    flags = (
        (_DECRYPTED if check.decrypted else 0)
        | (_SERVER_SIG if check.server_signature else 0)
        | (_SENDER_SIG if check.sender_signature else 0)
        | (_TO_ME if check.addressed_to_me else 0)
        | (_SENDER_MATCH if check.sender_match else 0)
        | (_REPLAY if check.replay else 0)
    )
    change = check.key_change
    key_change = None if change is None else [str(change.address), change.pinned, change.offered]
    return [flags, list(check.problems), key_change]


def decode_check(raw: Any) -> Verification:
    """The inverse of :func:`encode_check`; ValueError (or a TypeError) if malformed."""
    flags, problems, change = raw
    if type(flags) is not int or not all(type(p) is str for p in problems):
        raise ValueError("a verification entry is malformed")
    key_change = None
    if change is not None:
        address, pinned, offered = change
        key_change = KeyChange(parse_address(address), str(pinned), str(offered))
    return Verification(
        decrypted=bool(flags & _DECRYPTED),
        server_signature=bool(flags & _SERVER_SIG),
        sender_signature=bool(flags & _SENDER_SIG),
        addressed_to_me=bool(flags & _TO_ME),
        sender_match=bool(flags & _SENDER_MATCH),
        replay=bool(flags & _REPLAY),
        key_change=key_change,
        problems=tuple(problems),
    )


def timestamp(when: datetime | None) -> int | float | None:
    """A time as the index stores it: whole seconds as an int (shorter JSON)."""
    if when is None:
        return None
    stamp = when.timestamp()
    return int(stamp) if stamp.is_integer() else stamp


class Summary(ReceivedMessage):
    """One cached message as the inbox lists it: headers now, the body when it is read.

    A :class:`ReceivedMessage` to every screen: ``id``, ``sender``, ``subject``,
    ``received_at``, ``verification``, ``message_id``, ``in_reply_to``, ``sent_at`` and
    ``size`` come from the index without any decryption; ``body``, ``attachments`` and
    ``sender_key`` open the blob on first use (see :meth:`MessageCache.message`). ``files``
    lists attachment names and sizes without opening anything.
    """

    __slots__ = ("_cache", "_row")
    _cache: RowSource
    _row: list[Any]

    def __init__(self, cache: RowSource, row: list[Any]) -> None:  # not the dataclass's
        object.__setattr__(self, "_cache", cache)
        object.__setattr__(self, "_row", row)

    @property
    def id(self) -> str:
        value: str = self._row[ID]
        return value

    @property
    def size(self) -> int:
        value: int = self._row[SIZE]
        return value

    @property
    def sender(self) -> Address | None:
        index: int = self._row[SENDER]
        return self._cache.senders[index]

    @property
    def received_at(self) -> datetime | None:
        stamp = self._row[WHEN]
        return None if stamp is None else datetime.fromtimestamp(stamp, UTC)

    @property
    def subject(self) -> str:
        value: str = self._row[SUBJECT]
        return value

    @property
    def message_id(self) -> str | None:
        value: str | None = self._row[MID]
        return value

    @property
    def in_reply_to(self) -> str | None:
        value: str | None = self._row[REPLY]
        return value

    @property
    def sent_at(self) -> datetime | None:
        millis = self._row[SENT]
        return None if millis is None else datetime.fromtimestamp(millis / 1000, UTC)

    @property
    def verification(self) -> Verification:
        index: int = self._row[CHECK]
        return self._cache.checks[index]

    @property
    def files(self) -> tuple[tuple[str, int], ...]:
        """(name, size) of each attachment, from the index."""
        return tuple((str(name), int(size)) for name, size in self._row[FILES])

    # -- opened on demand --------------------------------------------------------------

    @property
    def body(self) -> str:
        return self._cache.opened(self).body

    @property
    def attachments(self) -> tuple[Attachment, ...]:
        if not self._row[FILES]:
            return ()
        return self._cache.opened(self).attachments

    @property
    def sender_key(self) -> PublicKey | None:
        return self._cache.opened(self).sender_key

    # -- identity: by row, never by content (comparing must not decrypt) ----------------

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Summary):
            return other._cache is self._cache and other._row[ID] == self._row[ID]
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._row[ID])

    def __repr__(self) -> str:
        return f"Summary(id={self.id!r})"


SET_ROW = Summary.__dict__["_row"].__set__  # slot setters: no __init__ call per row
SET_CACHE = Summary.__dict__["_cache"].__set__
_NONE = type(None)


def _types(column: tuple[Any, ...]) -> set[type]:
    return set(map(type, column))


def check_columns(rows: list[list[Any]], senders: int, checks: int) -> None:
    """ValueError unless every row has the index's shape and types (at C speed)."""
    if _types(tuple(rows)) != {list} or set(map(len, rows)) != {FIELDS}:
        raise ValueError("an index row is malformed")
    columns = list(zip(*rows, strict=True))
    sender, check = columns[SENDER], columns[CHECK]
    if not (
        _types(columns[ID]) == {str}
        and _types(columns[SUBJECT]) == {str}
        and _types(sender) == {int}
        and _types(check) == {int}
        and min(sender) >= 0
        and max(sender) < senders
        and min(check) >= 0
        and max(check) < checks
        and _types(columns[SIZE]) == {int}
        and _types(columns[WHEN]) <= {int, float, _NONE}
        and _types(columns[SENT]) <= {int, _NONE}
        and _types(columns[MID]) <= {str, _NONE}
        and _types(columns[REPLY]) <= {str, _NONE}
        and _types(columns[FILES]) == {list}
        and len(set(columns[ID])) == len(rows)
    ):
        raise ValueError("an index row is malformed")


def received_key(message: ReceivedMessage) -> float:
    """Sort key: the server's receive time, unknown times first (last when reversed).

    The server stamps whole seconds, so messages that arrived within one second are
    ordered by the sender's sent time, squashed into less than half a second either way
    (monotonic, so it never crosses into the next second). A float, not a tuple: sorting
    10,000 rows stays under 2 ms.
    """
    if type(message) is Summary:
        row = message._row
        stamp, sent = row[WHEN], row[SENT]
        if stamp is None:
            return -math.inf
        if sent is None:
            return float(stamp)
        offset = sent / 1000 - stamp
    else:
        when, sent_at = message.received_at, message.sent_at
        if when is None:
            return -math.inf
        stamp = when.timestamp()
        if sent_at is None:
            return float(stamp)
        offset = sent_at.timestamp() - stamp
    return float(stamp + 0.49 * offset / (1 + abs(offset)))


def row_of(
    message_id: str, message: ReceivedMessage, size: int, sender: int, check: int
) -> list[Any]:
    """A new index row for ``message`` (``sender`` and ``check`` index the tables), unread."""
    sent = message.sent_at
    return [
        message_id,
        timestamp(message.received_at),
        sender,
        message.subject,
        size,
        message.message_id,
        message.in_reply_to,
        None if sent is None else round(sent.timestamp() * 1000),
        check,
        [[a.filename, len(a.data)] for a in message.attachments],
        0,
    ]
