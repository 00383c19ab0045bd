"""A stand-in peer for `load.compare`'s test: crashes on its first run (it leaves a mark in
`$FLAKY_PEER_MARK`), then prints a result line as a peer script does."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

if __name__ == "__main__":
    mark = Path(os.environ["FLAKY_PEER_MARK"])
    runs = int(sys.argv[sys.argv.index("--runs") + 1])
    if not mark.exists():
        mark.write_text("crashed once")
        sys.exit("database is locked")
    print(json.dumps({"completed": runs, "e2e_per_s": 10.0, "enqueue_per_s": 20.0,
                      "latency_ms": {"p50": 1.0, "p99": 2.0}}))  # fmt: skip
