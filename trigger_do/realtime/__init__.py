"""Realtime: runs watched live. `rows` (a run as Electric's wire shape), `feeds` (what is
watched: a run, tags, a batch), `watcher` (one per process: waits for a feed to change),
`protocol` (Electric's shape long-polling, HTTP-agnostic). The routes are `api/realtime.py`,
the Python iterator `sdk/realtime.py`."""
