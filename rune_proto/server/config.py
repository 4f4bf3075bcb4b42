"""The server's data directory, its flat TOML config, and where the passphrase comes from.

The config is flat on purpose: one key per limit. ``init`` writes it whole with tomli-w
(atomically); it is read back with the standard library's ``tomllib`` and each value
checked against the real type of its :class:`ServerConfig` field. Every key has a
default; unknown keys are refused so a typo never silently falls back to a default.
See ``docs/server.md`` for what each key means.
"""

from __future__ import annotations

import getpass
import os
import re
import sys
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import get_type_hints

import tomli_w

from ..address import AddressError, validate_part
from ..errors import LocalProtocolError
from ..events import Greeting
from ..local.atomicfile import write_atomically
from ..transport import DEFAULT_PORT
from ..wire import message_line_limit
from .eventloop import EVENT_LOOPS
from .logsetup import LOG_FORMATS, LOG_LEVELS

MIB = 1024 * 1024
MIN_MAX_LINE = 2048  # REGISTER_INVITATION with a full public key token is ~1.9 KiB
# A throttled verdict waits at most this long: well inside the shutdown grace period
# and any sane client timeout.
MAX_THROTTLE_DELAY = 20.0
MAX_ADMIN_POLL = 60.0  # seconds: a block must not wait longer than this to bite
MAX_LIMIT_WINDOW = 7 * 86400  # a counter row lives at most one window (limits.py)
MAX_WAIT_LIFETIME = 3600  # a wait lives at most an hour; clients re-WAIT after it
PASSPHRASE_ENV = "RUNE_SERVER_PASSPHRASE"
MAX_WORKERS = 64  # worker processes (workers.py); far more than cores is only overhead
# PostgreSQL connections of one process at least (a group commit and a read at once),
# and of the whole server at most (each is a PostgreSQL backend process).
MIN_POOL = 2
MAX_POOL = 1000
REGISTRATION_CHOICES = ("free", "invite", "both", "closed")
_MODES = {"free": ("free",), "invite": ("invite",), "both": ("free", "invite"), "closed": ()}


class OperatorError(Exception):
    """A problem the operator must fix; the CLI prints it as one line and exits 2."""


@dataclass(frozen=True, slots=True)
class DataDir:
    """The files ``rune-server init`` creates. Secrets are only ever stored encrypted."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def tls_cert(self) -> Path:
        return self.root / "tls.crt"

    @property
    def tls_key(self) -> Path:
        """Encrypted PKCS#8 PEM (the passphrase decrypts it)."""
        return self.root / "tls.key"

    @property
    def identity(self) -> Path:
        """The server identity, sealed with :mod:`rune_proto.secretbox`."""
        return self.root / "identity.key"

    @property
    def identity_pub(self) -> Path:
        """The public key token, so ``fingerprint`` needs no passphrase."""
        return self.root / "identity.pub"

    @property
    def database(self) -> Path:
        return self.root / "rune.db"

    def check(self) -> None:
        if not self.config.is_file():
            raise OperatorError(f"{self.root} is not a rune-server data directory (run init)")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything ``config.toml`` holds, with the defaults documented in docs/server.md."""

    domain: str
    welcome: str = "Rune is Not Email"
    registration: str = "free"
    port: int = DEFAULT_PORT
    max_payload_mib: float = 16
    max_line: int = 4096
    idle_timeout: float = 300
    # The longest a WAIT is held before 281 (the client then waits again); announced in
    # CAPA. While waiting, it replaces the idle timeout (docs/protocol.md §10.7).
    # 0: WAIT is not offered (not in CAPA, an unknown command); clients poll.
    wait_lifetime: float = 240
    max_connections: int = 256
    # Connection floods (see rune_proto/server/admission.py): the TLS handshake and the
    # time to log in (or register) are bounded from accept, NOOP does not extend the
    # latter; slots only logged-in clients can hold; pre-login connections per source.
    handshake_timeout: float = 10
    login_timeout: float = 60
    login_reserved_connections: int = 64
    max_anonymous_per_source: int = 64
    max_failures: int = 10
    mailbox_quota_mib: float = 256
    # Seconds after a change until the order pass hides when it happened: a copy of
    # the files shows no arrival order for anything older (rune_proto/server/compaction.py).
    order_window: float = 60
    # Server-wide bytes of unfinished long lines and large replies beyond each
    # connection's free allowance (rune_proto/server/budget.py; bound in docs/server.md).
    memory_budget_mib: float = 64
    # Failed logins and registrations (see rune_proto/server/throttle.py): per address
    # and per connection, the first throttle_after failures are answered at once; then
    # each verdict waits throttle_delay seconds, doubling, at most throttle_max_delay.
    throttle_after: int = 5
    throttle_delay: float = 0.5
    throttle_max_delay: float = 8
    throttle_window: float = 900
    throttle_table: int = 10000
    # How often (seconds) the server looks whether an operator blocked or deleted an
    # account (one row read; rune_proto/server/admin.py), and ends its sessions.
    admin_poll_interval: float = 0.5
    # Abuse limits (rune_proto/server/limits.py), counted in the database so that
    # every connection and node shares them; 0 turns one off. Registrations per
    # source address (an IPv6 /64), messages per sender, messages per receiver, each
    # per window of that many seconds.
    register_limit: int = 5
    register_window: float = 3600
    send_limit: int = 300
    send_window: float = 3600
    inflow_limit: int = 1000
    inflow_window: float = 3600
    # Bytes kept free for DELETE on a full disk (rune_proto/server/diskspace.py).
    disk_reserve_mib: float = 16
    # Prometheus metrics (rune_proto/server/metrics.py): off while the port is 0;
    # an empty host is loopback (127.0.0.1).
    metrics_port: int = 0
    metrics_host: str = ""
    # The log (rune_proto/server/logsetup.py): plain, timestamped or json lines; a
    # level; and every stats_interval seconds a line of aggregate counts (0: never).
    log_format: str = "plain"
    log_level: str = "info"
    stats_interval: float = 3600
    # Delete stored messages after max_age_days to twice that (expiry.py); 0: never.
    max_age_days: float = 0
    # The store (dburl.py): empty is the SQLite file rune.db in the data directory; a
    # postgresql:// URL puts it in PostgreSQL, shared by every node (docs/operations.md).
    database: str = ""
    # Worker processes on this machine (workers.py; ``serve --workers`` overrides it).
    # More than one needs PostgreSQL; the connection and memory limits above and the
    # database pool are the whole server's, split across the workers.
    workers: int = 1
    # Connections to PostgreSQL this server (all its workers together) holds at most.
    database_pool: int = 8
    # The event loop (eventloop.py): auto (uvloop when installed), uvloop or asyncio.
    event_loop: str = "auto"

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "domain", validate_part("domain", self.domain))
        except AddressError as exc:
            raise OperatorError(f"config: {exc}") from exc
        try:
            Greeting(("rune/1",), self.welcome)
        except LocalProtocolError as exc:
            raise OperatorError(f"config: welcome: {exc}") from exc
        if self.registration not in REGISTRATION_CHOICES:
            raise OperatorError(f"config: registration is one of {', '.join(REGISTRATION_CHOICES)}")
        if not 0 <= self.port <= 65535:
            raise OperatorError("config: port is 0 to 65535")
        if self.max_line < MIN_MAX_LINE:
            raise OperatorError(f"config: max_line must be at least {MIN_MAX_LINE}")
        positive = ("max_payload_mib", "idle_timeout", "mailbox_quota_mib", "memory_budget_mib")
        if self.wait_lifetime != 0 and not 1 <= self.wait_lifetime <= MAX_WAIT_LIFETIME:
            raise OperatorError(
                f"config: wait_lifetime is 1 to {MAX_WAIT_LIFETIME} seconds, or 0 for no WAIT"
            )
        for name in (*positive, "handshake_timeout", "login_timeout", "order_window"):
            if not getattr(self, name) > 0:
                raise OperatorError(f"config: {name} must be positive")
        if not 0 < self.admin_poll_interval <= MAX_ADMIN_POLL:
            raise OperatorError(
                f"config: admin_poll_interval must be above 0 and at most {MAX_ADMIN_POLL:g}"
            )
        if self.max_payload < 1024 or self.max_payload > 1024 * MIB:
            raise OperatorError("config: max_payload_mib must be between 1 KiB and 1024 MiB")
        if self.max_connections < 1 or self.max_failures < 1:
            raise OperatorError("config: max_connections and max_failures must be at least 1")
        if self.login_reserved_connections < 0 or self.max_anonymous_per_source < 1:
            raise OperatorError(
                "config: login_reserved_connections must be 0 or more,"
                " max_anonymous_per_source 1 or more"
            )
        if self.throttle_after < 0 or self.throttle_table < 1:
            raise OperatorError(
                "config: throttle_after must be 0 or more, throttle_table 1 or more"
            )
        if not 0 <= self.throttle_delay <= self.throttle_max_delay <= MAX_THROTTLE_DELAY:
            raise OperatorError(
                "config: need 0 <= throttle_delay <= throttle_max_delay"
                f" <= {MAX_THROTTLE_DELAY:g} seconds"
            )
        if not self.throttle_window > 0:
            raise OperatorError("config: throttle_window must be positive")
        for kind in ("register", "send", "inflow"):
            if getattr(self, f"{kind}_limit") < 0:
                raise OperatorError(f"config: {kind}_limit must be 0 (off) or more")
            if not 1 <= getattr(self, f"{kind}_window") <= MAX_LIMIT_WINDOW:
                raise OperatorError(
                    f"config: {kind}_window must be 1 to {MAX_LIMIT_WINDOW} seconds (a week)"
                )
        if not 0 <= self.metrics_port <= 65535:
            raise OperatorError("config: metrics_port is 0 (off) to 65535")
        if self.log_format not in LOG_FORMATS or self.log_level not in LOG_LEVELS:
            raise OperatorError(
                f"config: log_format is one of {', '.join(LOG_FORMATS)};"
                f" log_level one of {', '.join(LOG_LEVELS)}"
            )
        if self.max_age_days < 0:
            raise OperatorError("config: max_age_days must be 0 (never) or more")
        if self.stats_interval < 0:
            raise OperatorError("config: stats_interval must be 0 (never) or more")
        if self.disk_reserve_mib < 0:
            raise OperatorError("config: disk_reserve_mib must be 0 (none) or more")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise OperatorError(f"config: workers is 1 to {MAX_WORKERS}")
        if not MIN_POOL <= self.database_pool <= MAX_POOL:
            raise OperatorError(f"config: database_pool is {MIN_POOL} to {MAX_POOL}")
        if self.event_loop not in EVENT_LOOPS:
            raise OperatorError(f"config: event_loop is one of {', '.join(EVENT_LOOPS)}")

    @property
    def wait_seconds(self) -> int | None:
        """The WAIT lifetime as CAPA announces it (whole seconds), None if not offered."""
        return int(self.wait_lifetime) or None

    @property
    def modes(self) -> tuple[str, ...]:
        """Registration modes as announced in CAPA."""
        return _MODES[self.registration]

    @property
    def max_payload(self) -> int:
        return int(self.max_payload_mib * MIB)

    @property
    def memory_budget(self) -> int:
        return int(self.memory_budget_mib * MIB)

    @property
    def max_age(self) -> float:
        return self.max_age_days * 86400

    @property
    def metrics_bind(self) -> str:
        return self.metrics_host or "127.0.0.1"

    @property
    def disk_reserve(self) -> int:
        return int(self.disk_reserve_mib * MIB)

    @property
    def mailbox_quota(self) -> int:
        return int(self.mailbox_quota_mib * MIB)

    @property
    def max_message_line(self) -> int:
        return message_line_limit(self.max_payload)


HEADER = "# rune-server configuration; every key is described in docs/server.md.\n"
# What a value of each annotated type may be in the file; TOML has no other kinds here.
_TOML_KINDS: dict[type, tuple[tuple[type, ...], str]] = {
    str: ((str,), "text in quotes"),
    int: ((int,), "a whole number"),
    float: ((int, float), "a number"),
}


def dump_config(config: ServerConfig) -> str:
    """The whole file: we own it (``init`` writes it), so tomli-w writes it whole.

    ``database`` only when set: absent means the SQLite file, as before the key existed.
    """
    values = asdict(config)
    if not config.database:
        del values["database"]
    return HEADER + tomli_w.dumps(values)


def write_config(path: Path, config: ServerConfig) -> None:
    """Replace the config atomically: a crash or a full disk leaves the old one."""
    data = dump_config(config).encode("utf-8")
    # No secrets in it (docs/server.md: 0644), unless a database URL may hold a
    # password: then 0600. The data directory itself is 0700.
    mode = 0o600 if config.database else 0o644
    write_atomically(path, data, prefix=f".{path.name}.", mode=mode)


def load_config(path: Path) -> ServerConfig:
    """Read and check ``config.toml``; an error names the key and its line in the file."""
    try:
        text = path.read_text(encoding="utf-8")
        doc = tomllib.loads(text)
    except OSError as exc:
        raise OperatorError(f"cannot read {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise OperatorError(f"{path} is not valid TOML: {exc}") from exc
    hints = get_type_hints(ServerConfig)
    known = {f.name for f in fields(ServerConfig)}
    for key, value in doc.items():
        where = f"{path}{_line_suffix(text, key)}"
        if key not in known:
            raise OperatorError(f"{where}: unknown key {key!r} (see docs/server.md)")
        allowed, words = _TOML_KINDS[hints[key]]
        # bool is an int in Python, never a number in this file
        if isinstance(value, bool) or not isinstance(value, allowed):
            raise OperatorError(f"{where}: {key} must be {words}, not {_toml_kind(value)}")
    if "domain" not in doc:
        raise OperatorError(f"{path}: the domain key is missing")
    return ServerConfig(**doc)


def _toml_kind(value: object) -> str:
    """The TOML name of what was found (the value itself is not echoed)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "text"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a decimal number"
    return f"a {type(value).__name__}"


def _line_suffix(text: str, key: str) -> str:
    """``, line N`` for the line where top-level ``key`` is set (or opened as a table), if found.

    tomllib gives no positions; the file is flat, so the first line that starts with the
    key, bare or quoted, followed by ``=``, ``.`` or ``]`` is the one.
    """
    spelled = "|".join(re.escape(s) for s in (key, f'"{key}"', f"'{key}'"))
    pattern = re.compile(rf"^\s*\[*\s*(?:{spelled})\s*[=.\]]")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return f", line {number}"
    return ""


def read_passphrase(
    passphrase_file: Path | None,
    *,
    confirm: bool = False,
    env: str = PASSPHRASE_ENV,
    prompt: str = "rune-server passphrase: ",
    option: str = "--passphrase-file",
) -> str:
    """From ``--passphrase-file`` (first line), else the environment, else a TTY prompt."""
    if passphrase_file is not None:
        try:
            text = passphrase_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise OperatorError(f"cannot read the passphrase file {passphrase_file}") from exc
        passphrase = text.splitlines()[0] if text else ""
    elif os.environ.get(env):
        passphrase = os.environ[env]
    elif sys.stdin.isatty():
        passphrase = getpass.getpass(prompt)
        if confirm and getpass.getpass("again: ") != passphrase:
            raise OperatorError("the passphrases do not match")
    else:
        raise OperatorError(f"no passphrase: use {option} or set {env} (stdin is not a TTY)")
    if not passphrase:
        raise OperatorError("the passphrase is empty")
    return passphrase
