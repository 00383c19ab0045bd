"""The package's structure, kept: no import circle among its modules (lazy and type-only
imports included), and no remote object call outside the typed clients and the platforms."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "trigger_do"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package modules `path` imports, anywhere in it (function bodies, TYPE_CHECKING)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    # a package's __init__ only re-exports: importing `a.b` runs `a/__init__`, but the
    # circle that matters is between the modules that define things
    return {
        name: {t for t in imports_of(path, modules) if not paths[t].name == "__init__.py"}
        for name, path in paths.items()
        if path.name != "__init__.py"
    }


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle() -> None:
    found = circles(graph())
    assert found == [], "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_checker_finds_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    edges = graph()  # it reads relative, nested and lazy imports
    assert "trigger_do.runs.client" in edges["trigger_do.engine"]
    assert "trigger_do.platform.local.platform" in edges["trigger_do.sdk.client"]  # lazy


# Where a remote object call may be written: `Remote` itself (ports.py), the platforms (which
# implement the port), and nowhere else: the engine calls objects through its typed clients.
CALLS_ALLOWED_IN = ("trigger_do/ports.py", "trigger_do/platform/")


def remote_calls(package: Path = PACKAGE) -> list[str]:
    """Every `<anything>.call(...)` outside the allowed places, as `path:line`."""
    found: list[str] = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).as_posix()
        if rel.startswith(CALLS_ALLOWED_IN):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "call"
            ):
                found.append(f"{rel}:{node.lineno}")
    return found


def test_objects_are_called_only_through_the_typed_clients() -> None:
    assert remote_calls() == []


def test_the_call_check_sees_multi_line_and_variable_calls(tmp_path: Path) -> None:
    package = tmp_path / "trigger_do"
    (package / "platform").mkdir(parents=True)
    (package / "engine.py").write_text(
        "async def f(ns, name):\n    stub = ns.get(name)\n    await stub.call(\n"
        "        name,\n        1,\n    )\n"
    )
    (package / "platform" / "ok.py").write_text("async def g(s):\n    await s.call('x')\n")
    assert remote_calls(package) == ["trigger_do/engine.py:3"]
