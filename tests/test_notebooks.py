"""The notebooks in notebooks/ run from top to bottom and draw their plots.

Each runs in a fresh Jupyter kernel with FASTAP_NOTEBOOK_SMALL=1 (small sizes,
a few seconds each). A cell that raises fails the test (nbclient raises
CellExecutionError); every plot must come out as an image/png output.
"""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import DEFAULT_TEST_THREADS

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

# Notebook -> number of figures it shows.
EXPECTED_FIGURES = {
    "quickstart.ipynb": 3,
    "speed_and_memory.ipynb": 3,
    "text_clustering.ipynb": 2,
    "developer.ipynb": 1,
}


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(EXPECTED_FIGURES)


def execute(name, monkeypatch):
    monkeypatch.setenv("FASTAP_NOTEBOOK_SMALL", "1")
    # Figures must reach the notebook as images, whatever the caller's backend.
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    # conftest.py raises NUMBA_NUM_THREADS above the core count for the
    # thread tests; the notebook kernels run at the machine's own count.
    env = dict(os.environ, NUMBA_NUM_THREADS=str(DEFAULT_TEST_THREADS))
    client.execute(env=env)
    return notebook


def outputs(notebook):
    for cell in notebook.cells:
        if cell.cell_type == "code":
            yield from cell.outputs


def text_of(notebook):
    return "".join(
        output.get("text", "") + output.get("data", {}).get("text/plain", "")
        for output in outputs(notebook)
    )


@pytest.mark.parametrize("name", sorted(EXPECTED_FIGURES))
def test_notebook_runs_and_draws_its_plots(name, monkeypatch):
    notebook = execute(name, monkeypatch)
    assert not [output for output in outputs(notebook) if output.output_type == "error"]
    images = [output for output in outputs(notebook) if "image/png" in output.get("data", {})]
    assert len(images) == EXPECTED_FIGURES[name]
    for image in images:
        assert len(image["data"]["image/png"]) > 1000  # a real picture, base64-encoded
    text = text_of(notebook)
    if name == "quickstart.ipynb":
        assert "Estimated number of clusters = 2" in text
        assert "same labels: True | same exemplars: True | same iterations: True" in text
    if name == "developer.ipynb":
        assert "R identical: True | A identical: True | exemplar flags identical: True" in text
        assert "same as the estimator: True" in text
    if name == "text_clustering.ipynb":
        assert text.count("exemplar #") == 6
