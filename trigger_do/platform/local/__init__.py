"""The embedded runtime: the ports on SQLite (WAL) and local processes."""
