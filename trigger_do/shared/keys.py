"""Key expressions: a small, safe language over a run's payload, tags and metadata.

    payload.organization_id
    payload.account.id
    payload.items[0].sku
    payload.region + ":" + payload.org_id
    tags[0]            metadata.tenant

Parsed once, at definition time; never `eval`. A malformed expression raises
`KeyExpressionError` naming it; a payload missing a path raises `MissingKeyError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import PayloadValidationError, TaskDefinitionError

ROOTS = ("payload", "tags", "metadata")
_TOKEN = re.compile(
    r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<plus>\+)|"""
    r"""(?P<path>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*))\s*"""
)
_SEGMENT = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


class KeyExpressionError(TaskDefinitionError):
    pass


class MissingKeyError(PayloadValidationError):
    pass


@dataclass(frozen=True)
class KeyExpression:
    source: str
    parts: tuple[str | tuple[str, tuple[str | int, ...]], ...]  # literal | (root, path)

    def evaluate(
        self, payload: Any, tags: list[str] | None = None, metadata: dict[str, Any] | None = None
    ) -> str:
        values = {"payload": payload, "tags": tags or [], "metadata": metadata or {}}
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            root, path = part
            value = values[root]
            for seg in path:
                try:
                    value = value[seg]
                except (KeyError, IndexError, TypeError):
                    where = root + "".join(
                        f"[{s}]" if isinstance(s, int) else f".{s}" for s in path
                    )
                    raise MissingKeyError(
                        f"key expression {self.source!r}: {where} is missing",
                        errors=[
                            {
                                "loc": where,
                                "msg": "missing (needed by a concurrency or rate-limit key)",
                            }
                        ],
                    ) from None
            if isinstance(value, dict | list) or value is None:
                raise MissingKeyError(
                    f"key expression {self.source!r} must name a scalar, got {value!r}",
                    errors=[{"loc": self.source, "msg": "not a scalar"}],
                )
            out.append(str(value).lower() if isinstance(value, bool) else str(value))
        return "".join(out)


def parse_key(source: str) -> KeyExpression:
    if not isinstance(source, str) or not source.strip():
        raise KeyExpressionError(f"invalid key expression {source!r}: empty")
    pos, expect_operand = 0, True
    parts: list[str | tuple[str, tuple[str | int, ...]]] = []
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if not m or m.end() == pos:
            raise KeyExpressionError(f"invalid key expression {source!r} at position {pos}")
        pos = m.end()
        if m.group("plus"):
            if expect_operand:
                raise KeyExpressionError(f"invalid key expression {source!r}: misplaced '+'")
            expect_operand = True
            continue
        if not expect_operand:
            raise KeyExpressionError(f"invalid key expression {source!r}: missing '+'")
        expect_operand = False
        if m.group("str"):
            text = m.group("str")[1:-1]
            parts.append(re.sub(r"\\(.)", r"\1", text))
            continue
        path_text = m.group("path")
        root = path_text.split(".", 1)[0].split("[", 1)[0]
        if root not in ROOTS:
            raise KeyExpressionError(
                f"invalid key expression {source!r}: paths start with one of {ROOTS}, not {root!r}"
            )
        tail = path_text[len(root) :]
        segs: list[str | int] = []
        for seg in _SEGMENT.finditer(tail):
            segs.append(seg.group(1) if seg.group(1) is not None else int(seg.group(2)))
        parts.append((root, tuple(segs)))
    if expect_operand:
        raise KeyExpressionError(f"invalid key expression {source!r}: ends with '+'")
    return KeyExpression(source, tuple(parts))
