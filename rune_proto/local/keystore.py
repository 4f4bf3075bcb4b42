"""Where a private key lives between runs: the OS keyring, or a passphrase-encrypted file.

The key is opaque bytes here (a rune/1 private key is 128 bytes); this module only keeps it
safe. The OS keyring is preferred because the desktop already guards it with the login
password. A headless box often has no usable keyring, and then the key goes in a file
encrypted with a passphrase (scrypt + ChaCha20-Poly1305). Nothing here ever writes a key
in the clear, and ``keyring`` is imported only when needed: importing it costs ~80 ms,
which the TUI must not pay at start-up.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from ..secretbox import SecretBoxError, open_secret, seal_secret
from ..secretbox import WrongPassphrase as BoxWrongPassphrase
from .atomicfile import write_atomically

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

SERVICE = "rune"
"""The keyring service name; the keyring's user name is the address."""

# Key files are secret boxes (rune_proto.secretbox), bound to their address.


class KeystoreError(Exception):
    """Keys can't be stored or read; the message says why in words a user can act on."""


class KeyNotFound(KeystoreError):
    """No key is stored for this address."""


class KeystoreLocked(KeystoreError):
    """The OS keyring is locked and was not unlocked."""


class WrongPassphrase(KeystoreError):
    """The passphrase does not open this key file."""


def _normalise(address: str) -> str:
    # Addresses compare case-insensitively; both stores key on the lower-cased form.
    return address.lower()


class KeyringStore:
    """Keys in the OS keyring: service ``rune``, user name = address, secret = base64 key."""

    def __init__(self, backend: KeyringBackend | None = None) -> None:
        if backend is None:
            import keyring

            backend = keyring.get_keyring()
        self._backend = backend

    @property
    def description(self) -> str:
        return f"the system keyring ({self._backend.name})"

    def save(self, address: str, key: bytes) -> None:
        _check_key(key)
        value = base64.b64encode(key).decode("ascii")
        with self._errors():
            self._backend.set_password(SERVICE, _normalise(address), value)

    def load(self, address: str, *, shown_as: str = "") -> bytes:
        """The key stored under ``address`` (or an opaque name; ``shown_as`` in errors)."""
        with self._errors():
            value = self._backend.get_password(SERVICE, _normalise(address))
        address = shown_as or address
        if value is None:
            raise KeyNotFound(f"no key for {address} in {self.description}")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as e:
            raise KeystoreError(
                f"the entry for {address} in {self.description} is not a Rune key"
                " (was it changed by another program?)"
            ) from e

    def delete(self, address: str) -> None:
        from keyring.errors import PasswordDeleteError

        with self._errors():
            try:
                self._backend.delete_password(SERVICE, _normalise(address))
            except PasswordDeleteError:  # keyring's word for "there is no such entry"
                raise KeyNotFound(f"no key for {address} in {self.description}") from None

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn keyring's exceptions into ours, so callers handle one family."""
        from keyring.errors import InitError, KeyringError, KeyringLocked

        try:
            yield
        except KeyringLocked as e:
            raise KeystoreLocked(
                f"{self.description} is locked; unlock it (log in to the desktop,"
                " or unlock the login keyring) and try again"
            ) from e
        except InitError as e:
            raise KeystoreError(f"{self.description} could not be opened: {e}") from e
        except KeyringError as e:
            raise KeystoreError(f"{self.description} failed: {e or type(e).__name__}") from e


class EncryptedFileStore:
    """Keys in files under ``directory``, each encrypted with a key derived from a passphrase.

    The file name is a hash of the address, so a directory listing names no one. The
    address (and the whole header) is the AEAD's associated data, so a file renamed to
    another address's name, or with its scrypt parameters changed, fails to open.
    """

    def __init__(self, directory: Path, passphrase: str, *, reason: str = "") -> None:
        if not passphrase:
            raise KeystoreError("an empty passphrase would not protect the key; choose one")
        self.directory = Path(directory)
        self._passphrase = passphrase
        self._reason = reason

    @property
    def description(self) -> str:
        text = f"a passphrase-encrypted key file in {self.directory}"
        return f"{text}, because {self._reason}" if self._reason else text

    def path_for(self, address: str) -> Path:
        return self.directory / key_file_name(address)

    def save(self, address: str, key: bytes) -> None:
        _check_key(key)
        box = seal_secret(key, self._passphrase, _context(address))
        self._write_atomically(self.path_for(address), box)

    def load(self, address: str, *, shown_as: str = "") -> bytes:
        """The key stored under ``address`` (or an opaque name; ``shown_as`` in errors)."""
        path = self.path_for(address)
        shown = shown_as or address
        try:
            box = path.read_bytes()
        except FileNotFoundError:
            raise KeyNotFound(f"no key for {shown} in {self.directory}") from None
        except OSError as e:
            raise KeystoreError(f"can't read the key file {path}: {e.strerror}") from e
        try:
            return open_secret(box, self._passphrase, _context(address))
        except BoxWrongPassphrase:
            raise WrongPassphrase(
                f"wrong passphrase for the key of {shown} (or the key file {path} was altered)"
            ) from None
        except SecretBoxError:
            _damaged(path)

    def delete(self, address: str) -> None:
        try:
            self.path_for(address).unlink()
        except FileNotFoundError:
            raise KeyNotFound(f"no key for {address} in {self.directory}") from None

    def _write_atomically(self, path: Path, blob: bytes) -> None:
        """Write to a 0600 temp file and rename, so a crash never leaves half a key file."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        write_atomically(path, blob, suffix=".key")
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)


def key_file_name(name: str) -> str:
    """The file a key is kept in: a hash of its name (an address, or an opaque id)."""
    digest = hashlib.sha256(b"rune key file\0" + _normalise(name).encode("utf-8"))
    return f"{digest.hexdigest()[:32]}.key"


def _context(address: str) -> bytes:
    """Binds a key file to its address: renamed to another address's name, it won't open."""
    return b"rune key file\0" + _normalise(address).encode("utf-8")


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or not key:
        raise KeystoreError("a private key must be non-empty bytes")


def _damaged(path: Path) -> NoReturn:
    raise KeystoreError(f"the key file {path} is damaged or is not a Rune key file")


def keyring_usable() -> tuple[bool, str]:
    """Whether the OS keyring can hold keys safely, and a reason phrased to follow "because".

    Asks for one (absent) entry, so a locked keyring shows up now rather than mid-save; on
    a desktop that may open the usual unlock prompt, which a later load would open anyway.
    """
    import keyring
    from keyring.backends import fail
    from keyring.errors import KeyringError, KeyringLocked

    try:
        backend = keyring.get_keyring()
    except KeyringError as e:
        return False, f"the system keyring could not be opened ({e})"
    if isinstance(backend, fail.Keyring):
        return False, "no system keyring is available"
    name = backend.name
    if type(backend).__module__.startswith("keyrings.alt"):
        return False, f"the keyring backend '{name}' keeps secrets in a file, not a real keyring"
    try:
        priority = backend.priority
    except Exception as e:  # keyring backends signal "not available here" by raising anything
        return False, f"the keyring backend '{name}' is not available ({e})"
    if priority < 1:
        return False, f"the keyring backend '{name}' is not one keyring recommends"
    try:
        backend.get_password(SERVICE, "rune keystore probe")
    except KeyringLocked:
        return False, "the system keyring is locked"
    except KeyringError as e:
        return False, f"the system keyring does not answer ({e or type(e).__name__})"
    return True, f"the system keyring ({name}) is usable"


def open_keystore(
    data_dir: Path, passphrase: Callable[[], str] | None = None
) -> KeyringStore | EncryptedFileStore:
    """The keyring if it is usable, else encrypted files under ``data_dir/keys``.

    ``passphrase`` is called only when the fallback is needed, so a desktop user is never
    asked for one. Check ``.description`` to tell the user where their key is, and why.
    """
    usable, reason = keyring_usable()
    if usable:
        return KeyringStore()
    if passphrase is None:
        raise KeystoreError(
            f"keys can't go in the system keyring, because {reason}; they can be kept in an"
            " encrypted file instead, but that needs a passphrase"
        )
    return EncryptedFileStore(Path(data_dir) / "keys", passphrase(), reason=reason)
