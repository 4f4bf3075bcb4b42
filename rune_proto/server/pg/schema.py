"""The store's PostgreSQL schema: the SQLite tables (../schema.py), and their versioning.

Same tables, same meaning, so the server's semantics carry over one to one: keys
only in the rows that lookups search (``mailbox`` holds a blob's slot list, not the
blob), ``usage`` for the quota check, ``limits`` for the abuse limits, ``holds``
and ``layout`` for the operators' actions and the order pass. Differences:

- ``failures``: the shared throttle of failed LOGIN and registration attempts
  (throttle.py keeps it in memory on SQLite; with several nodes it must be shared
  and outlive a restart, or N nodes would give N× the guesses).
- ``layout.next_slot``: the end of the slot array, taken with ``UPDATE … RETURNING``
  in the commit's transaction (chunks.py): dense and race-free across nodes.
- Text keys use the "C" collation: byte order, as SQLite compares, so listings and
  the account lookup (``ACCOUNT_QUERY``) behave the same.
- ``chunks.data`` is stored PLAIN: never compressed (blobs are ciphertext anyway)
  and never moved out of its row into a TOAST table, whose own order would show
  arrival (chunks.py picks a size that fits a page).

Versioning: the ``rune_schema`` table holds one row, the version. :func:`prepare`
creates or upgrades inside one transaction under a transaction-level advisory
lock, so N nodes starting at once do it once, one after the other (PostgreSQL's
DDL is transactional: a crash part-way leaves nothing behind). A database newer
than this code is refused, never touched.
"""

from __future__ import annotations

from ..schema import SchemaError as SchemaError
from .chunks import CHUNK_BYTES, Connection

SCHEMA_VERSION = 1
# pg_advisory_xact_lock key of schema changes: "rune" in ASCII, then "schm"
PREPARE_LOCK = 0x72756E65_7363686D

_TABLES = (
    "CREATE TABLE rune_schema (one boolean PRIMARY KEY DEFAULT true CHECK (one),"
    " version integer NOT NULL)",
    'CREATE TABLE accounts (address text COLLATE "C" PRIMARY KEY, public_key bytea NOT NULL)',
    # epoch: the parity of the max-age bucket it arrived in (../expiry.py)
    """CREATE TABLE mailbox (
        receiver text COLLATE "C" NOT NULL, id text COLLATE "C" NOT NULL,
        size bigint NOT NULL, slots bytea NOT NULL, epoch smallint NOT NULL DEFAULT 0,
        PRIMARY KEY (receiver, id))""",
    # sealed at rest, the owner inside (chunks.py): nothing here names a message
    "CREATE TABLE chunks (slot bigint PRIMARY KEY, data bytea NOT NULL)",
    "ALTER TABLE chunks ALTER COLUMN data SET STORAGE PLAIN",
    # chunks appended since the last order pass, which moves them (ordering.py)
    "CREATE TABLE fresh (slot bigint PRIMARY KEY)",
    # sealed slot lists of messages deleted without the key: the pass frees them
    """CREATE TABLE freed (
        receiver text COLLATE "C" NOT NULL, id text COLLATE "C" NOT NULL,
        slots bytea NOT NULL, PRIMARY KEY (receiver, id))""",
    """CREATE TABLE usage (
        receiver text COLLATE "C" PRIMARY KEY, bytes bigint NOT NULL, count integer NOT NULL)""",
    """CREATE TABLE invitations (
        token_hash bytea PRIMARY KEY, address text COLLATE "C" NOT NULL,
        expires_at bigint NOT NULL)""",
    'CREATE TABLE holds (address text COLLATE "C" PRIMARY KEY, kind text NOT NULL)',
    'CREATE TABLE layout (name text COLLATE "C" PRIMARY KEY, value bigint NOT NULL)',
    "CREATE TABLE limits (key bytea PRIMARY KEY, ends bigint NOT NULL, count integer NOT NULL)",
    """CREATE TABLE failures (
        kind text COLLATE "C" NOT NULL, key bytea NOT NULL, count integer NOT NULL,
        last_at double precision NOT NULL, PRIMARY KEY (kind, key))""",
)

# chunk_bytes (fixed at creation), next_slot (the next unused slot number), rewrite
# (the next table the order pass writes again, 0 when none), pending (1: something
# changed since the last pass began), holds (random, drawn again at each block or
# delete), epoch (expiry bucket).
_LAYOUT = ("chunk_bytes", "next_slot", "rewrite", "pending", "holds", "epoch")

# As ../schema.py's: one row read whether or not the address has an account.
ACCOUNT_QUERY = """
SELECT address = $1, public_key FROM accounts WHERE address = COALESCE(
    (SELECT MIN(address) FROM accounts WHERE address >= $1), (SELECT MAX(address) FROM accounts))
"""


async def version(conn: Connection) -> int | None:
    """The database's schema version; None if it has no Rune tables yet."""
    # pg_tables, not to_regclass: a plain query sees a table another node has just
    # committed, where the catalog cache may not yet
    if not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables"
        " WHERE schemaname = current_schema() AND tablename = 'rune_schema')"
    ):
        return None
    found = await conn.fetchval("SELECT version FROM rune_schema")
    return None if found is None else int(found)


async def prepare(conn: Connection) -> None:
    """Create the tables, or upgrade them, to SCHEMA_VERSION; a no-op when there.

    Safe with several nodes starting at once: each waits for the advisory lock, and
    the later ones find the work done. Raises :class:`SchemaError` for a schema
    newer than this code (or one it does not know).
    """
    found = await version(conn)
    if found == SCHEMA_VERSION:
        return
    _refuse_newer(found)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", PREPARE_LOCK)
        found = await version(conn)  # another node may have done it meanwhile
        _refuse_newer(found)
        if found is None:
            await _create(conn)
        elif found != SCHEMA_VERSION:
            raise SchemaError(f"database schema version {found}, expected {SCHEMA_VERSION}")


def _refuse_newer(found: int | None) -> None:
    if found is not None and found > SCHEMA_VERSION:
        raise SchemaError(
            f"database schema version {found} is newer than this rune-server"
            f" ({SCHEMA_VERSION}): run the newer version, or restore a backup made for this one"
        )


async def _create(conn: Connection) -> None:
    for statement in _TABLES:
        await conn.execute(statement)
    values = {"chunk_bytes": CHUNK_BYTES}
    await conn.executemany(
        "INSERT INTO layout (name, value) VALUES ($1, $2)",
        [(name, values.get(name, 0)) for name in _LAYOUT],
    )
    await conn.execute("INSERT INTO rune_schema (version) VALUES ($1)", SCHEMA_VERSION)


async def chunk_bytes(conn: Connection) -> int:
    return int(await conn.fetchval("SELECT value FROM layout WHERE name = 'chunk_bytes'"))
