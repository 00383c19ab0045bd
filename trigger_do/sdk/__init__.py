"""The SDK's handles and clients (embedded: the database directly; remote: the HTTP API)."""
