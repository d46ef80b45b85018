"""resnet-probe's counting conventions beside its peers' totals, on a few small models, with
the cause of every difference.

For each model, resnet-probe's columns (params, macs, macs_with_elementwise, flops,
macs_fvcore_default, backward_flops) are printed beside the totals of torch's
FlopCounterMode, torchinfo (mult-adds and params), fvcore (FlopCountAnalysis, default
handles), ptflops (both backends) and calflops (FLOPs, MACs, params). Each peer number is
compared with the convention that states the same thing; every pair that differs must have a
cause written below (``CAUSES``), and a cause with no difference left is reported too, so the
table cannot drift from the code. The result goes to docs/results/peers.json (machine,
versions and date included), which feeds the docs' conventions page.

Every tool gets a freshly built model (the same seed), so one that changes its model (a
forward in training mode updates BN's running statistics; ptflops and calflops call
``model.eval()``) cannot change another's count.

Setup: any environment with this package's dependencies, plus the peers. calflops imports
transformers and accelerate at import time:

    python3 -m venv /tmp/peers-venv
    /tmp/peers-venv/bin/pip install torch==2.13.0 fvcore torchinfo ptflops calflops \\
        transformers accelerate
    PYTHONPATH=. /tmp/peers-venv/bin/python benchmarks/peers.py [--out docs/results/peers.json]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import inspect
import io
import json
import os
import platform
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.utils.prune
from torch import nn

OUT = Path(__file__).resolve().parent.parent / "docs" / "results" / "peers.json"


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    build: Callable[[], nn.Module]
    shape: tuple[int, ...]
    training: bool = False  # the mode the model is handed over in


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def _conv_bn_relu() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def _resnet18() -> nn.Module:
    from resnet_probe.zoo import build_model

    return build_model("resnet18")


def _upsample() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1),
                         nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                         nn.Conv2d(8, 4, 3, padding=1))


def _pruned() -> nn.Module:
    model = _conv_bn_relu()
    torch.nn.utils.prune.l1_unstructured(model[0], "weight", amount=0.5)
    return model


CASES = [
    Case("tiny_mlp", "Linear 784->128, ReLU, Linear 128->10 (biases)", _mlp, (1, 784)),
    Case("conv_bn_relu", "Conv 3->16 3x3, BN, ReLU, adaptive avg pool, Linear 16->10",
         _conv_bn_relu, (1, 3, 32, 32)),
    Case("resnet18", "the zoo's resnet18 (torchvision's) at 224", _resnet18, (1, 3, 224, 224)),
    Case("bilinear_upsample", "Conv 3->8, bilinear upsample x2, Conv 8->4 (biases)", _upsample,
         (1, 3, 32, 32)),
    Case("training_mode_bn", "conv_bn_relu handed over in training mode, batch 2",
         _conv_bn_relu, (2, 3, 32, 32), training=True),
    Case("pruned_conv", "conv_bn_relu with half the conv's weights pruned "
         "(torch.nn.utils.prune.l1_unstructured)", _pruned, (1, 3, 32, 32)),
]


def _fresh(case: Case) -> nn.Module:
    torch.manual_seed(0)
    return case.build().train(case.training)


def _quiet() -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


def ours(case: Case) -> dict[str, Any]:
    from resnet_probe.measure.costs import count_costs

    summary = count_costs(_fresh(case), example=torch.zeros(case.shape)).summary
    return {key: summary[key] for key in ("params", "macs", "macs_with_elementwise", "flops",
                                          "macs_fvcore_default", "backward_flops")}


def peers(case: Case) -> dict[str, int | None]:
    """Each peer's totals on a fresh model, as the peer reports them."""
    x = torch.zeros(case.shape)
    found: dict[str, int | None] = {}
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        _fresh(case)(x)
    found["FlopCounterMode.flops"] = counter.get_total_flops()

    from torchinfo import summary

    with _quiet():
        statistics = summary(_fresh(case), input_data=x, verbose=0)
    found["torchinfo.mult_adds"] = int(statistics.total_mult_adds)
    found["torchinfo.params"] = int(statistics.total_params)

    from fvcore.nn import FlopCountAnalysis

    with _quiet():
        analysis = FlopCountAnalysis(_fresh(case), x)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        found["fvcore.flops"] = int(analysis.total())

    from ptflops import get_model_complexity_info

    for backend in ("pytorch", "aten"):
        model = _fresh(case)
        # ptflops feeds keyword inputs only where the batch is not 1 (it adds a batch of 1)
        keyword = next(iter(inspect.signature(model.forward).parameters))
        with _quiet():
            macs, params = get_model_complexity_info(
                model, tuple(case.shape[1:]), as_strings=False,
                print_per_layer_stat=False, backend=backend,
                input_constructor=lambda _, keyword=keyword: {keyword: torch.zeros(case.shape)})
        found[f"ptflops_{backend}.macs"] = macs
        found[f"ptflops_{backend}.params"] = params

    from calflops import calculate_flops

    with _quiet():
        flops, macs, params = calculate_flops(_fresh(case), input_shape=case.shape,
                                              print_results=False, print_detailed=False,
                                              output_as_string=False)
    found["calflops.flops"], found["calflops.macs"], found["calflops.params"] = \
        flops, macs, params
    return found


# Each peer number beside the convention of ours that states the same thing.
PAIRS = {
    "FlopCounterMode.flops": "flops",
    "torchinfo.mult_adds": "macs",
    "torchinfo.params": "params",
    "fvcore.flops": "macs_fvcore_default",
    "ptflops_pytorch.macs": "macs_with_elementwise",
    "ptflops_pytorch.params": "params",
    "ptflops_aten.macs": "macs",
    "ptflops_aten.params": "params",
    "calflops.flops": "flops",
    "calflops.macs": "macs",
    "calflops.params": "params",
}

# Why a peer's number differs from ours: one paragraph per (peer number, model), from the
# peer's own source (torchinfo/layer_info.py, fvcore/nn/jit_handles.py, ptflops'
# pytorch_ops.py and pytorch_engine.py, calflops' pytorch_ops.py and flops_counter.py).
_TORCHINFO_BIASES = (
    "torchinfo counts a layer's mult-adds from its parameters (torchinfo/layer_info.py, "
    "calculate_macs): every parameter named weight or bias times the output positions for a "
    "conv, times the batch for anything else. So it adds each bias once per output element "
    "(a Linear's out_features per row, a conv's out_channels per position), and a batch "
    "norm's weight and bias (2 x channels per image) as if they were MACs; {extra}ours counts "
    "only the multiply-accumulates of conv and linear layers (convention (a)).")
_PTFLOPS_PYTORCH = (
    "ptflops' pytorch backend adds a module hook's count (conv and linear with their bias "
    "adds, batch norm 2 per element with affine parameters, ReLU 1 per element, pooling 1 per "
    "input element, upsampling 1 per output element) and, with count_functional on (its "
    "default), a count for every patched torch.nn.functional call. nn.ReLU, "
    "nn.AdaptiveAvgPool2d and nn.Upsample call F.relu, F.adaptive_avg_pool2d and "
    "F.interpolate inside their module, so that work is counted twice. {extra}Ours "
    "(convention (b)) counts each aten operator once: batch norm 1 per element (a fused "
    "scale-and-shift), ReLU 1, adaptive average pool 1 per input element, bilinear "
    "upsampling 4 per output element, and no bias adds.")
_PTFLOPS_ATEN_BIASES = (
    "ptflops' aten backend counts aten.convolution and aten.addmm/mm only, like convention "
    "(a), but adds each bias once per output element (addmm's input matrix, a conv's bias); "
    "ours leaves biases out.")
_CALFLOPS_ELEMENTWISE = (
    "calflops' FLOPs are 2 per MAC of conv and linear layers plus its per-call counts of the "
    "functional calls it patches (calflops/pytorch_ops.py): a conv's bias 1 per output "
    "element, batch norm 2 per element with affine parameters at inference, ReLU 1 per "
    "element, pooling 1 per input element{extra}. Ours (convention (c), FlopCounterMode's) "
    "is 2 x the conv and linear MACs only; the elementwise work is in macs_with_elementwise.")

CAUSES: dict[tuple[str, str], str] = {
    ("torchinfo.mult_adds", "tiny_mlp"): _TORCHINFO_BIASES.format(extra=""),
    ("torchinfo.mult_adds", "conv_bn_relu"): _TORCHINFO_BIASES.format(extra=""),
    ("torchinfo.mult_adds", "resnet18"): _TORCHINFO_BIASES.format(extra=""),
    ("torchinfo.mult_adds", "bilinear_upsample"): _TORCHINFO_BIASES.format(
        extra="the upsample has no parameters, so torchinfo gives it nothing; "),
    ("torchinfo.mult_adds", "training_mode_bn"): _TORCHINFO_BIASES.format(
        extra="at batch 2 a batch norm's 2 x channels count twice; "),
    ("torchinfo.mult_adds", "pruned_conv"): _TORCHINFO_BIASES.format(
        extra="for a pruned weight it counts only the 1s of its mask (get_param_count), so "
              "the pruned conv's MACs are halved as if the zeros were skipped, which the "
              "dense kernel does not do; ") ,
    ("torchinfo.params", "pruned_conv"): (
        "torchinfo counts a pruned weight as the number of 1s in its mask (get_param_count: a "
        "parameter ending in _orig with a _mask buffer), 216 of the conv's 432. Ours counts "
        "the parameters the module holds (weight_orig, 432 values, all stored and trained); "
        "the mask is a buffer. Both are right for their question: ours is what the model "
        "stores, torchinfo's what is non-zero."),
    ("fvcore.flops", "training_mode_bn"): (
        "fvcore traces the model in the mode it is handed (training here), and its batch-norm "
        "handle counts a batch norm in training, which computes batch statistics, as 5 per "
        "element (fvcore/nn/jit_handles.py: batchnorm_flop_jit -> norm_flop_counter). "
        "resnet-probe counts every model at inference, BN in eval mode with running "
        "statistics: fvcore's rule for that is 2 per element, which macs_fvcore_default "
        "applies. Counted in eval mode, fvcore gives our number."),
    ("ptflops_pytorch.macs", "tiny_mlp"): _PTFLOPS_PYTORCH.format(extra=""),
    ("ptflops_pytorch.macs", "conv_bn_relu"): _PTFLOPS_PYTORCH.format(extra=""),
    ("ptflops_pytorch.macs", "resnet18"): _PTFLOPS_PYTORCH.format(
        extra="Max pooling is counted twice at 1 per input element (the nn.MaxPool2d hook "
              "and the F.max_pool2d patch), which here equals ours (3x3-1 = 8 comparisons "
              "per output element, a quarter as many outputs); the residual adds (out += "
              "identity) are not counted at all, where ours counts 1 per element. "),
    ("ptflops_pytorch.macs", "bilinear_upsample"): _PTFLOPS_PYTORCH.format(
        extra="Here the bilinear upsample is counted twice, 1 per output element each time "
              "(the nn.Upsample hook and the F.interpolate patch), where ours counts 4 per "
              "output element (four taps) once. "),
    ("ptflops_pytorch.macs", "training_mode_bn"): _PTFLOPS_PYTORCH.format(
        extra="ptflops puts the model in eval mode first (and leaves it there), so its "
              "batch norm counts as at inference, as ours does. "),
    ("ptflops_pytorch.macs", "pruned_conv"): _PTFLOPS_PYTORCH.format(
        extra="The pruned conv also multiplies its weight by the mask in a forward pre-hook "
              "(432 multiplies): ours counts that aten.mul in (b), ptflops' hooks never see "
              "it. "),
    ("ptflops_aten.macs", "tiny_mlp"): _PTFLOPS_ATEN_BIASES,
    ("ptflops_aten.macs", "conv_bn_relu"): _PTFLOPS_ATEN_BIASES,
    ("ptflops_aten.macs", "resnet18"): _PTFLOPS_ATEN_BIASES,
    ("ptflops_aten.macs", "bilinear_upsample"): _PTFLOPS_ATEN_BIASES,
    ("ptflops_aten.macs", "training_mode_bn"): _PTFLOPS_ATEN_BIASES,
    ("ptflops_aten.macs", "pruned_conv"): _PTFLOPS_ATEN_BIASES,
    ("calflops.flops", "tiny_mlp"): _CALFLOPS_ELEMENTWISE.format(extra=""),
    ("calflops.flops", "conv_bn_relu"): _CALFLOPS_ELEMENTWISE.format(extra=""),
    ("calflops.flops", "resnet18"): _CALFLOPS_ELEMENTWISE.format(
        extra=", max pooling 1 per input element, and nothing for the residual adds (out += "
              "identity: calflops patches torch.add and Tensor.add, not the += operator)"),
    ("calflops.flops", "bilinear_upsample"): _CALFLOPS_ELEMENTWISE.format(
        extra="; its upsample formula means to count the output elements but multiplies by "
              "the scale factor in a statement whose result it drops, so an upsample counts "
              "1 per input element"),
    ("calflops.flops", "training_mode_bn"): _CALFLOPS_ELEMENTWISE.format(
        extra=" (calflops puts the model in eval mode first, so BN counts as at inference)"),
    ("calflops.flops", "pruned_conv"): _CALFLOPS_ELEMENTWISE.format(extra=""),
}


# Each difference (peer minus ours) accounted for term by term, by hand; the run checks that
# the terms add up to the difference it measured.
_MAP = 16 * 32 * 32  # conv_bn_relu's feature map, per image: what its BN, ReLU and pool read
TERMS: dict[tuple[str, str], list[tuple[str, int]]] = {
    ("torchinfo.mult_adds", "tiny_mlp"): [("Linear biases, 128 + 10", 138)],
    ("torchinfo.mult_adds", "conv_bn_relu"): [("BN weight and bias, 2 x 16", 32),
                                              ("Linear bias", 10)],
    ("torchinfo.mult_adds", "resnet18"): [("BN weights and biases, 2 x 4,800 channels", 9_600),
                                          ("fc bias", 1_000)],
    ("torchinfo.mult_adds", "bilinear_upsample"): [
        ("conv1 bias, 8 x 32 x 32", 8_192), ("conv2 bias, 4 x 64 x 64", 16_384)],
    ("torchinfo.mult_adds", "training_mode_bn"): [("BN weight and bias, 2 x 16 x batch 2", 64),
                                                  ("Linear bias x batch 2", 20)],
    ("torchinfo.mult_adds", "pruned_conv"): [
        ("pruned weights taken as skipped, 216 x 32 x 32", -221_184),
        ("BN weight and bias, 2 x 16", 32), ("Linear bias", 10)],
    ("torchinfo.params", "pruned_conv"): [("the mask's zeros, 216 of 432", -216)],
    ("fvcore.flops", "training_mode_bn"): [
        ("BN with batch statistics, 5 - 2 per element, 2 x 16 x 32 x 32", 3 * 2 * _MAP)],
    ("ptflops_pytorch.macs", "tiny_mlp"): [("Linear biases", 138),
                                           ("ReLU again (F.relu), 128", 128)],
    ("ptflops_pytorch.macs", "conv_bn_relu"): [
        ("BN at 2 per element, not 1", _MAP), ("ReLU again (F.relu)", _MAP),
        ("adaptive avg pool again (F.adaptive_avg_pool2d)", _MAP), ("Linear bias", 10)],
    ("ptflops_pytorch.macs", "resnet18"): [
        ("BN at 2 per element, not 1", 2_483_712), ("ReLU again (F.relu)", 2_308_096),
        ("adaptive avg pool again", 25_088), ("residual adds not counted", -752_640),
        ("fc bias", 1_000),
        ("max pool twice at 1 per input (2 x 802,816) against ours 8 x 200,704", 0)],
    ("ptflops_pytorch.macs", "bilinear_upsample"): [
        ("conv biases, 8 x 32 x 32 + 4 x 64 x 64", 24_576),
        ("upsample 2 x 1 per output, against ours 4 per output, of 8 x 64 x 64",
         -2 * 8 * 64 * 64)],
    ("ptflops_pytorch.macs", "training_mode_bn"): [
        ("BN at 2 per element, not 1, batch 2", 2 * _MAP), ("ReLU again (F.relu)", 2 * _MAP),
        ("adaptive avg pool again", 2 * _MAP), ("Linear bias x batch 2", 20)],
    ("ptflops_pytorch.macs", "pruned_conv"): [
        ("BN at 2 per element, not 1", _MAP), ("ReLU again (F.relu)", _MAP),
        ("adaptive avg pool again", _MAP), ("Linear bias", 10),
        ("the mask multiply ours counts, 16 x 3 x 3 x 3", -432)],
    ("ptflops_aten.macs", "tiny_mlp"): [("Linear biases", 138)],
    ("ptflops_aten.macs", "conv_bn_relu"): [("Linear bias", 10)],
    ("ptflops_aten.macs", "resnet18"): [("fc bias", 1_000)],
    ("ptflops_aten.macs", "bilinear_upsample"): [("conv biases", 24_576)],
    ("ptflops_aten.macs", "training_mode_bn"): [("Linear bias x batch 2", 20)],
    ("ptflops_aten.macs", "pruned_conv"): [("Linear bias", 10)],
    ("calflops.flops", "tiny_mlp"): [("ReLU", 128)],
    ("calflops.flops", "conv_bn_relu"): [("BN, 2 per element", 2 * _MAP), ("ReLU", _MAP),
                                         ("adaptive avg pool, 1 per input element", _MAP)],
    ("calflops.flops", "resnet18"): [("BN, 2 per element", 4_967_424), ("ReLU", 2_308_096),
                                     ("max pool, 1 per input element", 802_816),
                                     ("adaptive avg pool", 25_088)],
    ("calflops.flops", "bilinear_upsample"): [
        ("conv biases", 24_576), ("upsample, 1 per input element, 8 x 32 x 32", 8_192)],
    ("calflops.flops", "training_mode_bn"): [
        ("BN, 2 per element, batch 2", 4 * _MAP), ("ReLU", 2 * _MAP), ("pool", 2 * _MAP)],
    ("calflops.flops", "pruned_conv"): [("BN, 2 per element", 2 * _MAP), ("ReLU", _MAP),
                                        ("adaptive avg pool", _MAP)],
}


def compare(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Every pair that differs, with its cause and its terms; and the problems: a difference
    with no cause written, terms that do not add up to it, or a cause whose difference is
    gone."""
    differences, problems = [], []
    for row in rows:
        for peer, column in PAIRS.items():
            theirs, mine = row["peers"][peer], row["ours"][column]
            cause = CAUSES.get((peer, row["model"]))
            if theirs == mine:
                if cause is not None:
                    problems.append(f"{peer} on {row['model']}: a cause is written but the "
                                    f"numbers agree ({mine:,})")
                continue
            terms = TERMS.get((peer, row["model"]), [])
            difference = None if theirs is None or mine is None else theirs - mine
            if cause is None:
                problems.append(f"{peer} on {row['model']}: {theirs} against our {column} "
                                f"{mine}, with no cause written")
            if difference is not None and sum(value for _, value in terms) != difference:
                problems.append(f"{peer} on {row['model']}: the terms add up to "
                                f"{sum(value for _, value in terms):,}, the difference is "
                                f"{difference:,}")
            differences.append({"model": row["model"], "peer": peer, "ours_column": column,
                                "ours": mine, "peer_value": theirs, "difference": difference,
                                "terms": [{"what": what, "value": value}
                                          for what, value in terms],
                                "cause": cause})
    return differences, problems


def _number(value: int | None) -> str:
    return "failed" if value is None else f"{value:,}"


def _versions() -> dict[str, str]:
    found = {}
    for package in ("torch", "fvcore", "torchinfo", "ptflops", "calflops", "resnet-probe"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    options = parser.parse_args()
    torch.set_num_threads(1)

    rows = []
    for case in CASES:
        rows.append({"model": case.name, "description": case.description,
                     "input": "x".join(map(str, case.shape)),
                     "mode": "training" if case.training else "eval",
                     "ours": ours(case), "peers": peers(case)})
        mine, theirs = rows[-1]["ours"], rows[-1]["peers"]
        print(f"\n{case.name} ({rows[-1]['input']}, {rows[-1]['mode']})")
        for peer, column in PAIRS.items():
            mark = "=" if theirs[peer] == mine[column] else "≠"
            print(f"  {peer:<24} {_number(theirs[peer]):>15}  {mark}  {column:<22} "
                  f"{_number(mine[column]):>15}")
    differences, problems = compare(rows)
    record = {
        "generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version()},
        "versions": _versions(),
        "command": "python benchmarks/peers.py",
        "pairs": PAIRS,
        "models": rows,
        "differences": differences,
    }
    from resnet_probe.results import atomic_write_text

    options.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(options.out, json.dumps(record, indent=2) + "\n")
    print(f"\n{len(differences)} differences, each with its cause and terms, written to "
          f"{options.out}")
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
