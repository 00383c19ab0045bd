"""Wait tokens: Trigger.dev's waitpoint tokens (`wait.createToken` and friends), held by the
token store (`store.py`, one object per shard) and served by `Engine.tokens` (`service.py`),
whose completion hook tells whatever waits on a token."""

from .resume import TOKEN_KIND, WaitResult, resume_hook
from .service import TokenCompletion, TokenService, callback_hash, callback_path
from .store import TokenStoreObject

__all__ = [
    "TOKEN_KIND",
    "TokenCompletion",
    "TokenService",
    "TokenStoreObject",
    "WaitResult",
    "callback_hash",
    "callback_path",
    "resume_hook",
]
