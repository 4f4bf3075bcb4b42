"""Proofs of key possession: the registration challenge and the login proof.

Registration proves both halves of a new identity in one round trip: the client can
only read the nonce with its KEM key, and its answer carries an Ed25519 signature.

    challenge = HPKE(client, nonce, info=CTX_REGISTER)
                ‖ Ed25519_server(canonical(CTX_REGISTER, address, client_key, server_key, ct))
    answer    = HPKE(server, nonce ‖ Ed25519_client(canonical(CTX_REGISTER_ANSWER,
                     address, client_key, server_key, nonce)), info=CTX_REGISTER_ANSWER)

Login is a signature over a fresh server nonce:

    proof = Ed25519_client(canonical(CTX_LOGIN, server_key, address, nonce))
"""

from __future__ import annotations

import hmac
import os

from .address import Address
from .encoding import canonical
from .keys import SIGNATURE_SIZE, Identity, PublicKey
from .suite import (
    CTX_LOGIN,
    CTX_REGISTER,
    CTX_REGISTER_ANSWER,
    HPKE_OVERHEAD,
    EnvelopeError,
    open_sealed,
    seal,
)

NONCE_SIZE = 32
CHALLENGE_CIPHERTEXT_SIZE = HPKE_OVERHEAD + NONCE_SIZE
CHALLENGE_SIZE = CHALLENGE_CIPHERTEXT_SIZE + SIGNATURE_SIZE
ANSWER_SIZE = HPKE_OVERHEAD + NONCE_SIZE + SIGNATURE_SIZE


def new_nonce() -> bytes:
    return os.urandom(NONCE_SIZE)


def _challenge_signed(
    address: Address, client_key: PublicKey, server_key: PublicKey, ciphertext: bytes
) -> bytes:
    return canonical(CTX_REGISTER, address.encode(), client_key.raw, server_key.raw, ciphertext)


def _answer_signed(
    address: Address, client_key: PublicKey, server_key: PublicKey, nonce: bytes
) -> bytes:
    return canonical(CTX_REGISTER_ANSWER, address.encode(), client_key.raw, server_key.raw, nonce)


def make_challenge(
    server: Identity, address: Address, client_key: PublicKey, nonce: bytes
) -> bytes:
    """Server side: the ``205`` challenge token's bytes."""
    ciphertext = seal(client_key.kem, nonce, CTX_REGISTER)
    return ciphertext + server.sign(
        _challenge_signed(address, client_key, server.public, ciphertext)
    )


def answer_challenge(
    identity: Identity, address: Address, server_key: PublicKey, challenge: bytes
) -> bytes:
    """Client side: verify the server's signature, read the nonce, return the answer bytes."""
    if len(challenge) != CHALLENGE_SIZE:
        raise EnvelopeError(f"challenge is {len(challenge)} bytes, expected {CHALLENGE_SIZE}")
    ciphertext, signature = challenge[:-SIGNATURE_SIZE], challenge[-SIGNATURE_SIZE:]
    if not server_key.verify(
        signature, _challenge_signed(address, identity.public, server_key, ciphertext)
    ):
        raise EnvelopeError("server's signature on the challenge does not verify")
    nonce = open_sealed(identity.kem, ciphertext, CTX_REGISTER, what="challenge")
    if len(nonce) != NONCE_SIZE:
        raise EnvelopeError("challenge nonce has the wrong size")
    proof = identity.sign(_answer_signed(address, identity.public, server_key, nonce))
    return seal(server_key.kem, nonce + proof, CTX_REGISTER_ANSWER)


def check_answer(
    server: Identity, address: Address, client_key: PublicKey, nonce: bytes, answer: bytes
) -> None:
    """Server side: raise :class:`EnvelopeError` unless the answer proves both keys."""
    inner = open_sealed(
        server.kem, answer, CTX_REGISTER_ANSWER, what="challenge answer", exact_size=ANSWER_SIZE
    )
    got, signature = inner[:NONCE_SIZE], inner[NONCE_SIZE:]
    if not hmac.compare_digest(got, nonce):
        raise EnvelopeError("challenge answer carries the wrong nonce")
    if not client_key.verify(signature, _answer_signed(address, client_key, server.public, nonce)):
        raise EnvelopeError("client's signature on the challenge answer does not verify")


def _login_signed(server_key: PublicKey, address: Address, nonce: bytes) -> bytes:
    return canonical(CTX_LOGIN, server_key.raw, address.encode(), nonce)


def login_proof(identity: Identity, address: Address, server_key: PublicKey, nonce: bytes) -> bytes:
    return identity.sign(_login_signed(server_key, address, nonce))


def check_login_proof(
    client_key: PublicKey, address: Address, server_key: PublicKey, nonce: bytes, proof: bytes
) -> bool:
    return client_key.verify(proof, _login_signed(server_key, address, nonce))
