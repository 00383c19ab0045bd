"""Metrics kept by the processes that cause them (the `ports.Meter` of the local platform).

prometheus-client's multiprocess mode, file for file: each process writes its counts to its
own memory-mapped files (`counter_<pid>.db`, `histogram_<pid>.db`, prometheus-client's
`MmapedDict`, keys as `mmap_key` makes them) in a folder beside the database
(`<db name>.metrics/`), and a scrape sums every file with prometheus-client's
`MultiProcessCollector`. A worker that died leaves its file: its counts stay in the totals,
so the counters only ever grow (a purge of old runs changes none of them). The folder is the
database's own rather than `$PROMETHEUS_MULTIPROC_DIR`, so that several databases (and an
application's own prometheus-client metrics) never mix.

Counts are added up in memory first, so a run costs a few dict updates rather than six
memory-map writes, and reach the files at `flush()` (the consumer calls it once the outcomes
or starts it counted are durable, the producer once its runs are), at exit, or at the latest
`FLUSH_SECONDS` later (a thread of the meter's own).

`TRIGGER_DO_METRICS=off` turns counting off (`NoMeter`)."""

from __future__ import annotations

import atexit
import bisect
import fcntl
import logging
import os
import struct
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.mmap_dict import _INITIAL_MMAP_SIZE, MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.utils import floatToGoString

from ...runs.index_metrics import BUCKETS as _BUCKETS
from ...runs.index_metrics import COUNTERS, HISTOGRAMS
from .database import LocalSql

log = logging.getLogger("trigger_do.metrics")

BUCKETS = _BUCKETS  # the same names and buckets as the shards' counts (Cloudflare)
FLUSH_SECONDS = 0.1  # counts reach the files (and a scrape) at most this late


def metrics_dir(db_path: Path) -> Path:
    return db_path.parent / f"{db_path.stem}.metrics"


class FileMeter:
    """Counts into this process's files under `directory`."""

    def __init__(self, directory: Path, sql: LocalSql | None = None) -> None:
        self.directory = directory
        self.sql = sql  # for the workers-alive gauge
        self._lock = threading.Lock()
        self._pid = -1
        self._files: dict[str, MmapedDict] = {}
        self._keys: dict[tuple[str, str, str], str] = {}
        self._seen: set[tuple[str, str]] = set()  # histograms whose buckets are written
        self._broken = False
        self._counts: dict[tuple[str, str], float] = {}  # counted, not yet in the files
        self._hists: dict[tuple[str, str], list[float]] = {}  # observed, the same
        self._due = threading.Event()  # set: counts wait for the flusher thread
        self._flusher_pid = -1  # the process whose flusher thread runs
        atexit.register(self.flush)

    # --- counting (in the process that causes it) ---------------------------------------------

    def count(self, event: str, task: str, n: int = 1) -> None:
        if n and event in COUNTERS and not self._broken:
            key = (event, task)
            with self._lock:
                self._counts[key] = self._counts.get(key, 0.0) + n
                self._soon()

    def observe(self, what: str, task: str, seconds: float) -> None:
        self.observe_many(what, task, (seconds,))

    def observe_many(self, what: str, task: str, values: Sequence[float]) -> None:
        if values and what in HISTOGRAMS and not self._broken:
            key = (what, task)
            where = bisect.bisect_left
            with self._lock:
                counts = self._hists.get(key)
                if counts is None:  # a count per bucket (not cumulative), then the sum
                    counts = self._hists[key] = [0.0] * (len(BUCKETS) + 1)
                total = 0.0
                for seconds in values:
                    value = max(0.0, seconds)
                    counts[where(BUCKETS, value)] += 1
                    total += value
                counts[-1] += total
                self._soon()

    def _soon(self) -> None:
        """(Under the lock.) Counts are waiting: the flusher thread writes them shortly."""
        if not self._due.is_set():
            self._due.set()
            if self._flusher_pid != os.getpid():  # none yet, or a forked child's
                self._flusher_pid = os.getpid()
                threading.Thread(
                    target=self._flush_soon, name="trigger-do-metrics", daemon=True
                ).start()

    def _flush_soon(self) -> None:
        while True:
            self._due.wait()
            time.sleep(FLUSH_SECONDS)
            self.flush()

    def flush(self) -> None:
        """Write what was counted so far to this process's files."""
        with self._lock:
            counts, self._counts = self._counts, {}
            hists, self._hists = self._hists, {}
            self._due.clear()
            if self._broken:
                return
            try:
                for (event, task), n in counts.items():
                    name, help_text = COUNTERS[event]
                    self._add("counter", name, f"{name}_total", task, None, n, help_text)
                for (what, task), buckets in hists.items():
                    name, help_text = HISTOGRAMS[what]
                    new = (name, task) not in self._seen  # every bucket shown, empty ones too
                    self._seen.add((name, task))
                    for bound, n in zip(BUCKETS, buckets, strict=False):
                        if n or new:
                            self._add(
                                "histogram", name, f"{name}_bucket", task, bound, n, help_text
                            )
                    self._add("histogram", name, f"{name}_sum", task, None, buckets[-1], help_text)
            except (OSError, ValueError) as exc:  # never the run's problem: say it once, go on
                self._broken = True
                log.warning("metrics off in this process: cannot write %s: %s", self.directory, exc)

    def _add(
        self, kind: str, name: str, sample: str, task: str, le: float | None, amount: float,
        help_text: str,
    ) -> None:  # fmt: skip
        key = self._key(name, sample, task, le, help_text)
        f = self._file(kind)
        if key not in f._positions:  # a new entry: its bytes allocated first
            _allocate(f, len(key.encode()) + 40)
        value, _ = f.read_value(key)
        f.write_value(key, value + amount, 0.0)

    def _key(self, name: str, sample: str, task: str, le: float | None, help_text: str) -> str:
        tag = (sample, task, "" if le is None else floatToGoString(le))
        key = self._keys.get(tag)
        if key is None:
            names, values = ["task"], [task]
            if le is not None:
                names.append("le")
                values.append(floatToGoString(le))
            key = self._keys[tag] = mmap_key(name, sample, names, values, help_text)
        return key

    def _file(self, kind: str) -> MmapedDict:
        pid = os.getpid()
        if pid != self._pid:  # a forked child writes files of its own
            self._files = {}
            self._pid = pid
        f = self._files.get(kind)
        if f is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"{kind}_{pid}.db"
            with open(path, "ab") as fresh:  # its first blocks allocated before it is mapped
                if hasattr(os, "posix_fallocate") and not os.fstat(fresh.fileno()).st_size:
                    os.posix_fallocate(fresh.fileno(), 0, _INITIAL_MMAP_SIZE)
            f = MmapedDict(str(path))
            _allocate(f, 0)
            self._files[kind] = f
        return f

    # --- a scrape ------------------------------------------------------------------------------

    def collect(self) -> list[Any]:
        """Every process's counts (summed), and the workers alive now. The files of processes
        that are gone are first folded into one (`<kind>_merged.db`), under a lock that
        scrapes share, so that short-lived processes (a `trigger-do trigger`, a script) do
        not leave a file each forever."""
        self.flush()
        families: list[Any] = []
        if self.directory.is_dir():
            with open(self.directory / ".lock", "a+") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
                try:
                    self._compact()
                except (OSError, ValueError, struct.error) as exc:  # the files stay as they were
                    log.warning("could not fold the metrics of gone processes: %s", exc)
                families += list(MultiProcessCollector.merge(_readable(self.directory), True))
        if self.sql is not None:
            alive = sum(
                1 for (pid,) in self.sql.exec("SELECT pid FROM worker_sessions") if _alive(pid)
            )
            families.append(
                GaugeMetricFamily(
                    "trigger_do_workers_alive", "Worker processes running now.", value=alive
                )
            )
        return families

    def _compact(self) -> None:
        """Fold the files of dead processes into `<kind>_merged.db` (values added), then
        delete them. A crash between the two counts them twice: never less."""
        for kind in ("counter", "histogram"):
            dead = []
            for f in self.directory.glob(f"{kind}_*.db"):
                pid = f.stem.split("_", 1)[1]
                if pid.isdigit() and not _alive(int(pid)):
                    if f.stat().st_size < 8:  # died creating it: no counts in it
                        f.unlink()
                    else:
                        dead.append(f)
            if not dead:
                continue
            merged = MmapedDict(str(self.directory / f"{kind}_merged.db"))
            try:
                _allocate(merged, 0)
                for metric in MultiProcessCollector.merge([str(f) for f in dead], False):
                    for s in metric.samples:
                        names, values = list(s.labels), list(s.labels.values())
                        key = mmap_key(metric.name, s.name, names, values, metric.documentation)
                        if key not in merged._positions:
                            _allocate(merged, len(key.encode()) + 40)
                        value, _ = merged.read_value(key)
                        merged.write_value(key, value + s.value, 0.0)
            finally:
                merged.close()
            for f in dead:
                f.unlink()


def _readable(directory: Path) -> list[str]:
    """The count files, but not one a process is creating this instant (still empty: its
    header is not written yet)."""
    out: list[str] = []
    for f in directory.glob("*.db"):
        try:
            if f.stat().st_size >= 8:
                out.append(str(f))
        except FileNotFoundError:  # folded away meanwhile
            continue
    return out


def _allocate(f: MmapedDict, more: int) -> None:
    """Give the file real blocks for what it holds and `more` bytes (the doubling the next
    entry needs, as MmapedDict grows). prometheus-client writes through a memory map of a
    sparse file: on a full disk, touching an unallocated page would kill the process
    (SIGBUS); allocated first, a full disk is an OSError here instead (metrics off)."""
    capacity = f._capacity
    while f._used + more > capacity:
        capacity *= 2
    if hasattr(os, "posix_fallocate"):
        os.posix_fallocate(f._f.fileno(), 0, capacity)


def _alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not alive
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
