"""Cost regression checks: the committed baseline passes; a changed model fails with a drift
table naming the group, old -> new and the change; any MODEL and any inputs round-trip; a
baseline from someone else is checked value by value."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from resnet_probe.jobs import regression
from resnet_probe.zoo import get_spec, list_models
from resnet_probe.zoo import registry as zoo_registry

COMMITTED = Path(__file__).parents[1] / "reports" / "baselines" / "flops.json"


def test_committed_baseline_covers_the_whole_zoo():
    baseline = json.loads(COMMITTED.read_text())
    assert baseline["format"] == 2 and set(baseline["entries"]) == set(list_models())
    entry = baseline["entries"]["resnet50"]
    assert entry["metrics"] == {"params": 25_557_032, "macs": 4_089_184_256}
    assert entry["grouped_by"] == "stage" and "model" not in entry["groups"]
    assert sum(s["macs"] for s in entry["groups"].values()) == entry["metrics"]["macs"]
    assert sum(s["params"] for s in entry["groups"].values()) == entry["metrics"]["params"]


def test_committed_baseline_passes(zoo_counts):
    result = regression.check_baseline(COMMITTED, counted=zoo_counts)
    assert result.exit_code == 0 and {row["model"] for row in result.rows} == set(zoo_counts)


def test_a_format_1_baseline_is_still_read(tmp_path):
    old = {"format": 1, "torch_version": "2.4.0", "models": {"resnet8": {
        "input_size": 32, "params": 78_042, "macs": 12_248_192,
        "stages": {"stem": {"params": 448, "macs": 442_368}}}}}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    entry = regression.load_baseline(path).entries["resnet8"]
    assert entry["metrics"] == {"params": 78_042, "macs": 12_248_192}


def test_cli_check_command(invoke, tmp_path):
    baseline = tmp_path / "b.json"
    invoke("flops", "--update-baseline", str(baseline), "resnet8", "plain14")
    result = invoke("flops", "--check", str(baseline))
    assert result.exit_code == 0, result.output
    assert "cost check passed: 2 entries" in result.stdout


@pytest.fixture
def perturbable(monkeypatch, tmp_path):
    """A registered name whose spec the test can change after writing the baseline."""
    monkeypatch.setitem(zoo_registry._REGISTRY, "my_net", get_spec("resnet8"))
    path = tmp_path / "baseline.json"
    regression.write_baseline(path, ["my_net", "resnet8"])
    return path


def test_a_changed_model_fails_with_a_drift_table(invoke, perturbable, monkeypatch):
    monkeypatch.setitem(zoo_registry._REGISTRY, "my_net", get_spec("resnet8[widths=16-32-72]"))
    result = invoke("flops", "--check", str(perturbable))
    assert result.exit_code == 1
    assert "cost check FAILED" in result.stderr and "1 of 2 entries" in result.stderr
    for header in ("model", "stage", "metric", "change", "delta_pct"):
        assert header in result.stdout
    # 64 -> 72 output channels in stage 3: conv1 3*3*32*c*64 and conv2 3*3*c*c*64, c = 72
    before = 3 * 3 * 32 * 64 * 64 + 3 * 3 * 64 * 64 * 64
    after = 3 * 3 * 32 * 72 * 64 + 3 * 3 * 72 * 72 * 64
    assert f"{before:,} → {after:,}" in result.stdout
    assert "stage3" in result.stdout and "resnet8 " not in result.stdout
    drift = next(d for d in regression.check_baseline(perturbable).drifts
                 if d.group == "stage3" and d.metric == "macs")
    assert (drift.expected, drift.got) == (before, after)
    assert drift.delta_pct == pytest.approx((after - before) / before * 100)


def test_markdown_summary_says_pass_or_fail_and_a_pass_writes_it_too(invoke, perturbable,
                                                                     monkeypatch, tmp_path):
    """--format markdown gives one block, a PASS or FAIL line first, to stdout and to
    $GITHUB_STEP_SUMMARY, on a pass as on a fail; a fail adds the drift table."""
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    passed = invoke("flops", "--check", str(perturbable), "--format", "markdown")
    assert passed.exit_code == 0
    assert passed.stdout.startswith("**PASS**: cost check passed: 2 entries")
    written = summary.read_text()
    assert written.startswith(f"### resnet-probe cost check: {perturbable}\n\n**PASS**")
    monkeypatch.setitem(zoo_registry._REGISTRY, "my_net", get_spec("resnet8[widths=16-32-72]"))
    failed = invoke("flops", "--check", str(perturbable), "--format", "markdown")
    assert failed.exit_code == 1
    assert failed.stdout.startswith("**FAIL**: cost check FAILED")
    assert "| model | stage | metric | change | delta_pct |" in failed.stdout
    appended = summary.read_text()[len(written):]
    assert appended.count("**FAIL**") == 1 and "| my_net | stage3 | macs |" in appended
    assert "**PASS**" not in appended


def test_tolerances_per_metric_and_increase_only(invoke, perturbable, monkeypatch):
    monkeypatch.setitem(zoo_registry._REGISTRY, "my_net", get_spec("resnet8[num_classes=11]"))
    path = str(perturbable)
    assert invoke("flops", "--check", path).exit_code == 1
    # The head's params rise 650 -> 715 (+10%) and its MACs 640 -> 704 (+10%).
    assert invoke("flops", "--check", path, "--rtol", "20%").exit_code == 0
    assert invoke("flops", "--check", path, "--rtol", "macs=20%").exit_code == 1
    assert invoke("flops", "--check", path, "--rtol", "macs=20%",
                  "--rtol", "params:0.2").exit_code == 0
    monkeypatch.setitem(zoo_registry._REGISTRY, "my_net", get_spec("resnet8[num_classes=9]"))
    assert invoke("flops", "--check", path).exit_code == 1
    cheaper = invoke("flops", "--check", path, "--increase-only")
    assert cheaper.exit_code == 0 and "increases only" in cheaper.stdout
    bad = invoke("flops", "--check", path, "--rtol", "macs=lots")
    assert bad.exit_code == 2 and "'macs=lots'" in bad.stderr and "0.5%" in bad.stderr


def test_update_merges_and_says_so(invoke, perturbable, monkeypatch):
    monkeypatch.setitem(zoo_registry._REGISTRY, "my_net", get_spec("resnet8[widths=16-32-72]"))
    assert invoke("flops", "--check", str(perturbable)).exit_code == 1
    result = invoke("flops", "--update-baseline", str(perturbable))
    assert result.exit_code == 0 and "0 added, 2 replaced, 0 kept" in result.stdout
    assert invoke("flops", "--check", str(perturbable)).exit_code == 0
    added = invoke("flops", "--update-baseline", str(perturbable), "resnet14")
    assert "1 added, 0 replaced, 2 kept" in added.stdout


def test_only_named_entries_are_checked(invoke, perturbable, monkeypatch):
    monkeypatch.setitem(zoo_registry._REGISTRY, "my_net", get_spec("resnet8[widths=16-32-72]"))
    assert invoke("flops", "--check", str(perturbable), "resnet8").exit_code == 0
    missing = invoke("flops", "--check", str(perturbable), "resnet50")
    assert missing.exit_code == 2 and "has no entry for resnet50" in missing.stderr


def _entry(**values) -> str:
    entry = {"model": "resnet8", "metrics": {"params": 78_042}, "groups": {}}
    entry.update(values)
    return json.dumps({"format": 2, "entries": {"resnet8": entry}})


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("{not json", "is not valid JSON"),
    ('{"entries": {}}', "has format None"),
    ('{"format": 3, "entries": {}}', "has format 3; this version"),
    ('{"format": 2, "entries": {}}', 'has no "entries" object'),
    ('{"format": 2, "entries": {"resnet8": []}}', "is list, not an object"),
    (_entry(model=None), '"model" must be the MODEL text'),
    (_entry(metrics={}), '"metrics" must be an object'),
    (_entry(metrics={"params": 10**400}), "params holds 1000"),
    (_entry(metrics={"params": "78042"}), "params holds '78042'"),
    (_entry(metrics={"params": None}), "params holds None"),
    (_entry(metrics={"params": -1}), "params holds -1"),
    (_entry(metrics={"params": True}), "params holds True"),
    (_entry(metrics={"params": 1.5}), "params holds 1.5"),
    ('{"format": 2, "entries": {"resnet8": {"model": "resnet8", "metrics": {"macs": NaN}}}}',
     "is not valid JSON"),
    (_entry(metrics={"gflops": 1}), "unknown metric 'gflops'"),
    (_entry(groups={"stem": {"macs": -5}}), "group 'stem': macs holds -5"),
    (_entry(input_size=0), "'input_size' holds 0"),
    (_entry(inputs=[{"name": "x"}]), "an input must have a name, a shape"),
])
def test_a_bad_baseline_is_named_and_exits_2(invoke, tmp_path, content, message):
    path = tmp_path / "baseline.json"
    if content is not None:
        path.write_text(content)
    result = invoke("flops", "--check", str(path))
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert str(path) in result.stderr


MY_NET = """
import torch
from torch import nn

WIDTH = {width}


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)

    def forward(self, x):
        return torch.relu(x + self.conv2(torch.relu(self.conv1(x))))


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, WIDTH, 3, padding=1)
        self.body = nn.Sequential(Block(WIDTH), Block(WIDTH))
        self.fc = nn.Linear(WIDTH, 10)

    def forward(self, x, mask):
        return self.fc((self.body(self.stem(x)) * mask[:, None]).mean((2, 3)))


class Tokens(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, WIDTH)
        self.l1 = nn.Linear(WIDTH, WIDTH)
        self.l2 = nn.Linear(WIDTH, WIDTH)
        self.head = nn.Linear(WIDTH, 2)

    def forward(self, ids):
        h = self.embed(ids)
        h = h + self.l2(torch.relu(self.l1(h)))
        return self.head(h.mean(1))


def image():
    return nn.Sequential(nn.Conv2d(3, WIDTH, 3, padding=1), Block(WIDTH),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(WIDTH, 10))


def two_inputs():
    return TwoInputs()


def tokens():
    return Tokens()
"""

def test_an_entry_that_cannot_be_rebuilt_is_named_and_the_rest_are_checked(invoke, tmp_path):
    path = tmp_path / "b.json"
    user_file = tmp_path / "my_net.py"
    user_file.write_text(textwrap.dedent(MY_NET.format(width=8)))
    assert invoke("flops", "--update-baseline", str(path), "resnet8").exit_code == 0
    assert invoke("flops", "--update-baseline", str(path), f"{user_file}:image",
                  "--input-size", "16").exit_code == 0
    user_file.unlink()
    result = invoke("flops", "--check", str(path), "--trust-sources")
    assert result.exit_code == 2
    assert "could not be checked" in result.stderr and "no such file" in result.stderr
    assert "INCOMPLETE" in result.stderr and "1 entries match" in result.stderr


ROUND_TRIPS = {
    "a user file": ("{dir}/nets/my_net.py:image", ["--input-size", "16"]),
    "a package module": ("my_pkg.nets:image", ["--input-size", "16"]),
    "two inputs by keyword": ("{dir}/nets/my_net.py:two_inputs",
                              ["--input", "x=1x3x16x16", "--input", "mask=1x16x16"]),
    "two inputs by position": ("{dir}/nets/my_net.py:two_inputs",
                               ["--input", "0=2x3x16x16", "--input", "1=2x16x16:bool"]),
    "token ids": ("{dir}/nets/my_net.py:tokens", ["--input", "ids=2x12:int64[0,100)"]),
}


@pytest.mark.parametrize("case", list(ROUND_TRIPS))
def test_any_model_and_inputs_round_trip(invoke, tmp_path, monkeypatch, case):
    """Update, check (exit 0), change one layer, check (exit 1 naming the group and the
    change), update (merged), check (exit 0); the file path is kept relative to the
    baseline, so the two can move together. A file's code runs from the baseline only with
    --trust-sources, from inside the baseline's folder; a package module never (refused at
    the update, which --check could never rebuild)."""
    for folder in (tmp_path / "nets", tmp_path / "my_pkg"):
        folder.mkdir()
        (folder / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    for target in (tmp_path / "nets" / "my_net.py", tmp_path / "my_pkg" / "nets.py"):
        target.write_text(textwrap.dedent(MY_NET.format(width=8)))
    model, flags = ROUND_TRIPS[case]
    model = model.format(dir=tmp_path)
    path = tmp_path / "costs.json"
    metrics = ["--metrics", "params,macs,backward_flops,activation_bytes"]
    update = invoke("flops", "--update-baseline", str(path), model, *flags, *metrics)
    if case == "a package module":
        assert update.exit_code == 2 and "never imports a module" in update.stderr
        assert not path.exists()
        return
    assert update.exit_code == 0, update.output
    (name,) = json.loads(path.read_text())["entries"]
    assert json.loads(path.read_text())["entries"][name]["model"].startswith(
        "nets/my_net.py:")
    untrusted = invoke("flops", "--check", str(path))
    assert untrusted.exit_code == 2 and "--trust-sources" in untrusted.stderr
    check = ("flops", "--check", str(path), "--trust-sources")
    assert invoke(*check).exit_code == 0
    for target in (tmp_path / "nets" / "my_net.py", tmp_path / "my_pkg" / "nets.py"):
        target.write_text(textwrap.dedent(MY_NET.format(width=12)))
    if case == "a package module":
        monkeypatch.delitem(__import__("sys").modules, "my_pkg.nets")
    drifted = invoke(*check)
    assert drifted.exit_code == 1, drifted.output
    assert "macs" in drifted.stdout and "→" in drifted.stdout
    assert "activation_bytes" in drifted.stdout
    assert any(group in drifted.stdout for group in ("body", "1", "l1", "embed", "stem"))
    again = invoke("flops", "--update-baseline", str(path), "--trust-sources")
    assert again.exit_code == 0 and "0 added, 1 replaced" in again.stdout
    assert invoke(*check).exit_code == 0


def test_a_zoo_entry_is_grouped_by_stage_and_a_foreign_one_by_top_level_module(tmp_path):
    """A count's family is a zoo family or a foreign source's kind (plain: here); only a
    foreign kind is grouped per top-level module."""
    path = tmp_path / "b.json"
    regression.write_baseline(path, ["resnet8", "plain:resnet8"])
    entries = json.loads(path.read_text())["entries"]
    assert entries["resnet8"]["grouped_by"] == "stage"
    assert entries["plain:resnet8"]["grouped_by"] == "top-level module"
    assert set(entries["plain:resnet8"]["groups"]) >= {"conv1", "layer1", "fc"}
    assert regression.check_baseline(path).exit_code == 0


def test_check_rebuilds_from_the_record_not_from_flags(invoke, perturbable):
    result = invoke("flops", "--check", str(perturbable), "--input-size", "64")
    assert result.exit_code == 2 and "rebuilds each entry" in result.stderr


def test_unknown_metrics_are_refused(invoke, tmp_path):
    result = invoke("flops", "--update-baseline", str(tmp_path / "b.json"), "resnet8",
                    "--metrics", "params,gflops")
    assert result.exit_code == 2 and "gflops" in result.stderr and "macs" in result.stderr


def test_a_drift_names_the_library_version_that_changed(tmp_path, perturbable, monkeypatch):
    data = json.loads(perturbable.read_text())
    data["entries"]["my_net"]["versions"]["torch"] = "1.0.0"
    perturbable.write_text(json.dumps(data))
    monkeypatch.setitem(zoo_registry._REGISTRY, "my_net", get_spec("resnet8[widths=16-32-72]"))
    result = regression.check_baseline(perturbable)
    assert any("measured with torch 1.0.0, now" in note for note in result.notes)


def test_cli_report_command(invoke, tmp_path, monkeypatch):
    from resnet_probe.jobs import census

    monkeypatch.setattr(census, "list_models", lambda: ["resnet8", "plain8"])
    result = invoke("report", "--out", str(tmp_path))
    assert result.exit_code == 0 and f"report: {tmp_path / 'zoo.html'}" in result.stdout
    zoo = json.loads((tmp_path / "zoo-data" / "zoo.json").read_text())
    assert [row["model"] for row in zoo] == ["resnet8", "plain8"]
