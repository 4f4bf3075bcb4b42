"""The innermost part of a MESSAGE: what the user wrote, as strict UTF-8 JSON (§9.4).

The content is signed by a registered sender, so it is trusted to be *theirs*, never to be
well formed. One parser reads it, strictly: exact members, exact types, no duplicate
members (two parsers that pick different duplicates would show two subjects for the same
signed bytes), file names that are safe to show and to save, canonical base64url data.
Every failure is :class:`ContentError` with a short reason a person can read; the envelope
turns it into an ``EnvelopeError``. The writer runs the same checks, so our own client
never produces content that a receiver would refuse.
"""

from __future__ import annotations

import json
import json.decoder as json_decoder
import json.scanner as json_scanner
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NoReturn

from .encoding import EncodingError, b64decode, b64encode

MAX_FILENAME_BYTES = 255  # UTF-8 octets; what common file systems allow for one name
MAX_ATTACHMENTS = 1000
MEMBERS = frozenset({"subject", "body", "attachments", "in_reply_to"})
REQUIRED_MEMBERS = ("subject", "body")
ATTACHMENT_MEMBERS = frozenset({"filename", "data"})
_MESSAGE_ID = re.compile(r"[0-9a-f]{32}")
# C0, DEL, C1, and the Unicode bidi controls (ALM, LRM, RLM, LRE…RLO, LRI…PDI): a name
# with them can hide its real extension ("invoice\u202egnp.exe") or break a terminal.
_FORBIDDEN_IN_NAME = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


class ContentError(ValueError):
    """Content that breaks §9.4; ``reason`` is short and meant for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def filename_problem(name: str) -> str | None:
    """Why ``name`` is not a valid attachment file name, or None if it is.

    Valid: non-empty, at most 255 UTF-8 octets, not ``.`` or ``..``, no ``/`` or ``\\``,
    no control or bidi characters, no whitespace at either end, encodable as UTF-8.
    """
    if not name:
        return "is empty"
    if name in (".", ".."):
        return "is a folder name"
    if "/" in name or "\\" in name:
        return "contains a path separator"
    if _FORBIDDEN_IN_NAME.search(name):
        return "contains a control character"
    if name != name.strip():
        return "starts or ends with white space"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid Unicode"
    if size > MAX_FILENAME_BYTES:
        return f"is longer than {MAX_FILENAME_BYTES} bytes"
    return None


def _require_text(value: str, what: str) -> None:
    """A str from JSON may hold a lone surrogate (``"\\ud800"``), which cannot be written
    out again as UTF-8: refuse it here, not when a screen or a file tries to encode it."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ContentError(f"the {what} is not valid Unicode") from None


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Content:
    """What the user wrote. Construction checks §9.4 and raises :class:`ContentError`
    (a ValueError), so invalid content can neither be sent nor come out of a parse."""

    subject: str
    body: str
    attachments: tuple[Attachment, ...] = ()
    in_reply_to: str | None = None

    def __post_init__(self) -> None:
        _require_text(self.subject, "subject")
        _require_text(self.body, "body")
        if self.in_reply_to is not None and not _MESSAGE_ID.fullmatch(self.in_reply_to):
            raise ContentError("in_reply_to is not a message id (32 lower-case hex digits)")
        if len(self.attachments) > MAX_ATTACHMENTS:
            raise ContentError(f"a message carries at most {MAX_ATTACHMENTS} attachments")
        for number, attachment in enumerate(self.attachments, 1):
            problem = filename_problem(attachment.filename)
            if problem is not None:
                raise ContentError(f"attachment {number} has no valid file name: it {problem}")

    def to_json(self) -> bytes:
        doc: dict[str, object] = {
            "subject": self.subject,
            "body": self.body,
            "attachments": [
                {"filename": a.filename, "data": b64encode(a.data)} for a in self.attachments
            ],
        }
        if self.in_reply_to is not None:
            doc["in_reply_to"] = self.in_reply_to
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def json_size(
        cls,
        subject: str,
        body: str,
        attachments: Iterable[tuple[str, int]] = (),
        in_reply_to: str | None = None,
    ) -> int:
        """The length of :meth:`to_json` for this content, from the attachments' names and
        sizes alone (exact): a client can show the size as it is typed without reading a
        file. Nothing is validated here; :meth:`validate` does that when it is made.
        """
        names = [(name, size) for name, size in attachments]
        doc: dict[str, object] = {
            "subject": subject,
            "body": body,
            "attachments": [{"filename": name, "data": ""} for name, _ in names],
        }
        if in_reply_to is not None:
            doc["in_reply_to"] = in_reply_to
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return len(text) + sum(-(-4 * size // 3) for _, size in names)  # unpadded base64

    @classmethod
    def from_json(cls, raw: bytes) -> Content:
        """Parse content strictly; every failure is :class:`ContentError`."""
        doc = _load(raw)
        if not isinstance(doc, dict):
            raise ContentError("the content is not a JSON object")
        unknown = sorted(set(doc) - MEMBERS)
        if unknown:
            raise ContentError(f"the content has an unknown member {_quote(unknown[0])}")
        for name in REQUIRED_MEMBERS:
            if name not in doc:
                raise ContentError(f"the content has no {name}")
        subject, body = doc["subject"], doc["body"]
        reply = doc.get("in_reply_to")
        if not isinstance(subject, str):
            raise ContentError("the subject is not text")
        if not isinstance(body, str):
            raise ContentError("the body is not text")
        if "in_reply_to" in doc and not isinstance(reply, str):
            raise ContentError("in_reply_to is not text")
        return cls(subject, body, _attachments(doc.get("attachments", [])), reply)


def _attachments(value: Any) -> tuple[Attachment, ...]:
    if not isinstance(value, list):
        raise ContentError("the attachments are not a list")
    if len(value) > MAX_ATTACHMENTS:
        raise ContentError(f"a message carries at most {MAX_ATTACHMENTS} attachments")
    files: list[Attachment] = []
    for number, entry in enumerate(value, 1):
        if not isinstance(entry, dict) or set(entry) != ATTACHMENT_MEMBERS:
            raise ContentError(f"attachment {number} is not a filename and data pair")
        name, data = entry["filename"], entry["data"]
        if not isinstance(name, str):
            raise ContentError(f"attachment {number} has no valid file name")
        if not isinstance(data, str):
            raise ContentError(f"attachment {number} has no data text")
        try:
            files.append(Attachment(name, b64decode(data)))
        except EncodingError:
            raise ContentError(f"attachment {number} has data that is not base64url") from None
    return tuple(files)


class _Refused(Exception):
    """Raised from inside the JSON parser's hooks; carries the reason out."""


def _refuse(reason: str) -> NoReturn:
    raise _Refused(reason)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                _refuse(f"the member {_quote(key)} appears twice")
            seen.add(key)
    return doc


def _no_number(text: str) -> NoReturn:
    # No member is a number: refuse early, before a 10,000-digit integer is converted.
    _refuse("the content holds a number where text is expected")


def _no_constant(text: str) -> NoReturn:
    _refuse(f"the content holds {text}, which JSON does not allow")


# The stdlib decoder's building blocks (not in typeshed, stable since Python 2.7).
_JSON_OBJECT: Callable[..., Any] = vars(json_decoder)["JSONObject"]
_JSON_ARRAY: Callable[..., Any] = vars(json_decoder)["JSONArray"]
_SCANSTRING: Callable[..., Any] = vars(json_decoder)["scanstring"]
_PY_SCANNER: Callable[..., Any] = vars(json_scanner)["py_make_scanner"]
MAX_DEPTH = 4  # object → attachments → attachment is 3; anything deeper is refused
MAX_TOKENS = 4 + 3 + 1 + 5 * MAX_ATTACHMENTS + 100  # members, values, and a little slack


class _Budget(dict[str, str]):
    """Counts the parts of one document as it is parsed: containers, strings and keys.

    Valid content has a few thousand parts at most, so a hostile sender's million empty
    lists or keys is refused after a few thousand, not turned into a gigabyte of objects
    before a schema check could look at it. A dict because the parser memoises object keys
    through ``setdefault``, which is the one place it shows every key to us.
    """

    def __init__(self) -> None:
        super().__init__()
        self.parts = 0
        self.depth = 0

    def spend(self) -> None:
        self.parts += 1
        if self.parts > MAX_TOKENS:
            _refuse("the content has too many parts")

    def setdefault(self, key: str, default: str | None = None) -> str:
        self.spend()
        return key


def _parser() -> json.JSONDecoder:
    """A JSON decoder whose containers, strings and keys are counted and depth-limited.

    The stdlib's pure-Python scanner takes its container and string readers from the
    decoder's attributes (the C one does not), so the limits apply while parsing; strings
    are still read by the C ``scanstring``, so a 10 MiB attachment costs no more.
    """
    budget = _Budget()
    parser = json.JSONDecoder(
        object_pairs_hook=_no_duplicates,
        parse_int=_no_number,
        parse_float=_no_number,
        parse_constant=_no_constant,
    )

    def nested(read: Callable[..., Any]) -> Callable[..., Any]:
        def read_counted(*args: Any) -> Any:
            budget.spend()
            budget.depth += 1
            if budget.depth > MAX_DEPTH:
                _refuse("the content is nested too deeply")
            try:
                return read(*args)
            finally:
                budget.depth -= 1

        return read_counted

    def read_string(text: str, end: int, strict: bool) -> tuple[str, int]:
        budget.spend()
        found: tuple[str, int] = _SCANSTRING(text, end, strict)
        return found

    # Typeshed does not describe these attributes, so they are set through __dict__.
    parser.__dict__.update(
        parse_object=nested(_JSON_OBJECT),
        parse_array=nested(_JSON_ARRAY),
        parse_string=read_string,
        memo=budget,
    )
    parser.__dict__["scan_once"] = _PY_SCANNER(parser)
    return parser


def _load(raw: bytes) -> Any:
    if raw.startswith(b"\xef\xbb\xbf"):
        raise ContentError("the content starts with a byte order mark")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ContentError("the content is not valid UTF-8") from None
    try:
        return _parser().decode(text)
    except _Refused as exc:
        raise ContentError(str(exc)) from None
    except RecursionError:  # not reachable with MAX_DEPTH; kept so it can never escape
        raise ContentError("the content is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError; its position says where, not what
        where = f" (at character {exc.pos})" if isinstance(exc, json.JSONDecodeError) else ""
        raise ContentError(f"the content is not valid JSON{where}") from None


def _quote(name: str) -> str:
    """A member name from the sender, made short and printable for a reason text."""
    shown = "".join(ch if ch.isprintable() else "?" for ch in name[:40])
    return json.dumps(shown + ("…" if len(name) > 40 else ""), ensure_ascii=True)
