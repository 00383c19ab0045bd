"""The ASGI app: Trigger.dev's REST paths under `/api/...`, live logs, signed packet URLs
and `GET /healthz`; the dashboard's pages elsewhere (`dashboard/`, behind a session cookie).
Every `/api/...` call needs `Authorization: Bearer <secret key>` (a WebSocket may send
`?token=<key>` instead, as a browser cannot set its headers), or a public access token on
the routes its scopes cover (see `auth`)."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from ..dashboard.routes import routes as dashboard_routes
from ..engine import Engine
from ..errors import ConfigurationError, TriggerDoError
from . import (
    auth,
    idempotency,
    logs,
    packets,
    queues,
    run_list,
    run_packets,
    runs,
    tokens,
    triggers,
)
from . import bulk as bulk_actions
from . import dead_letters as dead_letter_api
from . import events as event_api
from . import metrics as metrics_api
from . import realtime as realtime_api
from . import schedules as schedule_api
from . import tasks as task_api
from . import waitpoints as waitpoint_api
from .errors import HTTPError, handle
from .mcp_route import McpEndpoint

ROUTES = [
    Route("/healthz", lambda request: JSONResponse({"ok": True}), methods=["GET"]),
    Route("/api/v1/tasks/{task_id:path}/trigger", triggers.trigger, methods=["POST"]),
    Route("/api/v2/tasks/batch", triggers.batch_v2, methods=["POST"]),
    Route("/api/v3/batches", triggers.create_batch, methods=["POST"]),
    Route("/api/v3/batches/{batch_id}/items", triggers.batch_items, methods=["POST"]),
    Route("/api/v2/batches/{batch_id}", triggers.retrieve_batch, methods=["GET"]),
    Route("/api/v2/packets/{filename:path}", packets.presign_upload, methods=["PUT"]),
    Route("/api/v1/packets/{filename:path}", packets.presign_download, methods=["GET"]),
    Route("/packets/{path:path}", packets.packet, methods=["GET", "PUT"], name="packet"),
    Route("/api/v1/runs", run_list.list_runs, methods=["GET"]),
    Route("/api/v1/projects/{project_ref}/runs", run_list.list_runs, methods=["GET"]),
    Route("/api/v1/runs/_states", runs.bulk_states, methods=["POST"]),
    Route("/api/v1/runs/_retrieve", runs.bulk_retrieve, methods=["POST"]),
    Route("/api/v3/runs/{run_id}", runs.retrieve, methods=["GET"]),
    Route("/api/v2/runs/{run_id}/cancel", runs.cancel, methods=["POST"]),
    Route("/api/v1/runs/{run_id}/replay", runs.replay, methods=["POST"]),
    Route("/api/v1/runs/{run_id}/reschedule", runs.reschedule, methods=["POST"]),
    Route("/api/v1/runs/{run_id}/metadata", runs.metadata, methods=["GET", "PUT"]),
    Route("/api/v1/runs/{run_id}/tags", runs.tags, methods=["POST"]),
    # bulk actions (`runs.bulk.*`): api/bulk.py
    Route("/api/v1/bulk-actions", bulk_actions.create, methods=["POST"]),
    Route("/api/v1/bulk-actions", bulk_actions.list_actions, methods=["GET"]),
    Route("/api/v1/bulk-actions/{bulk_id}", bulk_actions.retrieve, methods=["GET"]),
    Route("/api/v1/bulk-actions/{bulk_id}/abort", bulk_actions.abort, methods=["POST"]),
    Route("/api/v1/runs/{run_id}/logs", logs.logs, methods=["GET"]),
    WebSocketRoute("/api/v1/runs/{run_id}/logs/ws", logs.logs_ws),
    Route("/api/v1/queues", queues.list_queues, methods=["GET"]),
    Route("/api/v1/queues/{name:path}/pause", queues.pause, methods=["POST"]),
    Route("/api/v1/queues/{name:path}/concurrency/override", queues.override, methods=["POST"]),
    Route("/api/v1/queues/{name:path}/concurrency/reset", queues.reset, methods=["POST"]),
    Route("/api/v1/queues/{name:path}", queues.retrieve, methods=["GET"]),
    Route("/api/v1/idempotencyKeys/{key:path}/reset", idempotency.reset, methods=["POST"]),
    Route("/api/v1/auth/jwt/claims", tokens.claims, methods=["POST"]),
    Route("/api/v1/auth/public-tokens", tokens.public_token, methods=["POST"]),
    # schedules (`schedules.*`): api/schedules.py; timezones is served without a key
    Route("/api/v1/schedules", schedule_api.create, methods=["POST"]),
    Route("/api/v1/schedules", schedule_api.list_schedules, methods=["GET"]),
    Route("/api/v1/schedules/{schedule_id}", schedule_api.retrieve, methods=["GET"]),
    Route("/api/v1/schedules/{schedule_id}", schedule_api.update, methods=["PUT"]),
    Route("/api/v1/schedules/{schedule_id}", schedule_api.delete, methods=["DELETE"]),
    Route("/api/v1/schedules/{schedule_id}/activate", schedule_api.activate, methods=["POST"]),
    Route("/api/v1/schedules/{schedule_id}/deactivate", schedule_api.deactivate, methods=["POST"]),
    Route("/api/v1/timezones", schedule_api.timezones, methods=["GET"]),
    # events and webhooks: api/events.py. `/webhooks/{source}` is outside `/api/` on purpose:
    # the sender's signature authenticates it, never the API key (senders cannot send one)
    Route("/api/v1/events", event_api.send, methods=["POST"]),
    Route("/api/v1/events", event_api.list_events, methods=["GET"]),
    Route("/api/v1/events/{event_id}", event_api.retrieve, methods=["GET"]),
    Route("/api/v1/events/{event_id}/replay", event_api.replay, methods=["POST"]),
    Route("/api/v1/webhooks/deliveries", event_api.list_deliveries, methods=["GET"]),
    Route(
        "/api/v1/webhooks/deliveries/{delivery_id}/replay",
        event_api.replay_delivery,
        methods=["POST"],
    ),
    Route("/webhooks/{source}", event_api.receive_webhook, methods=["POST"]),
    # Realtime (`runs.subscribeTo*`): api/realtime.py; outside /api/, each route authenticates
    Route("/realtime/v1/runs", realtime_api.runs_with_tags, methods=["GET"]),
    Route("/realtime/v1/runs/{run_id}", realtime_api.run, methods=["GET"]),
    Route("/realtime/v1/batches/{batch_id}", realtime_api.batch, methods=["GET"]),
    Route("/realtime/v1/{path:path}", realtime_api.preflight, methods=["OPTIONS"]),
    # a run's offloaded payload or output, for Realtime rows (`application/store`)
    Route("/api/v1/runs/{run_id}/packets/{field}", run_packets.presign, methods=["GET"]),
    Route("/run-packets/{run_id}/{field}", run_packets.serve, methods=["GET"], name="run_packet"),
    # tasks and dead letters (trigger.do's own; the MCP tools read them): api/tasks.py, ...
    Route("/api/v1/tasks", task_api.list_tasks, methods=["GET"]),
    Route("/api/v1/deadLetters", dead_letter_api.list_dead_letters, methods=["GET"]),
    Route("/api/v1/deadLetters/requeue", dead_letter_api.requeue, methods=["POST"]),
    # MCP over streamable HTTP: outside /api/, behind the key all the same (auth.GUARDED_PATHS)
    Route("/mcp", McpEndpoint(), methods=["GET", "POST", "DELETE"]),
    # Prometheus metrics: behind the key unless create_app(metrics_public=True)
    Route("/metrics", metrics_api.metrics, methods=["GET"]),
    # wait tokens (`wait.createToken` ...): api/waitpoints.py; the callback is served without
    # a key (the HMAC in its path authenticates it)
    Route("/api/v1/waitpoints/tokens", waitpoint_api.create, methods=["POST"]),
    Route("/api/v1/waitpoints/tokens", waitpoint_api.list_tokens, methods=["GET"]),
    Route("/api/v1/waitpoints/tokens/{token_id}", waitpoint_api.retrieve, methods=["GET"]),
    Route(
        "/api/v1/waitpoints/tokens/{token_id}/complete", waitpoint_api.complete, methods=["POST"]
    ),
    Route(
        "/api/v1/waitpoints/tokens/{token_id}/callback/{hash}",
        waitpoint_api.callback,
        methods=["POST"],
    ),
]


def create_app(engine: Engine, secret_key: str, *, metrics_public: bool = False) -> Starlette:
    """The HTTP API on `engine`, guarded by `secret_key`."""
    if not secret_key:
        raise ConfigurationError("the HTTP API needs a secret key")
    handlers: dict[Any, Any] = {
        HTTPError: handle,
        TriggerDoError: handle,
        HTTPException: handle,
        Exception: handle,
    }
    # the dashboard (dashboard/): its pages at `/`, behind a session cookie, beside `/api`
    app = Starlette(routes=[*ROUTES, *dashboard_routes()], exception_handlers=handlers)
    app.state.engine = engine
    app.state.secret_key = secret_key
    app.state.spent_tokens = {}  # one-time public tokens used so far (auth.spending)
    guarded = auth.GUARDED_PATHS - ({"/metrics"} if metrics_public else set())
    app.add_middleware(
        auth.Authenticate, secret_key=secret_key, routes=app.routes, guarded=guarded
    )
    return app
