"""The `resnet-probe` command line: parse, call one library function, print.

Commands live by area (zoo_commands, measure_commands, run_commands, analysis_commands,
cache_commands); shared options, output and the exit codes live in ``options``. A command's
module is imported only when that command runs (click's lazy-group pattern), so
`resnet-probe --help` lists every command without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from resnet_probe._version import __version__

# name -> (module, function, the one-line help `resnet-probe --help` shows, and the command's
# own --help too: its one home).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "list": ("zoo_commands", "list_command", "List every model variant with its family, "
             "design, block, depth, shortcut and params."),
    "show": ("zoo_commands", "show", "Print MODEL's architecture: layers, output shapes, "
             "params, and its costs in every convention."),
    "flops": ("zoo_commands", "flops", "Count params, MACs and FLOPs of MODELS in every "
              "convention; check them against a baseline (a cost gate)."),
    "bottleneck": ("zoo_commands", "bottleneck", "Show why bottleneck blocks are cheaper: "
                   "weights and MACs per conv (the paper's Fig. 5)."),
    "latency": ("measure_commands", "latency",
                "Time every layer of MODELS, forward and backward, on CPU or GPU."),
    "gradients": ("measure_commands", "gradients",
                  "Measure gradient norms by depth at initialization, plain vs residual."),
    "degradation": ("run_commands", "degradation", "Train plain and residual twins at each "
                    "depth and report the degradation problem."),
    "compare": ("run_commands", "compare",
                "Compare MODELS in one HTML report; the first model is the baseline."),
    "report": ("zoo_commands", "report", "Write the zoo report and the index page linking "
               "every report in --out."),
    "lesion": ("analysis_commands", "lesion",
               "Delete blocks of trained nets at test time (Veit et al. 2016)."),
    "responses": ("analysis_commands", "responses", "Std of each 3x3 layer's response in "
                  "trained nets (He et al. 2016, Fig. 7)."),
    "landscape": ("analysis_commands", "landscape", "Loss along filter-normalised random "
                  "directions around trained weights (Li et al. 2018)."),
    "paths": ("analysis_commands", "paths",
              "Effective path lengths of trained residual nets (Veit et al. 2016)."),
    "hessian": ("analysis_commands", "hessian",
                "Hessian spectra at the trained weights (Li et al. 2018)."),
    "cache": ("cache_commands", "cache", "The run cache and the cache of results: where they "
              "are, what they hold, clearing them."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use; their short help is listed from
    ``COMMANDS`` without importing them."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, function, short_help = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(f"resnet_probe.cli.{module}"), function)
        assert isinstance(command, click.Command)
        command.short_help = short_help
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, _, short) in COMMANDS.items()])


@click.group(cls=LazyGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="resnet-probe")
@click.option("--debug", is_flag=True, help="On an error, also print its traceback (errors are "
              "otherwise one line naming the problem).")
def cli(debug: bool) -> None:
    """Architecture analysis and profiling for ResNets and their plain twins.

    \b
    Start here:
      resnet-probe compare resnet34 plain34     the full report (costs, latency,
                                                gradients, degradation, bottlenecks)
      resnet-probe list                         every model name
      resnet-probe flops resnet50 --by stage    MACs/FLOPs in every convention

    MODEL is a registered name (resnet18..152, resnet20..1202, tiny resnet8/10/14,
    resnext50_32x4d, resnext101_32x8d/64x4d, wide_resnet50_2/101_2, resnet50c/50d/101d,
    preact_resnet110/164/1001, wrn16_8/28_10/40_4, and each one's plain twin: plain34,
    plain_resnext50_32x4d, wide_plain50_2, ...), a custom layout BASE[field=value,...],
    e.g. 'resnet50[stride_placement=1x1]', or your own model: torchvision:NAME, timm:NAME,
    path/to/file.py:factory, package.module:factory, and plain:MODEL for its plain twin.
    """
    from resnet_probe.cli import options  # the commands' shared machinery (imports torch)

    options.DEBUG.set(debug)


def main() -> None:
    cli(prog_name="resnet-probe")


def __getattr__(name: str) -> Any:
    """``user_errors`` and ``Terminated`` as before, without importing them at startup."""
    if name == "user_errors":
        from resnet_probe.cli.options import user_errors

        return user_errors
    if name == "Terminated":
        from resnet_probe.errors import Terminated

        return Terminated
    raise AttributeError(f"module 'resnet_probe.cli' has no attribute {name!r}")


__all__ = ["COMMANDS", "Terminated", "cli", "main", "user_errors"]
