from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def published() -> dict:
    """Published and re-derived reference numbers (copied from shared/reference)."""
    return json.loads((DATA / "published_numbers.json").read_text())


@pytest.fixture(scope="session")
def torchvision_shapes() -> dict:
    return json.loads((DATA / "torchvision_resnet_state_shapes.json").read_text())


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def invoke(runner):
    """Run the CLI; returns the click Result (stdout and stderr kept apart)."""
    from resnet_probe.cli import cli

    def run(*args: str):
        return runner.invoke(cli, list(args), catch_exceptions=False)
    return run
