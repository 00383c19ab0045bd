"""Live run logs over WebSockets that end in the run's Durable Object, with the WebSocket
Hibernation API (https://developers.cloudflare.com/durable-objects/best-practices/websockets/),
so a subscriber that waits costs no Durable Object duration.

The path, `GET /api/v1/runs/{runId}/logs/ws` (key: `Authorization: Bearer` or `?token=`), is
checked by the Worker (`route`, `authorized`) and forwarded to the run's Durable Object
(`stub.fetch(request)`), which accepts the socket with `ctx.acceptWebSocket(server, ["logs"])`
and sends the same messages as the local API (`trigger_do/api/logs.py`): each record as
`{"type": "log", seq, level, message, attempt, at, extras}`, then `{"type": "end",
"status": ...}` and a normal close (1000); an unknown run or a bad `after` gets
`{"type": "error", "error": ...}` and close 4404 / 4400.

What the object keeps across hibernation: each socket's attachment `{"run", "after"}` (the
last sequence number it was sent) and, in its SQLite storage, the logs themselves and the
run's final state once known (`trigger_do_live`). Nothing lives in instance memory, so an
eviction between any two events loses nothing.

How a subscriber learns of new records and of the end, with no polling:
- records: the consumer's coalesced writer already calls the run object (`append`) for
  each flush; after that call the object sends what each socket has not seen yet.
- the end: connecting marks the run *watched* in its run-index shard (`watch`, which also
  returns the run's state, in one transaction: no end can slip between the check and the
  mark). When the writer applies a final outcome to a watched run, `finish_many` says so
  and the writer calls the run object once (`finished`); runs nobody watches cost nothing
  extra. Runs that end elsewhere (canceled over the API, expired, crashed from the
  dead-letter queue) and a lost `finished` call are caught by a safety-net alarm, set
  only while sockets are open: every `CHECK_SECONDS` it reads the run's state (one
  index read) and ends the streams if the run is final.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ...errors import RunNotFoundError
from ...ports import Remote
from ...runs.index import RunIndexObject
from ...runs.run_object import RunObject
from ...shared.serialization import dumps
from ...shared.states import FINAL_STATES, RunState
from . import ffi
from .sql import DurableSql

TAG = "logs"  # the tag of log subscribers' sockets (`ctx.getWebSockets("logs")`)
CHECK_SECONDS = 30.0  # the safety-net alarm's period while sockets are open
PAGE = 1000  # records read per query when catching a socket up
LIVE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS trigger_do_live "
    "(k INTEGER PRIMARY KEY, run_id TEXT NOT NULL, state TEXT NOT NULL)"
)
WS_PATH = re.compile(r"^/api/v1/runs/([^/]+)/logs/ws$")


# --- in the Worker ---------------------------------------------------------------------------


def run_id_of(url: str) -> str | None:
    found = WS_PATH.match(urlsplit(url).path)
    return unquote(found.group(1)) if found else None


def route(request: Any) -> str | None:
    """The run id when `request` is a WebSocket upgrade to a run's live logs, else None."""
    if (ffi.header(request, "upgrade") or "").lower() != "websocket":
        return None
    return run_id_of(ffi.request_url(request))


def authorized(request: Any, secret: str) -> bool:
    """The API key, as the local API takes it on a WebSocket: `Authorization: Bearer <key>`,
    else `?token=<key>` (a browser cannot set headers on a WebSocket)."""
    from ...api.keys import key_matches

    given: str | None = None
    auth = ffi.header(request, "authorization")
    if auth is not None:
        scheme, _, token = auth.partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else None
    if given is None:
        given = parse_qs(urlsplit(ffi.request_url(request)).query).get("token", [None])[0]
    return bool(secret) and key_matches(given, secret)


# --- in the run's Durable Object --------------------------------------------------------------


def _log_message(rec: dict[str, Any]) -> str:
    from ...api.logs import record

    return str(dumps({"type": "log", **record(rec)}))


def _end_message(state: str) -> str:
    return str(dumps({"type": "end", "status": RunState(state).api_status}))


class LiveLogs:
    """The log subscribers of one run object: `ctx` is its `DurableObjectState`, `sql` the
    `DurableSql` on its storage (which holds the run's logs)."""

    def __init__(self, ctx: Any, sql: DurableSql) -> None:
        self.ctx = ctx
        self.sql = sql

    def sockets(self) -> list[Any]:
        return ffi.websockets(self.ctx, TAG)

    async def connect(self, request: Any, index: Remote[RunIndexObject]) -> Any:
        """Accept a subscriber (the Worker checked the key). `index` is the run's run-index
        shard stub. Returns the 101 response carrying the client end."""
        from ...api.errors import HTTPError
        from ...api.logs import _after

        url = urlsplit(ffi.request_url(request))
        run_id = run_id_of(url.geturl()) or ""
        client, server = ffi.websocket_pair()
        try:
            after = _after(parse_qs(url.query, keep_blank_values=True).get("after", [None])[0])
            state = await index(RunIndexObject.watch, run_id)  # marks it watched, atomically
            if state is None:
                raise RunNotFoundError(run_id)
        except (RunNotFoundError, HTTPError) as exc:
            ffi.accept_websocket(self.ctx, server, ["error"])
            server.send(dumps({"type": "error", "error": str(exc)}))
            server.close(4404 if isinstance(exc, RunNotFoundError) else 4400, "")
            return ffi.upgrade_response(client)
        # from here to the backlog's last send nothing awaits: an `append` or `finished`
        # delivered meanwhile sees this socket already, with the right `after`
        ffi.accept_websocket(self.ctx, server, [TAG])
        ffi.set_attachment(server, {"run": run_id, "after": after})
        self._catch_up([server])
        final = state if RunState(state) in FINAL_STATES else self._final_state(run_id)
        if final is not None:
            self._end([server], final)
        else:
            await self._arm()
        return ffi.upgrade_response(client)

    def pushed(self) -> None:
        """Records were appended: send each subscriber what it has not seen."""
        sockets = self.sockets()
        if sockets:
            self._catch_up(sockets)

    async def finished(self, run_id: str, state: str) -> None:
        """The run ended (`state` final): remember it (a subscriber connecting while this
        call was under way must still get the end), flush, send the end and close."""
        self.sql.exec(
            "INSERT OR REPLACE INTO trigger_do_live (k, run_id, state) VALUES (0, ?, ?)",
            run_id,
            state,
        )
        sockets = self.sockets()
        if sockets:
            self._catch_up(sockets)
            self._end(sockets, state)
        await self.ctx.storage.deleteAlarm()

    async def check(self, index_for: Callable[[str], Remote[RunIndexObject]]) -> None:
        """The safety-net alarm: if the run is final, end the streams; else check again
        later, while subscribers remain."""
        sockets = self.sockets()
        if not sockets:
            return
        run_id = next((a["run"] for a in map(ffi.attachment, sockets) if a), None)
        if run_id is None:
            return
        states = await index_for(run_id)(RunIndexObject.get_states, [run_id])
        found = states.get(run_id)
        if found is None:  # purged past retention while watched: as for an unknown run
            text = dumps({"type": "error", "error": str(RunNotFoundError(run_id))})
            for ws in sockets:
                _send(ws, text)
                _close(ws, 4404)
        elif RunState(found[0]) in FINAL_STATES:
            await self.finished(run_id, str(found[0]))
        else:
            await self._arm()

    # --- helpers -------------------------------------------------------------------------

    def _final_state(self, run_id: str) -> str | None:
        rows = self.sql.exec("SELECT state FROM trigger_do_live WHERE k = 0 AND run_id = ?", run_id)
        return str(rows[0][0]) if rows else None

    async def _arm(self) -> None:
        from .platform import WorkerClock

        await self.ctx.storage.setAlarm(int((WorkerClock().now() + CHECK_SECONDS) * 1000))

    def _catch_up(self, sockets: list[Any]) -> None:
        """Send each socket the records after its attachment's `after`, in order; sockets at
        the same point share the reads and the encoding."""
        groups: dict[tuple[str, int], list[Any]] = {}
        for ws in sockets:
            att = ffi.attachment(ws)
            if att is not None:
                groups.setdefault((str(att["run"]), int(att["after"])), []).append(ws)
        for (run_id, after), members in groups.items():
            obj = RunObject(self.sql, run_id)
            last = after
            while True:
                batch = obj.logs(last, PAGE)
                if not batch:
                    break
                for rec in batch:
                    text = _log_message(rec)
                    for ws in members:
                        _send(ws, text)
                last = int(batch[-1]["seq"])
                if len(batch) < PAGE:
                    break
            if last != after:
                for ws in members:
                    ffi.set_attachment(ws, {"run": run_id, "after": last})

    def _end(self, sockets: list[Any], state: str) -> None:
        text = _end_message(state)
        for ws in sockets:
            _send(ws, text)
            _close(ws, 1000)


def _send(ws: Any, text: str) -> None:
    try:
        ws.send(text)
    except Exception:  # the peer went away; `webSocketClose` cleans up
        pass


def _close(ws: Any, code: int) -> None:
    try:
        ws.close(code, "")
    except Exception:  # already closing: nothing more to tell it
        pass


def close_reply(ws: Any, code: int, reason: str) -> None:
    """Complete a close the client started (`webSocketClose`). Codes a peer may not send
    back (1005 no status, 1006 abnormal, 1015 TLS) are answered with 1000."""
    send_code = code if code == 1000 or 3000 <= code <= 4999 or 1001 <= code <= 1014 else 1000
    if send_code in (1005, 1006):
        send_code = 1000
    try:
        ws.close(send_code, str(reason or ""))
    except Exception:  # already closed (the runtime may auto-reply to Close frames)
        pass
