"""Estimate a pass's peak memory before allocating it, and refuse what cannot fit.

Estimation semantics. One forward on the meta device (shapes only, no storage) records every
leaf module's output. The estimate is the parameters (three copies when training: weights,
gradients, momentum), the inputs, and the sum of the leaf outputs, which is what autograd keeps
for a backward pass (an upper bound for a forward-only pass, which frees them as it goes). It
ignores allocator slack and workspace, so it is a lower bound on what the OS will be asked for:
the guard refuses at ``FRACTION_OF_AVAILABLE`` of the available memory, not at all of it.

Order. ``check_source_fits`` runs before anything real exists: a zoo model is built on the meta
device from its spec, a foreign one by its constructor on the meta device (only a constructor
that cannot run there is built for real first, the one way to learn its size), and the inputs
are the real ones, every ``--input`` tensor at its own batch. A forward that cannot run on meta
tensors is estimated from its parameters and inputs alone (``activations_known`` False).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from resnet_probe.errors import UserCodeError
from resnet_probe.measure.hooks import is_leaf

if TYPE_CHECKING:
    from resnet_probe.sources import InputSpec, ModelSource

FRACTION_OF_AVAILABLE = 0.8


class MemoryGuardError(ValueError):
    """The requested pass would not fit; the message names the estimate and a batch that fits."""


@dataclass(frozen=True)
class MemoryEstimate:
    parameter_bytes: int
    activation_bytes_per_sample: int  # the inputs and the leaf outputs, per sample
    batch_size: int
    activations_known: bool = True  # False: the forward did not run on meta tensors

    @property
    def total_bytes(self) -> int:
        return self.parameter_bytes + self.activation_bytes_per_sample * self.batch_size

    def largest_batch_within(self, limit_bytes: float) -> int:
        room = limit_bytes - self.parameter_bytes
        return max(0, math.floor(room / max(1, self.activation_bytes_per_sample)))


def estimate_peak_bytes(model: nn.Module, input_shape: tuple[int, ...], training: bool,
                        element_bytes: int = 4, inputs: InputSpec | None = None
                        ) -> MemoryEstimate:
    """``model`` may live anywhere; a meta copy of its structure is what runs, on one image
    of ``input_shape`` per sample or, given ``inputs``, on those tensors at their own shapes
    (the first tensor's first dimension is the batch)."""
    from resnet_probe.sources import user_code

    meta_model = _meta_copy(model)
    if inputs is not None:
        args, kwargs = inputs.example(device="meta")
        batch = inputs.batch_size
        # the inputs at their own dtypes (int64 ids are 8 bytes, a bool mask 1)
        input_bytes = sum(t.numel() * t.element_size() for t in (*args, *kwargs.values()))
    else:
        batch = input_shape[0]
        args, kwargs = (torch.empty((1, *input_shape[1:]), device="meta"),), {}
        input_bytes = batch * math.prod(input_shape[1:]) * element_bytes
    outputs: list[int] = []
    leaves = [m for m in meta_model.modules() if is_leaf(m)]
    handles = [leaf.register_forward_hook(
        lambda module, args, out: outputs.append(
            sum(t.numel() for t in torch.utils._pytree.tree_flatten(out)[0]
                if isinstance(t, torch.Tensor)))) for leaf in leaves]
    known = True
    try:
        with torch.no_grad(), user_code(getattr(model, "name", type(model).__name__),
                                        "estimating its memory on meta tensors"):
            meta_model.eval()(*args, **kwargs)
    except UserCodeError:  # a forward that needs real tensors: parameters and inputs only
        known, outputs = False, []
    finally:
        for handle in handles:
            handle.remove()
    # One image per sample: its leaf outputs scale with the batch; given tensors ran whole.
    activations = sum(outputs) * element_bytes * (batch if inputs is None else 1)
    parameters = sum(p.numel() for p in model.parameters()) * element_bytes
    return MemoryEstimate(parameter_bytes=parameters * (3 if training else 1),
                          activation_bytes_per_sample=math.ceil(
                              (input_bytes + activations) / max(1, batch)),
                          batch_size=batch, activations_known=known)


def available_bytes(device: torch.device) -> tuple[int, str]:
    """Free memory on ``device`` and where the number comes from."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free, "torch.cuda.mem_get_info"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"
    except OSError:
        pass
    try:
        import psutil

        return psutil.virtual_memory().available, "psutil"
    except ImportError:
        return 0, "unknown"


def check_fits(model: nn.Module, input_shape: tuple[int, ...], device: torch.device,
               training: bool, what: str, element_bytes: int = 4,
               inputs: InputSpec | None = None, batch_option: str = "a batch size"
               ) -> MemoryEstimate:
    """Raise MemoryGuardError when the estimate exceeds the available memory's fraction.
    ``model`` may be a meta build: nothing of its size is allocated here. ``batch_option``
    names what the hint's number sets (e.g. "--shatter-points")."""
    estimate = estimate_peak_bytes(model, input_shape, training, element_bytes, inputs)
    available, source = available_bytes(device)
    if not available:
        return estimate  # nothing to compare with: let the allocator decide
    limit = available * FRACTION_OF_AVAILABLE
    if estimate.total_bytes > limit:
        fits = estimate.largest_batch_within(limit)
        if estimate.parameter_bytes > limit:
            hint = (f"its parameters alone need {_gib(estimate.parameter_bytes)}"
                    f"{' with their gradients and momentum' if training else ''}, so no "
                    f"batch or input size fits; use a smaller model")
        elif fits >= 1:
            hint = f"{batch_option} of at most {fits} would fit"
        else:
            hint = "no batch size fits at this input size; use a smaller input size"
        described = inputs.text() if inputs is not None else \
            f"input {'x'.join(map(str, input_shape[1:]))}"
        raise MemoryGuardError(
            f"{what} needs about {_gib(estimate.total_bytes)} (batch {estimate.batch_size}, "
            f"{described}), more than "
            f"{FRACTION_OF_AVAILABLE:.0%} of the {_gib(available)} available on "
            f"{device.type} ({source}); {hint}")
    return estimate


def check_source_fits(source: ModelSource, input_shape: tuple[int, ...], device: torch.device,
                      training: bool, what: str, element_bytes: int = 4,
                      num_classes: int | None = None, in_channels: int | None = None,
                      batch_option: str = "a batch size") -> MemoryEstimate:
    """``check_fits`` before anything is built: the model's structure comes from a meta build
    of ``source`` (with these ``num_classes`` and ``in_channels`` when given), its inputs
    from ``input_shape`` or the source's own ``--input`` tensors."""
    return check_fits(meta_structure(source, num_classes, in_channels), input_shape, device,
                      training, what, element_bytes, source.inputs, batch_option)


def meta_structure(source: ModelSource, num_classes: int | None = None,
                   in_channels: int | None = None) -> nn.Module:
    """The model's shapes without storage: a zoo model from its spec; a foreign one by its
    constructor on the meta device, else (a constructor that needs real tensors) built."""
    if source.spec is not None:  # a zoo model
        from resnet_probe.zoo import build_on_meta

        fields = {k: v for k, v in (("num_classes", num_classes),
                                    ("in_channels", in_channels)) if v is not None}
        return build_on_meta(source.spec, **fields)
    if source.module is not None:
        return _meta_copy(source.module)
    try:
        return source.build(num_classes, in_channels, structure=False, device="meta")
    except UserCodeError:  # its constructor does not run on meta: only a real build tells
        return source.build(num_classes, in_channels, structure=False)


def _gib(count: float) -> str:
    return f"{count / 2**30:.1f} GiB"


def _meta_copy(model: nn.Module) -> nn.Module:
    parameters = list(model.parameters())
    if parameters and all(p.is_meta for p in parameters):
        return model  # already shapes only: nothing to copy
    spec = getattr(model, "spec", None)
    if spec is not None:  # a zoo model: rebuilding on meta is cheaper than a deep copy
        from resnet_probe.zoo import build_on_meta

        return build_on_meta(spec)
    import copy

    # Each tensor's meta stand-in given to deepcopy up front, so no storage is copied.
    memo: dict[int, Any] = {}
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) not in memo:
            stand_in = torch.empty_like(tensor, device="meta")
            memo[id(tensor)] = nn.Parameter(stand_in, tensor.requires_grad) \
                if isinstance(tensor, nn.Parameter) else stand_in
    return copy.deepcopy(model, memo)


# --- memory as a cost, exact on shapes -----------------------------------------------------

# The model's memory columns, as the summary and a baseline carry them.
MEMORY_COLUMNS = ("param_bytes", "buffer_bytes", "grad_bytes", "activation_bytes",
                  "optimizer_bytes", "train_peak_bytes", "cuda_measured_peak_bytes")

MEMORY_METHOD = (
    "param_bytes, buffer_bytes: the model's tensors at their dtypes, each stored tensor once; "
    "grad_bytes: one gradient per trainable parameter; activation_bytes: the tensors "
    "autograd saves for backward during one training-mode forward at this batch size, each "
    "storage once (measured with saved_tensors_hooks on meta tensors: nothing is allocated); "
    "optimizer_bytes: SGD with momentum, one buffer per trainable parameter (Adam would keep "
    "two); train_peak_bytes: all of these plus the largest single tensor an operator "
    "produces, a lower bound on one training step's peak. Not included: allocator rounding "
    "and caching, kernel workspace (oneDNN, cuDNN), the framework's own memory, the data "
    "pipeline.")


def memory_rows(model: nn.Module, args: tuple, kwargs: dict | None = None,
                real_model: Any = None) -> list[dict[str, Any]]:
    """One row per module that saves activations of its own (``module``, its
    ``activation_bytes``), then the model's row (``module`` "(model)") with every column
    of MEMORY_METHOD. The model runs on meta stand-ins of its tensors. With CUDA, the
    measured peak of a real step is added; ``real_model()`` builds a real copy when
    ``model`` is on the meta device."""
    from resnet_probe.measure.counting import count_pass, meta_tensors

    meta_args = tuple(_to_meta(a) for a in args)
    meta_kwargs = {k: _to_meta(v) for k, v in (kwargs or {}).items()}
    counts = count_pass(model, meta_args, meta_kwargs, backward=False, memory=True,
                        tensors=meta_tensors(model), training=True)
    parameters = {id(p): p for p in model.parameters()}
    buffers = {id(b): b for b in model.buffers()}
    param_bytes = sum(_bytes(p) for p in parameters.values())
    grad_bytes = sum(_bytes(p) for p in parameters.values() if p.requires_grad)
    buffer_bytes = sum(_bytes(b) for b in buffers.values())
    rows = [{"module": name or "(root code)", "activation_bytes": saved}
            for name, saved in counts.saved_bytes.items() if saved]
    total = {"module": "(model)", "param_bytes": param_bytes, "buffer_bytes": buffer_bytes,
             "grad_bytes": grad_bytes, "activation_bytes": counts.saved_total,
             "optimizer_bytes": grad_bytes, "largest_output_bytes": counts.largest_output,
             "train_peak_bytes": param_bytes + buffer_bytes + 2 * grad_bytes
             + counts.saved_total + counts.largest_output}
    real = real_model() if real_model is not None and torch.cuda.is_available() else model
    cuda = cuda_peak_bytes(real, args, kwargs)
    if cuda is not None:
        total["cuda_measured_peak_bytes"] = cuda
    return [*rows, total]


def cuda_peak_bytes(model: nn.Module, args: tuple, kwargs: dict | None = None) -> int | None:
    """torch.cuda.max_memory_allocated over one real forward and backward on the GPU, beside
    the estimate; None without CUDA (or when the model does not fit)."""
    if not torch.cuda.is_available() or any(p.is_meta for p in model.parameters()):
        return None
    import copy

    device = torch.device("cuda")
    try:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        gpu = copy.deepcopy(model).to(device).train()
        inputs = tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in args)
        out = gpu(*inputs, **{k: v.to(device) if isinstance(v, torch.Tensor) else v
                              for k, v in (kwargs or {}).items()})
        first = out if isinstance(out, torch.Tensor) else next(
            t for t in torch.utils._pytree.tree_flatten(out)[0] if isinstance(t, torch.Tensor))
        first.float().sum().backward()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device))
    except torch.cuda.OutOfMemoryError:
        return None
    finally:
        torch.cuda.empty_cache()


def _to_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return torch.empty_like(value, device="meta")
    return value


def _bytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()
