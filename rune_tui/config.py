"""Where rune-tui keeps things, and the accounts and settings it remembers.

Config (accounts, server pins, settings) is TOML under the platformdirs config dir, a
file people edit: saving keeps their comments (see :func:`rune_proto.local.tomlfile.update`);
the sealed contact books live beside it; data (the sealed replay logs, message cache and
drafts, and key files when there is no keyring) under the data dir. Every per-account
file is named by a keyed hash of its address, never the address itself. ``--profile DIR`` puts both
under one folder, so several identities and the tests stay apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rune_proto.address import Address, parse_address
from rune_proto.local import tomlfile

if TYPE_CHECKING:
    from rune_proto.client import Vault

APP_NAME = "rune"
DEFAULT_DATE_FORMAT = "%Y-%m-%d %H:%M"
DEFAULT_POLL_SECONDS = 60
MIN_POLL_SECONDS = 5
DEFAULT_THEME = "textual-dark"
DEFAULT_SENT_ATTACHMENT_LIMIT_MIB = 10


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

    def contacts_file(self, address: Address, vault: Vault) -> Path:
        """The account's sealed contact book, named by a keyed hash (no address)."""
        return self.config_dir / "contacts" / vault.name(f"rune/1 contact book {address}")

    def replay_log(self, address: Address, vault: Vault) -> Path:
        """The account's sealed replay log, named like the contact book."""
        return self.data_dir / "seen" / vault.name(f"rune/1 replay log {address}")

    def legacy_contacts_file(self, address: Address) -> Path:
        """Where older versions kept the book: in the clear, named by the address."""
        return self.config_dir / "contacts" / f"{address}.toml"

    def legacy_replay_log(self, address: Address) -> Path:
        """Where older versions kept the (already sealed) log: named by the address."""
        return self.data_dir / "seen" / str(address)


# The address of an account read from config.toml before its key is unlocked: the file
# holds it sealed by the account's Vault (see rune_tui.service_registration.unlock).
LOCKED = Address("locked", "account")


@dataclass(frozen=True, slots=True)
class Account:
    """One registered address and how to reach and trust its server.

    In config.toml an account is named by ``id``, an opaque keyed hash, and its address
    is ``sealed_address`` (the keystore holds its key under the id too), so the file
    names nobody. Until the key is unlocked, ``address`` is :data:`LOCKED`. An account
    with no ``id`` is an entry of an older config, keyed by its address, converted the
    first time its key is unlocked.
    """

    address: Address
    host: str
    port: int
    tls_pin: str
    server_key: str  # the server's public key token, pinned at registration
    keystore: str = "keyring"  # "keyring" or "file"
    id: str = ""
    sealed_address: str = ""

    @property
    def config_key(self) -> str:
        """Its name in config.toml (and in default_account)."""
        return self.id or str(self.address)

    @property
    def key_name(self) -> str:
        """The name its private key is stored under in the keystore."""
        return self.config_key

    @property
    def address_known(self) -> bool:
        return self.address != LOCKED

    def as_saved(self) -> Account:
        """The account as config.toml reads back: its address sealed, so not known."""
        return replace(self, address=LOCKED) if self.id else self

    @property
    def label(self) -> str:
        """How to name it on screen: the address once known, else where it lives."""
        return str(self.address) if self.address_known else f"account {self.id[:8]} on {self.host}"


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
    # Sent keeps a message's attachments when together they are at most this many MiB.
    sent_attachment_limit_mib: int = DEFAULT_SENT_ATTACHMENT_LIMIT_MIB
    confirm_quit: bool = True  # q in the inbox asks first
    save_folder: str = ""  # where the reader saves attachments; "" = the download folder


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
            if account.config_key == self.default_account:
                return account
        return self.accounts[0] if self.accounts else None

    def with_account(self, account: Account) -> Config:
        """The config with ``account`` added (or replaced) and made the default."""
        others = tuple(a for a in self.accounts if a.config_key != account.config_key)
        return replace(self, accounts=(*others, account), default_account=account.config_key)

    def with_default(self, account: Account) -> Config:
        return replace(self, default_account=account.config_key)

    def replacing(self, account: Account, was: Account | None = None) -> Config:
        """The config with ``account``'s entry (or ``was``'s) updated in place.

        ``was`` is the entry as it was read, when its name changes (an older config's
        entry keyed by address, converted to an opaque id when first unlocked).
        """
        old_key = (was or account).config_key
        accounts = tuple(account if a.config_key == old_key else a for a in self.accounts)
        default = self.default_account
        if default == old_key:
            default = account.config_key
        return replace(self, accounts=accounts, default_account=default)


_SETTINGS = (
    "poll_seconds",
    "date_format",
    "theme",
    "sent_attachment_limit_mib",
    "confirm_quit",
    "save_folder",
    "notify_bell",
    "notify_terminal",
    "notify_desktop",
    "notify_sender",
)
_ACCOUNT_ID = re.compile(r"[0-9a-f]{32}")
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
    limit = raw.get("sent_attachment_limit_mib", DEFAULT_SENT_ATTACHMENT_LIMIT_MIB)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        problems.append(
            "settings.sent_attachment_limit_mib must be a whole number of MiB (0 or more), "
            f"not {limit!r}; using {DEFAULT_SENT_ATTACHMENT_LIMIT_MIB}"
        )
        limit = DEFAULT_SENT_ATTACHMENT_LIMIT_MIB
    confirm_quit = raw.get("confirm_quit", True)
    if not isinstance(confirm_quit, bool):
        problems.append(
            f"settings.confirm_quit must be true or false, not {confirm_quit!r}; using true"
        )
        confirm_quit = True
    save_folder = raw.get("save_folder", "")
    if not isinstance(save_folder, str):
        problems.append(
            f"settings.save_folder must be a folder in quotes, not {save_folder!r}; "
            "using the download folder"
        )
        save_folder = ""
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
        sent_attachment_limit_mib=limit,
        confirm_quit=confirm_quit,
        save_folder=save_folder,
        notify_bell=switches["notify_bell"],
        notify_terminal=terminal,
        notify_desktop=switches["notify_desktop"],
        notify_sender=switches["notify_sender"],
    )


def settings_from_table(raw: dict[str, Any], problems: list[str]) -> Settings:
    """Settings from a [settings]-like table with its ``keymap`` in it (a backup's)."""
    table = dict(raw)
    keymap = _read_keymap(table.pop("keymap", {}), problems)
    return replace(_read_settings(table, problems), keymap=keymap)


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
    """One [accounts.<id>] table (or an older [accounts."address"]); anything missing or
    wrong is a ConfigError."""
    where = f'accounts."{text}"'
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} is not a table")
    account_id, sealed = "", entry.get("address")
    if sealed is not None:  # keyed by an opaque id, the address sealed
        if not _ACCOUNT_ID.fullmatch(text):
            raise ConfigError(f"{where}: an account's name is 32 hex digits, not {text!r}")
        if not isinstance(sealed, str) or not sealed.strip():
            raise ConfigError(f"{where}.address must be the sealed address rune-tui wrote")
        account_id, address = text, LOCKED
    else:
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
        id=account_id,
        sealed_address=sealed or "",
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
    elif default is not None and all(a.config_key != default for a in accounts):
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
        "sent_attachment_limit_mib": s.sent_attachment_limit_mib,
        "notify_bell": s.notify_bell,
        "notify_terminal": s.notify_terminal,
        "notify_desktop": s.notify_desktop,
        "notify_sender": s.notify_sender,
    }
    # Written only when changed, so a config file stays as short as the user left it.
    if not s.confirm_quit:
        doc["settings"]["confirm_quit"] = False
    if s.save_folder:
        doc["settings"]["save_folder"] = s.save_folder
    if s.keymap:
        doc["keymap"] = dict(s.keymap)
    doc["accounts"] = {a.config_key: _account_entry(a) for a in config.accounts}
    tomlfile.update(paths.config_file, doc)


def _account_entry(account: Account) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "host": account.host,
        "port": account.port,
        "tls_pin": account.tls_pin,
        "server_key": account.server_key,
        "keystore": account.keystore,
    }
    if account.id:
        entry["address"] = account.sealed_address
    return entry
