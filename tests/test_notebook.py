"""docs/examples/quickstart.ipynb runs start to finish in a fresh kernel (nbclient, as CI runs
it), and its results show themselves: HTML tables from ``_repr_html_`` holding the numbers the
notebook works out by hand, and a plotly figure from ``.figure()``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).parents[1]
NOTEBOOK = ROOT / "docs" / "examples" / "quickstart.ipynb"


@pytest.fixture(scope="module")
def executed():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # "python3" is ipykernel's own kernel: the interpreter running the tests, so a fresh
    # venv with the [test] extra needs no kernel installed
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT)}})
    client.execute()
    return notebook


def _code_cells(notebook) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _cell(notebook, source_start: str):
    return next(cell for cell in _code_cells(notebook) if cell.source.startswith(source_start))


def _html(cell) -> str:
    return "".join(output.get("data", {}).get("text/html", "") for output in cell.outputs)


def test_the_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    assert all(not cell.outputs for cell in _code_cells(notebook))


def test_every_cell_runs_without_an_error(executed):
    cells = _code_cells(executed)
    assert len(cells) >= 6
    assert all(cell.execution_count is not None for cell in cells)
    errors = [output for cell in cells for output in cell.outputs
              if output.output_type == "error"]
    assert errors == []


def test_the_count_shows_as_an_html_table_with_the_hand_worked_numbers(executed):
    html = _html(_cell(executed, "counts = rp.FlopAnalysis"))
    assert '<div class="resnet-probe">' in html and "<table" in html
    # 432 + 6 x 2,304 conv weights, 7 BNs x 32, 16 x 10 + 10 linear
    assert 432 + 6 * 2_304 + 7 * 32 + 170 == 14_650
    assert '<td class="text">parameters</td><td class="num">14,650</td>' in html
    # (432 + 6 x 2,304) x 32 x 32 + 160
    assert (432 + 6 * 2_304) * 32 * 32 + 160 == 14_598_304
    assert "14,598,304" in html


def test_the_twin_and_the_timing_show_as_html_tables(executed):
    twin = _html(_cell(executed, "twin = rp.plain_twin"))
    assert "3 residual additions removed" in twin and "<table" in twin
    timed = _html(_cell(executed, "timed = rp.LatencyAnalysis"))
    assert "<table" in timed and "SmallResNet" in timed and "PlainTwin" in timed
    assert "forward ms (median), 95% interval" in timed


def test_the_figure_is_the_reports_plotly_figure_with_both_models(executed):
    outputs = _cell(executed, "timed.figure()").outputs
    figure = next(output.data["application/vnd.plotly.v1+json"] for output in outputs
                  if "application/vnd.plotly.v1+json" in output.get("data", {}))
    if isinstance(figure, str):
        figure = json.loads(figure)
    assert [trace["name"] for trace in figure["data"]] == ["SmallResNet", "PlainTwin"]
    assert figure["layout"]["title"]["text"].startswith("Time by stage")
