"""The package layout's rules, read from the source (AST): imports flow one way and never in a circle.

cli -> (gateway, claude, doctor, serve, team, routing) -> core; runtime -> core, team, routing; nothing imports
cli; doctor talks to a gateway over HTTP and never imports serve; only serve/litellm/ (and the runtime's one
router accessor) touch LiteLLM's proxy internals. See the README's "Layout" section.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cc_gateway"

#: room -> the rooms it may import (besides itself). A room is the first package under cc_gateway/.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "team": {"core"},
    "routing": {"core", "gateway"},
    "gateway": {"core"},
    "claude": {"core", "gateway"},
    "runtime": {"core", "team", "routing"},
    "doctor": {"core", "gateway", "claude", "runtime", "team", "routing"},
    "serve": {"core", "gateway", "runtime", "team", "routing"},
    "cli": {"core", "gateway", "claude", "doctor", "serve", "runtime", "team", "routing"},
    "__main__": {"cli"},
    "__init__": set(),
}
#: Single modules a room may import beyond its rooms: the provider catalogue is data the runtime reads
#: (which providers keep thinking blocks); it imports core only.
ALLOWED_MODULES: dict[str, set[str]] = {"runtime": {"cc_gateway.gateway.providers"}}
#: LiteLLM internals outside serve/litellm/: the runtime's one read of the live router (listed in
#: serve/litellm/__init__.py INTERNALS with the others).
PROXY_SERVER_USERS = {"cc_gateway.runtime.hooks"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module this one imports, lazily or not (a `from pkg import mod` counts as pkg.mod)."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return found


GRAPH = {name: {m for m in _imports(name, path) if m.startswith("cc_gateway")} for name, path in MODULES.items()}
EXTERNAL = {name: {m for m in _imports(name, path) if not m.startswith("cc_gateway")} for name, path in MODULES.items()}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_room_is_known() -> None:
    rooms = {_room(m) for m in MODULES}
    assert rooms <= set(ALLOWED), f"rooms without import rules: {rooms - set(ALLOWED)}"


def bad_arrows(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    """For each module, the imports its room may not make."""
    found = {}
    for module, targets in graph.items():
        room = _room(module)
        bad = sorted(
            t for t in targets
            if _room(t) not in {room, "__init__"} | ALLOWED[room] and t not in ALLOWED_MODULES.get(room, set())
        )
        if bad:
            found[module] = bad
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components over the imports: those of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_imports_point_down() -> None:
    assert bad_arrows(GRAPH) == {}


def test_no_import_circle() -> None:
    assert circles(GRAPH) == []


def test_the_checks_catch_a_wrong_arrow_and_a_circle() -> None:
    """The checker itself, on a made-up graph: core importing serve, and doctor <-> doctor.files."""
    graph = {
        "cc_gateway.core.files": {"cc_gateway.serve.preflight"},
        "cc_gateway.serve.preflight": set(),
        "cc_gateway.doctor": {"cc_gateway.doctor.files"},
        "cc_gateway.doctor.files": {"cc_gateway.doctor"},
        "cc_gateway.runtime.hooks": {"cc_gateway.cli.app"},
        "cc_gateway.cli.app": set(),
    }
    assert bad_arrows(graph) == {
        "cc_gateway.core.files": ["cc_gateway.serve.preflight"],
        "cc_gateway.runtime.hooks": ["cc_gateway.cli.app"],
    }
    assert circles(graph) == [["cc_gateway.doctor", "cc_gateway.doctor.files"]]


def test_litellm_proxy_internals_stay_in_serve_litellm() -> None:
    users = {
        module for module, targets in EXTERNAL.items()
        if any(t.startswith(("litellm.proxy.proxy_server", "litellm.proxy.utils", "fastapi.routing")) for t in targets)
    }
    outside = {m for m in users if not m.startswith("cc_gateway.serve.litellm")} - PROXY_SERVER_USERS
    assert not outside, f"LiteLLM/FastAPI internals imported outside serve/litellm/: {sorted(outside)}"


def test_no_module_past_the_size_limit() -> None:
    """Past ~600 lines a module becomes a package (STYLE.md §1)."""
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600}
    assert not long, f"split these modules: {long}"
