"""The package's modules import each other without a circle: each import of a `sagan` module, at the top of a
file or inside a function, is an edge, and the graph has no cycle (a module importing its own package's
`__init__` aside). A circle is how a layered module (checkpoint files, pretrained folders) ends up knowing the
layers above it."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """sagan module -> the sagan modules it imports anywhere in its source."""
    files = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sagan":
                deps.add(node.module)
                deps |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in files}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.split(".")[0] == "sagan"}
        graph[name] = {d for d in deps if d in files and d != name and not name.startswith(d + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a list of nodes (first == last), or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_find_cycle_finds_one_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_circle():
    graph = import_graph()
    files = {f"sagan.model_files.{m}" for m in ("checkpoints", "pretrained", "loading")}
    assert files | {"sagan.cli.app"} <= set(graph)
    assert "sagan.model_files.weights" in graph["sagan.model_files.pretrained"]  # the graph sees real edges
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_file_formats_sit_below_loading():
    graph = import_graph()
    checkpoints, pretrained = "sagan.model_files.checkpoints", "sagan.model_files.pretrained"
    assert pretrained not in graph[checkpoints] and checkpoints not in graph[pretrained]
    assert {"sagan.model_files.checkpoints", "sagan.model_files.pretrained"} <= graph["sagan.model_files.loading"]
