"""The house's layout, as docs/architecture.md draws it: one `snnas` namespace, rooms inside nas/, and
every import arrow running one way (cli -> nas rooms -> energy; report -> search, train -> models,
data), with no circle anywhere. Imports inside functions count as arrows too."""

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"snnas.nas": ROOT / "nas", "snnas.energy": ROOT / "energy", "snnas.cli": ROOT / "cli"}
# Rooms of nas/ and their floors: an arrow may only go to a lower floor (or stay in its room).
FLOORS = {"report": 3, "search": 2, "train": 2, "models": 1, "data": 1}
SHARED = {"snnas.nas", "snnas.nas.files", "snnas.nas.failpoints"}  # the ground floor: used by every room


def _modules() -> dict[str, Path]:
    found = {"snnas": ROOT / "snnas" / "__init__.py", "snnas.__main__": ROOT / "snnas" / "__main__.py"}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((package, *parts))
            found[name[: -len(".__init__")] if name.endswith(".__init__") else name] = path
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    graph[name].add(target if target in modules else node.module)
            elif isinstance(node, ast.Import):
                graph[name].update(alias.name for alias in node.names)
    return {name: {t for t in targets if t in modules and t != name} for name, targets in graph.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return found


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["snnas", "nas"] and module not in SHARED else None


def test_there_is_no_import_circle():
    assert _cycles(_graph()) == []


def test_every_arrow_runs_one_way():
    wrong = []
    for source, targets in _graph().items():
        for target in targets:
            if source.startswith("snnas.energy") and target.startswith(("snnas.nas", "snnas.cli")):
                wrong.append((source, target))  # energy counts any model: it knows nothing of the search
            elif source.startswith("snnas.nas") and target.startswith("snnas.cli"):
                wrong.append((source, target))
            elif target in SHARED and source.startswith("snnas.nas"):
                continue
            elif _room(source) and _room(target) and _room(source) != _room(target) \
                    and FLOORS[_room(source)] <= FLOORS[_room(target)]:
                wrong.append((source, target))
            elif source in SHARED and target.startswith("snnas.nas") and target not in SHARED:
                wrong.append((source, target))
    assert wrong == []


def test_every_module_of_nas_lives_in_a_room():
    loose = [name for name in _modules() if name.startswith("snnas.nas.") and name not in SHARED
             and _room(name) not in FLOORS]
    assert loose == []


def test_snnas_is_the_only_top_level_name_installed(tmp_path):
    """From a folder outside the checkout, `snnas` imports and the generic names do not."""
    code = ("import importlib.util, sys; print(importlib.util.find_spec('snnas') is not None, "
            "[n for n in ('nas', 'energy', 'cli') if importlib.util.find_spec(n) is not None])")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True []"
    assert importlib.util.find_spec("snnas.nas.search.study") is not None


def test_functions_read_as_named_steps():
    """No function body (after its docstring) runs past 50 lines: a long one is split into named steps."""
    long = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body[1:] if ast.get_docstring(node) and len(node.body) > 1 else node.body
                if node.end_lineno - body[0].lineno + 1 > 50:
                    long.append(f"{name}.{node.name}")
    assert long == []
