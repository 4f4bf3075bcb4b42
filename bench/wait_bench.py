"""WAIT: what 1,000 waiting clients cost the server, and how fast new mail shows.

``python bench/wait_bench.py idle`` registers N accounts on a fresh rune-server (its
own process, max_connections raised to fit), logs N connections in, measures the
server's RSS with them idle, then has each send WAIT and measures RSS again and the
server's CPU time over a quiet window: the cost of waiting, per client.

``python bench/wait_bench.py latency`` runs two real clients against a real server:
the receiver exactly as rune-tui does it (``rune_tui.live.watch_mailbox`` keeps one
connection on WAIT; each notice runs ``Mailbox.refresh``, a fresh session that LISTs
and RETRIEVEs what is new), the sender with ``Session.send``. Each sample is the time
from the sender's 202 (``send`` returning) to the message being in the receiver's
Mailbox; the median and p99 go into docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rune_proto.address import parse_address  # noqa: E402
from rune_proto.client import connect  # noqa: E402
from rune_proto.keys import Identity  # noqa: E402
from rune_proto.server.config import load_config, write_config  # noqa: E402

HOST = "127.0.0.1"
DOMAIN = "wait.example"
PASSPHRASE = "rune wait bench passphrase, not a secret"


class Server:
    """A rune-server process with its pins; config overrides applied before serve."""

    def __init__(self, workdir: Path, **overrides: Any) -> None:
        self.data, self.secret = workdir / "rune", workdir / "passphrase"
        self.overrides = overrides
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.pin = self.key = ""

    async def start(self) -> None:
        self.secret.write_text(PASSPHRASE + "\n")
        self.secret.chmod(0o600)
        server = [sys.executable, "-m", "rune_proto.server"]
        init_args = ["init", "--data-dir", str(self.data), "--domain", DOMAIN]
        init = subprocess.run(
            [*server, *init_args, "--passphrase-file", str(self.secret)],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        pin = re.search(r"tls fingerprint:\s*(sha256:[0-9a-f]+)", init.stdout)
        assert pin is not None, init.stdout
        self.pin = pin.group(1)
        config_path = self.data / "config.toml"
        write_config(config_path, replace(load_config(config_path), **self.overrides))
        self.proc = await asyncio.create_subprocess_exec(
            *server,
            "serve",
            "--data-dir",
            str(self.data),
            "--host",
            HOST,
            "--port",
            "0",
            "--passphrase-file",
            str(self.secret),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        async with asyncio.timeout(60):
            while line := (await self.proc.stdout.readline()).decode():
                if match := re.search(r"rune-server listening on \S+:(\d+)", line):
                    self.port = int(match.group(1))
                    break
        self.key = (self.data / "identity.pub").read_text().strip()

    def rss_mib(self) -> float:
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        assert match is not None
        return int(match.group(1)) / 1024

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 60)

    def session(self, **kwargs: Any) -> Any:
        return connect(
            HOST,
            self.port,
            tls_fingerprint=self.pin,
            server_key=self.key,
            timeout=120,
            ephemeral=True,
            **kwargs,
        )


_CLK_TCK = os.sysconf("SC_CLK_TCK")


async def register(server: Server, count: int) -> list[tuple[Any, Identity]]:
    users = [(parse_address(f"user{k}@{DOMAIN}"), Identity.generate()) for k in range(count)]

    async def one(user: tuple[Any, Identity]) -> None:
        async with server.session() as session:
            await session.register(*user)

    for start in range(0, count, 16):
        await asyncio.gather(*(one(u) for u in users[start : start + 16]))
    return users


async def idle(clients: int, window: float) -> dict[str, Any]:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory(prefix="rune-wait-bench-") as tmp:
        server = Server(
            Path(tmp),
            max_connections=clients + 200,
            login_reserved_connections=64,
            max_anonymous_per_source=clients + 200,
            idle_timeout=3600,
            wait_lifetime=3600,
        )
        await server.start()
        try:
            users = await register(server, clients)
            base = server.rss_mib()
            sessions = []
            contexts = []
            for start in range(0, clients, 16):
                batch = [server.session() for _ in users[start : start + 16]]
                opened = await asyncio.gather(*(c.__aenter__() for c in batch))
                await asyncio.gather(
                    *(s.login(*u) for s, u in zip(opened, users[start : start + 16], strict=True))
                )
                contexts += batch
                sessions += opened
            await asyncio.sleep(2)  # let the server settle: a measurement window, not a wait
            logged_in = server.rss_mib()
            idle_cpu0, idle_t0 = server.cpu_seconds(), time.monotonic()
            await asyncio.sleep(window)  # the same quiet window, without waits: the baseline
            idle_cpu = (server.cpu_seconds() - idle_cpu0) / (time.monotonic() - idle_t0)
            waits = [asyncio.create_task(s.wait()) for s in sessions]
            await asyncio.sleep(2)  # every WAIT is on the wire and held
            assert not any(w.done() for w in waits), "a wait ended early"
            waiting = server.rss_mib()
            cpu0, t0 = server.cpu_seconds(), time.monotonic()
            await asyncio.sleep(window)  # the quiet window the CPU is measured over
            cpu1, t1 = server.cpu_seconds(), time.monotonic()
            assert not any(w.done() for w in waits), "a wait ended early"
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
            for context in contexts:
                await context.__aexit__(None, None, None)
            return {
                "clients": clients,
                "rss_mib_registered": round(base, 1),
                "rss_mib_logged_in_idle": round(logged_in, 1),
                "rss_mib_waiting": round(waiting, 1),
                "kib_per_connection": round((logged_in - base) * 1024 / clients, 1),
                "kib_per_wait": round((waiting - logged_in) * 1024 / clients, 2),
                "cpu_seconds_per_second_logged_in_idle": round(idle_cpu, 5),
                "cpu_seconds_per_second_waiting": round((cpu1 - cpu0) / (t1 - t0), 5),
                "window_s": round(t1 - t0, 1),
            }
        finally:
            await server.stop()


async def latency(samples: int) -> dict[str, Any]:
    from rune_tui.config import Account, Paths
    from rune_tui.live import watch_mailbox
    from rune_tui.service import Mailbox

    with tempfile.TemporaryDirectory(prefix="rune-wait-bench-") as tmp:
        server = Server(Path(tmp))
        await server.start()
        try:
            (alice, alice_id), (bob, bob_id) = await register(server, 2)
            account = Account(bob, HOST, server.port, server.pin, server.key, "file")
            mailbox = Mailbox(Paths(Path(tmp) / "cfg", Path(tmp) / "data"), account, bob_id)
            arrived: dict[str, float] = {}
            changed = asyncio.Event()

            async def refresh() -> None:
                for message_id in await mailbox.refresh():
                    arrived[mailbox.messages[message_id].subject] = time.perf_counter()
                changed.set()

            refreshing: set[asyncio.Task[None]] = set()

            def on_mail() -> None:
                task = asyncio.create_task(refresh())
                refreshing.add(task)
                task.add_done_callback(refreshing.discard)

            watcher = asyncio.create_task(
                watch_mailbox(mailbox, on_mail, lambda _: None, poll_seconds=24 * 3600)
            )
            await asyncio.sleep(1)  # the watcher is connected and waiting
            results = []
            async with server.session() as sender:
                await sender.login(alice, alice_id)
                for n in range(samples):
                    subject = f"sample {n}"
                    await sender.send(bob, subject, "ping")
                    acked = time.perf_counter()
                    async with asyncio.timeout(30):
                        while subject not in arrived:
                            changed.clear()
                            await changed.wait()
                    results.append((arrived[subject] - acked) * 1000)
                    await asyncio.sleep(0.05)  # spacing: each message its own notice
            watcher.cancel()
            await asyncio.gather(watcher, *refreshing, return_exceptions=True)
            mailbox.stop()
            ordered = sorted(results)
            return {
                "samples": samples,
                "median_ms": round(statistics.median(ordered), 1),
                "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
                "max_ms": round(ordered[-1], 1),
                "min_ms": round(ordered[0], 1),
            }
        finally:
            await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["idle", "latency"])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    if args.what == "idle":
        result = asyncio.run(idle(args.clients, args.window))
    else:
        result = asyncio.run(latency(args.samples))
    # The machine is often shared: a load well above 1 means the figures are pessimistic.
    result["load_1min_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    result["cpus"] = os.cpu_count()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
