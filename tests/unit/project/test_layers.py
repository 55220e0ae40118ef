"""The import contract: layers by role, no cycles, and an import inside a function only where it saves
start-up time, saying so. Read from the source (an AST walk, imports inside functions included; those
under `if TYPE_CHECKING:` are not imports at run time). `python tests/unit/test_layers.py` prints how
many imports sit inside functions."""
from __future__ import annotations

import ast
import sys
from collections import Counter, defaultdict
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


def _import_statements(tree: ast.AST, in_function: bool = False):
    """(import statement, inside a function) for each import that runs (not under `if TYPE_CHECKING:`)."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, in_function
        else:
            yield from _import_statements(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))


def _imported_names(statement: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if isinstance(statement, ast.Import):
        return [a.name for a in statement.names]
    base = statement.module or ""
    if statement.level:
        up = module.split(".")[: len(module.split(".")) - statement.level + is_package]
        base = ".".join([*up, *([statement.module] if statement.module else [])])
    return [f"{base}.{a.name}" for a in statement.names]


def _imports(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for each import of the package's own modules."""
    found = []

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    for statement, in_function in _import_statements(ast.parse(path.read_text())):
        for name in _imported_names(statement, module, path.name == "__init__.py"):
            target = resolve(name) if name.split(".")[0] == "nas" else None
            if target and target != module:
                found.append((target, statement.lineno, in_function))
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


# ---- imports inside functions -----------------------------------------------------------------

# An import inside a function is there to keep start-up light (what `--help`, a flag error or `import
# nas` loads); its line, or a comment line right above it, says why with this word:
#     from nas.latency.devices import get_device  # deferred: loads torch
# Moving one to the module's top is right wherever it costs nothing there. Roughly what the usual
# reasons cost to load: torch ~2 s, Ray 1-5 s, scipy.stats ~1.5 s, scikit-learn ~3 s, onnx ~1.5 s,
# matplotlib ~1 s, litert-torch (the optional tflite extra) ~10 s, onnxruntime ~0.3 s, numpy ~0.2 s,
# tqdm ~0.1 s. The standard library is not exempt: most of it costs nothing at the top, and the few
# modules that do (multiprocessing's pools, ~50 ms) say so like the rest.
MARKER = "deferred"


def _kind(statement: ast.Import | ast.ImportFrom) -> str:
    top = "nas" if isinstance(statement, ast.ImportFrom) and statement.level else \
        (statement.module if isinstance(statement, ast.ImportFrom) else statement.names[0].name).split(".")[0]
    return "own" if top == "nas" else "stdlib" if top in sys.stdlib_module_names else "third-party"


def _function_imports() -> list[tuple[str, str, bool]]:
    """(file:line, kind, whether it says why) for each import statement inside a function."""
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        lines = path.read_text().splitlines()
        for statement, in_function in _import_statements(ast.parse("\n".join(lines))):
            if in_function:
                line, above = lines[statement.lineno - 1], lines[statement.lineno - 2].strip()
                says = MARKER in line.partition("#")[2] or (above.startswith("#") and MARKER in above)
                out.append((f"{path.relative_to(ROOT.parent)}:{statement.lineno}", _kind(statement), says))
    return out


def function_import_counts() -> dict[str, int]:
    """Imports inside functions: `own` counts each of the package's modules imported (as the layer graph
    does), `third-party` and `stdlib` each statement."""
    _, graph = _graph()
    counts = Counter(kind for _, kind, _ in _function_imports() if kind != "own")
    return {"own": sum(inside for edges in graph.values() for _, _, inside in edges), **counts}


def test_imports_inside_functions_say_why():
    silent = [where for where, _, says in _function_imports() if not says]
    assert silent == [], (f"{len(silent)} imports inside functions without a '# {MARKER}: why' comment on their line "
                          f"or the line above (or move them to the module's top):\n" + "\n".join(silent))


if __name__ == "__main__":
    print(function_import_counts())
