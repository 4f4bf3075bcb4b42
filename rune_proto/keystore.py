"""Moved to :mod:`rune_proto.local.keystore` (out of the sans-I/O core); kept for imports."""

from .local.keystore import SERVICE as SERVICE
from .local.keystore import EncryptedFileStore as EncryptedFileStore
from .local.keystore import KeyNotFound as KeyNotFound
from .local.keystore import KeyringStore as KeyringStore
from .local.keystore import KeystoreError as KeystoreError
from .local.keystore import KeystoreLocked as KeystoreLocked
from .local.keystore import WrongPassphrase as WrongPassphrase
from .local.keystore import key_file_name as key_file_name
from .local.keystore import keyring_usable as keyring_usable
from .local.keystore import open_keystore as open_keystore
