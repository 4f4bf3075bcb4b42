"""The peer for bench/server_throughput.py: aiosmtpd over implicit TLS, storing in SQLite.

    python bench/peer_smtp.py --data-dir DIR [--host 127.0.0.1] [--port 0]

What a Python user would write instead of rune-server: an aiosmtpd server listening
with TLS from the first byte (a self-signed P-256 certificate made here with
``cryptography``), whose handler stores every message with one INSERT and one COMMIT
in SQLite (WAL, ``synchronous=FULL``) before it answers ``250``. The commit runs inline
on the event loop, as aiosmtpd's own examples do; a single insert + commit of a 4 KiB
message costs ~0.16 ms on the bench machine, less than a thread hop would add.

Prints ``peer listening on HOST:PORT`` once ready; stops on SIGTERM or SIGINT.
``DIR/peer.db`` holds table ``messages(id, mail_from, rcpt_to, data)``: the bench counts
its rows to check that every acknowledged message was stored.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import signal
import sqlite3
import ssl
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from rune_proto.server.datadir import self_signed_certificate

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, mail_from TEXT NOT NULL,
                                     rcpt_to TEXT NOT NULL, data BLOB NOT NULL);
"""


def open_db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)  # the default: INSERT opens a transaction, commit() ends it
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    return db


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A P-256 self-signed certificate and its key (PEM files in ``directory``)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed_certificate(key, "peer-smtp", dt.timedelta(days=30))
    cert_path, key_path = directory / "peer.crt", directory / "peer.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


class StoringHandler:
    """aiosmtpd handler: one INSERT + COMMIT per message, then ``250``."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.stored = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.db.execute(
            "INSERT INTO messages (mail_from, rcpt_to, data) VALUES (?, ?, ?)",
            (envelope.mail_from, ",".join(envelope.rcpt_tos), content),
        )
        self.db.commit()  # on disk (fsync) before the 250
        self.stored += 1
        return "250 OK stored"


async def serve(data_dir: Path, host: str, port: int) -> None:
    cert, key = self_signed(data_dir)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    db = open_db(data_dir / "peer.db")
    handler = StoringHandler(db)
    loop = asyncio.get_running_loop()

    def factory() -> Any:
        # hostname given: aiosmtpd would otherwise ask socket.getfqdn() per connection.
        return SMTP(handler, hostname="peer.bench", ident="peer-smtp", data_size_limit=2**25)

    server = await loop.create_server(factory, host, port, ssl=context)
    bound = server.sockets[0].getsockname()
    stop = loop.create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: stop.done() or stop.set_result(None))
    print(f"peer listening on {bound[0]}:{bound[1]}", flush=True)
    try:
        await stop
    finally:
        server.close()
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(args.data_dir, args.host, args.port))


if __name__ == "__main__":
    main()
