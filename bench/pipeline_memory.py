"""What many connections pipelining bound SENDs cost the server in memory (§9.9).

    .venv/bin/python bench/pipeline_memory.py [--conns 300] [--pairs 20]

Starts a rune-server (tests/server_process.py, SQLite, max_connections raised to fit),
logs in ``--conns`` connections, and measures the server's RSS idle; then every
connection writes ``--pairs`` bound SEND + MESSAGE pairs (~25 KB each) in one go and
reads nothing for ``--hold`` seconds, while the server's RSS is sampled; then each reads
its replies, which must be 201/202 in order. Prints idle RSS, peak RSS while held, the
cost per connection, and how much each connection could write before TCP held it back
(the server reads a connection only as fast as it answers it). Also a LOOKUP flood
(31 bytes in, 1.7 KB out) for the case where answers are much larger than questions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rune_proto.address import Address, random_address  # noqa: E402
from rune_proto.connection import Connection, Role  # noqa: E402
from rune_proto.envelope import Content, seal_client_message, seal_message  # noqa: E402
from rune_proto.events import (  # noqa: E402
    NEED_DATA,
    Authenticated,
    Capa,
    Command,
    Event,
    Login,
    LoginNonce,
    Lookup,
    Message,
    Proof,
    Registered,
    Send,
)
from rune_proto.handshake import login_proof  # noqa: E402
from rune_proto.keys import Identity, PublicKey  # noqa: E402
from rune_proto.wire import format_command  # noqa: E402
from tests.server.wire_client import WireClient  # noqa: E402
from tests.server_process import RuneServerProcess, create_server, finish_server  # noqa: E402


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Link:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.conn = Connection(Role.CLIENT)

    async def next(self) -> Event:
        while True:
            event = self.conn.next_event()
            if event is not NEED_DATA:
                return event
            self.conn.receive_data(await self.reader.read(1 << 16))

    async def request(self, command: Command) -> Event:
        self.writer.write(self.conn.send(command))
        return await self.next()


async def open_link(server: RuneServerProcess, user: tuple[Address, Identity]) -> Link:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(server.host, server.port, ssl=context)
    link = Link(reader, writer)
    await link.next()  # greeting
    await link.request(Capa())
    nonce = await link.request(Login(user[0]))
    assert isinstance(nonce, LoginNonce), nonce
    proof = login_proof(user[1], user[0], server.server_public_key, nonce.nonce)
    assert isinstance(await link.request(Proof(proof)), Authenticated)
    return link


def register(server: RuneServerProcess) -> tuple[Address, Identity]:
    user = (random_address(server.domain), Identity.generate())
    with WireClient.to(server) as client:
        assert client.register(*user) == Registered(user[0])
    return user


def sealed_payload(
    server_key: PublicKey, sender: tuple[Address, Identity], receiver: tuple[Address, Identity]
) -> bytes:
    content = Content("pipelined", "x" * 4096)
    inner = seal_message(sender[0], sender[1], receiver[0], receiver[1].public, content)
    return seal_client_message(sender[0], sender[1], receiver[0], server_key, inner)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rune-pipe-") as tmp:
        server = create_server(Path(tmp), max_connections=args.conns + 64)
        try:
            alice, bob = register(server), register(server)
            payload = sealed_payload(server.server_public_key, alice, bob)
            links: list[Link] = []
            for start in range(0, args.conns, 32):
                batch = range(start, min(args.conns, start + 32))
                links += await asyncio.gather(*(open_link(server, alice) for _ in batch))
            if args.plain:  # SEND, MESSAGE pipelined by hand: what any server reads in order
                send: Command = Send(bob[0])
            else:
                from rune_proto.events import BoundSend

                send = BoundSend(bob[0], bob[1].public.fingerprint())
            pair = format_command(send) + format_command(Message(alice[0], payload))
            result: dict[str, Any] = {"conns": args.conns, "pairs": args.pairs}
            result["pipelined_sends"] = await flood_raw(server, links, pair, args.pairs, 2, args)
            lookup = format_command(Lookup(bob[0]))
            result["lookups"] = await flood_raw(server, links, lookup, args.lookups, 1, args)
            for link in links:
                link.writer.close()
            return result
        finally:
            finish_server(server)


async def flood_raw(
    server: RuneServerProcess,
    links: list[Link],
    unit: bytes,
    count: int,
    per_unit: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Every link writes ``count`` units at once and reads nothing for ``args.hold`` s,
    while the server's RSS is sampled; then every reply is read (all must be 2xx)."""
    assert server.process is not None
    pid = server.process.pid
    idle = rss_kib(pid)
    for link in links:
        link.writer.transport.set_write_buffer_limits(high=1 << 30)
        link.writer.write(unit * count)
    peak, end = idle, time.monotonic() + args.hold
    while time.monotonic() < end:
        peak = max(peak, rss_kib(pid))
        await asyncio.sleep(0.05)
    unsent = sorted(link.writer.transport.get_write_buffer_size() for link in links)
    started = time.monotonic()
    counts = await asyncio.gather(*(read_lines(link, count * per_unit) for link in links))
    return {
        "written_per_connection_kib": round(len(unit) * count / 1024),
        "idle_rss_mib": round(idle / 1024, 1),
        "peak_rss_mib": round(peak / 1024, 1),
        "per_connection_kib": round((peak - idle) / len(links), 1),
        "held_back_in_clients_median_kib": round(unsent[len(unsent) // 2] / 1024),
        "drain_seconds": round(time.monotonic() - started, 1),
        "all_replies_success": all(counts),
    }


async def read_lines(link: Link, count: int) -> bool:
    """Read ``count`` reply lines; True if every one is a 2xx."""
    ok = True
    for _ in range(count):
        line = await link.reader.readline()
        ok = ok and line[:1] == b"2"
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conns", type=int, default=300)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--hold", type=float, default=3.0)
    parser.add_argument(
        "--plain", action="store_true", help="plain SEND (no fingerprint): works on older servers"
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
