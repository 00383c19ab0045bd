"""Concurrency and rate-limit declarations (enforcement: the coordinator)."""
