"""The probe's batch and its loss.

A zoo or image model is fed one batch of the embedded digits (or N(0, 1) noise) at the probe's
size, with the model's classes and input channels; a model fed ``--input`` tensors (token ids
and a mask, ...) is fed those, drawn at the probe's batch size, with random labels. The loss is
cross-entropy on class logits (N, classes); a model whose output is anything else, such as a
U-Net's per-pixel map, takes the stated surrogate loss ``SURROGATE_LOSS`` instead, so that the
gradient by depth is still measured.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from resnet_probe.data import fit_channels, load_dataset
from resnet_probe.errors import InvalidRequest
from resnet_probe.measure.gradients.config import GradientConfig
from resnet_probe.measure.memory import check_fits
from resnet_probe.sources import ModelSource, resolve

CROSS_ENTROPY = "cross-entropy"
SURROGATE_LOSS = ("surrogate: a fixed random projection of the output, L = <P, f(x)> / N with "
                  "P drawn from N(0, 1) in the shape of one example's output, seeded by the "
                  "seed (the output is not class logits (N, classes))")
Fed = torch.Tensor | tuple[tuple[Any, ...], dict[str, Any]]  # one image batch, or (args, kwargs)


def make_batch(model: nn.Module, config: GradientConfig, seed: int,
               source: ModelSource | None = None, size: int | None = None,
               batch_size: int | None = None) -> tuple[Fed, torch.Tensor, str]:
    source = source or resolve(model)
    batch = batch_size or config.batch_size
    if source.inputs is not None:
        return inputs_batch(model, source, seed, batch)
    size = size or config.input_size or source.default_input_size
    channels, classes = input_channels(model, source), output_classes(model)
    check_fits(model, (batch, channels, size, size), torch.device("cpu"),
               training=True, what=f"the gradient probe of {source.text}")
    generator = torch.Generator().manual_seed(seed)
    if config.input == "random":
        x = torch.randn(batch, channels, size, size, generator=generator)
        y = torch.randint(0, classes, (batch,), generator=generator)
        return x, y, f"random N(0,1) inputs at {size}x{size}, random labels"
    data = load_dataset("digits").resized(size)  # the description says if it was resized
    index = torch.randperm(len(data.train_y), generator=generator)[:batch]
    x = fit_channels(data.train_x[index], channels)
    y = data.train_y[index] % classes  # the ImageNet head's labels: digit k is class k
    return x, y, f"a batch of {batch} from {data.description}"


def inputs_batch(model: nn.Module, source: ModelSource, seed: int, batch: int
                 ) -> tuple[Fed, torch.Tensor, str]:
    """The source's ``--input`` tensors at ``batch`` (floats N(0, 1), integers from their
    range, seeded), and random labels."""
    assert source.inputs is not None
    spec = source.inputs.with_batch(batch)
    check_fits(model, spec.tensors[0].shape, torch.device("cpu"), training=True,
               what=f"the gradient probe of {source.text}", inputs=spec)
    made = {t.name: t.make(batch_size=batch, random=True, seed=seed * 1000 + index)
            for index, t in enumerate(spec.tensors)}
    args = tuple(made[str(i)] for i in range(sum(t.positional for t in spec.tensors)))
    kwargs = {k: v for k, v in made.items() if not k.isdigit()}
    y = torch.randint(0, output_classes(model), (batch,),
                      generator=torch.Generator().manual_seed(seed))
    return (args, kwargs), y, (f"the --input tensors {spec.text()} (floats N(0,1), integers "
                               f"from their range, masks all True), random labels")


def run_forward(model: nn.Module, x: Fed) -> Any:
    if isinstance(x, torch.Tensor):
        return model(x)
    args, kwargs = x
    return model(*args, **kwargs)


def probe_loss(output: Any, y: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, str]:
    """(loss, its kind): cross-entropy on class logits (N, classes); on any other output the
    surrogate ``SURROGATE_LOSS``, so that the gradient by depth is still measured."""
    if isinstance(output, torch.Tensor) and output.dim() == 2 and \
            output.is_floating_point() and output.shape[0] == y.shape[0]:
        return F.cross_entropy(output, y % output.shape[1]), CROSS_ENTROPY
    tensor = _first_float_tensor(output)
    if tensor is None:
        raise InvalidRequest(f"the model's output ({type(output).__name__}) holds no floating "
                             f"tensor, so no loss can be taken from it")
    projection = torch.randn(tensor.shape[1:], generator=torch.Generator().manual_seed(seed))
    return (tensor.float() * projection.to(tensor.device)).sum() / tensor.shape[0], "surrogate"


def _first_float_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output if output.is_floating_point() and output.dim() >= 1 else None
    items = output.values() if isinstance(output, dict) else output \
        if isinstance(output, (tuple, list)) else ()
    return next((t for t in map(_first_float_tensor, items) if t is not None), None)


def input_channels(model: nn.Module, source: ModelSource) -> int:
    spec = getattr(model, "spec", None)
    return spec.in_channels if spec is not None else source.in_channels


def output_classes(model: nn.Module) -> int:
    """The classes a model predicts: the spec's, else the last linear layer's outputs."""
    spec = getattr(model, "spec", None)
    if spec is not None:
        return spec.num_classes
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linear[-1].out_features if linear else 10
