"""The Rune reference server, ``rune-server``: asyncio over TLS, SQLite store.

``cli`` is the command line, ``service`` the network loop and limits, ``session``
what each command means, ``store`` the storage interface and its SQLite
implementation, ``datadir`` and ``config`` the files on disk.
"""
