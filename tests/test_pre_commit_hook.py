"""The pre-commit hook (.pre-commit-hooks.yaml), run by pre-commit itself: `pre-commit try-repo`
in a scratch git repository whose model imports a package of its own. The hook uses the
environment it is run from (`language: system`), so the test puts a `resnet-probe` console
script of this environment on PATH; it runs only when a file it guards changed.

Skipped when pre-commit is neither on PATH nor importable by this Python."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import resnet_probe

REPOSITORY = Path(resnet_probe.__file__).resolve().parents[1]


def _pre_commit() -> list[str] | None:
    if importlib.util.find_spec("pre_commit") is not None:
        return [sys.executable, "-m", "pre_commit"]
    found = shutil.which("pre-commit")
    return [found] if found else None


PRE_COMMIT = _pre_commit()
pytestmark = [
    pytest.mark.skipif(PRE_COMMIT is None, reason="pre-commit is not installed"),
    pytest.mark.skipif(not (REPOSITORY / ".pre-commit-hooks.yaml").exists()
                       or shutil.which("git") is None,
                       reason="needs git and the source tree's .pre-commit-hooks.yaml"),
]

MODEL = """
from mypkg.layers import classifier   # the repository's own package, not installed


def build():
    return classifier(WIDTH)
"""

LAYERS = """
from torch import nn


def classifier(width):
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))
"""


@pytest.fixture
def user_repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A git repository with model.py importing mypkg, a baseline of it, and the environment
    a developer's shell would give the hook: this Python's resnet-probe script on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "resnet-probe"  # as pip writes a console script: no folder on sys.path
    script.write_text(f"#!{sys.executable}\nimport sys\nfrom resnet_probe.cli import main\n"
                      f"sys.exit(main())\n")
    script.chmod(0o755)
    home = tmp_path / "home"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY),
                                                        os.environ.get("PYTHONPATH")])),
           "PRE_COMMIT_HOME": str(home / "pre-commit"), "HOME": str(home),
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_NOSYSTEM": "1"}
    env.pop("GITHUB_STEP_SUMMARY", None)
    repo = tmp_path / "user"
    (repo / "mypkg").mkdir(parents=True)
    (repo / "mypkg" / "__init__.py").write_text("")
    (repo / "mypkg" / "layers.py").write_text(LAYERS)
    (repo / "model.py").write_text(MODEL.replace("WIDTH", "8"))
    (repo / "README.md").write_text("a model\n")
    subprocess.run(["git", "init", "-q"], cwd=repo, env=env, check=True)
    written = subprocess.run(["resnet-probe", "flops", "--update-baseline", "costs.json",
                              "model.py:build", "--input-size", "16"],
                             cwd=repo, env=env, capture_output=True, text=True)
    assert written.returncode == 0, written.stderr
    subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True)
    subprocess.run(["git", "commit", "-qm", "model"], cwd=repo, env=env, check=True)
    return repo, env


def _try_repo(repo: Path, env: dict[str, str], *files: str) -> subprocess.CompletedProcess:
    assert PRE_COMMIT is not None
    return subprocess.run([*PRE_COMMIT, "try-repo", str(REPOSITORY), "resnet-probe-flops-check",
                           "--verbose", "--files", *files],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=300)


def test_the_hook_passes_then_catches_a_drift_in_a_model_importing_its_own_package(user_repo):
    repo, env = user_repo
    passed = _try_repo(repo, env, "model.py")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "resnet-probe cost gate" in passed.stdout and "Passed" in passed.stdout
    assert "cost check passed: 1 entries" in passed.stdout
    assert "ModuleNotFoundError" not in passed.stdout

    (repo / "model.py").write_text(MODEL.replace("WIDTH", "12"))  # a wider model
    failed = _try_repo(repo, env, "model.py")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Failed" in failed.stdout and "cost check FAILED" in failed.stdout
    # conv 3*3*3*c*16*16 + linear c*10: c = 8 -> 55,376 MACs, c = 12 -> 83,064
    assert "55,376 → 83,064" in failed.stdout


def test_the_hook_runs_only_when_a_file_it_guards_changed(user_repo):
    repo, env = user_repo
    (repo / "model.py").write_text(MODEL.replace("WIDTH", "12"))  # drifted, but not given
    skipped = _try_repo(repo, env, "README.md")
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert "(no files to check)" in skipped.stdout and "Skipped" in skipped.stdout
    assert "cost check" not in skipped.stdout


def test_the_hook_builds_no_environment_of_its_own():
    yaml = pytest.importorskip("yaml")
    (hook,) = yaml.safe_load((REPOSITORY / ".pre-commit-hooks.yaml").read_text())
    assert hook["language"] == "system" and "always_run" not in hook
    assert hook["entry"] == "resnet-probe flops --check"
    assert hook["args"] == ["costs.json", "--trust-sources"] and not hook["pass_filenames"]
    assert hook["files"] == r"\.(py|json)$"
