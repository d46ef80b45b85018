"""The architecture side by side: per stage, its blocks, widths, output size and shortcuts.

Output sizes come from a forward pass on the meta device at the given input size, so they are
what the model really produces, including the v1/v1.5 stride placement.
"""

from __future__ import annotations

from typing import Any

import torch

from resnet_probe.zoo import BlockType, ResNetSpec, Stem, ZeroPadShortcut, build_on_meta


def architecture_rows(name: str, input_size: int | None = None) -> list[dict[str, Any]]:
    model = build_on_meta(name).eval()
    spec = model.spec
    size = input_size or spec.default_input_size
    spec.check_input_size(size)
    shapes: dict[str, tuple[int, ...]] = {}
    handles = [module.register_forward_hook(
        lambda m, a, out, key=key: shapes.__setitem__(key, tuple(out.shape)))
        for key, module in (("stem", list(model.stem_modules().values())[-1]),
                            *((f"layer{i + 1}", s) for i, s in enumerate(model.stages)))]
    try:
        with torch.no_grad():
            model(torch.empty(1, spec.in_channels, size, size, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    stem_kind = STEM_DESCRIPTIONS[spec.stem] + (" (no BN-ReLU: pre-activation)"
                                                 if spec.preact else "")
    rows = [{"model": name, "stage": "stem", "blocks": 0, "block": stem_kind,
             "width": spec.stem_width, "out_channels": shapes["stem"][1],
             "output_size": f"{shapes['stem'][2]}x{shapes['stem'][3]}", "shortcuts": "-",
             "params": sum(p.numel() for m in model.stem_modules().values()
                           for p in m.parameters())}]
    for index, stage in enumerate(model.stages):
        shape = shapes[f"layer{index + 1}"]
        rows.append({
            "model": name, "stage": f"stage{index + 1}", "blocks": len(stage),
            "block": _block_text(spec), "width": spec.widths[index], "out_channels": shape[1],
            "output_size": f"{shape[2]}x{shape[3]}", "shortcuts": _shortcuts(stage),
            "params": sum(p.numel() for p in stage.parameters()),
        })
    head = model.head_modules()
    rows.append({"model": name, "stage": "head", "blocks": 0,
                 "block": ("BN-ReLU + " if "final_bn" in head else "") + "avg-pool + fc",
                 "width": spec.num_classes, "out_channels": spec.num_classes,
                 "output_size": "1x1", "shortcuts": "-",
                 "params": sum(p.numel() for m in head.values() for p in m.parameters())})
    return rows


STEM_DESCRIPTIONS = {Stem.IMAGENET: "7x7/2 conv + 3x3/2 max-pool",
                     Stem.DEEP: "three 3x3 convs (first /2) + 3x3/2 max-pool",
                     Stem.CIFAR: "3x3 conv"}


def _block_text(spec: ResNetSpec) -> str:
    text = ("pre-activation " if spec.preact else "") + spec.block.value
    if spec.block is BlockType.BOTTLENECK and (spec.groups, spec.width_per_group) != (1, 64):
        text += f", {spec.groups}x{spec.width_per_group}d grouped 3x3"
    return text


def _shortcuts(stage) -> str:
    if not stage[0].residual:
        return "none (plain)"
    kinds = []
    for index, block in enumerate(stage):
        shortcut = block.downsample
        if shortcut is None:
            continue
        if isinstance(shortcut, ZeroPadShortcut):
            kind = "zero-pad identity (A)"
        elif isinstance(shortcut[0], torch.nn.AvgPool2d):
            kind = "2x2 avg-pool + 1x1 projection (D)"
        else:
            kind = "1x1 projection"
        kinds.append(f"{kind} at block {index}")
    identities = sum(block.downsample is None for block in stage)
    if identities:
        kinds.append(f"identity on {identities} block{'s' if identities > 1 else ''}")
    return "; ".join(kinds)


def torchinfo_summary(name: str, input_size: int | None = None, depth: int = 3):
    """torchinfo's summary of ``name`` at batch 1 (after the memory guard), and the input
    size used."""
    import torchinfo

    from resnet_probe.measure.memory import check_fits
    from resnet_probe.zoo import build_model, get_spec

    spec = get_spec(name)
    size = input_size or spec.default_input_size
    spec.check_input_size(size)
    shape = (1, spec.in_channels, size, size)
    check_fits(build_on_meta(name), shape, torch.device("cpu"), training=False,
               what=f"showing {name}")
    summary = torchinfo.summary(build_model(name), input_size=shape, depth=depth, verbose=0,
                                col_names=("output_size", "num_params", "mult_adds"))
    return summary, size
