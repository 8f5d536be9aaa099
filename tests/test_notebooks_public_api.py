"""The user notebooks use fastap's public API only (issue 12.9).

developer.ipynb is the exception: it is the guide to the internals (kernels,
drivers), which it imports on purpose.
"""

import ast
import json
from pathlib import Path

import pytest

import fastap

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
USER_NOTEBOOKS = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb") if p.name != "developer.ipynb")


def fastap_names_used(source):
    """``(module, name)`` of every ``fastap`` import and attribute in ``source``."""
    used = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "fastap":
            used |= {(node.module, alias.name) for alias in node.names}
        elif isinstance(node, ast.Import):
            used |= {(alias.name, None) for alias in node.names if alias.name.startswith("fastap")}
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id == "fastap"):
            used.add(("fastap", node.attr))
    return used


def code_of(name):
    cells = json.loads((NOTEBOOKS / name).read_text())["cells"]
    # IPython magics and shell lines are not Python.
    return "\n".join(
        line for cell in cells if cell["cell_type"] == "code"
        for line in "".join(cell["source"]).splitlines() if not line.lstrip().startswith(("%", "!"))
    )


def is_public(module, name):
    if module == "fastap":
        return name is None or name in fastap.__all__ or name == "plot"
    return module == "fastap.plot" or (module, name) == ("fastap.plot", None)


def test_the_check_sees_private_imports():
    used = fastap_names_used("from fastap._engine import x\nimport fastap\nfastap._run.y\n")
    assert [pair for pair in sorted(used, key=str) if not is_public(*pair)] == [
        ("fastap", "_run"), ("fastap._engine", "x")
    ]


@pytest.mark.parametrize("name", USER_NOTEBOOKS)
def test_user_notebooks_use_only_public_api(name):
    private = sorted(
        (pair for pair in fastap_names_used(code_of(name)) if not is_public(*pair)), key=str
    )
    assert private == []
