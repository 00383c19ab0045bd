"""A resource's calls over a trigger.do server's HTTP API (schedules, wait tokens), raising
what embedded mode raises: a 422 as the resource's own invalid-input error, a 404 under
its path as its not-found error naming the id."""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from ..errors import ApiError, PayloadValidationError


class RemoteResource:
    BASE: ClassVar[str]  # the collection's path, e.g. "/api/v1/schedules"

    def __init__(self, client: Any) -> None:
        self.client = client

    def invalid(self, message: str) -> Exception:
        """The error embedded mode raises for input the server refused (422)."""
        raise NotImplementedError

    def not_found(self, resource_id: str) -> Exception:
        """The error embedded mode raises for an id the server does not know (404)."""
        raise NotImplementedError

    def _path(self, resource_id: str, tail: str = "") -> str:
        return f"{self.BASE}/{quote(str(resource_id), safe='')}{tail}"

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return await self.client._call(method, path, **kwargs)
        except PayloadValidationError as exc:
            raise self.invalid(str(exc)) from None
        except ApiError as exc:
            if exc.status == 404 and path.startswith(self.BASE + "/"):
                raise self.not_found(path[len(self.BASE) + 1 :].split("/")[0]) from None
            raise
