from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session", autouse=True)
def run_cache(tmp_path_factory) -> Path:
    """Tests never read or fill the user's run cache; subprocesses inherit this too."""
    from resnet_probe.cache import CACHE_ENV

    path = tmp_path_factory.mktemp("run-cache")
    os.environ[CACHE_ENV] = str(path)
    return path


@pytest.fixture(scope="session")
def published() -> dict:
    """Published and re-derived reference numbers (copied from shared/reference)."""
    return json.loads((DATA / "published_numbers.json").read_text())


@pytest.fixture(scope="session")
def torchvision_shapes() -> dict:
    return json.loads((DATA / "torchvision_resnet_state_shapes.json").read_text())


def page_of(result, out) -> Path:
    """Where ``report.write`` put a comparison's page."""
    from resnet_probe.report import compare_report_path

    return compare_report_path(out, result.models)


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


@pytest.fixture(scope="session")
def tiny_compare(tmp_path_factory):
    """A complete compare report on tiny models: every section, in seconds."""
    from resnet_probe import compare
    from resnet_probe.analysis import AnalysisOptions
    from resnet_probe.measure.gradients import GradientConfig
    from resnet_probe.measure.latency import LatencyConfig
    from resnet_probe.train.loop import TrainConfig

    out = tmp_path_factory.mktemp("reports")
    result = compare(
        ["resnet8", "plain8", "resnet14"], out=out,
        latency=LatencyConfig(repeats=2, warmup=1, sweep_batch_sizes=(1, 2), input_size=32),
        gradients=GradientConfig(batch_size=4, seeds=(0, 1), shatter_points=16),
        train=TrainConfig(steps=8, batch_size=32, eval_every=4, grad_norm_every=4,
                          checkpoint_every=4, warmup_steps=2, record_steps=(0, 1, 2, 5)),
        train_seeds=(0, 1), input_size=32,
        why=AnalysisOptions(limit=32, lesion_samples=1, landscape_points=3, landscape_limit=32,
                            landscape_directions=2, hessian_images=8, hessian_iterations=3,
                            path_images=2, path_samples=1))
    return result, out


@pytest.fixture(scope="session")
def tiny_degradation(tmp_path_factory):
    from click.testing import CliRunner

    from resnet_probe.cli import cli

    out = tmp_path_factory.mktemp("reports") / "degradation"
    result = CliRunner().invoke(cli, ["degradation", "--depths", "8,14", "--steps", "6",
                                      "--warmup-steps", "1",
                                      "--batch-size", "32", "--seeds", "0,1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def zoo_counts() -> dict:
    """Every registered model counted once per session (about 15 s), shared by the tests
    that need the whole zoo."""
    from resnet_probe.measure.costs import count_costs
    from resnet_probe.zoo import list_models

    return {name: count_costs(name) for name in list_models()}


@pytest.fixture(scope="session")
def zoo_report(tmp_path_factory, zoo_counts):
    from resnet_probe.environment import current_environment
    from resnet_probe.jobs.census import zoo_census
    from resnet_probe.report import write_zoo_report

    out = tmp_path_factory.mktemp("reports")
    write_zoo_report(zoo_census(counted=zoo_counts), current_environment(), out)
    return out


def _optional(name: str):
    """An optional library of the second CI environment: skipped where it does not import,
    failed instead under RESNET_PROBE_REQUIRE_TORCHVISION=1 (.ci/run)."""
    import importlib
    import os

    try:
        return importlib.import_module(name)
    except Exception as error:  # noqa: BLE001 - an ops-loading failure is not an ImportError
        if os.environ.get("RESNET_PROBE_REQUIRE_TORCHVISION") == "1":
            pytest.fail(f"{name} is required here but does not import: {error}")
        pytest.skip(f"{name} does not import here: {error}")


@pytest.fixture(scope="session")
def torchvision():
    return _optional("torchvision")


@pytest.fixture(scope="session")
def timm(torchvision):
    return _optional("timm")


GOLDEN = Path(__file__).parent / "golden"


def pytest_addoption(parser) -> None:
    parser.addoption("--overwrite-golden", action="store_true", default=False,
                     help="rewrite tests/golden/*.out from what the code prints now")


@pytest.fixture
def golden(request):
    """Compare text people read (console tables, markdown) with its stored .out file, as
    torchinfo's verify_output does; ``--overwrite-golden`` stores the text instead."""
    def verify(name: str, text: str) -> None:
        path = GOLDEN / f"{name}.out"
        if request.config.getoption("--overwrite-golden"):
            GOLDEN.mkdir(exist_ok=True)
            path.write_text(text)
            return
        assert path.exists(), f"no golden file {path}: run pytest with --overwrite-golden"
        assert text == path.read_text(), (
            f"{name} differs from {path}; if the change is intended, rerun with "
            f"--overwrite-golden and review the diff")
    return verify
