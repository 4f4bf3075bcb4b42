"""Where rune-tui keeps things, and the accounts and settings it remembers.

Config (accounts, server pins, settings) is TOML under the platformdirs config dir, a
file people edit: saving keeps their comments (see :func:`rune_proto.tomlfile.update`);
contacts live beside it; data (the replay log, later the encrypted message cache and
key files when there is no keyring) under the data dir. ``--profile DIR`` puts both
under one folder, so several identities and the tests stay apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from rune_proto import tomlfile
from rune_proto.address import Address, parse_address

APP_NAME = "rune"
DEFAULT_DATE_FORMAT = "%Y-%m-%d %H:%M"
DEFAULT_POLL_SECONDS = 60
MIN_POLL_SECONDS = 5
DEFAULT_THEME = "textual-dark"


class ConfigError(tomlfile.TomlError):
    """The config file cannot be used; the message names the file and the entry."""


@dataclass(frozen=True, slots=True)
class Paths:
    config_dir: Path
    data_dir: Path

    @classmethod
    def default(cls) -> Paths:
        import platformdirs  # lazily: only needed when no folder was given

        return cls(
            Path(platformdirs.user_config_dir(APP_NAME)),
            Path(platformdirs.user_data_dir(APP_NAME)),
        )

    @classmethod
    def from_profile(cls, profile: Path) -> Paths:
        return cls(profile / "config", profile / "data")

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    def contacts_file(self, address: Address) -> Path:
        return self.config_dir / "contacts" / f"{address}.toml"

    def replay_log(self, address: Address) -> Path:
        return self.data_dir / "seen" / str(address)


@dataclass(frozen=True, slots=True)
class Account:
    """One registered address and how to reach and trust its server."""

    address: Address
    host: str
    port: int
    tls_pin: str
    server_key: str  # the server's public key token, pinned at registration
    keystore: str = "keyring"  # "keyring" or "file"


@dataclass(frozen=True, slots=True)
class Settings:
    poll_seconds: int = DEFAULT_POLL_SECONDS
    date_format: str = DEFAULT_DATE_FORMAT
    theme: str = DEFAULT_THEME
    # New-mail notices (rune_tui/notify.py; docs/settings.md): each on its own.
    notify_bell: bool = False
    notify_terminal: str = "off"  # "off", "osc9" or "osc777"
    notify_desktop: bool = True  # only where notify-send and a display exist
    notify_sender: bool = False  # name the sender in notices (others may see them)
    keymap: dict[str, str] = field(default_factory=dict)  # binding id -> keys


@dataclass(frozen=True, slots=True)
class Config:
    accounts: tuple[Account, ...] = ()
    default_account: str | None = None
    settings: Settings = field(default_factory=Settings)
    # Settings that were not usable and fell back to their defaults, in words (the app
    # shows them once at start-up). Not saved: they describe the file as it was read.
    problems: tuple[str, ...] = field(default=(), compare=False)

    @property
    def current(self) -> Account | None:
        for account in self.accounts:
            if str(account.address) == self.default_account:
                return account
        return self.accounts[0] if self.accounts else None

    def with_account(self, account: Account) -> Config:
        """The config with ``account`` added (or replaced) and made the default."""
        others = tuple(a for a in self.accounts if a.address != account.address)
        return replace(self, accounts=(*others, account), default_account=str(account.address))

    def with_default(self, account: Account) -> Config:
        return replace(self, default_account=str(account.address))

    def replacing(self, account: Account) -> Config:
        """The config with ``account``'s entry updated in place (e.g. new server pins)."""
        accounts = tuple(account if a.address == account.address else a for a in self.accounts)
        return replace(self, accounts=accounts)


_SETTINGS = (
    "poll_seconds",
    "date_format",
    "theme",
    "notify_bell",
    "notify_terminal",
    "notify_desktop",
    "notify_sender",
)
_SWITCHES = ("notify_bell", "notify_desktop", "notify_sender")
_TERMINAL_NOTICES = ("off", "osc9", "osc777")
_KEYSTORES = ("keyring", "file")


def _read_settings(raw: object, problems: list[str]) -> Settings:
    """The [settings] table; a bad value falls back to its default and is reported."""
    if not isinstance(raw, dict):
        problems.append("[settings] is not a table; using the defaults")
        return Settings()
    for name in raw:
        if name not in _SETTINGS:
            problems.append(
                f"settings.{name} is not a setting (known: {', '.join(_SETTINGS)}); ignored"
            )
    poll = raw.get("poll_seconds", DEFAULT_POLL_SECONDS)
    if isinstance(poll, bool) or not isinstance(poll, int):
        problems.append(
            f"settings.poll_seconds must be a whole number of seconds, not {poll!r}; "
            f"using {DEFAULT_POLL_SECONDS}"
        )
        poll = DEFAULT_POLL_SECONDS
    elif poll < MIN_POLL_SECONDS:
        problems.append(
            f"settings.poll_seconds is {poll}; the least is {MIN_POLL_SECONDS}, so using that"
        )
        poll = MIN_POLL_SECONDS
    date_format = raw.get("date_format", DEFAULT_DATE_FORMAT)
    date_problem = _check_date_format(date_format)
    if date_problem:
        problems.append(f"settings.date_format {date_problem}; using {DEFAULT_DATE_FORMAT!r}")
        date_format = DEFAULT_DATE_FORMAT
    theme = raw.get("theme", DEFAULT_THEME)
    if not isinstance(theme, str) or not theme.strip():
        problems.append(f"settings.theme must be a theme's name, not {theme!r}; using the default")
        theme = DEFAULT_THEME
    defaults = Settings()
    switches: dict[str, bool] = {}
    for name in _SWITCHES:
        value = raw.get(name, getattr(defaults, name))
        if not isinstance(value, bool):
            problems.append(f"settings.{name} must be true or false, not {value!r}; ignored")
            value = getattr(defaults, name)
        switches[name] = value
    terminal = raw.get("notify_terminal", "off")
    if terminal not in _TERMINAL_NOTICES:
        problems.append(
            f"settings.notify_terminal is one of {', '.join(_TERMINAL_NOTICES)},"
            f" not {terminal!r}; using 'off'"
        )
        terminal = "off"
    return Settings(
        poll_seconds=poll,
        date_format=date_format,
        theme=theme,
        notify_bell=switches["notify_bell"],
        notify_terminal=terminal,
        notify_desktop=switches["notify_desktop"],
        notify_sender=switches["notify_sender"],
    )


def _check_date_format(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return f"must be a strftime pattern such as {DEFAULT_DATE_FORMAT!r}, not {value!r}"
    try:
        datetime(2025, 3, 14, 9, 30).strftime(value)
    except (ValueError, UnicodeError) as exc:
        return f"{value!r} is not a usable strftime pattern ({exc})"
    return None


def _read_keymap(raw: object, problems: list[str]) -> dict[str, str]:
    """[keymap]: binding id = "keys" (comma-separated); bad entries are skipped."""
    if not isinstance(raw, dict):
        problems.append('[keymap] is not a table of binding id = "keys"; ignored')
        return {}
    keymap: dict[str, str] = {}
    for binding_id, keys in raw.items():
        if isinstance(keys, dict) and "." not in binding_id:
            # `[keymap] inbox.compose = "w"` written unquoted is a nested table in TOML
            for name, value in keys.items():
                keymap.update(_read_keymap({f"{binding_id}.{name}": value}, problems))
            continue
        if not isinstance(keys, str) or not keys.strip():
            problems.append(
                f'keymap.{binding_id} must be keys in quotes such as "ctrl+n" or '
                f'"w,ctrl+w", not {keys!r}; ignored'
            )
            continue
        parts = [part.strip() for part in keys.split(",")]
        if not all(parts) or any(" " in part for part in parts):
            problems.append(
                f"keymap.{binding_id} = {keys!r} is not a comma-separated list of keys; ignored"
            )
            continue
        keymap[binding_id] = ",".join(parts)
    return keymap


def _read_account(text: str, entry: object) -> Account:
    """One [accounts."address"] table; anything missing or wrong is a ConfigError."""
    where = f'accounts."{text}"'
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} is not a table")
    try:
        address = parse_address(text)
    except ValueError as exc:
        raise ConfigError(f"{where}: {text!r} is not an address ({exc})") from exc
    missing = [k for k in ("host", "port", "tls_pin", "server_key") if k not in entry]
    if missing:
        raise ConfigError(f"{where} is missing {', '.join(missing)}")
    port = entry["port"]
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(f"{where}.port must be a port number (1-65535), not {port!r}")
    for name in ("host", "tls_pin", "server_key"):
        if not isinstance(entry[name], str) or not entry[name].strip():
            raise ConfigError(f"{where}.{name} must be text, not {entry[name]!r}")
    keystore = entry.get("keystore", "keyring")
    if keystore not in _KEYSTORES:
        raise ConfigError(f'{where}.keystore must be "keyring" or "file", not {keystore!r}')
    return Account(
        address=address,
        host=entry["host"],
        port=port,
        tls_pin=entry["tls_pin"],
        server_key=entry["server_key"],
        keystore=keystore,
    )


def load_config(paths: Paths) -> Config:
    """Read the config; a missing file is an empty config (the wizard runs).

    Unusable settings or keymap entries fall back to their defaults and are listed in
    ``Config.problems``; a damaged account or a file that is not TOML raises
    :class:`ConfigError` (a ValueError) with one sentence naming the file and the entry.
    """
    doc = tomlfile.read(paths.config_file)
    problems: list[str] = []
    settings = _read_settings(doc.get("settings", {}), problems)
    settings = replace(settings, keymap=_read_keymap(doc.get("keymap", {}), problems))
    accounts_table = doc.get("accounts", {})
    if not isinstance(accounts_table, dict):
        raise ConfigError(f"{paths.config_file}: [accounts] is not a table")
    try:
        accounts = tuple(_read_account(t, e) for t, e in accounts_table.items())
    except ConfigError as exc:
        raise ConfigError(f"{paths.config_file}: {exc}") from None
    default = doc.get("default_account")
    if default is not None and not isinstance(default, str):
        problems.append(f"default_account must be an address in quotes, not {default!r}")
        default = None
    elif default is not None and all(str(a.address) != default for a in accounts):
        problems.append(f"default_account {default!r} is not one of the accounts")
    return Config(accounts, default, settings, tuple(problems))


def save_config(paths: Paths, config: Config) -> None:
    """Write the config back; the user's comments and layout in the file are kept."""
    doc: dict[str, Any] = {}
    if config.default_account:
        doc["default_account"] = config.default_account
    s = config.settings
    doc["settings"] = {
        "poll_seconds": s.poll_seconds,
        "date_format": s.date_format,
        "theme": s.theme,
        "notify_bell": s.notify_bell,
        "notify_terminal": s.notify_terminal,
        "notify_desktop": s.notify_desktop,
        "notify_sender": s.notify_sender,
    }
    if s.keymap:
        doc["keymap"] = dict(s.keymap)
    doc["accounts"] = {
        str(a.address): {
            "host": a.host,
            "port": a.port,
            "tls_pin": a.tls_pin,
            "server_key": a.server_key,
            "keystore": a.keystore,
        }
        for a in config.accounts
    }
    tomlfile.update(paths.config_file, doc)
