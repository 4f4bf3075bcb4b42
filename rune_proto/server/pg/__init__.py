"""The PostgreSQL side of rune-server (several nodes on one database).

asyncpg is imported only inside this package, and only when a ``postgresql://``
database is used: a one-box server on SQLite never loads it.
"""
