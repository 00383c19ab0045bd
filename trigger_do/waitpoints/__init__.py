"""Wait tokens: Trigger.dev's waitpoint tokens (`wait.createToken` and friends), held by the
token store (`store.py`, one object per shard) and served by `Engine.tokens` (`service.py`),
whose completion hook tells whatever waits on a token."""

from .service import TokenCompletion, TokenService, callback_hash, callback_path
from .store import TokenStoreObject

__all__ = ["TokenCompletion", "TokenService", "TokenStoreObject", "callback_hash", "callback_path"]
