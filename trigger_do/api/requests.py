"""Request models: every body the HTTP API takes, and the query numbers, as pydantic models
built from the shared field types of `fields`. A request is validated whole before
anything is written; a failure is 422 naming each bad field (`options.delay`,
`items.3.task`), or 400 for a query parameter or header that does not parse.

Unknown body fields are ignored, as Trigger.dev's own schemas strip them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from .errors import HTTPError
from .fields import (
    MAX_BATCH_ITEMS,
    BatchIndex,
    ConcurrencyKey,
    ConcurrencyLimit,
    Delay,
    Duration,
    Expiry,
    IdempotencyKey,
    MaxAttempts,
    MediaType,
    MetadataKey,
    Number,
    PayloadSize,
    Queue,
    RunCount,
    RunId,
    Tags,
    TaskId,
    check_metadata,
)

if TYPE_CHECKING:
    from starlette.requests import Request

    from ..engine import Engine

M = TypeVar("M", bound=BaseModel)
MAX_MESSAGE = 300  # characters of one error message quoted back


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# --- triggers ----------------------------------------------------------------------------


class TriggerOptionsBody(Body):
    """Trigger.dev's trigger options (the ones trigger.do applies are checked here; the
    others, e.g. `machine` or `priority`, are accepted and ignored)."""

    payloadType: MediaType | None = None
    payloadSize: PayloadSize | None = None
    delay: Delay | None = None
    ttl: Duration | None = None
    tags: Tags | None = None
    idempotencyKey: IdempotencyKey | None = None
    idempotencyKeyTTL: Duration | None = None
    queue: Queue | None = None
    concurrencyKey: ConcurrencyKey | None = None
    maxAttempts: MaxAttempts | None = None
    maxDuration: Duration | None = None
    metadata: Any = None
    metadataType: MediaType | None = None
    parentRunId: RunId | None = None  # a child run (api/links.py)
    resumeParentOnCompletion: Annotated[bool, Strict()] | None = None


class TriggerBody(Body):
    payload: Any = None
    context: Any = None
    options: TriggerOptionsBody | None = None


class BatchItemBody(TriggerBody):
    task: TaskId


class StreamItemBody(BatchItemBody):
    """One NDJSON line of a two-phase batch's items."""

    index: BatchIndex


class BatchBody(Body):
    items: Annotated[list[BatchItemBody], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]
    idempotencyKey: IdempotencyKey | None = None
    parentRunId: RunId | None = None
    resumeParentOnCompletion: Annotated[bool, Strict()] | None = None


class CreateBatchBody(Body):
    runCount: RunCount
    taskIdentifiers: Annotated[list[TaskId], Field(max_length=MAX_BATCH_ITEMS)] | None = None
    idempotencyKey: IdempotencyKey | None = None
    parentRunId: RunId | None = None
    resumeParentOnCompletion: Annotated[bool, Strict()] | None = None


# --- runs ---------------------------------------------------------------------------------


class RescheduleBody(Body):
    delay: Delay


class TagsBody(Body):
    tags: Tags


class SetOp(Body):
    type: Literal["set"]
    key: MetadataKey
    value: Any = None


class DeleteOp(Body):
    type: Literal["delete"]
    key: MetadataKey


class AppendOp(Body):
    type: Literal["append"]
    key: MetadataKey
    value: Any = None


class RemoveOp(Body):
    type: Literal["remove"]
    key: MetadataKey
    value: Any = None


class IncrementOp(Body):
    type: Literal["increment"]
    key: MetadataKey
    value: Number


class UpdateOp(Body):
    type: Literal["update"]
    value: dict[str, Any]


Operation = Annotated[
    SetOp | DeleteOp | AppendOp | RemoveOp | IncrementOp | UpdateOp, Field(discriminator="type")
]


class MetadataBody(Body):
    metadata: dict[str, Any] | None = None
    operations: Annotated[list[Operation], Field(max_length=1000)] = []

    @field_validator("metadata")
    @classmethod
    def _bounded(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else check_metadata(value)


class RunIdsBody(Body):
    ids: Annotated[list[RunId], Field(max_length=1000)]


class ResetKeyBody(Body):
    taskIdentifier: TaskId


# --- queues and tokens (a bulk action's body: `bulk.create`) ------------------------------

QueueKind = Literal["task", "custom", "id"]


class QueueBody(Body):
    type: QueueKind | None = None
    action: Literal["pause", "resume"] = "pause"


class OverrideBody(QueueBody):
    concurrencyLimit: ConcurrencyLimit


Scope = Annotated[str, Field(min_length=1, max_length=512, pattern=r"\S")]


class PublicTokenBody(Body):
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=100)]
    oneTimeUse: Annotated[bool, Strict()] | None = None
    realtime: dict[str, Any] | None = None
    expirationTime: Expiry | None = None


# --- validation -----------------------------------------------------------------------------


def _message(error: Any) -> str:
    msg = str(error["msg"]).removeprefix("Value error, ")
    return msg if len(msg) <= MAX_MESSAGE else msg[:MAX_MESSAGE] + "..."


def errors_of(exc: ValidationError, root: str = "") -> list[dict[str, Any]]:
    out = []
    for e in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in ((root,) if root else ()) + tuple(e["loc"]))
        out.append({"loc": loc or root or "body", "msg": _message(e)})
    return out


def invalid(errors: list[dict[str, Any]], what: str = "invalid request") -> HTTPError:
    """422 naming every bad field (the first five in the message)."""
    shown = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return HTTPError(422, f"{what}: {shown}{more}", code="validation", errors=errors)


def invalid_field(loc: str, msg: str) -> HTTPError:
    return invalid([{"loc": loc, "msg": msg}])


def validate(model: type[M], data: Any, *, root: str = "") -> M:
    """`data` as `model`, or 422 naming each bad field (under `root`, e.g. `line 3`)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(errors_of(exc, root)) from None


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def query_value(kind: Any, name: str, raw: str | None, default: Any = None) -> Any:
    """A query parameter (or header) `name` as the field type `kind`; 400 naming it if it
    does not parse or is out of bounds. `default` when it is absent or empty."""
    if raw is None or raw == "":
        return default
    adapter = _ADAPTERS.get(kind)
    if adapter is None:
        adapter = _ADAPTERS[kind] = TypeAdapter(kind)
    try:
        return adapter.validate_python(raw)
    except ValidationError as exc:
        msg = "; ".join(e["msg"] for e in errors_of(exc))
        raise HTTPError(400, f"{name}: {msg}", code="bad_request") from None


def engine_of(request: Request) -> Engine:
    """The engine serving this app (its clock, `engine.now()`, is the API's clock too)."""
    engine: Engine = request.app.state.engine
    return engine
