"""Giving a new node the keys (issue 14): ``export-node`` and ``init --from-node``.

The bundle carries the keys sealed as they lie on disk; the passphrase is typed on the
new node and must open them. A client pinned to node 1 logging in on node 2 needs a
shared store: tests/pg/test_node_keys_pg.py.
"""

from __future__ import annotations

import base64
import json
import secrets
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from rune_proto.server.config import DataDir
from rune_proto.server.datadir import load_identity
from tests.server_process import RuneServerProcess, ServerFactory, finish_server, run_cli

from .wire_client import WireClient


def _export(server: RuneServerProcess, dest: Path) -> None:
    result = run_cli("export-node", "--data-dir", str(server.data_dir), str(dest))
    assert result.returncode == 0, result.stderr
    assert server.tls_pin in result.stdout


def _init_from(bundle: Path, root: Path, passphrase_file: Path) -> tuple[int, str, str]:
    result = run_cli(
        "init", "--from-node", str(bundle), "--data-dir", str(root),
        "--passphrase-file", str(passphrase_file),
    )  # fmt: skip
    return result.returncode, result.stdout, result.stderr


def _fingerprint(data_dir: Path) -> str:
    result = run_cli("fingerprint", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_node_made_from_the_bundle_has_and_serves_the_same_keys(
    rune_server: ServerFactory, tmp_path: Path
) -> None:
    node1 = rune_server()
    bundle = tmp_path / "node.bundle"
    _export(node1, bundle)
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    code, out, err = _init_from(bundle, tmp_path / "node2" / "data", node1.passphrase_file)
    assert code == 0, err
    node2_dir = tmp_path / "node2" / "data"
    assert _fingerprint(node2_dir) == _fingerprint(node1.data_dir)
    assert node1.tls_pin in out
    assert stat.S_IMODE(node2_dir.stat().st_mode) == 0o700
    for name in ("tls.key", "identity.key", "config.toml"):
        assert stat.S_IMODE((node2_dir / name).stat().st_mode) == 0o600
    node2 = RuneServerProcess(
        root=tmp_path / "node2",
        data_dir=node2_dir,
        passphrase_file=node1.passphrase_file,
        domain=node1.domain,
        tls_pin=node1.tls_pin,
        server_key=node1.server_key,
    )
    node2.start()
    try:
        with WireClient.to(node2) as client:
            assert client.tls_pin == node1.tls_pin
    finally:
        assert finish_server(node2) == []


def test_a_wrong_passphrase_is_refused_and_nothing_is_written(
    rune_server: ServerFactory, tmp_path: Path
) -> None:
    node1 = rune_server()
    bundle = tmp_path / "node.bundle"
    _export(node1, bundle)
    wrong = tmp_path / "wrong"
    wrong.write_text(secrets.token_urlsafe(12) + "\n")
    code, out, err = _init_from(bundle, tmp_path / "node2", wrong)
    assert code == 2 and out == ""
    assert err.strip() == (
        "rune-server: the passphrase does not open the keys in the node bundle"
        " (type the passphrase of the server it was exported from)"
    )
    assert not (tmp_path / "node2").exists()


def test_the_bundle_holds_no_private_key_or_passphrase_in_the_clear(
    rune_server: ServerFactory, tmp_path: Path
) -> None:
    node1 = rune_server()
    bundle = tmp_path / "node.bundle"
    _export(node1, bundle)
    raw = bundle.read_bytes()
    passphrase = node1.passphrase_file.read_text().splitlines()[0]
    data = DataDir(node1.data_dir)
    identity_secret = load_identity(data, passphrase).private_bytes()
    tls_key = serialization.load_pem_private_key(data.tls_key.read_bytes(), passphrase.encode())
    tls_secrets = [
        tls_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        tls_key.private_numbers().private_value.to_bytes(32, "big"),  # type: ignore[union-attr]
    ]
    text = raw.decode()
    assert "PRIVATE KEY-----" not in text.replace("ENCRYPTED PRIVATE KEY-----", "")
    for secret in (identity_secret, identity_secret[:32], *tls_secrets):
        for form in _encodings(secret):
            assert form not in raw, "a private key is in the bundle in the clear"
    assert passphrase.encode() not in raw
    assert set(json.loads(raw)) == {
        "format", "config.toml", "tls.crt", "tls.key", "identity.pub", "identity.key"
    }  # fmt: skip


def test_export_never_overwrites_and_a_damaged_bundle_is_refused(
    rune_server: ServerFactory, tmp_path: Path
) -> None:
    node1 = rune_server()
    bundle = tmp_path / "node.bundle"
    bundle.write_text("keep me")
    result = run_cli("export-node", "--data-dir", str(node1.data_dir), str(bundle))
    assert result.returncode == 2 and "will not overwrite" in result.stderr
    assert bundle.read_text() == "keep me"
    code, _, err = _init_from(bundle, tmp_path / "node2", node1.passphrase_file)
    assert code == 2 and "is not a node bundle" in err and "Traceback" not in err
    bundle.unlink()
    _export(node1, bundle)
    parts = json.loads(bundle.read_text())
    parts["identity.pub"] = parts["identity.pub"][:-8] + "AAAAAAAA"
    bundle.write_text(json.dumps(parts))
    code, _, err = _init_from(bundle, tmp_path / "node2", node1.passphrase_file)
    assert code == 2 and ("damaged" in err or "does not match" in err)
    assert not (tmp_path / "node2").exists()


def _encodings(secret: bytes) -> list[bytes]:
    """The forms a key could be written in: raw, hex, base64 and base64url."""
    return [
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        base64.b64encode(secret).rstrip(b"="),
        base64.urlsafe_b64encode(secret).rstrip(b"="),
    ]
