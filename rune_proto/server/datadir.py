"""Creating a data directory, and loading its secrets and public parts.

No private key is ever on disk in the clear: the TLS key is encrypted PKCS#8 PEM
(OpenSSL reads it with the passphrase) and the server identity is a
:mod:`rune_proto.secretbox` box. The public parts (certificate, ``identity.pub``)
are stored separately so ``rune-server fingerprint`` needs no passphrase.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..keys import Identity, InvalidKey, PublicKey
from ..secretbox import SecretBoxError, open_secret, seal_secret
from ..tlspin import pin_text, spki_fingerprint
from .config import DataDir, OperatorError, ServerConfig, load_config, write_config
from .dburl import Location
from .store import Database

IDENTITY_CONTEXT = b"rune-server identity"
CERT_LIFETIME = dt.timedelta(days=3650)  # clients pin the key (SPKI), not the dates
# A generic name: in TLS 1.2 the certificate crosses the wire in the clear, so it must
# not tell an eavesdropper which Rune domain this server hosts.
CERT_COMMON_NAME = "rune-server"
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


@dataclass(frozen=True, slots=True)
class Fingerprints:
    """What users compare out of band before trusting a server."""

    domain: str
    tls_pin: str  # sha256:<hex> of the certificate's SPKI
    server_key: PublicKey

    def lines(self) -> list[str]:
        return [
            f"domain:          {self.domain}",
            f"tls fingerprint: {self.tls_pin}",
            f"                 {pin_text(self.tls_pin)}",
            f"server key:      {self.server_key.fingerprint_text()}",
        ]


def _write_private(path: Path, data: bytes) -> None:
    """Create a file readable by its owner only; never overwrite one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def self_signed_certificate(
    key: ec.EllipticCurvePrivateKey, common_name: str, lifetime: dt.timedelta
) -> x509.Certificate:
    """A certificate for ``key`` signed by itself: Rune pins keys, it trusts no CA.

    Also what the benchmark's SMTP peer and the tests' lying server present, so all
    three speak TLS with the same kind of certificate.
    """
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def _self_signed(passphrase: str) -> tuple[bytes, bytes]:
    """A P-256 self-signed certificate (PEM) and its key as encrypted PKCS#8 PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed_certificate(key, CERT_COMMON_NAME, CERT_LIFETIME)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode("utf-8")),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def create_data_dir(
    data: DataDir, config: ServerConfig, passphrase: str, location: Location | None = None
) -> Fingerprints:
    """Everything ``rune-server init`` writes. Refuses a non-empty directory.

    With a PostgreSQL ``location`` the schema is prepared there (created, or checked
    and upgraded if another node made it) instead of a SQLite file here.
    """
    root = data.root
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise OperatorError(f"{root} exists and is not empty; init will not overwrite it")
    created = not root.exists()
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        root.chmod(0o700)
        cert_pem, key_pem = _self_signed(passphrase)
        _write_private(data.tls_key, key_pem)
        data.tls_cert.write_bytes(cert_pem)
        identity = Identity.generate()
        box = seal_secret(identity.private_bytes(), passphrase, IDENTITY_CONTEXT)
        _write_private(data.identity, box)
        data.identity_pub.write_text(identity.public.token() + "\n", encoding="ascii")
        if location is not None and location.url is not None:
            from .pg.admin import prepare  # asyncpg only for PostgreSQL

            prepare(location.url)
        else:
            old_umask = os.umask(0o077)  # the database and its WAL files: owner only
            try:
                Database.create(data.database)
            finally:
                os.umask(old_umask)
        write_config(data.config, config)
    except BaseException:
        if created:
            shutil.rmtree(root, ignore_errors=True)
        raise
    return read_fingerprints(data)


def read_fingerprints(data: DataDir) -> Fingerprints:
    """The public parts only: works without the passphrase."""
    data.check()
    config = load_config(data.config)
    try:
        cert = x509.load_pem_x509_certificate(data.tls_cert.read_bytes())
        token = data.identity_pub.read_text(encoding="ascii").strip()
        server_key = PublicKey.from_token(token)
    except (OSError, ValueError, InvalidKey) as exc:
        raise OperatorError(f"cannot read the public keys in {data.root}: {exc}") from exc
    pin = spki_fingerprint(cert.public_bytes(serialization.Encoding.DER))
    return Fingerprints(config.domain, pin, server_key)


def load_identity(data: DataDir, passphrase: str) -> Identity:
    try:
        box = data.identity.read_bytes()
    except OSError as exc:
        raise OperatorError(f"cannot read {data.identity}: {exc.strerror}") from exc
    try:
        identity = Identity(open_secret(box, passphrase, IDENTITY_CONTEXT))
    except SecretBoxError as exc:
        raise OperatorError(f"cannot open the server identity: {exc}") from exc
    except InvalidKey as exc:
        raise OperatorError("the server identity file is corrupt") from exc
    if read_fingerprints(data).server_key != identity.public:
        raise OperatorError("identity.pub does not match the server identity")
    return identity


def tls_context(data: DataDir, passphrase: str) -> ssl.SSLContext:
    """Implicit TLS, 1.2 at least, 1.3 preferred (OpenSSL picks the highest both speak)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)  # TLS 1.2 only; TLS 1.3 suites are all AEAD
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    try:
        context.load_cert_chain(data.tls_cert, data.tls_key, password=passphrase)
    except (ssl.SSLError, OSError) as exc:
        raise OperatorError(f"cannot load the TLS certificate and key: {exc}") from exc
    return context
