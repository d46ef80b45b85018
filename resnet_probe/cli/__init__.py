"""The `resnet-probe` command line: parse, call one library function, print.

Commands live by area (zoo_commands, measure_commands, run_commands); shared options, output
and the exit codes live in ``options``.
"""

from __future__ import annotations

import click

from resnet_probe._version import __version__
from resnet_probe.cli import (
    analysis_commands,
    cache_commands,
    measure_commands,
    options,
    run_commands,
    zoo_commands,
)
from resnet_probe.cli.options import user_errors
from resnet_probe.errors import Terminated

__all__ = ["Terminated", "cli", "main", "user_errors"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
    plain_resnext50_32x4d, wide_plain50_2, ...) or a custom layout BASE[field=value,...],
    e.g. 'resnet50[stride_placement=1x1]' or 'cifar[layers=9-9-9,shortcut=false]'.
    """
    options.DEBUG.set(debug)


for command in (zoo_commands.list_command, zoo_commands.show, zoo_commands.flops,
                zoo_commands.bottleneck, measure_commands.latency, measure_commands.gradients,
                run_commands.degradation, run_commands.compare, zoo_commands.report,
                analysis_commands.lesion, analysis_commands.responses,
                analysis_commands.landscape, analysis_commands.paths,
                analysis_commands.hessian, cache_commands.cache):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="resnet-probe")
