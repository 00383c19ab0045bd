"""The secret key every `/api/...` call must present, and the signatures of upload URLs."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import string
from pathlib import Path

from ..errors import TriggerDoError

KEY_FILE = "secret-key"
_ALPHABET = string.ascii_letters + string.digits


def new_key() -> str:
    """`tr_dev_` + 32 random alphanumerics (never the `tr_dev_sk_` form, which would oblige
    the server to sign public tokens): 39 bytes, past the 32 an HS256 key wants (public
    tokens are signed with the key, as Trigger.dev's client signs them)."""
    while True:
        body = "".join(secrets.choice(_ALPHABET) for _ in range(32))
        if not body.startswith("sk_"):
            return "tr_dev_" + body


def load_or_create_key(db_path: Path) -> str:
    """`TRIGGER_SECRET_KEY` when set; else the key stored beside the database, created (mode
    0600, in a folder 0700) on first start. A key file that exists but holds no key is
    refused (`TriggerDoError`): a new key each start would lock out every client."""
    env = os.environ.get("TRIGGER_SECRET_KEY")
    if env:
        return env
    path = Path(db_path).parent / KEY_FILE
    if path.exists():
        return _stored(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = new_key()
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    try:  # first writer wins if two servers start at once
        os.link(tmp, path)
    except FileExistsError:
        key = _stored(path)
    finally:
        tmp.unlink(missing_ok=True)
    return key


def _stored(path: Path) -> str:
    try:
        stored = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise TriggerDoError(f"cannot read the secret key file {path}: {exc}") from None
    if not stored:
        raise TriggerDoError(
            f"the secret key file {path} is empty: write a key into it (the one your "
            "clients use), delete it to have a new one generated, or set TRIGGER_SECRET_KEY"
        )
    return stored


def key_matches(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def sign(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def signature_ok(secret: str, message: str, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, message), signature)
