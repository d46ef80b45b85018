"""The README's promises: two commands up front, CI runs the test one, the API is documented."""

from __future__ import annotations

import pydoc
import re
from pathlib import Path

ROOT = Path(__file__).parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text)[:2]


def test_readme_opens_with_main_job_then_tests():
    main_job, tests = readme_commands()
    assert "resnet-probe compare resnet34 plain34" in main_job
    assert "pip install -q torch==2.13.0" in main_job  # the CPU wheel, never a CUDA download
    assert "pytest" in tests and "torch==2.13.0" in tests
    opening = (ROOT / "README.md").read_text().split("---")[0]
    assert opening.count("```bash") == 2


def test_ci_runs_the_readme_test_command_verbatim():
    _, tests = readme_commands()
    assert tests in (ROOT / ".ci" / "run").read_text()


def test_help_shows_the_public_api():
    import resnet_probe

    text = pydoc.render_doc(resnet_probe, renderer=pydoc.plaintext)
    for name in ("build_model", "list_models", "compare", "flops", "latency", "gradients"):
        assert name in resnet_probe.__all__
        assert f"{name}(" in text


def test_readme_convention_table_matches_the_catalogue():
    from resnet_probe.results import CONVENTIONS

    text = (ROOT / "README.md").read_text()
    table = text.split("## Why ResNet-50 is")[1].split("\n\n")[2]
    columns = [line.split("|")[1] for line in table.splitlines()[2:]]
    assert len(columns) == len(CONVENTIONS)
    for metric, cell in zip(CONVENTIONS, columns, strict=True):
        assert f"`{metric.column}`" in cell, (metric.column, cell)
