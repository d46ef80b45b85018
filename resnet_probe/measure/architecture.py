"""The architecture side by side: per stage, its blocks, widths, output size and shortcuts,
as structured fields (``report.sections`` words them).

Output sizes come from a forward pass on the meta device at the given input size, so they are
what the model really produces, including the v1/v1.5 stride placement.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import torch

from resnet_probe.sources import ModelSource, resolve
from resnet_probe.sources.surgery import block_modules, has_shortcuts
from resnet_probe.zoo import ZeroPadShortcut, build_on_meta


def architecture_rows(model: str | ModelSource, input_size: int | None = None
                      ) -> list[dict[str, Any]]:
    """One row per stage (stem and head too); a foreign model's stages are the ones its
    structure discovery found (blocks between changes of spatial size)."""
    source = resolve(model)
    if source.spec is None:  # not a zoo model
        return _discovered_rows(source, input_size)
    name = source.text
    built = build_on_meta(source.spec).eval()
    spec = built.spec
    size = spec.default_input_size if input_size is None else input_size
    spec.check_input_size(size)
    shapes: dict[str, tuple[int, ...]] = {}
    handles = [module.register_forward_hook(
        lambda m, a, out, key=key: shapes.__setitem__(key, tuple(out.shape)))
        for key, module in (("stem", list(built.stem_modules().values())[-1]),
                            *((f"layer{i + 1}", s) for i, s in enumerate(built.stages)))]
    try:
        with torch.no_grad():
            built(torch.empty(1, spec.in_channels, size, size, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    common = {"model": name, "preact": spec.preact}
    rows = [{**common, "stage": "stem", "blocks": 0, "block": spec.stem.value,
             "width": spec.stem_width, "out_channels": shapes["stem"][1],
             "output_size": f"{shapes['stem'][2]}x{shapes['stem'][3]}",
             "params": sum(p.numel() for m in built.stem_modules().values()
                           for p in m.parameters())}]
    for index, stage in enumerate(built.stages):
        shape = shapes[f"layer{index + 1}"]
        rows.append({
            **common, "stage": f"stage{index + 1}", "blocks": len(stage),
            "block": spec.block.value, "groups": spec.groups,
            "width_per_group": spec.width_per_group, "width": spec.widths[index],
            "out_channels": shape[1], "output_size": f"{shape[2]}x{shape[3]}",
            "shortcut": spec.shortcut, **_shortcut_kinds(stage),
            "params": sum(p.numel() for p in stage.parameters()),
        })
    head = built.head_modules()
    rows.append({**common, "stage": "head", "blocks": 0, "block": "head",
                 "width": spec.num_classes, "out_channels": spec.num_classes,
                 "output_size": "1x1",
                 "params": sum(p.numel() for m in head.values() for p in m.parameters())})
    return rows


def _discovered_rows(source: ModelSource, input_size: int | None) -> list[dict[str, Any]]:
    model = source.build().eval()
    info = getattr(model, "layer_info", {})
    blocks = block_modules(model)
    outputs: dict[str, tuple[int, ...]] = {}
    handles = [module.register_forward_hook(
        lambda m, a, out, key=key: outputs.__setitem__(key, tuple(out.shape)))
        for key, module in blocks.items()]
    try:
        args, kwargs = source.example_inputs(input_size)  # one image, or its --input tensors
        with torch.no_grad():
            model(*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    parameters = dict(model.named_parameters())
    stages: dict[str, dict[str, Any]] = {}
    for key, layer in info.items():
        if not key or layer.stage == "model":
            continue
        row = stages.setdefault(layer.stage, {"model": source.text, "stage": layer.stage,
                                              "blocks": 0, "params": 0})
        if key in blocks:
            row["blocks"] += 1
            shape = outputs.get(key)
            if shape is not None and len(shape) == 4:
                row.update(out_channels=shape[1], output_size=f"{shape[2]}x{shape[3]}")
    for name, parameter in parameters.items():
        owner = info.get(name.rpartition(".")[0])
        if owner is not None and owner.stage in stages:
            stages[owner.stage]["params"] += parameter.numel()
    shortcut = has_shortcuts(model)
    return [{**row, "block": source.kind.value, "shortcut": shortcut if row["blocks"] else None,
             "discovered": True} for row in stages.values()]


class ShortcutKind(StrEnum):
    """How a block's shortcut changes shape (an unchanged shortcut is the identity)."""

    ZERO_PAD = "zero-pad"  # option A
    PROJECTION = "projection"  # 1x1 conv + BN
    POOLED_PROJECTION = "pooled-projection"  # ResNet-D: 2x2 avg-pool, 1x1 conv + BN

    @property
    def column(self) -> str:
        """The architecture row's count of this stage's blocks with this shortcut."""
        return f"{self.name.lower()}_blocks"


def _shortcut_kinds(stage) -> dict[str, int]:
    """How many blocks of a stage change shape on the shortcut, by kind, and how many are
    identity: typed counts, so nobody parses them back out of text."""
    counts = dict.fromkeys((kind.column for kind in ShortcutKind), 0)
    for block in stage:
        shortcut = block.downsample
        if shortcut is None:
            continue
        if isinstance(shortcut, ZeroPadShortcut):
            kind = ShortcutKind.ZERO_PAD
        elif isinstance(shortcut[0], torch.nn.AvgPool2d):
            kind = ShortcutKind.POOLED_PROJECTION
        else:
            kind = ShortcutKind.PROJECTION
        counts[kind.column] += 1
    counts["identity_blocks"] = sum(block.residual and block.downsample is None
                                    for block in stage)
    return counts


def torchinfo_summary(model: str | ModelSource, input_size: int | None = None,
                      depth: int = 3):
    """torchinfo's summary of the model at batch 1 (or its ``--input`` tensors), and the input
    size used. The memory guard runs first, on a meta build: nothing is allocated for a
    model or an input that would not fit."""
    import torchinfo

    from resnet_probe.measure.memory import check_source_fits

    source = resolve(model)
    size = source.default_input_size if input_size is None else input_size
    if source.spec is not None and source.inputs is None:  # a zoo model fed one image
        source.spec.check_input_size(size)
    shape = (1, source.in_channels, size, size)
    check_source_fits(source, shape, torch.device("cpu"), training=False,
                      what=f"showing {source.text}")
    built = source.build(structure=False)
    # No per-layer mult_adds: torchinfo's rule is not the project's count, which `show`
    # prints beside the summary (its total is kept there, labelled as torchinfo's).
    columns = ("output_size", "num_params")
    if source.inputs is not None:  # torchinfo feeds a tuple by position, the rest by keyword
        args, kwargs = source.example_inputs()
        data, kwargs = (list(args), kwargs) if args else (kwargs, {})  # a dict: by keyword
        summary = torchinfo.summary(built, input_data=data, depth=depth, verbose=0,
                                    col_names=columns, **kwargs)
        return summary, None
    summary = torchinfo.summary(built, input_size=shape, depth=depth, verbose=0,
                                col_names=columns)
    return summary, size
