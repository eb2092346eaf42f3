"""labkit's layers: course -> teaching -> studies -> methods -> synthesis -> core, and no import cycle.

Every import statement of every labkit source file counts, including the ones under ``if TYPE_CHECKING:`` and
inside functions: a type-only import of a method's config into the machinery is still the method's policy leaking
down. The controls feed the same checks a graph with an upward import and a cycle, and those must be reported.
"""
from __future__ import annotations

import ast
from pathlib import Path

LABKIT = Path(__file__).resolve().parents[1] / "labkit"
#: The allowed direction: a module may import its own layer or any layer to its right.
LAYERS = ("course", "teaching", "studies", "methods", "synthesis", "core")
#: The package root (``labkit/__init__``, ``__main__``) sits above every layer: it may import anything.
ROOT_MODULES = ("labkit", "labkit.__main__")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(LABKIT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str) -> str | None:
    """The labkit module (file or package) that ``module`` names, or ``None`` outside labkit."""
    if module != "labkit" and not module.startswith("labkit."):
        return None
    rel = Path(*module.split("."))
    if (LABKIT.parent / rel.with_suffix(".py")).exists() or (LABKIT.parent / rel / "__init__.py").exists():
        return module
    return None


def import_graph(root: Path = LABKIT) -> dict[str, set[str]]:
    """labkit module -> the labkit modules its import statements name (every statement, wherever it stands)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(filter(None, (_resolve(a.name) for a in node.names)))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                for imported in node.names:  # "from labkit.synthesis import boundary" names a module
                    sub = _resolve(f"{module}.{imported.name}")
                    target = sub or _resolve(module)
                    if target:
                        targets.add(target)
        targets.discard(name)
        graph[name] = targets
    return graph


def layer_of(module: str) -> str | None:
    """The layer a module belongs to (``None`` for the package root)."""
    if module in ROOT_MODULES:
        return None
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "?"


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import that goes against the allowed direction, or from/into a module outside the five layers."""
    bad: list[str] = []
    for source, targets in sorted(graph.items()):
        src_layer = layer_of(source)
        if src_layer is None:
            continue
        for target in sorted(targets):
            dst_layer = layer_of(target)
            if src_layer == "?" or dst_layer == "?":
                bad.append(f"{source} -> {target} (a module outside {', '.join(LAYERS)})")
            elif dst_layer is None:
                bad.append(f"{source} -> {target} (the package root imports the layers, not the other way)")
            elif LAYERS.index(dst_layer) < LAYERS.index(src_layer):
                bad.append(f"{source} ({src_layer}) -> {target} ({dst_layer}) goes up")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_labkit_has_five_layers_and_nothing_else_at_its_top() -> None:
    entries = sorted(p.name for p in LABKIT.iterdir() if p.name != "__pycache__")
    assert entries == sorted(["__init__.py", "__main__.py", *LAYERS]), entries
    for layer in LAYERS:
        assert (LABKIT / layer / "__init__.py").exists(), layer


def test_imports_only_go_down_the_layers() -> None:
    graph = import_graph()
    assert len(graph) > 60 and "labkit.methods.zsdb3kd" in graph  # the graph was read
    assert upward_imports(graph) == []


def test_there_is_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_no_method_module_is_longer_than_its_algorithm_box() -> None:
    long = {p.name: n for p in (LABKIT / "methods").glob("*.py") if (n := len(p.read_text().splitlines())) > 300}
    assert not long, f"methods over 300 lines: {long}"


# ------------------------------------------------------------------------------------------- controls
def test_control_an_upward_import_and_a_cycle_are_reported(tmp_path: Path) -> None:
    """The same checks on a small fake labkit: machinery that imports a method, and a two-module cycle."""
    fake = tmp_path / "labkit"
    for layer in LAYERS:
        (fake / layer).mkdir(parents=True)
        (fake / layer / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "methods" / "zsdb3kd.py").write_text("from labkit.synthesis.pseudo_samples import PseudoSamples\n")
    (fake / "synthesis" / "pseudo_samples.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from labkit.methods.zsdb3kd import Config\n")
    (fake / "core" / "a.py").write_text("from . import b\n")
    (fake / "core" / "b.py").write_text("def f():\n    from labkit.core.a import x\n")
    global LABKIT
    saved, LABKIT = LABKIT, fake
    try:
        graph = import_graph(fake)
    finally:
        LABKIT = saved
    up = upward_imports(graph)
    assert up == ["labkit.synthesis.pseudo_samples (synthesis) -> labkit.methods.zsdb3kd (methods) goes up"], up
    assert sorted(cycles(graph)) == [["labkit.core.a", "labkit.core.b"],
                                     ["labkit.methods.zsdb3kd", "labkit.synthesis.pseudo_samples"]]
