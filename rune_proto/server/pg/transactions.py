"""The store's writes as PostgreSQL transaction bodies, safe with several nodes at once.

Each function runs inside the caller's transaction (READ COMMITTED) on one pooled
connection. What makes them right with N nodes on one database is locks taken in
one fixed order — the chunk move lock (chunks.py), ``usage`` rows (by receiver),
``limits`` rows (by key), the ``layout`` rows ``next_slot`` then ``pending`` — so
two transactions never wait on each other in a circle, and a count read under a
lock is the count written back:

- quota: the receiver's ``usage`` row is created if missing (``ON CONFLICT DO
  NOTHING`` waits for a concurrent creator) and locked ``FOR UPDATE`` before it is
  read, so two nodes' commits to one mailbox add up instead of both passing the
  check; a DELETE locks it the same way, so space it frees is seen by the next;
- abuse limits: the same for the ``limits`` rows the charges name;
- registration: the account row's primary key decides (``ON CONFLICT DO
  NOTHING``: the loser sees TAKEN, never an error); the invitation is locked
  ``FOR UPDATE``, so its second user finds it gone (INVALID).

Anything PostgreSQL still reports as a deadlock or a serialization failure is
retried whole by the store.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from .. import limits
from ..database import Outcome
from ..expiry import DOOMED
from ..limits import Charge
from . import chunks, reads
from .chunks import Connection

EXPIRY_BATCH = 500  # messages deleted in one transaction


class Rollback(Exception):
    """Raised inside a transaction to undo it and answer ``outcome``."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.value)
        self.outcome = outcome


async def mark_pending(conn: Connection) -> None:
    """Something the order pass must hide changed (no write when it is marked already)."""
    await conn.execute("UPDATE layout SET value = 1 WHERE name = 'pending' AND value = 0")


async def _lock_usage(conn: Connection, receivers: Sequence[str]) -> dict[str, tuple[int, int]]:
    ordered = sorted(set(receivers))
    await conn.execute(
        """INSERT INTO usage (receiver, bytes, count) SELECT r, 0, 0 FROM unnest($1::text[]) AS r
           ON CONFLICT DO NOTHING""",
        ordered,
    )
    rows = await conn.fetch(
        """SELECT receiver, bytes, count FROM usage WHERE receiver = ANY($1::text[])
           ORDER BY receiver FOR UPDATE""",
        ordered,
    )
    return {str(r[0]): (int(r[1]), int(r[2])) for r in rows}


async def _lock_limits(conn: Connection, charges: Sequence[Charge]) -> limits.Tally:
    """The counters these charges name, locked: key -> (window end, count)."""
    keys = sorted({charge.key for charge in charges})
    if not keys:
        return {}
    await conn.execute(
        """INSERT INTO limits (key, ends, count) SELECT k, 0, 0 FROM unnest($1::bytea[]) AS k
           ON CONFLICT DO NOTHING""",
        keys,
    )
    rows = await conn.fetch(
        "SELECT key, ends, count FROM limits WHERE key = ANY($1::bytea[]) ORDER BY key FOR UPDATE",
        keys,
    )
    return {bytes(r[0]): (int(r[1]), int(r[2])) for r in rows}


def _check(
    stored: limits.Tally, charges: Sequence[Charge], tally: limits.Tally
) -> limits.Kind | None:
    """limits.check over rows read already: the first limit passed, or None (then the
    charges are added to ``tally``)."""
    after: limits.Tally = {}
    for charge in charges:
        ends, count = (
            after.get(charge.key) or tally.get(charge.key) or stored.get(charge.key, (0, 0))
        )
        if ends != charge.ends:  # the counter's window has ended: a new one starts
            ends, count = charge.ends, 0
        if count >= charge.limit:
            return charge.kind
        after[charge.key] = (ends, count + 1)
    tally.update(after)
    return None


async def _write_limits(conn: Connection, tally: limits.Tally) -> None:
    if tally:
        keys = list(tally)
        await conn.execute(
            """UPDATE limits AS l SET ends = v.ends, count = v.count
               FROM unnest($1::bytea[], $2::bigint[], $3::integer[]) AS v(key, ends, count)
               WHERE l.key = v.key""",
            keys,
            [tally[key][0] for key in keys],
            [tally[key][1] for key in keys],
        )


async def add_messages(
    conn: Connection,
    items: Sequence[tuple[str, bytes, int]],
    charges: Sequence[Sequence[Charge]],
    chunk_bytes: int,
) -> list[str | limits.Kind | None]:
    """As Database.add_messages: each ``(receiver, blob, quota)`` gets its new id, None
    (over quota, counting the items before it) or the limit its charges pass."""
    used = await _lock_usage(conn, [receiver for receiver, _, _ in items])
    stored = await _lock_limits(conn, [charge for group in charges for charge in group])
    epoch = int(await conn.fetchval("SELECT value FROM layout WHERE name = 'epoch'")) % 2
    ids: list[str | limits.Kind | None] = []
    accepted: list[tuple[str, str, bytes]] = []
    tally: limits.Tally = {}
    for index, (receiver, blob, quota) in enumerate(items):
        before, count = used[receiver]
        if before + len(blob) > quota:
            ids.append(None)
            continue
        over = _check(stored, charges[index] if charges else (), tally)
        if over is not None:
            ids.append(over)
            continue
        message_id = str(uuid.uuid4())
        accepted.append((receiver, message_id, blob))
        used[receiver] = (before + len(blob), count + 1)
        ids.append(message_id)
    if accepted:
        placed = await chunks.append_many(conn, accepted, chunk_bytes)
        await conn.copy_records_to_table(
            "mailbox",
            records=[
                (receiver, message_id, len(blob), slots, epoch)
                for (receiver, message_id, blob), slots in zip(accepted, placed, strict=True)
            ],
            columns=("receiver", "id", "size", "slots", "epoch"),
        )
        await conn.execute(
            """UPDATE usage AS u SET bytes = v.bytes, count = v.count
               FROM unnest($1::text[], $2::bigint[], $3::integer[]) AS v(receiver, bytes, count)
               WHERE u.receiver = v.receiver""",
            list(used),
            [size for size, _ in used.values()],
            [count for _, count in used.values()],
        )
    await _write_limits(conn, tally)
    if accepted or tally:
        await mark_pending(conn)
    return ids


async def add_invitation(
    conn: Connection, token_hash: bytes, address: str, expires_at: int
) -> None:
    """An operator's invitation (``rune-server invite``), as Database.add_invitation."""
    await conn.execute(
        "INSERT INTO invitations (token_hash, address, expires_at) VALUES ($1, $2, $3)",
        token_hash,
        address,
        expires_at,
    )
    await mark_pending(conn)


async def create_account(
    conn: Connection,
    address: str,
    public_key: bytes,
    token_hash: bytes | None,
    now: int,
    charges: Sequence[Charge],
) -> Outcome:
    """As Database.create_account; raises :class:`Rollback` when a write must be undone."""
    if token_hash is not None:
        row = await conn.fetchrow(
            "SELECT address, expires_at FROM invitations WHERE token_hash = $1 FOR UPDATE",
            token_hash,
        )
        if row is None or row[0] != address:
            return Outcome.INVITATION_INVALID
        if int(row[1]) <= now:
            return Outcome.INVITATION_EXPIRED
    if not await reads.registrable(conn, address):
        return Outcome.TAKEN
    tally: limits.Tally = {}
    if _check(await _lock_limits(conn, charges), charges, tally) is not None:
        raise Rollback(Outcome.REGISTRATION_LIMIT)  # (the counters' new rows go too)
    inserted = await conn.fetchval(
        """INSERT INTO accounts (address, public_key) VALUES ($1, $2)
           ON CONFLICT DO NOTHING RETURNING true""",
        address,
        public_key,
    )
    if not inserted:  # another node registered it since registrable() looked
        raise Rollback(Outcome.TAKEN)
    await _write_limits(conn, tally)
    if token_hash is not None:
        await conn.execute("DELETE FROM invitations WHERE token_hash = $1", token_hash)
    await mark_pending(conn)
    return Outcome.CREATED


async def delete_message(conn: Connection, receiver: str, message_id: str) -> bool:
    await chunks.hold_still(conn)
    await conn.execute("SELECT 1 FROM usage WHERE receiver = $1 FOR UPDATE", receiver)
    row = await conn.fetchrow(
        "DELETE FROM mailbox WHERE receiver = $1 AND id = $2 RETURNING size, slots",
        receiver,
        message_id,
    )
    if row is None:
        return False
    await chunks.free(conn, list(row[1]))
    await conn.execute(
        "UPDATE usage SET bytes = bytes - $1, count = count - 1 WHERE receiver = $2",
        int(row[0]),
        receiver,
    )
    await mark_pending(conn)
    return True


async def expire_step(conn: Connection, now: float, bucket_seconds: float) -> tuple[int, bool]:
    """expiry.sweep_step in PostgreSQL: (messages deleted, whether the sweep is done).

    The ``epoch`` row is locked (after the move lock), so nodes sweeping at once take
    turns.
    """
    await chunks.hold_still(conn)
    epoch = int(await conn.fetchval("SELECT value FROM layout WHERE name = 'epoch' FOR UPDATE"))
    doomed = await conn.fetch(
        f"SELECT receiver, id FROM mailbox WHERE epoch = {DOOMED} LIMIT {EXPIRY_BATCH}"
    )
    if doomed:
        await _lock_usage(conn, [str(r[0]) for r in doomed])
        rows = await conn.fetch(
            """DELETE FROM mailbox AS m USING unnest($1::text[], $2::text[]) AS d(receiver, id)
               WHERE m.receiver = d.receiver AND m.id = d.id
               RETURNING m.receiver, m.size, m.slots""",
            [str(r[0]) for r in doomed],
            [str(r[1]) for r in doomed],
        )
        freed: dict[str, tuple[int, int]] = {}
        for receiver, size, slots in rows:
            await chunks.free(conn, list(slots))
            before = freed.get(receiver, (0, 0))
            freed[receiver] = (before[0] + int(size), before[1] + 1)
        await conn.execute(
            """UPDATE usage AS u SET bytes = u.bytes - v.bytes, count = u.count - v.count
               FROM unnest($1::text[], $2::bigint[], $3::integer[]) AS v(receiver, bytes, count)
               WHERE u.receiver = v.receiver""",
            list(freed),
            [b for b, _ in freed.values()],
            [c for _, c in freed.values()],
        )
        await mark_pending(conn)
        return len(rows), False
    bucket = int(now // bucket_seconds)
    if bucket <= epoch:
        return 0, True
    if epoch == 0:  # never swept (or just turned on): start counting from now
        await conn.execute("UPDATE mailbox SET epoch = $1", bucket % 2)
        await _set_epoch(conn, bucket)
        return 0, True
    if bucket >= epoch + 2:  # both buckets ended: everything is past the age
        await conn.execute(f"UPDATE mailbox SET epoch = {DOOMED} WHERE epoch < {DOOMED}")
    else:  # the bucket before the last: the new bucket's parity
        await conn.execute(f"UPDATE mailbox SET epoch = {DOOMED} WHERE epoch = $1", bucket % 2)
    await _set_epoch(conn, bucket)
    return 0, False


async def current_bucket(conn: Connection) -> int:
    return int(await conn.fetchval("SELECT value FROM layout WHERE name = 'epoch'"))


async def _set_epoch(conn: Connection, bucket: int) -> None:
    await conn.execute("UPDATE layout SET value = $1 WHERE name = 'epoch'", bucket)


async def sweep_limits(conn: Connection, now: float) -> int:
    """Drop the abuse-limit counters whose window has ended."""
    result = await conn.execute("DELETE FROM limits WHERE ends <= $1", int(now))
    return int(result.split()[-1])


async def expire_off(conn: Connection) -> None:
    """Expiry is off: forget the bucket, so turning it on later starts afresh."""
    await _set_epoch(conn, 0)
