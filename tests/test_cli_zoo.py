"""CLI basics: --version, list, show, and a clear error for every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from resnet_probe._version import __version__


def test_version(invoke):
    result = invoke("--version")
    assert result.exit_code == 0 and __version__ in result.output


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "resnet_probe", "--version"],
                         capture_output=True, text=True, check=True)
    assert __version__ in out.stdout


def test_list_json_has_names_and_params(invoke, published):
    result = invoke("list", "--format", "json")
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    for name, params in published["imagenet_224"]["params"].items():
        assert rows[name]["params"] == params
    assert rows["plain56"]["shortcut"] is False and rows["resnet50"]["block"] == "bottleneck"


def test_list_table_and_csv(invoke):
    table = invoke("list", "--include", "resnet5*")
    assert "resnet50" in table.stdout and "resnet56" in table.stdout
    assert "plain" not in table.stdout
    csv = invoke("list", "--format", "csv", "--include", "plain34")
    assert csv.stdout.splitlines()[0].startswith("name,family,design,block,depth,shortcut")
    assert "21623848" in csv.stdout


def test_show_prints_torchinfo_summary(invoke):
    result = invoke("show", "resnet20")
    assert result.exit_code == 0
    assert "Total params: 269,722" in result.stdout


def test_show_prints_the_projects_counts_and_labels_torchinfos_total(invoke):
    """One number per fact: show's MACs are resnet-probe's; torchinfo's total stays, labelled
    as torchinfo's, with the difference and its cause. On resnet50 that difference is every
    BN weight and bias plus the fc bias (torchinfo counts those, convention (a) does not)."""
    from torch import nn

    from resnet_probe.zoo import build_model

    result = invoke("show", "resnet50", "--depth", "1")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert not any(line.startswith("Total mult-adds") for line in lines)
    assert "Mult-Adds" not in result.stdout  # no per-layer column of torchinfo's rule
    assert "  macs                   4.089 G (4,089,184,256)" in result.stdout
    assert "  macs_v1                3.858 G (3,857,973,248)" in result.stdout
    model = build_model("resnet50")
    extra = sum(p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d)
                for p in m.parameters()) + model.fc.bias.numel()
    torchinfo = next(line for line in lines if line.startswith("torchinfo's Total mult-adds"))
    assert f"({4_089_184_256 + extra:,}), {extra / 1e3:.4g} K ({extra:,}) more than macs" \
        in torchinfo
    assert "torchinfo multiplies each module's weights and biases by its output's batch" \
        in torchinfo


def test_show_on_a_transformer_says_why_torchinfo_counts_fewer(invoke):
    model = str(Path(__file__).parent / "user_models" / "tiny_transformer.py") + ":build"
    result = invoke("show", model, "--input", "input_ids=2x16:int64[0,1000)",
                    "--input", "attention_mask=2x16:bool")
    assert result.exit_code == 0, result.output
    torchinfo = next(line for line in result.stdout.splitlines()
                     if line.startswith("torchinfo's Total mult-adds"))
    assert "fewer than macs" in torchinfo and "once per sample" in torchinfo
    assert "(attention) count nothing" in torchinfo
    assert "macs_v1" not in result.stdout  # a stride placement is the zoo's


def test_help_everywhere_has_an_example(invoke):
    for command in ("list", "show", "flops", "bottleneck", "latency", "gradients",
                    "degradation", "compare", "report"):
        result = invoke(command, "--help")
        assert result.exit_code == 0
        assert "Example" in result.stdout, command


def test_unknown_model_exits_2_with_suggestion(invoke):
    result = invoke("show", "resnet35")
    assert result.exit_code == 2
    assert "'resnet35'" in result.stderr and "did you mean resnet34" in result.stderr
    assert "Traceback" not in result.output


def test_impossible_spec_shown_without_traceback(invoke):
    result = invoke("show", "cifar[layers=0-1-1]")
    assert result.exit_code == 2
    assert "every stage needs at least 1 block" in result.stderr
    assert "Traceback" not in result.output


def test_negative_stage_count(invoke):
    result = invoke("flops", "cifar[layers=3--1-3]")
    assert result.exit_code == 2 and "layers=" in result.stderr


def test_in_channels_zero(invoke):
    result = invoke("flops", "resnet18[in_channels=0]")
    assert result.exit_code == 2 and "in_channels=0" in result.stderr


def test_input_too_small_for_imagenet_stem(invoke):
    result = invoke("show", "resnet34", "--input-size", "8")
    assert result.exit_code == 2  # a bad --input-size is a bad command line
    assert "8x8 is smaller than the network's total stride 32" in result.stderr
    assert "Traceback" not in result.output



def test_help_lists_every_command_without_importing_torch():
    """`resnet-probe --help` is instant: it imports no command module, so no torch, pandas or
    scipy (their import is most of a second)."""
    import subprocess
    import sys

    code = ("import sys\nfrom resnet_probe.cli import cli\n"
            "try:\n    cli(['--help'], prog_name='resnet-probe')\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in ('torch', 'pandas', 'scipy', 'numpy') if m in sys.modules)\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    from resnet_probe.cli import COMMANDS

    assert "HEAVY []" in out
    for name in COMMANDS:
        assert f"\n  {name} " in out


def test_every_listed_command_exists_with_its_listed_help():
    import click

    from resnet_probe.cli import COMMANDS, cli

    ctx = click.Context(cli)
    for name, (_, _, short_help) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name
        assert command.get_short_help_str(limit=200) == short_help
    assert cli.get_command(ctx, "no-such-command") is None


@pytest.mark.parametrize("command", [("flops", "resnet20", "plain:resnet20"),
                                     ("show", "resnet20")])
def test_each_model_is_resolved_once(invoke, monkeypatch, command):
    """The click type leaves a MODEL as text; the command resolves it once, with every
    option that shapes it (plain:MODEL resolves its inner MODEL as part of that one)."""
    from resnet_probe.sources import resolving

    calls: list[str] = []
    original = resolving._resolve

    def counted(model, *args, **kwargs):
        calls.append(str(model))
        return original(model, *args, **kwargs)

    monkeypatch.setattr(resolving, "_resolve", counted)
    assert invoke(*command).exit_code == 0
    expected = [m for m in command[1:] for m in ([m, m.removeprefix("plain:")]
                                                if m.startswith("plain:") else [m])]
    assert sorted(calls) == sorted(expected)
