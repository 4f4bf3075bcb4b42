"""A registered sender signs hostile content: the receiver gets one unreadable message, no more.

Every case here is a MESSAGE correctly signed by a real sender identity and wrapped in a
real STORED MESSAGE signed by a server identity, opened by the real receiver path
(:func:`open_retrieved`). The only outcomes allowed are a verified message whose content
round-trips exactly, or an unreadable one whose reason is short and human (no Python
exception text). Nothing may raise.
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rune_proto.address import parse_address
from rune_proto.client import ContactBook, ReceivedMessage, ReplayLog
from rune_proto.client.messages import open_retrieved
from rune_proto.content import ContentError, filename_problem
from rune_proto.encoding import b64decode, b64encode
from rune_proto.envelope import Attachment, Content, seal_message, seal_stored_message
from rune_proto.keys import Identity
from rune_tui.filenames import safe_filename
from tests.hardening.poison import POISON_DATA_ARRAY, seal_raw_message

ALICE = parse_address("alice@example.org")
BOB = parse_address("bob@example.org")
ALICE_ID = Identity(bytes(range(128)))
BOB_ID = Identity(bytes(range(1, 129)))
SERVER_ID = Identity(bytes(range(2, 130)))
MESSAGE_ID = "5b0e4a528b1e4f379c550d6a4e2f1c3b"
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
# Words that only Python's own exception texts use; a reason meant for people has none.
PYTHON_WORDS = (
    "NoneType",
    "object has",
    "object is not",
    "Error",
    "Traceback",
    "Expecting",
    "line 1 column",
    "(char ",
    "'",
)


def deliver(content_json: bytes) -> ReceivedMessage:
    """Sign ``content_json`` as alice, wrap it as the server would, open it as bob."""
    sealed = seal_raw_message(ALICE, ALICE_ID, BOB, BOB_ID.public, content_json)
    blob = seal_stored_message(SERVER_ID, BOB, BOB_ID.public, ALICE, sealed)
    return open_retrieved(
        str(uuid.uuid4()),
        blob,
        identity=BOB_ID,
        address=BOB,
        server_key=SERVER_ID.public,
        contacts=ContactBook(),
        replays=ReplayLog(),
    )


def reason_of(message: ReceivedMessage) -> str:
    assert message.unreadable and not message.verified
    (reason,) = message.verification.problems
    return reason


def check_outcome(raw: bytes) -> ReceivedMessage:
    """The property: verified and exact, or unreadable with a human reason. Never raises."""
    message = deliver(raw)
    if message.unreadable:
        reason = reason_of(message)
        assert message.sender == ALICE  # the server's word is still shown
        assert 0 < len(reason) <= 160 and reason.isprintable(), reason
        assert not any(word in reason for word in PYTHON_WORDS), reason
        assert (message.subject, message.body, message.attachments) == ("", "", ())
        return message
    assert message.verified, message.verification.problems
    doc = json.loads(raw)  # what any other JSON reader makes of the same signed bytes
    assert message.subject == doc["subject"] and message.body == doc["body"]
    assert message.in_reply_to == doc.get("in_reply_to")
    files = [(a["filename"], b64decode(a["data"])) for a in doc.get("attachments", [])]
    assert [(a.filename, a.data) for a in message.attachments] == files
    for text in (message.subject, message.body, *(a.filename for a in message.attachments)):
        text.encode("utf-8")  # every string can be written out again
    again = Content(message.subject, message.body, message.attachments, message.in_reply_to)
    assert Content.from_json(again.to_json()) == again
    return message


# -- targeted cases ------------------------------------------------------------------


def content(**members: Any) -> bytes:
    doc: dict[str, Any] = {"subject": "s", "body": "b", **members}
    return json.dumps(doc).encode()


def attachment(name: Any = "a.txt", data: Any = "") -> bytes:
    return content(
        attachments=[{"filename": "ok.txt", "data": ""}, {"filename": name, "data": data}]
    )


HOSTILE = {
    "data-array": (POISON_DATA_ARRAY, "attachment 1 has no data text"),
    "attachments-null": (content(attachments=None), "the attachments are not a list"),
    "duplicate-subject": (
        b'{"subject":"pay alice","subject":"pay mallory","body":"b","attachments":[]}',
        'the member "subject" appears twice',
    ),
    "duplicate-in-attachment": (
        b'{"subject":"s","body":"b","attachments":[{"filename":"a","filename":"b","data":""}]}',
        'the member "filename" appears twice',
    ),
    "name-empty": (attachment(""), "attachment 2 has no valid file name: it is empty"),
    "name-traversal": (attachment("../../x"), "attachment 2 has no valid file name"),
    "name-slash": (attachment("a/b"), "it contains a path separator"),
    "name-backslash": (attachment("a\\b"), "it contains a path separator"),
    "name-dotdot": (attachment(".."), "it is a folder name"),
    "name-dot": (attachment("."), "it is a folder name"),
    "name-nul": (attachment("a\x00b"), "it contains a control character"),
    "name-newline": (attachment("a\nb"), "it contains a control character"),
    "name-c1": (attachment("a\x85b"), "it contains a control character"),
    "name-bidi": (attachment("invoice\u202egnp.exe"), "it contains a control character"),
    "name-leading-space": (attachment(" a.txt"), "starts or ends with white space"),
    "name-300-bytes": (attachment("x" * 300), "it is longer than 255 bytes"),
    "name-surrogate": (
        b'{"subject":"s","body":"b","attachments":[{"filename":"\\ud800","data":""}]}',
        "attachment 1 has no valid file name",
    ),
    "name-number": (attachment(7), "the content holds a number where text is expected"),
    "data-padded": (attachment("a", "YQ=="), "attachment 2 has data that is not base64url"),
    "data-standard-alphabet": (attachment("a", "a+b/"), "data that is not base64url"),
    "in-reply-to-uuid": (
        content(in_reply_to="5b0e4a52-8b1e-4f37-9c55-0d6a4e2f1c3b"),
        "in_reply_to is not a message id",
    ),
    "in-reply-to-upper": (content(in_reply_to=MESSAGE_ID.upper()), "in_reply_to is not a"),
    "in-reply-to-null": (content(in_reply_to=None), "in_reply_to is not text"),
    "unknown-member": (content(html="<b>hi</b>"), 'unknown member "html"'),
    "subject-surrogate": (b'{"subject":"\\udc00","body":"b"}', "the subject is not valid Unicode"),
    "body-missing": (b'{"subject":"s"}', "the content has no body"),
    "nan": (b'{"subject":"s","body":"b","x":NaN}', "the content holds NaN"),
    "infinity": (b'{"subject":"s","body":"b","x":-Infinity}', "the content holds -Infinity"),
    "huge-number": (b'{"subject":"s","body":"b","n":' + b"9" * 5000 + b"}", "a number"),
    "deep-nesting": (b"[" * 100_000, "nested too deeply"),
    "many-lists": (b'{"x":[' + b"[]," * 200_000 + b"[]]}", "too many parts"),
    "many-keys": (
        b"{" + b"".join(b'"k%d":null,' % i for i in range(20_000)) + b'"z":null}',
        "too many parts",
    ),
    "bom": (b"\xef\xbb\xbf" + content(), "byte order mark"),
    "not-utf8": (b'{"subject":"\xff","body":"b"}', "the content is not valid UTF-8"),
    "encoded-surrogate": (b'{"subject":"\xed\xa0\x80","body":"b"}', "not valid UTF-8"),
    "truncated": (b'{"subject":"s","bo', "the content is not valid JSON"),
    "raw-control-in-string": (b'{"subject":"a\x01","body":"b"}', "not valid JSON"),
    "empty": (b"", "the content is not valid JSON"),
    "array": (b"[]", "the content is not a JSON object"),
}


@pytest.mark.parametrize(("raw", "reason"), HOSTILE.values(), ids=HOSTILE.keys())
def test_signed_hostile_content_is_one_unreadable_message_with_a_human_reason(
    raw: bytes, reason: str
) -> None:
    message = check_outcome(raw)
    assert message.unreadable
    assert reason in reason_of(message)


def test_valid_content_of_every_member_still_verifies() -> None:
    raw = Content(
        "Lunch?",
        "Noon — at the usual place ✉",
        (Attachment("map.png", b"\x89PNG"), Attachment("naïve résumé.pdf", b"")),
        in_reply_to=MESSAGE_ID,
    ).to_json()
    message = check_outcome(raw)
    assert message.verified and message.in_reply_to == MESSAGE_ID
    # members in another order, escapes instead of UTF-8, attachments left out: all fine
    assert check_outcome(b'{"body":"\\u00e9","subject":"\\ud83d\\ude00"}').subject == "😀"


@pytest.mark.parametrize(
    "name", ["", "../../x", "a/b", "a\\b", "..", ".", "a\x00b", " a", "a\u2066b", "x" * 256]
)
def test_our_writer_refuses_to_produce_invalid_content(name: str) -> None:
    with pytest.raises(ContentError, match="attachment 1 has no valid file name"):
        Content("s", "b", (Attachment(name, b"x"),))
    with pytest.raises(ValueError):  # seal_message never gets there: the Content is refused
        seal_message(
            ALICE, ALICE_ID, BOB, BOB_ID.public, Content("s", "b", (Attachment(name, b""),))
        )
    with pytest.raises(ContentError, match="in_reply_to"):
        Content("s", "b", in_reply_to="not-an-id")


# -- properties ------------------------------------------------------------------------

MEMBER_NAMES = st.sampled_from(
    ["subject", "body", "attachments", "in_reply_to", "filename", "data", "", "Subject"]
)
HOSTILE_CHARS = st.sampled_from(
    ["\ud800", "\udfff", "\x00", "\x7f", "\x85", "\u202e", "/", "\ufeff"]
)
ANY_TEXT = st.text(st.characters(exclude_categories=[]) | HOSTILE_CHARS, max_size=12)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | ANY_TEXT
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(MEMBER_NAMES | ANY_TEXT, children, max_size=5)
    ),
    max_leaves=12,
)


def encode(value: Any, ascii_only: bool) -> bytes:
    """JSON text as a sender might write it; lone surrogates go out as ``\\u`` escapes or,
    without ensure_ascii, as CESU bytes (``surrogatepass``), which are not UTF-8."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass")


@st.composite
def content_shaped(draw: st.DrawFn) -> Any:
    """Mostly the real shape, with any member replaced, dropped, doubled or added."""
    doc: dict[str, Any] = {}
    for name, good in (
        ("subject", ANY_TEXT),
        ("body", ANY_TEXT),
        (
            "attachments",
            st.lists(
                st.fixed_dictionaries(
                    {
                        "filename": ANY_TEXT,
                        "data": st.binary(max_size=20).map(b64encode) | JSON_VALUES,
                    }
                ),
                max_size=3,
            ),
        ),
        ("in_reply_to", st.sampled_from([MESSAGE_ID, MESSAGE_ID[:-1], ""]) | ANY_TEXT),
    ):
        choice = draw(st.sampled_from(["good", "good", "good", "other", "absent"]))
        if choice == "good":
            doc[name] = draw(good)
        elif choice == "other":
            doc[name] = draw(JSON_VALUES)
    doc.update(draw(st.dictionaries(MEMBER_NAMES | ANY_TEXT, JSON_VALUES, max_size=1)))
    return doc


@FUZZ
@given(value=JSON_VALUES, ascii_only=st.booleans())
def test_any_json_value_signed_is_verified_or_unreadable(value: Any, ascii_only: bool) -> None:
    check_outcome(encode(value, ascii_only))


@FUZZ
@given(doc=content_shaped(), ascii_only=st.booleans(), duplicate=st.booleans())
def test_content_shaped_json_signed_is_verified_or_unreadable(
    doc: Any, ascii_only: bool, duplicate: bool
) -> None:
    raw = encode(doc, ascii_only)
    if duplicate and raw.startswith(b"{") and len(raw) > 2:
        raw = b'{"subject":"first",' + raw[1:]  # the same member twice, if doc has it
    message = check_outcome(raw)
    if duplicate and isinstance(doc, dict) and "subject" in doc:
        assert message.unreadable


@FUZZ
@given(raw=st.binary(max_size=200))
def test_any_bytes_signed_are_verified_or_unreadable(raw: bytes) -> None:
    check_outcome(raw)


@FUZZ
@given(
    subject=st.text(),
    body=st.text(),
    files=st.lists(st.tuples(st.text(min_size=1, max_size=40), st.binary(max_size=50)), max_size=3),
    reply=st.none() | st.binary(min_size=16, max_size=16).map(bytes.hex),
)
def test_everything_our_writer_accepts_verifies_and_round_trips(
    subject: str, body: str, files: list[tuple[str, bytes]], reply: str | None
) -> None:
    attachments = tuple(Attachment(safe_filename(name), data) for name, data in files)
    written = Content(subject, body, attachments, reply)
    message = check_outcome(written.to_json())
    assert message.verified
    opened = Content(message.subject, message.body, message.attachments, message.in_reply_to)
    assert opened == written


@FUZZ
@given(name=st.text(st.characters(exclude_categories=[]) | HOSTILE_CHARS, max_size=300))
def test_safe_filename_always_gives_a_name_the_protocol_accepts(name: str) -> None:
    assert filename_problem(safe_filename(name)) is None


def test_floats_never_reach_the_content() -> None:
    """NaN and infinities are not JSON; Python's writer emits them anyway. Refused."""
    for value in (math.nan, math.inf, -math.inf, 1.5):
        message = check_outcome(encode({"subject": "s", "body": "b", "x": value}, True))
        assert message.unreadable
