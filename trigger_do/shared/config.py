"""Engine settings, read through the `Settings` port (never from os.environ directly)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..ports import Settings
from .durations import parse_duration

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class EngineConfig:
    payload_limit: int = 10 * MIB  # over this a payload or output is refused
    inline_message_limit: int = 32 * KIB  # under this a payload rides in the queue message
    packet_threshold: int = 512 * KIB  # over this a payload or output is stored as a packet
    lease_seconds: float = 30.0  # a run's execution lease; heartbeats renew it
    slice_seconds: float = 600.0  # one delivery's time slice before a run is continued
    shutdown_grace: float = 10.0  # graceful shutdown: time running attempts get to finish
    max_message_delay: float = 12 * 3600.0  # a queue's longest delay (Cloudflare: 12 h)
    retention: float = 30 * 86400.0  # finished runs, logs and packets are kept this long
    stale_after: float = 300.0  # a run whose message is this overdue is dispatched again
    flush_interval: float = 0.002  # how long outcome writes wait to be coalesced

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> EngineConfig:
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = settings.get("TRIGGER_DO_" + f.name.upper())
            if raw is not None:
                values[f.name] = int(raw) if f.type == "int" else parse_duration(raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
