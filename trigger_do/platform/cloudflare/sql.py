"""The `Sql` port on a SQLite Durable Object's storage (`ctx.storage`).

`exec` is `ctx.storage.sql.exec(query, ...bindings)` read through the cursor's `raw()`
(rows as arrays); `transaction(fn)` is `ctx.storage.transactionSync(fn)`. The storage
itself refuses BEGIN/COMMIT/SAVEPOINT and more than 100 bindings; the checks here fail
earlier, with the engine's own error, exactly as the local port does.

Values cross through the SDK's wrapper of `ctx.storage`: bindings as Python values (None
becomes JS null, bytes a Uint8Array), rows back as Python lists. What the storage does to
them (workerd `SqlStorage`): every number is bound as a double and every number comes back
as a JS number, so an integral REAL reads back as an `int` (readers that need a float say
so: `runs.index_schema.row_to_dict`); a BLOB comes back as an ArrayBuffer (a `memoryview`
through the SDK, `bytes` here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ...errors import SqlRuleError
from ...ports import check_statement
from . import ffi

T = TypeVar("T")


def binding(value: Any) -> Any:
    """A Python value as a `sql.exec` binding. The storage takes string, number, ArrayBuffer
    or null (workerd `BindingValue`): bools become 0/1 (a JS boolean would be coerced to the
    string "true"); `check_statement` has refused ints a double would round."""
    if value is None or isinstance(value, str | int | float):
        return int(value) if isinstance(value, bool) else value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise SqlRuleError(f"cannot bind a {type(value).__name__} to a Durable Object query")


def _column(value: Any) -> Any:
    return bytes(value) if isinstance(value, memoryview) else value


class DurableSql:
    """`Sql` on `storage` (a Durable Object's `ctx.storage`)."""

    def __init__(self, storage: Any) -> None:
        self.storage = storage
        self._depth = 0
        self.rows_read = 0
        self.rows_written = 0

    def exec(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        check_statement(query, params)
        cursor = self.storage.sql.exec(query, *(binding(p) for p in params))
        rows = [tuple(map(_column, row)) for row in cursor.raw()]
        self.rows_read += int(cursor.rowsRead)
        self.rows_written += int(cursor.rowsWritten)
        return rows

    def transaction(self, fn: Callable[[], T]) -> T:
        if self._depth:  # already inside: the outer transaction covers it
            return fn()
        box: list[Any] = []

        def run() -> None:
            box.append(fn())

        self._depth = 1
        try:
            self.storage.transactionSync(ffi.callback(run))
        finally:
            self._depth = 0
        return box[0]  # type: ignore[no-any-return]


def init_schema(sql: DurableSql, statements: list[str]) -> None:
    """Create the object's tables (idempotent: `CREATE ... IF NOT EXISTS`), in one transaction."""

    def create() -> None:
        for stmt in statements:
            sql.exec(stmt)

    sql.transaction(create)
