"""The ports on Cloudflare bindings (Python Workers, Queues, SQLite Durable Objects, R2).

Only this package touches JS values; everything it hands the engine is plain Python.
Nothing here imports `workers`/`js`/`pyodide` at import time, so it imports on CPython.
"""
