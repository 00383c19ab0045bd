"""`ObjectNamespace` locally: every object's tables live in the one database file (rows are
keyed by their object's natural key), and each call is one `BEGIN IMMEDIATE` transaction,
so calls on one object are serialized across processes as a Durable Object's are; a call of
a method marked `reads` is a read transaction on a snapshot instead (`LocalSql.read`)."""

from __future__ import annotations

from typing import Any

from ...ports import READS
from ...shared.serialization import dumps, loads
from .database import LocalSql


class LocalStub:
    def __init__(self, sql: LocalSql, cls: type, name: str, strict_json: bool) -> None:
        self._sql = sql
        self._cls = cls
        self._name = name
        self._strict = strict_json

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._strict:  # prove the call would cross an RPC boundary unchanged
            args, kwargs = loads(dumps([args, kwargs]))
        obj = self._cls(self._sql, self._name)
        fn = getattr(obj, method)
        run = self._sql.read if getattr(fn, READS, False) else self._sql.transaction
        result = run(lambda: fn(*args, **kwargs))
        return loads(dumps(result)) if self._strict else result


class LocalNamespace:
    def __init__(self, sql: LocalSql, cls: type, *, strict_json: bool = False) -> None:
        self.sql = sql
        self.cls = cls
        self.strict_json = strict_json

    def get(self, name: str) -> LocalStub:
        return LocalStub(self.sql, self.cls, name, self.strict_json)
