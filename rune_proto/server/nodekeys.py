"""``rune-server export-node FILE`` and ``init --from-node FILE``: the keys for a new node.

Every node behind one address must present the same TLS key and server identity
(clients pin both). A node bundle carries them as they lie on disk: the TLS key as
encrypted PKCS#8, the identity as a :mod:`rune_proto.secretbox` box, both sealed
under the server passphrase, which the bundle does not hold. Next to them: the
certificate, ``identity.pub`` and ``config.toml``. So the file can travel like any
backup (it is written 0600: the config may name the database with its password),
and the operator types the passphrase on the new node, where ``init --from-node``
opens both keys with it before writing anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..encoding import b64decode, b64encode
from ..keys import Identity, InvalidKey, PublicKey
from ..secretbox import SecretBoxError, open_secret
from .config import DataDir, OperatorError, load_config, read_passphrase, write_config
from .datadir import IDENTITY_CONTEXT, read_fingerprints
from .dburl import Location, check_url, locate
from .store import Database

FORMAT = "rune-node-bundle/1"
MAX_BUNDLE = 1024 * 1024  # bytes: a bundle is a few KiB; anything larger is not one
ENCRYPTED_PEM = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"
_TEXT_PARTS = ("config.toml", "tls.crt", "tls.key", "identity.pub")


def export_node(data: DataDir, dest: Path) -> str:
    """Write the bundle to ``dest`` (a new file, 0600); returns the TLS pin it carries."""
    data.check()
    prints = read_fingerprints(data)
    try:
        parts = {name: (data.root / name).read_text(encoding="utf-8") for name in _TEXT_PARTS}
        sealed = data.identity.read_bytes()
    except (OSError, UnicodeDecodeError) as exc:
        raise OperatorError(f"cannot read the key files in {data.root}: {exc}") from exc
    if not parts["tls.key"].lstrip().startswith(ENCRYPTED_PEM.decode()):
        raise OperatorError(f"{data.tls_key} is not an encrypted key; not exporting it")
    bundle = {"format": FORMAT, **parts, "identity.key": b64encode(sealed)}
    payload = json.dumps(bundle, indent=1).encode("utf-8") + b"\n"
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise OperatorError(f"{dest} exists; export-node will not overwrite it") from exc
    except OSError as exc:
        raise OperatorError(f"cannot create {dest}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    return prints.tls_pin


def _read_bundle(path: Path) -> dict[str, str]:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BUNDLE + 1)
    except OSError as exc:
        raise OperatorError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        if len(raw) > MAX_BUNDLE:
            raise ValueError("too large")
        bundle = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise OperatorError(f"{path} is not a node bundle (made by export-node)") from exc
    wanted = (*_TEXT_PARTS, "identity.key")
    if (
        not isinstance(bundle, dict)
        or bundle.get("format") != FORMAT
        or not all(isinstance(bundle.get(name), str) for name in wanted)
    ):
        raise OperatorError(f"{path} is not a node bundle of this version ({FORMAT})")
    return {name: bundle[name] for name in wanted}


def _check_keys(parts: dict[str, str], sealed: bytes, passphrase: str) -> None:
    """The passphrase opens both keys, and each matches its public half in the bundle."""
    try:
        key = serialization.load_pem_private_key(
            parts["tls.key"].encode("utf-8"), passphrase.encode("utf-8")
        )
        secret = open_secret(sealed, passphrase, IDENTITY_CONTEXT)
    except (ValueError, TypeError, SecretBoxError) as exc:
        raise OperatorError(
            "the passphrase does not open the keys in the node bundle"
            " (type the passphrase of the server it was exported from)"
        ) from exc
    try:
        cert = x509.load_pem_x509_certificate(parts["tls.crt"].encode("utf-8"))
        identity = Identity(secret)
        public = PublicKey.from_token(parts["identity.pub"].strip())
    except (ValueError, InvalidKey) as exc:
        raise OperatorError("the node bundle is damaged (a key or certificate)") from exc
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key().public_bytes(
        der, spki
    ) != cert.public_key().public_bytes(der, spki):
        raise OperatorError("the node bundle's certificate does not belong to its TLS key")
    if identity.public != public:
        raise OperatorError("the node bundle's identity.pub does not match its identity")


def init_from_node(
    bundle_path: Path, data: DataDir, passphrase: str, database: str | None = None
) -> Location:
    """A data directory holding the bundle's keys and config, checked before writing.

    ``database`` (``--database``) replaces the bundle's. On PostgreSQL the schema the
    other nodes made is checked (and upgraded if this code is newer); on SQLite the new
    node gets an empty store of its own.
    """
    if database is not None:
        check_url(database)
    root = data.root
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise OperatorError(f"{root} exists and is not empty; init will not overwrite it")
    parts = _read_bundle(bundle_path)
    try:
        sealed = b64decode(parts["identity.key"], max_length=MAX_BUNDLE)
        raw_config = tomllib.loads(parts["config.toml"])
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise OperatorError("the node bundle is damaged (identity.key or config.toml)") from exc
    if not isinstance(raw_config.get("domain"), str):
        raise OperatorError("the node bundle's config.toml names no domain")
    _check_keys(parts, sealed, passphrase)
    created = not root.exists()
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        root.chmod(0o700)
        _write_new(data.tls_key, parts["tls.key"].encode("utf-8"), 0o600)
        _write_new(data.identity, sealed, 0o600)
        _write_new(data.tls_cert, parts["tls.crt"].encode("utf-8"), 0o644)
        _write_new(data.identity_pub, parts["identity.pub"].encode("ascii"), 0o644)
        _write_new(data.config, parts["config.toml"].encode("utf-8"), 0o600)
        config = load_config(data.config)  # every key checked, as serve will
        if database is not None:
            config = replace(config, database=database)
            write_config(data.config, config)
        location = locate(data, config, None)
        if location.url is not None:
            from .pg.admin import prepare  # asyncpg only for PostgreSQL

            prepare(location.url)
        else:
            old_umask = os.umask(0o077)
            try:
                Database.create(data.database)
            finally:
                os.umask(old_umask)
    except BaseException:
        if created:
            shutil.rmtree(root, ignore_errors=True)
        raise
    return location


def _write_new(path: Path, content: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)


def _cmd_export_node(args: argparse.Namespace) -> int:
    pin = export_node(DataDir(args.data_dir), args.file)
    print(f"wrote {args.file} (mode 0600; its keys stay sealed under the passphrase)")
    print(f"tls fingerprint: {pin}")
    return 0


def cmd_init_from_node(args: argparse.Namespace) -> int:
    """``init --from-node FILE``: the passphrase is typed here and opens the keys."""
    data = DataDir(args.data_dir)
    passphrase = read_passphrase(args.passphrase_file)
    location = init_from_node(args.from_node, data, passphrase, args.database)
    print(f"created {data.root} from the node bundle {args.from_node}")
    if location.is_postgres:
        print(f"store: {location.shown()} (shared with the other nodes)")
    else:
        print("store: an empty SQLite file of its own (nodes share mail on PostgreSQL only)")
    print("\n".join(read_fingerprints(data).lines()))
    return 0


def add_node_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    export = command("export-node", "write the keys and config a new node needs to FILE (0600)")
    export.add_argument("file", type=Path, metavar="FILE", help="a new file (not overwritten)")
    export.set_defaults(func=_cmd_export_node)
