"""The import contract: layers by role, no cycles. Read from the source (an AST walk, imports
inside functions included; those under `if TYPE_CHECKING:` are not imports at run time)."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from helpers import ROOT as REPO

ROOT = REPO / "nas"

# Lowest first: a package imports only from layers below its own. Commands (every `__main__`) and
# the Python door (`nas.api`, `nas` itself) sit on top.
LAYERS = (
    ("nas.runtime",),                      # errors, files, logging, config layering, registries
    ("nas.core",),                         # the spec, the space, the builder
    ("nas.export",),                       # ONNX / TFLite / int8 and their checks
    ("nas.latency",),                      # timing, tables, devices, prediction
    ("nas.accuracy",),                     # data, proxies, short training
    ("nas.groundtruth", "nas.train"),      # others' ImageNet models; the full training
    ("nas.supernet",),                     # weight sharing
    ("nas.budgets",),                      # what each stage may spend
    ("nas.netadapt", "nas.audit"),         # width shrinking; the proxies' fidelity audits
    ("nas.search",),                       # algorithms, rewards, the loop
    ("nas.pipeline",),                     # the stages of a run
    ("nas.api", "nas.inspect", "nas.proxies"),
    ("nas",),                              # `import nas`: the Python door's names, loaded lazily
)
RANK = {package: i for i, layer in enumerate(LAYERS) for package in layer}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for each import of the package's own modules."""
    is_package = path.name == "__init__.py"
    found = []

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    up = module.split(".")[: len(module.split(".")) - child.level + is_package]
                    base = ".".join([*up, *([child.module] if child.module else [])])
                names = [f"{base}.{a.name}" for a in child.names]
            else:
                visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))
                continue
            for name in names:
                target = resolve(name) if name.split(".")[0] == "nas" else None
                if target and target != module:
                    found.append((target, child.lineno, in_function))

    visit(ast.parse(path.read_text()), False)
    return found


def _graph():
    modules = _modules()
    return modules, {m: _imports(m, p, modules) for m, p in modules.items()}


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2]) if module.count(".") else module


def _layer_of(module: str) -> int:
    if module.endswith(".__main__"):
        return len(LAYERS)  # commands: the top
    return RANK[_package(module)]


def test_every_package_has_a_layer():
    modules, _ = _graph()
    assert sorted({_package(m) for m in modules} - set(RANK)) == []


def test_no_module_imports_a_layer_above_its_own():
    _, graph = _graph()
    upward = [f"{m}:{line} imports {t}" for m, edges in graph.items() for t, line, _ in edges
              if _package(t) != _package(m) and _layer_of(t) >= _layer_of(m)]
    assert upward == []


def test_no_import_cycles():
    _, graph = _graph()
    edges = defaultdict(set)
    for m, imports in graph.items():
        edges[m].update(t for t, _, _ in imports)
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def strongconnect(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                strongconnect(w)
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

    for v in list(graph):
        if v not in index:
            strongconnect(v)
    assert cycles == []


def test_module_names_say_their_role_once():
    """No two modules of the package share a file name (`config.py` twice is two meanings)."""
    modules, _ = _graph()
    names = defaultdict(list)
    for m, path in modules.items():
        if path.name not in ("__init__.py", "__main__.py"):
            names[path.stem].append(m)
    repeated = {n: ms for n, ms in names.items() if len(ms) > 1}
    assert repeated == {}
