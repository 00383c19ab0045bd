"""Workers woken when a message they can take is committed, rather than at their next poll.

Each worker binds a Unix datagram socket in a folder of the database's own
(`<tmp>/trigger-do-<uid>-<hash of the database path>/<pid>`); whoever commits a message that
is visible at once (a trigger, a retry without delay, a coordinator's grant) sends each of
them an empty datagram after the commit. A worker that is waiting for work claims at once,
so an idle system starts a run about a millisecond after its trigger instead of half a
poll interval later. It is only a hint: a lost or refused datagram (a full buffer, a worker
that died, a platform without Unix datagram sockets) changes nothing but the latency, since
the workers still poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import tempfile
import time
from pathlib import Path

log = logging.getLogger("trigger_do.doorbell")

RESCAN_SECONDS = 1.0  # how stale a sender's list of workers may be


def doorbell_dir(db_path: Path) -> Path:
    """Short on purpose (a socket's path has a limit of about 100 bytes)."""
    digest = hashlib.sha256(str(db_path.resolve()).encode()).hexdigest()[:16]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"trigger-do-{uid}-{digest}"


class Doorbell:
    """The sending side: `ring()` after a commit wakes every listening worker."""

    def __init__(self, db_path: Path) -> None:
        self.directory = doorbell_dir(db_path)
        self._sock: socket.socket | None = None
        self._peers: list[str] = []
        self._scanned = float("-inf")
        self._off = not hasattr(socket, "AF_UNIX")

    def ring(self) -> None:
        if self._off:
            return
        now = time.monotonic()
        if now - self._scanned > RESCAN_SECONDS:
            self._scanned = now
            try:
                self._peers = [str(p) for p in self.directory.iterdir()]
            except OSError:  # no worker has listened yet
                self._peers = []
        if not self._peers:
            return
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
        except OSError:  # no Unix datagram sockets here: the workers poll
            self._off = True
            return
        for peer in list(self._peers):
            try:
                self._sock.sendto(b"", peer)
            except BlockingIOError:  # its buffer is full: it has wakes enough waiting
                pass
            except (ConnectionRefusedError, FileNotFoundError):  # a worker that is gone
                self._peers.remove(peer)
                with contextlib.suppress(OSError):
                    Path(peer).unlink()
            except OSError:
                self._peers.remove(peer)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Listener:
    """The worker's side: `wait(timeout, stop)` returns when rung, when `stop` is set, or
    after `timeout` seconds."""

    def __init__(self, db_path: Path) -> None:
        self.path = doorbell_dir(db_path) / str(os.getpid())
        self._sock: socket.socket | None = None
        self._rung: asyncio.Event | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Listen (quietly does nothing where it cannot: the worker polls as before)."""
        try:
            self.path.parent.mkdir(mode=0o700, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # a socket left by a dead process with our pid
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind(str(self.path))
            loop.add_reader(sock.fileno(), self._on_ring)
        except (OSError, AttributeError, NotImplementedError) as exc:
            log.debug("no doorbell (%s): polling only", exc)
            return
        self._sock = sock
        self._rung = asyncio.Event()

    def _on_ring(self) -> None:
        assert self._sock is not None and self._rung is not None
        with contextlib.suppress(OSError):
            while True:  # drain: many rings are one wake
                self._sock.recv(16)
        self._rung.set()

    async def wait(self, timeout: float, stop: asyncio.Event) -> None:
        waits = [asyncio.ensure_future(stop.wait())]
        if self._rung is not None:
            waits.append(asyncio.ensure_future(self._rung.wait()))
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if self._rung is not None:  # (before the caller looks for work: a later ring counts)
            self._rung.clear()

    def stop(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._sock is None:
            return
        with contextlib.suppress(Exception):
            loop.remove_reader(self._sock.fileno())
        self._sock.close()
        self._sock = None
        self._rung = None
        with contextlib.suppress(OSError):
            self.path.unlink()
