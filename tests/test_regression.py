"""FLOP regression checks: the committed baseline passes; a perturbed model fails with a diff."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resnet_probe.jobs import regression
from resnet_probe.zoo import get_spec, list_models
from resnet_probe.zoo import registry as zoo_registry

COMMITTED = Path(__file__).parents[1] / "reports" / "baselines" / "flops.json"


def test_committed_baseline_covers_the_whole_zoo():
    baseline = json.loads(COMMITTED.read_text())
    assert set(baseline["models"]) == set(list_models())
    entry = baseline["models"]["resnet50"]
    assert entry["macs"] == 4_089_184_256 and entry["params"] == 25_557_032
    assert sum(s["macs"] for s in entry["stages"].values()) == entry["macs"]
    assert sum(s["params"] for s in entry["stages"].values()) == entry["params"]


def test_committed_baseline_passes(zoo_counts):
    rows, drifts = regression.check_baseline(COMMITTED, counted=zoo_counts)
    assert not drifts and {row["model"] for row in rows} == set(zoo_counts)


def test_cli_check_command(invoke, tmp_path):
    baseline = tmp_path / "b.json"
    invoke("flops", "--update-baseline", str(baseline), "resnet8", "plain14")
    result = invoke("flops", "--check", str(baseline))
    assert result.exit_code == 0 and "2 models, " in result.stdout
    assert "FLOP regression check passed" in result.stdout


@pytest.fixture
def perturbable(monkeypatch, tmp_path):
    """A registered name whose spec the test can change after writing the baseline."""
    monkeypatch.setitem(zoo_registry._REGISTRY, "my_net", get_spec("resnet8"))
    path = tmp_path / "baseline.json"
    regression.write_baseline(path, ["my_net", "resnet8"])
    return path


def test_perturbed_model_fails_with_diff(invoke, perturbable, monkeypatch):
    monkeypatch.setitem(zoo_registry._REGISTRY, "my_net", get_spec("resnet8[widths=16-32-72]"))
    result = invoke("flops", "--check", str(perturbable))
    assert result.exit_code == 1
    assert "FLOP regression check FAILED" in result.stderr
    for header in ("model", "stage", "expected", "got", "delta_pct"):
        assert header in result.stdout
    assert "stage3" in result.stdout and "my_net" in result.stdout
    assert "resnet8 " not in result.stdout  # unchanged models are not in the diff
    rows, drifts = regression.check_baseline(perturbable)
    stage3 = next(d for d in drifts if d.stage == "stage3" and d.metric == "macs")
    # 64 -> 72 output channels in stage 3: conv2's 3*3*72*72*64 vs 3*3*64*64*64
    expected = 3 * 3 * 32 * 64 * 64 + 3 * 3 * 64 * 64 * 64
    assert stage3.expected == expected
    assert stage3.got == 3 * 3 * 32 * 72 * 64 + 3 * 3 * 72 * 72 * 64


def test_rtol_relaxes_the_match(invoke, perturbable, monkeypatch):
    monkeypatch.setitem(zoo_registry._REGISTRY, "my_net", get_spec("resnet8[num_classes=11]"))
    assert invoke("flops", "--check", str(perturbable)).exit_code == 1
    # 64 extra fc MACs out of 12.2M: well inside 1%, but the head stage changes by 10%.
    assert invoke("flops", "--check", str(perturbable), "--rtol", "0.2").exit_code == 0


def test_update_baseline_rewrites(invoke, perturbable, monkeypatch):
    monkeypatch.setitem(zoo_registry._REGISTRY, "my_net", get_spec("resnet8[widths=16-32-72]"))
    assert invoke("flops", "--check", str(perturbable)).exit_code == 1
    result = invoke("flops", "--update-baseline", str(perturbable))
    assert result.exit_code == 0 and "0 added, 2 replaced, 0 kept" in result.stdout
    assert invoke("flops", "--check", str(perturbable)).exit_code == 0


def test_custom_spec_in_a_baseline(invoke, tmp_path):
    path = tmp_path / "custom.json"
    custom = "cifar[layers=2-2-2,widths=8-16-32]"
    assert invoke("flops", "--update-baseline", str(path), custom).exit_code == 0
    assert invoke("flops", "--check", str(path)).exit_code == 0
    data = json.loads(path.read_text())
    data["models"][custom]["stages"]["stage2"]["macs"] += 1
    path.write_text(json.dumps(data))
    result = invoke("flops", "--check", str(path))
    assert result.exit_code == 1 and custom in result.stdout


def test_check_only_named_models(invoke, perturbable, monkeypatch):
    monkeypatch.setitem(zoo_registry._REGISTRY, "my_net", get_spec("resnet8[widths=16-32-72]"))
    assert invoke("flops", "--check", str(perturbable), "resnet8").exit_code == 0


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("{not json", "is not valid JSON"),
    ('{"models": {"resnet8": {}}}', "has format None"),
    ('{"format": 2, "models": {"resnet8": {}}}', "has format 2; this version"),
    ('{"format": 1, "models": {}}', 'has no "models" object'),
    ('{"format": 1, "models": {"resnet18": {"params": 1}}}',
     "needs the keys params, macs and stages"),
    ('{"format": 1, "models": {"resnet35": {"params": 1, "macs": 1, "stages": {}}}}',
     "names models that cannot be built"),
])
def test_bad_baselines(invoke, tmp_path, content, message):
    path = tmp_path / "baseline.json"
    if content is not None:
        path.write_text(content)
    result = invoke("flops", "--check", str(path))
    assert result.exit_code == 1
    assert message in result.stderr and "Traceback" not in result.output


def test_baseline_model_missing(invoke, perturbable):
    result = invoke("flops", "--check", str(perturbable), "resnet50")
    assert result.exit_code == 1 and "has no entry for resnet50" in result.stderr


def test_cli_report_command(invoke, tmp_path, monkeypatch):
    from resnet_probe.jobs import census

    monkeypatch.setattr(census, "list_models", lambda: ["resnet8", "plain8"])
    result = invoke("report", "--out", str(tmp_path))
    assert result.exit_code == 0 and f"report: {tmp_path / 'zoo.html'}" in result.stdout
    zoo = json.loads((tmp_path / "zoo-data" / "zoo.json").read_text())
    assert [row["model"] for row in zoo] == ["resnet8", "plain8"]
