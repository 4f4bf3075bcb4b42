"""The ``rune-tui`` command: parse options, find the config, start the app.

Textual is imported only after the options are parsed, so ``--help`` and ``--version``
answer at once and a damaged config is reported as one line, not from inside the UI.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rune_proto.transport import DEFAULT_PORT

from .config import Paths, load_config

# Textual draws at most 60 frames a second, so a key pressed within 16 ms of the last
# frame waits for the next one; j in the inbox paints two (highlight, then preview), so
# it waited often: 25 ms at 60, 13 ms at 240, 11.6 at 1000 (docs/performance.md). Nothing
# here animates continuously (the spinners tick 16 times a second whatever the cap), and
# lines that count a long job go through pace.Pace, so a high cap costs no steady CPU.
# A user's TEXTUAL_FPS wins.
FRAME_RATE = 1000


def version() -> str:
    """The one version, kept in rune_proto (the build reads it from there too)."""
    from rune_proto import __version__

    return __version__


def parse_server(text: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (``[v6]:PORT`` for IPv6) → host and port; argparse shows the error."""
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host or " " in host:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise argparse.ArgumentTypeError(f"{port_text!r} is not a port number (1-65535)")
    return host, int(port_text)


class _VersionAction(argparse.Action):
    """``--version``, looked up only when asked (it used to cost a metadata scan)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        print(f"{parser.prog} {version()}")  # on stdout, as argparse's own version action
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rune-tui",
        description="Rune's terminal client: private, email-like messaging.",
        epilog="The first run opens a wizard that registers an address on a server.",
    )
    parser.add_argument(
        "--version", action=_VersionAction, nargs=0, help="show the version and exit"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="keep config and data under DIR (DIR/config, DIR/data): one folder per identity",
    )
    parser.add_argument(
        "--config-dir", type=Path, metavar="DIR", help="where config.toml and contacts live"
    )
    parser.add_argument(
        "--data-dir", type=Path, metavar="DIR", help="where key files and the message cache live"
    )
    parser.add_argument(
        "--server",
        type=parse_server,
        metavar="HOST:PORT",
        help=f"pre-fill the setup wizard with this server (port defaults to {DEFAULT_PORT})",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    export = commands.add_parser(
        "export", help="back up the account (key, contacts, pins, settings) to a sealed file"
    )
    export.add_argument("file", type=Path, metavar="FILE")
    restore = commands.add_parser(
        "import", help="add an account from a backup file (a second device, or a new disk)"
    )
    restore.add_argument("file", type=Path, metavar="FILE")
    return parser


def paths_from(args: argparse.Namespace) -> Paths:
    """--profile sets both folders; --config-dir / --data-dir override one of them."""
    base = Paths.from_profile(args.profile) if args.profile else Paths.default()
    return Paths(args.config_dir or base.config_dir, args.data_dir or base.data_dir)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    paths = paths_from(args)
    try:
        config = load_config(paths)
    except (OSError, ValueError) as exc:  # TomlError is a ValueError
        print(f"rune-tui: cannot read the config: {exc}", file=sys.stderr)
        return 2
    if args.command:
        from .backup_cli import run

        return run(args.command, paths, config, args.file)

    os.environ.setdefault("TEXTUAL_FPS", str(FRAME_RATE))  # read when Textual is imported
    from .app import RuneApp

    app = RuneApp(paths, config, server=args.server)
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
