"""Behaviours of libraries that docs/protocol.md states as the protocol's rule.

§6.6 says how Ed25519 signatures are verified and §3.1 when the client sends SNI;
both come from libraries (``cryptography``/OpenSSL, Python's ``ssl``), so a library
upgrade could change them silently. These tests make the spec's statements fail loudly.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from rune_proto.client.tls import open_pinned
from rune_proto.keys import Identity, PublicKey
from rune_proto.server.datadir import self_signed_certificate

L = 2**252 + 27742317777372353535851937790883648493
P = 2**255 - 19
IDENTITY_POINT = (1).to_bytes(32, "little")  # y = 1: the neutral element
ORDER_2_POINT = (P - 1).to_bytes(32, "little")  # y = -1: the point of order 2
NON_CANONICAL_IDENTITY = (P + 1).to_bytes(32, "little")  # y = 1 written as p + 1
KEM_PART = Identity(bytes(range(128))).public.raw[32:]


def key_with_ed25519(a: bytes) -> PublicKey:
    """A Rune public key whose Ed25519 part is ``a`` (any KEM part will do)."""
    return PublicKey.from_bytes(a + KEM_PART)


def test_s_at_or_above_the_group_order_is_rejected() -> None:
    signer = Identity(bytes(range(128)))
    signature = signer.sign(b"hello")
    s = int.from_bytes(signature[32:], "little")
    assert signer.public.verify(signature, b"hello")
    assert not signer.public.verify(signature[:32] + (s + L).to_bytes(32, "little"), b"hello")


def test_verification_is_cofactorless() -> None:
    """With A of order 2, R = identity and S = 0, [S]B = R + [k]A holds iff k is even.

    A cofactored verifier (checking [8][S]B = [8]R + [8][k]A) accepts every message.
    """
    key = key_with_ed25519(ORDER_2_POINT)
    results = {key.verify(IDENTITY_POINT + bytes(32), bytes([i])) for i in range(16)}
    assert results == {True, False}


def test_r_is_compared_by_its_encoding() -> None:
    key = key_with_ed25519(IDENTITY_POINT)
    assert key.verify(IDENTITY_POINT + bytes(32), b"any message")
    assert not key.verify(NON_CANONICAL_IDENTITY + bytes(32), b"any message")


def test_a_non_canonical_or_small_order_public_key_is_accepted() -> None:
    assert key_with_ed25519(NON_CANONICAL_IDENTITY).verify(IDENTITY_POINT + bytes(32), b"x")
    assert key_with_ed25519(IDENTITY_POINT).verify(IDENTITY_POINT + bytes(32), b"x")


@pytest.mark.parametrize(("dialled", "expected"), [("127.0.0.1", None), ("localhost", "localhost")])
async def test_the_client_sends_sni_for_a_name_and_none_for_an_ip(
    tmp_path: Path, dialled: str, expected: str | None
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed_certificate(key, "rune-server", dt.timedelta(days=1))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    seen: asyncio.Queue[str | None] = asyncio.Queue()
    context.sni_callback = lambda _sock, name, _ctx: seen.put_nowait(name)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    async with server:
        _reader, writer, _pin = await open_pinned(dialled, port, None, None, timeout=10)
        writer.close()
        assert await asyncio.wait_for(seen.get(), 10) == expected
