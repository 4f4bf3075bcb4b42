"""Where rune-tui keeps things, and the accounts and settings it remembers.

Config (accounts, server pins, settings) is TOML under the platformdirs config dir;
contacts live beside it; data (the replay log, later the encrypted message cache and
key files when there is no keyring) under the data dir. ``--profile DIR`` puts both
under one folder, so several identities and the tests stay apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rune_proto import tomlfile
from rune_proto.address import Address, parse_address

APP_NAME = "rune"
DEFAULT_DATE_FORMAT = "%Y-%m-%d %H:%M"
DEFAULT_POLL_SECONDS = 60


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
    theme: str = "textual-dark"
    keymap: dict[str, str] = field(default_factory=dict)  # binding id -> keys


@dataclass(frozen=True, slots=True)
class Config:
    accounts: tuple[Account, ...] = ()
    default_account: str | None = None
    settings: Settings = field(default_factory=Settings)

    @property
    def current(self) -> Account | None:
        for account in self.accounts:
            if str(account.address) == self.default_account:
                return account
        return self.accounts[0] if self.accounts else None

    def with_account(self, account: Account) -> Config:
        others = tuple(a for a in self.accounts if a.address != account.address)
        return replace(self, accounts=(*others, account), default_account=str(account.address))


def load_config(paths: Paths) -> Config:
    """Read the config; a missing file is an empty config (the wizard runs)."""
    doc = tomlfile.read(paths.config_file)
    raw = doc.get("settings", {})
    try:
        settings = Settings(
            poll_seconds=max(5, int(raw.get("poll_seconds", DEFAULT_POLL_SECONDS))),
            date_format=str(raw.get("date_format", DEFAULT_DATE_FORMAT)),
            theme=str(raw.get("theme", "textual-dark")),
            keymap={str(k): str(v) for k, v in doc.get("keymap", {}).items()},
        )
        accounts = tuple(
            Account(
                address=parse_address(text),
                host=str(entry["host"]),
                port=int(entry["port"]),
                tls_pin=str(entry["tls_pin"]),
                server_key=str(entry["server_key"]),
                keystore=str(entry.get("keystore", "keyring")),
            )
            for text, entry in doc.get("accounts", {}).items()
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise tomlfile.TomlError(f"{paths.config_file} is damaged: {exc}") from exc
    return Config(accounts, doc.get("default_account"), settings)


def save_config(paths: Paths, config: Config) -> None:
    doc: dict[str, Any] = {}
    if config.default_account:
        doc["default_account"] = config.default_account
    s = config.settings
    doc["settings"] = {
        "poll_seconds": s.poll_seconds,
        "date_format": s.date_format,
        "theme": s.theme,
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
    tomlfile.write(paths.config_file, doc)
