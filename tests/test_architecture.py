"""The layout issue 9 asked for, checked on the source with ``ast``.

- The import graph of ``fastap`` has no cycle, and it runs one way: the CLI
  over the estimator and tools, over the run and the engines, over the
  kernels; kernels import nothing of fastap outside ``_kernels``.
- No module uses another module's private name (``from fastap.m import
  _name`` or ``m._name``); private modules (``fastap._run``) are fine.
- No function spans more than 80 lines of code (docstrings aside).
- Every kernel name is defined once across ``fastap/_kernels``.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "fastap"
MAX_FUNCTION_LINES = 80


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def parsed(name):
    return ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))


def fastap_imports(name):
    """``(imported module, imported names, line)`` of every fastap import."""
    found = []
    for node in ast.walk(parsed(name)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fastap"):
            names = [alias.name for alias in node.names]
            submodules = [f"{node.module}.{n}" for n in names if f"{node.module}.{n}" in MODULES]
            if submodules:
                found += [(module, [], node.lineno) for module in submodules]
                names = [n for n in names if f"{node.module}.{n}" not in MODULES]
            if names:
                found.append((node.module, names, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names
                      if alias.name.startswith("fastap")]
    return found


def test_no_import_cycle():
    graph = {name: {module for module, _, _ in fastap_imports(name) if module != name}
             for name in MODULES}
    # A package's __init__ imports its own modules; that edge is not a layer.
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".") and m != "fastap"}
    visiting, done = set(), set()

    def visit(name, path):
        if name in done:
            return
        assert name not in visiting, "import cycle: " + " -> ".join(path + [name])
        visiting.add(name)
        for module in sorted(graph.get(name, ())):
            visit(module, path + [name])
        visiting.discard(name)
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


LAYERS = [
    # (module prefix, modules it must not import)
    ("fastap._kernels", ["fastap._run", "fastap._dense", "fastap._sparse", "fastap._estimator",
                         "fastap._numpy_engine", "fastap._cold_start",
                         "fastap._search", "fastap._neighbors", "fastap._cli"]),
    ("fastap._run", ["fastap._estimator", "fastap._dense", "fastap._sparse", "fastap._cli"]),
    ("fastap._dense", ["fastap._estimator", "fastap._cli", "fastap._sparse"]),
    ("fastap._sparse", ["fastap._estimator", "fastap._cli", "fastap._dense"]),
    ("fastap._numpy_engine", ["fastap._estimator", "fastap._cli", "fastap._sparse",
                              "fastap._kernels"]),
    ("fastap._cold_start", ["fastap._estimator", "fastap._cli", "fastap._numpy_engine"]),
    ("fastap._search", ["fastap._estimator", "fastap._cli", "fastap._dense", "fastap._sparse"]),
    ("fastap._neighbors", ["fastap._estimator", "fastap._cli"]),
    ("fastap._estimator", ["fastap._cli"]),
]


@pytest.mark.parametrize("prefix, forbidden", LAYERS, ids=[layer[0] for layer in LAYERS])
def test_imports_run_one_way(prefix, forbidden):
    for name in MODULES:
        if name != prefix and not name.startswith(prefix + "."):
            continue
        for module, _, line in fastap_imports(name):
            assert not any(module == f or module.startswith(f + ".") for f in forbidden), (
                f"{name} (line {line}) imports {module}"
            )


def test_kernels_import_only_kernels():
    for name in MODULES:
        if name.startswith("fastap._kernels"):
            for module, _, line in fastap_imports(name):
                assert module.startswith("fastap._kernels"), f"{name}:{line} imports {module}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_private_name_of_another_module(name):
    tree = parsed(name)
    aliases = {}
    for module, names, line in fastap_imports(name):
        for imported in names:
            assert not imported.startswith("_") or imported.startswith("__"), (
                f"{name}:{line} imports the private name {imported} of {module}"
            )
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fastap"):
            for alias in node.names:
                if f"{node.module}.{alias.name}" in MODULES:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            raise AssertionError(
                f"{name}:{node.lineno} uses {node.value.id}.{node.attr}, private to "
                f"{aliases[node.value.id]}"
            )


def code_lines(function):
    lines = set(range(function.lineno, function.end_lineno + 1))
    first = function.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
        first.value.value, str
    ):
        lines -= set(range(first.lineno, first.end_lineno + 1))
    return len(lines)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_functions_are_short(name):
    for node in ast.walk(parsed(name)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert code_lines(node) <= MAX_FUNCTION_LINES, (
                f"{name}.{node.name} spans {code_lines(node)} lines of code"
            )


def test_kernel_names_are_unique():
    seen = {}
    for name, path in MODULES.items():
        if not name.startswith("fastap._kernels."):
            continue
        for node in parsed(name).body:
            if isinstance(node, ast.FunctionDef):
                assert node.name not in seen, (
                    f"{node.name} defined in {seen.get(node.name)} and {name}"
                )
                seen[node.name] = name
