"""The body parser refuses what would hurt later, with orjson and with the standard `json`
module that Pyodide (Cloudflare) uses instead: deep nesting before parsing, NaN and
Infinity, numbers past a double, lone surrogates."""

from __future__ import annotations

import pytest

from trigger_do.api import jsonbody
from trigger_do.api.jsonbody import MAX_DEPTH, BadJSON, depth_of, parse_json


@pytest.fixture(params=["orjson", "stdlib"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "stdlib":
        monkeypatch.setattr(jsonbody, "HAVE_ORJSON", False)
    return str(request.param)


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"", 0),
        (b"1", 0),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'{"a": "[[[[[[[[", "b": "\\"[[["}', 1),
        (b"[" * 100_000 + b"]" * 100_000, 100_000),
        (b'["]]]]", [[]]]', 3),
    ],
)
def test_depth_is_measured_outside_strings(text: bytes, depth: int) -> None:
    assert depth_of(text) == depth


@pytest.mark.parametrize(
    "text",
    [
        "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
        "[" * 100_000 + "]" * 100_000,
        '{"a": ' * 300 + "1" + "}" * 300,
        '{"a": NaN}',
        "[Infinity]",
        "-Infinity",
        "1e400",
        '"\\ud800"',
        '{"a": 1',
        "",
    ],
)
def test_refused_by_either_parser(parser: str, text: str) -> None:
    with pytest.raises(BadJSON):
        parse_json(text)


def test_the_stdlib_recursion_limit_is_a_bad_request_too(parser: str) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(BadJSON):
        parse_json(deep, max_depth=10**6)  # past the depth check: the parser's own limit


def test_what_fits_is_parsed(parser: str) -> None:
    fits = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert parse_json(fits) is not None
    assert parse_json('{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}
