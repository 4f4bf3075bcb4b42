"""``rune-server``: init, serve, invite, fingerprint (administration: admin_cli.py).

Every operator mistake (missing data dir, wrong passphrase, bad address, port in
use) ends as one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .. import __version__
from ..address import AddressError, parse_address, random_part
from ..encoding import b64encode
from ..transport import DEFAULT_PORT
from . import eventloop, logsetup
from .admin_cli import add_commands, database_option, store_of
from .admission import source_of
from .backup import backup, backup_before_upgrade
from .config import (
    MAX_WORKERS,
    REGISTRATION_CHOICES,
    DataDir,
    OperatorError,
    ServerConfig,
    load_config,
    read_passphrase,
)
from .datadir import create_data_dir, load_identity, read_fingerprints, tls_context
from .dburl import check_url, locate
from .limits import Kind, Limiter, secret_of
from .nodekeys import add_node_commands, cmd_init_from_node
from .overview import status_lines
from .service import serve
from .session import hash_invitation
from .store import StoreError
from .workers import WorkersError, run_workers

EXIT_USAGE = 2
INVITATION_BYTES = 24
MIB = 1024 * 1024
_DURATION = re.compile(r"([0-9]{1,9})([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
Ready = Callable[[str, int], None]


def parse_duration(text: str) -> int:
    """``30s``, ``15m``, ``12h``, ``7d`` → seconds."""
    match = _DURATION.fullmatch(text.strip())
    if not match or int(match.group(1)) == 0:
        raise OperatorError(f"bad duration {text!r}: use a positive number with s, m, h or d")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _cmd_init(args: argparse.Namespace) -> int:
    if args.from_node is not None:
        return cmd_init_from_node(args)
    data = DataDir(args.data_dir)
    if data.root.exists() and (not data.root.is_dir() or any(data.root.iterdir())):
        raise OperatorError(f"{data.root} exists and is not empty; init will not overwrite it")
    config = ServerConfig(
        domain=args.domain or random_part(),
        welcome=args.welcome,
        registration=args.registration,
        port=args.port,
        database=check_url(args.database) if args.database else "",
    )
    location = locate(data, config, None)
    if location.url is not None:
        from .pg.admin import check_unused  # asyncpg only for PostgreSQL

        check_unused(location.url)
    passphrase = read_passphrase(args.passphrase_file, confirm=True)
    prints = create_data_dir(data, config, passphrase, location)
    print(f"created {data.root} (registration: {config.registration}, port {config.port})")
    if location.is_postgres:
        print(f"store: {location.shown()} (schema ready)")
    print("\n".join(prints.lines()))
    return 0


SQLITE_ONE_WORKER = (
    "--workers {n} needs PostgreSQL: on SQLite the order pass must delete the WAL, which"
    " it cannot while other processes hold the file open, and WAIT notices stay in one"
    " process; serve with one worker, or move to PostgreSQL (docs/operations.md)"
)


def _cmd_serve(args: argparse.Namespace) -> int:
    data = DataDir(args.data_dir)
    data.check()
    config = load_config(data.config)
    location = locate(data, config, args.database)
    workers = config.workers if args.workers is None else args.workers
    if not 1 <= workers <= MAX_WORKERS:
        raise OperatorError(f"--workers is 1 to {MAX_WORKERS}")
    if workers > 1 and not location.is_postgres:
        raise OperatorError(SQLITE_ONE_WORKER.format(n=workers))
    try:  # before the passphrase: "uvloop is not installed" should not wait for it
        eventloop.loop_factory(config.event_loop)
    except eventloop.EventLoopUnavailable as exc:
        raise OperatorError(str(exc)) from exc
    logsetup.configure(config.log_format, config.log_level)
    os.umask(0o077)  # SQLite's WAL and shared-memory files: owner only
    if not location.is_postgres:
        backup_before_upgrade(location.path)
    passphrase = read_passphrase(args.passphrase_file)
    identity = load_identity(data, passphrase)
    context = tls_context(data, passphrase)
    port = config.port if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise OperatorError("the port is 0 to 65535")

    def ready(host: str, bound: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        print(f"rune-server listening on {shown}:{bound}", flush=True)

    def serve_one(mine: ServerConfig, listeners: list[socket.socket] | None, ready: Ready) -> None:
        try:
            eventloop.run(
                lambda: serve(mine, identity, context, location, args.host, port, ready, listeners),
                mine.event_loop,
            )
        except StoreError as exc:
            raise OperatorError(str(exc)) from exc

    try:
        if workers == 1:
            serve_one(config, None, ready)
            return 0
        return run_workers(workers, config, args.host, port, serve_one, ready)
    except OSError as exc:  # binding: address in use, permission denied, unknown host
        raise OperatorError(f"cannot listen on {args.host}:{port}: {exc.strerror or exc}") from exc
    except WorkersError as exc:
        raise OperatorError(str(exc)) from exc


def _cmd_invite(args: argparse.Namespace) -> int:
    data = DataDir(args.data_dir)
    data.check()
    config = load_config(data.config)
    try:
        address = parse_address(args.address)
    except AddressError as exc:
        raise OperatorError(f"bad address: {exc}") from exc
    if address.domain != config.domain:
        raise OperatorError(f"{address} is not on this server's domain {config.domain}")
    lifetime = parse_duration(args.expires)
    with store_of(args, config) as db:
        if not db.registrable(str(address)):
            raise OperatorError(f"{address} is already registered, or reserved after a delete")
        token = b64encode(os.urandom(INVITATION_BYTES))
        db.add_invitation(hash_invitation(token), str(address), int(time.time()) + lifetime)
    print(token)
    return 0


def _cmd_fingerprint(args: argparse.Namespace) -> int:
    print("\n".join(read_fingerprints(DataDir(args.data_dir)).lines()))
    return 0


def _cmd_backup(args: argparse.Namespace) -> int:
    data = DataDir(args.data_dir)
    data.check()
    location = locate(data, load_config(data.config), args.database)
    if location.is_postgres:
        raise OperatorError(
            f"the store is in PostgreSQL ({location.shown()}): back it up with PostgreSQL's"
            " own tools, pg_dump (a logical copy) or pg_basebackup (the whole cluster);"
            " see docs/operations.md"
        )
    result = backup(data.database, args.dest)
    print(
        f"backed up {data.database.name} to {result.path}"
        f" ({result.size / MIB:.1f} MiB, {result.seconds:.2f} s, mode 0600)"
    )
    return 0


def _cmd_lift_limits(args: argparse.Namespace) -> int:
    """Forget the current counts of some sources or addresses (limits.py says why the
    passphrase is needed: the counters are keyed with a secret of the identity)."""
    data = DataDir(args.data_dir)
    data.check()
    config = load_config(data.config)
    if not args.source and not args.address:
        raise OperatorError("name at least one --source IP or --address ADDRESS")
    subjects: list[tuple[Kind, str]] = []
    for text in args.source:
        source = source_of((text, 0))
        if source == "unknown":
            raise OperatorError(f"bad --source {text!r}: give an IPv4 or IPv6 address")
        subjects.append((Kind.REGISTER, source))
    for text in args.address:
        try:
            address = parse_address(text)
        except AddressError as exc:
            raise OperatorError(f"bad address: {exc}") from exc
        if address.domain != config.domain:
            raise OperatorError(f"{address} is not on this server's domain {config.domain}")
        subjects += [(Kind.SEND, str(address)), (Kind.INFLOW, str(address))]
    identity = load_identity(data, read_passphrase(args.passphrase_file))
    limiter = Limiter(secret_of(identity), {}, time.time)
    with store_of(args, config) as db:
        cleared = db.clear_limits([limiter.key(kind, subject) for kind, subject in subjects])
    print(f"lifted {cleared} counter(s); counting starts again from zero")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    data = DataDir(args.data_dir)
    data.check()
    config = load_config(data.config)
    location = locate(data, config, args.database)
    if location.is_postgres:
        from .pg.admin import status_lines as pg_status_lines  # asyncpg only for PostgreSQL

        print("\n".join(pg_status_lines(location, config)))
        return 0
    print("\n".join(status_lines(data, config)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rune-server", description="The Rune reference server (see docs/server.md)."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str, *, data_dir: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        if data_dir:
            sub.add_argument("--data-dir", type=Path, required=True, metavar="DIR")
        return sub

    init = command("init", "create a data directory: config, TLS certificate, identity, store")
    init.add_argument("--domain", help="the address domain (default: random)")
    init.add_argument("--registration", choices=REGISTRATION_CHOICES, default="free")
    init.add_argument("--welcome", default="Rune is Not Email", help="greeting text")
    init.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    init.add_argument("--passphrase-file", type=Path, metavar="F")
    database_option(init, "put the store in PostgreSQL at URL (recorded in config.toml)")
    init.add_argument(
        "--from-node",
        type=Path,
        metavar="FILE",
        help="a new node of an existing server: its export-node bundle (docs/operations.md)",
    )
    init.set_defaults(func=_cmd_init)

    run = command("serve", "serve until SIGINT/SIGTERM")
    run.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (loopback)")
    run.add_argument("--port", type=int, help="default: the config's port; 0 picks a free one")
    run.add_argument("--passphrase-file", type=Path, metavar="F")
    database_option(run)
    run.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes (default: the config's workers, 1); more than 1 needs PostgreSQL",
    )
    run.set_defaults(func=_cmd_serve)

    invite = command("invite", "print a single-use invitation token bound to ADDRESS")
    invite.add_argument("address", metavar="ADDRESS")
    invite.add_argument("--expires", default="7d", help="lifetime: 30m, 12h, 7d … (default 7d)")
    database_option(invite)
    invite.set_defaults(func=_cmd_invite)

    fingerprint = command("fingerprint", "print the TLS and server-key fingerprints")
    fingerprint.set_defaults(func=_cmd_fingerprint)
    add_commands(command)

    # Issue 18 (operating): at the end of the list, to ease merging.
    copy = command("backup", "copy the store to DEST while the server runs (docs/server.md)")
    copy.add_argument("dest", type=Path, metavar="DEST", help="a new file (not overwritten)")
    database_option(copy)
    copy.set_defaults(func=_cmd_backup)

    lift = command("lift-limits", "reset the abuse-limit counts of a source or an address")
    lift.add_argument("--source", action="append", default=[], metavar="IP")
    lift.add_argument("--address", action="append", default=[], metavar="ADDRESS")
    lift.add_argument("--passphrase-file", type=Path, metavar="F")
    database_option(lift)
    lift.set_defaults(func=_cmd_lift_limits)

    glance = command("status", "the store, the disk and live counts at a glance (aggregates)")
    database_option(glance)
    glance.set_defaults(func=_cmd_status)
    add_node_commands(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logsetup.configure()
    try:
        result: int = args.func(args)
    except (OperatorError, StoreError) as exc:
        print(f"rune-server: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rune-server: interrupted", file=sys.stderr)
        return 130
    return result
