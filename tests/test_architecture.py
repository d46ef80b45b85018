"""The shape of the house (STYLE.md): data flows one way, sources -> measure/train -> analysis
-> jobs -> report/cli. These tests read every module's imports (at module level and inside
functions alike, so an import moved into a function cannot hide a cycle) and check the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "resnet_probe"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imported(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports, anywhere in its code, resolved to its own module (or the
    nearest package) when it is one of resnet_probe's; other imports by their top name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[:len(name.split(".")) - node.level +
                                         (path.name == "__init__.py")]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            # ``from package import submodule`` imports the submodule (and runs the package's
            # __init__, which Python allows even mid-cycle); a name imports its module
            targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in MODULES
                       else module for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target.startswith("resnet_probe") and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target if target.startswith("resnet_probe")
                          else target.split(".")[0])
    return found


GRAPH = {name: _imported(name, path) for name, path in MODULES.items()}


def _internal(name: str) -> set[str]:
    return {target for target in GRAPH[name] if target.startswith("resnet_probe")}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in _internal(node):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read():
    """The walk finds what it must: a test that cannot see imports would pass vacuously."""
    assert len(MODULES) > 50
    assert "resnet_probe.zoo" in _internal("resnet_probe.sources.source")
    assert "resnet_probe.sources.source" in _internal("resnet_probe.sources")
    assert "resnet_probe.jobs.parts" in _internal("resnet_probe.jobs.compare")
    assert "torch" in GRAPH["resnet_probe.zoo.blocks"]


def test_no_import_cycle_in_the_package():
    assert _cycles() == []


def _under(name: str, *packages: str) -> bool:
    return any(name == f"resnet_probe.{p}" or name.startswith(f"resnet_probe.{p}.")
               for p in packages)


@pytest.mark.parametrize("layer", ["zoo", "sources", "measure", "train", "analysis", "jobs",
                                   "data", "stats", "results", "views", "labels", "cache"])
def test_nothing_below_the_report_knows_a_report_or_a_command_line_exists(layer):
    offenders = {name: sorted(t for t in _internal(name) if _under(t, "report", "cli"))
                 for name in MODULES if _under(name, layer)}
    assert {name: found for name, found in offenders.items() if found} == {}


# The layers from the bottom; a module may import its own layer or one below. train may use
# measure (the loop records gradient norms and checks memory), not the other way round.
LAYERS = ("zoo", "sources", "measure", "train", "analysis", "jobs")


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_imports_only_layers_below_it(layer):
    above = LAYERS[LAYERS.index(layer) + 1:]
    offenders = {name: sorted(t for t in _internal(name) if _under(t, *above))
                 for name in MODULES if _under(name, layer)}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_jobs_are_the_only_orchestrators():
    """The sweep that trains (model, seed) runs lives in jobs/; analysis and train below it
    only load and train one run: they cannot reach the sweep."""
    assert "resnet_probe.jobs.sweep" in _internal("resnet_probe.jobs.degradation")
    assert "resnet_probe.jobs.sweep" in _internal("resnet_probe.jobs.compare.training")
    defined = sorted(name for name, path in MODULES.items()
                     if "def run_degradation(" in path.read_text()
                     or "def train_default(" in path.read_text())
    assert defined == ["resnet_probe.jobs.sweep"]


@pytest.mark.parametrize("library, allowed", [
    ("plotly", ("report",)),
    ("click", ("cli",)),
])
def test_each_outside_library_has_one_home(library, allowed):
    users = sorted(name for name in MODULES if library in GRAPH[name]
                   and not _under(name, *allowed))
    assert users == []


def test_counting_and_the_zoo_never_need_pandas():
    users = sorted(name for name in MODULES if "pandas" in GRAPH[name]
                   and _under(name, "zoo", "measure"))
    assert users == []


def test_the_public_api_is_exported_lazily_and_completely():
    import subprocess
    import sys

    import resnet_probe

    lazy = set(resnet_probe._EXPORTS) | set(resnet_probe._RENAMED)
    assert set(resnet_probe.__all__) == lazy | {"__version__"}
    for name in resnet_probe.__all__:
        assert getattr(resnet_probe, name) is not None
    out = subprocess.run([sys.executable, "-c", "import sys, resnet_probe; "
                          "print('torch' in sys.modules)"], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
