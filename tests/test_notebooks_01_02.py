"""Notebooks 01 and 02 run top to bottom (nbclient, a fresh kernel), each within 120 s on a CPU.

They need the demo weights (``data_samples/weights/demo.pth``, or ``$HMMNLAB_DEMO_WEIGHTS``); without
them the test skips with a reason, as it does without nbclient / ipykernel (``pip install -e '.[dev]'``).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = ["01_memory_read_step_by_step.ipynb", "02_topk_inspector.ipynb"]
LIMIT_S = 120


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom(name):
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (dev extra)")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed (dev extra)")
    from hmmnlab.lesson import demo_weights

    try:
        demo_weights()
    except FileNotFoundError as err:
        pytest.skip(str(err))
    notebook = nbformat.read(REPO / "notebooks" / name, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=LIMIT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(REPO / "notebooks")}},
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError with the failing cell and its traceback
    elapsed = time.perf_counter() - start
    assert elapsed < LIMIT_S, f"{name} took {elapsed:.0f} s (limit {LIMIT_S} s)"
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
    images = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    if name.startswith("01"):
        assert len(images) >= 10, f"expected a figure per stage, found {len(images)} images"
    else:
        widget = [
            output
            for output in notebook.cells[-1].get("outputs", [])
            if "application/vnd.jupyter.widget-view+json" in output.get("data", {})
        ]
        assert widget, "the last cell shows no widget"
