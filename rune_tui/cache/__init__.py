"""The local message cache: the server's sealed blobs on disk, one sealed index to open.

What is cached
    Every retrieved STORED MESSAGE blob, byte for byte as the server sent it (still
    HPKE-sealed to the account's key), one file per message:
    ``<data dir>/cache/<name(account)>/blobs/<name(id)>``, behind a header sealed by the
    :class:`~rune_proto.client.vault.Vault` (:mod:`.blobs`). One index, ``index``: every
    field a list row needs as one sealed JSON document (:mod:`.index`, rows in
    :mod:`.rows`). Read marks made since the index was written go to the ``marks`` journal,
    which also keeps a snapshot of every read id so that marks survive a rebuild
    (:mod:`.marks`). ``server-keys`` lists the server keys blob headers name.

How it is sealed
    No subject, body, sender or id is ever written in the clear. Blobs are sealed by the
    server; the index, blob headers, marks and server keys use ChaCha20-Poly1305 under the
    Vault key (derived from the identity), each with a context naming what it is and for
    which account. File names are keyed hashes (``Vault.name``): they reveal no ids.

Why it is fast
    Opening a 10,000-message cache is one file read, one AEAD open, one ``json.loads``, a
    column-wise check and one :class:`Summary` per row: ~23 ms. No blob is opened at start;
    a body is decrypted when first read and kept in a small LRU (:mod:`.lru`).

When things go wrong
    A missing, damaged, foreign or older-format index is rebuilt from the blobs
    (:mod:`.rebuild`), keeping read marks, in a thread when the caller asks for it
    (``defer_rebuild``). A damaged or missing blob becomes a placeholder saying so and is
    fetched again at the next refresh. Disk errors never raise out of the cache:
    :attr:`MessageCache.error` says what went wrong. A message retrieved before an accepted
    server-key change is checked again against the key it was retrieved under.

``docs/client-cache.md`` has the design and the figures.
"""

from .blobs import BlobStore, ServerKeys
from .index import FORMAT, VERSION
from .lru import OPENED_BYTES, OPENED_ENTRIES
from .marks import MarksJournal, ReadMarks
from .rows import Summary, received_key
from .store import MARKS_LIMIT, MessageCache, Opener

__all__ = [
    "FORMAT",
    "MARKS_LIMIT",
    "OPENED_BYTES",
    "OPENED_ENTRIES",
    "VERSION",
    "BlobStore",
    "MarksJournal",
    "MessageCache",
    "Opener",
    "ReadMarks",
    "ServerKeys",
    "Summary",
    "received_key",
]
