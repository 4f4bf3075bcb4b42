"""Searching the mailbox by sender, subject and body, in memory only.

Pure (no Textual, no network, no disk). Bodies are searched as the Mailbox holds them —
decrypted in memory; nothing here ever writes text anywhere. A query is words, all of
which must appear (case-insensitive, anywhere in a word), each in any of the three
fields or in one named field:

    budget                 sender, subject or body contains "budget"
    from:carol budget      the sender contains "carol", and any field "budget"
    subject:"next week"    quotes keep words together
    body:invoice           only the body

``SearchIndex`` keeps each message's folded text by id, so a second search over 10,000
messages costs only the comparisons (milliseconds). The first one may have to decrypt
bodies from the cache; the inbox runs it in a worker, a few milliseconds at a time, and
shows the hits as they come.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from rune_proto.address import Address

# Field names a term may start with, to what they search.
FIELDS = {"from": "sender", "sender": "sender", "subject": "subject", "body": "body"}


class Searchable(Protocol):
    """What search reads from a message (ReceivedMessage or a cached row with a body)."""

    @property
    def id(self) -> str: ...

    @property
    def sender(self) -> Address | None: ...

    @property
    def subject(self) -> str: ...


S = TypeVar("S", bound=Searchable)


@dataclass(frozen=True, slots=True)
class Term:
    text: str  # already case-folded
    field: str | None = None  # "sender", "subject", "body" or None for any


@dataclass(frozen=True, slots=True)
class Query:
    source: str  # as typed, for the status line
    terms: tuple[Term, ...]

    @property
    def empty(self) -> bool:
        return not self.terms


def parse_query(text: str) -> Query:
    """Words, ``"quoted phrases"`` and ``field:word``; an unbalanced quote is just a quote."""
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    terms = []
    for word in words:
        field = None
        name, sep, rest = word.partition(":")
        if sep and name.casefold() in FIELDS and rest:
            field, word = FIELDS[name.casefold()], rest
        folded = word.casefold()
        if folded:
            terms.append(Term(folded, field))
    return Query(text.strip(), tuple(terms))


def _body(message: Searchable) -> str:
    body: str = getattr(message, "body", "")
    return body


class SearchIndex:
    """Folded text per message id, kept while the inbox lives, so searches repeat fast.

    Senders and subjects are at hand (the cache's index); a body may have to be decrypted
    (~0.6 ms from the cache). So :meth:`quick` decides from what is known without reading
    a body — all words found in the headers, or a ``from:``/``subject:`` word missing —
    and says None when only the body can tell; :meth:`matches` reads it then. ``body_of``
    reads a body (by default the message's ``body``). Call :meth:`forget` for ids that
    are gone, so no plaintext outlives its message.
    """

    def __init__(self, body_of: Callable[[Searchable], str] = _body) -> None:
        self._body_of = body_of
        self._heads: dict[str, tuple[str, str]] = {}
        self._bodies: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._bodies)

    def _head(self, message: Searchable) -> tuple[str, str]:
        head = self._heads.get(message.id)
        if head is None:
            sender = str(message.sender).casefold() if message.sender is not None else ""
            head = (sender, message.subject.casefold())
            self._heads[message.id] = head
        return head

    def quick(self, query: Query, message: Searchable) -> bool | None:
        """True or False if known without reading an unread body; None if it takes one."""
        sender, subject = self._head(message)
        body = self._bodies.get(message.id)
        undecided = False
        for term in query.terms:
            if term.field == "sender":
                found = term.text in sender
            elif term.field == "subject":
                found = term.text in subject
            elif term.field is None and (term.text in sender or term.text in subject):
                found = True
            elif body is None:
                undecided = True
                continue
            else:
                found = term.text in body
            if not found:
                return False
        return None if undecided else True

    def matches(self, query: Query, message: Searchable) -> bool:
        found = self.quick(query, message)
        if found is None:
            self._bodies[message.id] = self._body_of(message).casefold()
            found = self.quick(query, message)
        return bool(found)

    def hits(self, query: Query, messages: Iterable[S]) -> Iterator[S]:
        """The messages that match, in the order given (lazily: the caller can pause)."""
        return (m for m in messages if self.matches(query, m))

    def forget(self, keep: Collection[str]) -> None:
        """Drop what is kept for every id not in ``keep``."""
        for cache in (self._heads, self._bodies):
            for gone in [i for i in cache if i not in keep]:
                del cache[gone]


def status_text(hits: int, total: int, query: Query) -> str:
    """``12 of 340 match 'budget'`` — what the inbox's status line says."""
    return f"{hits:,} of {total:,} match '{query.source}'"
