"""No import circles in the package: a test walks every module's imports (also those
inside functions, which are circles all the same once they run)."""

import ast
from pathlib import Path

import napari_xray_denoise

PACKAGE = "napari_xray_denoise"
ROOT = Path(napari_xray_denoise.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node)
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "napari_xray_denoise.demo" in graph["napari_xray_denoise.cli"]  # cmd_demo's local import
    assert "napari_xray_denoise.core.registry" in graph["napari_xray_denoise.options"]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles():
    assert find_cycles(import_graph()) == []


def test_layers_import_downwards_only():
    """The numpy library never imports the front ends, the worker or napari adapters;
    core never imports the front ends either."""
    graph = import_graph()
    front = {f"{PACKAGE}.cli", f"{PACKAGE}.demo", f"{PACKAGE}.options"}
    upper = ("_napari", "_worker")
    for module, imports in graph.items():
        short = module.removeprefix(f"{PACKAGE}.")
        if short.startswith(upper) or module in front or module == PACKAGE:
            continue
        bad = {i for i in imports if i in front or i.removeprefix(f"{PACKAGE}.").startswith(upper)}
        assert not bad, f"{module} imports {sorted(bad)}"


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


#: the modules that run on any Keras backend (``core._keras``): the network, its layers,
#: model files and the simulated training pairs (``scripts/gpu_train_default.py`` runs
#: them on JAX, on a machine without TensorFlow)
BACKEND_NEUTRAL = (
    "_keras",
    "layers",
    "singlepass.network",
    "model_file",
    "singlepass.simdata",
    "engine",
)


def _imports_tensorflow(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        if any(n == "tensorflow" or n.startswith("tensorflow.") for n in names):
            return True
    return False


def test_backend_neutral_modules_never_reach_tensorflow():
    graph, modules = import_graph(), _modules()
    assert _imports_tensorflow(modules[f"{PACKAGE}.core._backend"])  # the check sees it
    for short in BACKEND_NEUTRAL:
        name = f"{PACKAGE}.core.{short}"
        reached = _reachable(graph, name) | {name}
        assert f"{PACKAGE}.core._backend" not in reached, f"{name} reaches core._backend"
        bad = sorted(m for m in reached if _imports_tensorflow(modules[m]))
        assert not bad, f"{name} reaches TensorFlow through {bad}"
