"""Addresses: parse, validate, normalise, compare case-insensitively, generate."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rune_proto.address import (
    MAX_ADDRESS_LENGTH,
    PART_MAX,
    PART_MIN,
    Address,
    AddressError,
    parse_address,
    random_address,
    random_part,
    validate_part,
)

ALLOWED = string.ascii_letters + string.digits + ".-_"
part = st.text(alphabet=ALLOWED, min_size=PART_MIN, max_size=PART_MAX)


def test_parse_normalises_to_lower_case() -> None:
    address = parse_address("Alice.Smith@Example-Server.ORG")
    assert address == Address("alice.smith", "example-server.org")
    assert str(address) == "alice.smith@example-server.org"
    assert address.encode() == b"alice.smith@example-server.org"


def test_addresses_compare_case_insensitively() -> None:
    assert parse_address("ALICE@EXAMPLE.ORG") == parse_address("alice@example.org")
    assert hash(parse_address("ALICE@EXAMPLE.ORG")) == hash(parse_address("alice@example.org"))
    assert parse_address("alice@example.org") != parse_address("alice@example.net")


@pytest.mark.parametrize("size", [PART_MIN, PART_MAX])
def test_part_length_boundaries_are_accepted(size: int) -> None:
    address = parse_address("u" * size + "@" + "d" * size)
    assert len(address.username) == len(address.domain) == size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("u" * (PART_MIN - 1) + "@example.org", f"not {PART_MIN - 1}"),
        ("u" * (PART_MAX + 1) + "@example.org", f"not {PART_MAX + 1}"),
        ("alice@" + "d" * (PART_MIN - 1), "the domain must be 3 to 50 characters long"),
        ("alice@" + "d" * (PART_MAX + 1), "the domain must be 3 to 50 characters long"),
        ("alice", "exactly one '@'"),
        ("a@b@c.org", "exactly one '@'"),
        ("alice@exa!mple.org", "found '!'"),
        ("aliće@example.org", "found 'ć'"),
        ("alice@example.org\r", "found '\\r'"),
        ("x" * (MAX_ADDRESS_LENGTH + 1), f"at most {MAX_ADDRESS_LENGTH} characters"),
    ],
)
def test_invalid_addresses_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_address(text)
    assert message in str(info.value)


def test_non_text_is_refused_with_an_address_error() -> None:
    with pytest.raises(AddressError, match="must be text"):
        parse_address(b"alice@example.org")  # type: ignore[arg-type]
    with pytest.raises(AddressError):
        parse_address(None)  # type: ignore[arg-type]


def test_address_error_is_a_value_error() -> None:
    assert issubclass(AddressError, ValueError)


def test_address_constructor_refuses_upper_case_and_bad_parts() -> None:
    with pytest.raises(AddressError, match="lower case"):
        Address("Alice", "example.org")
    with pytest.raises(AddressError, match="lower case"):
        Address("alice", "Example.org")
    with pytest.raises(AddressError, match="username"):
        Address("al", "example.org")
    with pytest.raises(AddressError, match="domain"):
        Address("alice", "exa mple")


def test_address_is_frozen() -> None:
    address = parse_address("alice@example.org")
    with pytest.raises(AttributeError):
        address.username = "mallory"  # type: ignore[misc]


@settings(max_examples=200)
@given(username=part, domain=part)
def test_valid_parts_round_trip_in_canonical_form(username: str, domain: str) -> None:
    text = f"{username}@{domain}"
    address = parse_address(text)
    assert str(address) == text.lower()
    assert parse_address(str(address)) == address
    assert parse_address(text.upper()) == address
    assert parse_address(text.swapcase()) == address


@settings(max_examples=300)
@given(text=st.text(max_size=120))
def test_arbitrary_text_parses_or_raises_address_error(text: str) -> None:
    try:
        address = parse_address(text)
    except AddressError as exc:
        assert str(exc)
    else:
        assert str(address) == text.lower()
        assert all(c in ALLOWED for c in text.replace("@", "", 1))


@settings(max_examples=100)
@given(bad=st.characters().filter(lambda c: c not in ALLOWED and c != "@"), username=part)
def test_any_disallowed_character_is_named(bad: str, username: str) -> None:
    text = username[:2] + bad + username[2:] + "@example.org"
    if len(text.split("@")[0]) > PART_MAX:
        return
    with pytest.raises(AddressError) as info:
        parse_address(text)
    assert repr(bad) in str(info.value)


def test_validate_part_lower_cases_and_checks() -> None:
    assert validate_part("username", "Alice_01") == "alice_01"
    with pytest.raises(AddressError, match="the username may hold only"):
        validate_part("username", "alice smith")
    with pytest.raises(AddressError, match="the domain must be"):
        validate_part("domain", "ab")


def test_random_part_uses_the_readable_alphabet() -> None:
    seen = set()
    for length in (PART_MIN, 12, PART_MAX):
        value = random_part(length)
        assert len(value) == length
        assert set(value) <= set("abcdefghijkmnpqrstuvwxyz23456789")
        assert not set(value) & set("lo01")
        seen.add(value)
    assert len({random_part() for _ in range(50)}) == 50  # 32^12 values: no repeats


@pytest.mark.parametrize("length", [0, PART_MIN - 1, PART_MAX + 1])
def test_random_part_refuses_lengths_outside_the_part_limits(length: int) -> None:
    with pytest.raises(AddressError):
        random_part(length)


def test_random_address_is_valid_on_the_given_domain() -> None:
    address = random_address("Example.ORG")
    assert address.domain == "example.org"
    assert len(address.username) == 12
    assert parse_address(str(address)) == address
    with pytest.raises(AddressError):
        random_address("x y")
