"""The PostgreSQL store: several rune-server nodes on one database.

Nothing here is imported unless a ``postgresql://`` database is configured: asyncpg
loads only with :mod:`.store` (``rune-server`` on SQLite never pays for it). The
modules: :mod:`.url` (recognise and mask a URL), :mod:`.schema` (tables, versions),
:mod:`.chunks` (blob chunks), :mod:`.transactions` and :mod:`.reads` (the SQL of
each store call), :mod:`.ordering` (the order pass), :mod:`.store`
(:class:`~.store.PgStore`, the :class:`~rune_proto.server.store.Store` over a pool).
"""
