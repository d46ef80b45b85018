"""A training run's checkpoint: written atomically at a step boundary (``save_checkpoint``),
read back as data only and checked against the run it claims to be (``load_checkpoint``), the
RNG state it restores, and the errors a bad or missing one raises (``CorruptCheckpoint``,
``NothingToResume``).

A checkpoint is a file from a run folder, so it is untrusted (``resnet_probe.untrusted``): its
record is read first, with its tensors on the meta device, and its data is loaded only once the
tensors fit the model the record names.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnet_probe.errors import InvalidRequest
from resnet_probe.results import atomic_write_bytes
from resnet_probe.train.config import TrainConfig
from resnet_probe.train.run_folder import json_safe
from resnet_probe.train.run_result import ENDED, RunResult, RunStatus
from resnet_probe.untrusted import (
    UnsafeFileError,
    UntrustedFileError,
    allowed_bytes,
    checked,
    load_tensors,
    state_dict_problems,
    tensor_problems,
)

# Format 3: only tensors and plain data (the run's record is a dict), so a checkpoint loads with
# weights_only=True. An ended run's checkpoint keeps its parameters in half precision (buffers
# such as BN's running statistics at full precision) and no optimizer state (it cannot resume,
# and the analyses of trained nets need no more). Formats 1 and 2 pickled the record as a
# class, which a safe load refuses.
CHECKPOINT_FORMAT = 3


class CorruptCheckpoint(UntrustedFileError):
    """A checkpoint that is damaged, foreign, or does not fit its run (an InvalidRequest:
    exit 2); the message names the file and the fix."""


class NothingToResume(InvalidRequest):
    """A resume asked for where no checkpoint was written."""


def _compact_weights(model: nn.Module, state: dict[str, torch.Tensor]
                     ) -> dict[str, torch.Tensor]:
    """An ended run's weights, halved in size: parameters in half precision where they fit in
    its range; buffers (BN's running statistics) as they are. Precise BN's exact variance of a
    deep plain net's activations can exceed half precision's 65,504 and would load as inf."""
    parameters = {name for name, _ in model.named_parameters()}
    compact = {}
    for key, value in state.items():
        half = value.half() if key in parameters and value.is_floating_point() else value
        compact[key] = half if bool(torch.isfinite(half).all()) or \
            not bool(torch.isfinite(value).all()) else value
    return compact


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, step: int,
                    result: RunResult, config: TrainConfig, samples_seen: int,
                    bn_calls: dict[str, int] | None, initial_norms: dict[str, float]) -> None:
    """The run at a step boundary: everything saved belongs to ``step``. An ended run keeps
    half-precision weights only; an unfinished one also what a resume needs to continue
    exactly (optimizer, RNG, BN calls per step, the intervention's initial norms)."""
    state: dict[str, Any] = {"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "step": step,
                             "record": result.record(),
                             "config": json_safe(asdict(config)), "samples_seen": samples_seen}
    if result.status in ENDED:
        state["model"] = _compact_weights(model, state["model"])
    else:  # what a resume needs to continue exactly
        state.update(optimizer=optimizer.state_dict(), bn_calls_per_step=bn_calls,
                     initial_norms=initial_norms,
                     rng={"torch": torch.get_rng_state(),
                          "cuda": torch.cuda.get_rng_state_all()
                          if torch.cuda.is_available() else []})
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def restore_rng(rng: dict[str, Any]) -> None:
    """The RNG state a checkpoint saved (``rng``), back in torch (and CUDA where present)."""
    torch.set_rng_state(rng["torch"])
    if rng.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def load_checkpoint(path: Path, device: torch.device | str = "cpu",
                    resumable: bool = False, model: nn.Module | None = None) -> dict[str, Any]:
    """A checkpoint written by this loop, loaded as data only (``resnet_probe.untrusted``);
    its ``result`` is the RunResult its record describes. A damaged, foreign or unsafe file
    is named, with the fix.

    Without ``model`` only the record is read: the tensors come back on the meta device (names,
    shapes and dtypes, none of their data). With ``model`` (built from the validated record,
    or the run being resumed) the file may declare at most a small multiple of the model's
    bytes (checked before anything is inflated), its weights must fit the model name for name,
    shape for shape and dtype kind for kind, and only then are they loaded on ``device``; a
    finished run's weights must be finite, its BN running variances non-negative. With
    ``resumable`` (and ``model``), an unfinished run's optimizer, RNG and BN state are checked
    to be whole and to belong to its step."""
    fix = "; delete it to retrain that run from step 0"
    state = _checkpoint_state(path, "meta", None if model is None else
                              allowed_bytes(model.state_dict()), fix)
    result = state["result"]
    if model is None:
        return state
    problems = state_dict_problems(model.state_dict(), state["model"])
    if problems:
        raise CorruptCheckpoint(f"checkpoint {str(path)!r} does not fit {result.model}: "
                                f"{'; '.join(problems)}{fix}")
    if resumable and result.status not in ENDED:
        _check_optimizer(state, model, path, fix)
    state = _checkpoint_state(path, device, allowed_bytes(model.state_dict()), fix)
    result = state["result"]
    if result.status is RunStatus.FINISHED:
        problems = tensor_problems(state["model"])
        if problems:
            raise CorruptCheckpoint(f"checkpoint {str(path)!r} says {result.model} seed "
                                    f"{result.seed} finished, but its weights are not a "
                                    f"trained net's: {'; '.join(problems[:3])}{fix}")
    if resumable and result.status not in ENDED:
        _check_resumable(state, path, fix)
    return state


def _checkpoint_state(path: Path, device: torch.device | str, max_bytes: int | None,
                      fix: str) -> dict[str, Any]:
    """The checkpoint's entries and its checked record (as ``result``)."""
    try:
        state = load_tensors(path, "checkpoint", device, max_bytes)
    except UnsafeFileError:
        raise  # refused outright: not a damaged file to skip or retrain past
    except UntrustedFileError as error:
        raise CorruptCheckpoint(f"{error}{fix}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CorruptCheckpoint(f"checkpoint {str(path)!r} has format {found!r}; this version "
                                f"reads format {CHECKPOINT_FORMAT}{fix}")
    where = f"checkpoint {str(path)!r}"
    try:
        checked(state, {"model": dict, "step": int, "record": dict}, where)
        if not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                   for k, v in state["model"].items()):
            raise UntrustedFileError(f"{where}: the field 'model' must map names to tensors")
        if state["step"] < 0:
            raise UntrustedFileError(f"{where}: the field 'step' holds {state['step']}; "
                                     f"expected a step number (0 or more)")
        result = RunResult.from_record(state["record"], where)
    except UntrustedFileError as error:
        raise CorruptCheckpoint(f"{error}{fix}") from None
    return {**state, "result": result}


def _check_optimizer(state: dict[str, Any], model: nn.Module, path: Path, fix: str) -> None:
    """An unfinished run's optimizer state, against the model it resumes (meta tensors will
    do): one SGD group over every parameter, a momentum buffer shaped like its parameter."""
    where = f"checkpoint {str(path)!r}"
    parameters = list(model.parameters())
    try:
        optimizer = checked(state, {"optimizer": dict}, where)["optimizer"]
        checked(optimizer, {"state": dict, "param_groups": list}, f"{where} optimizer")
        groups = optimizer["param_groups"]
        for index, group in enumerate(groups):
            checked(group, {"params": list, "lr": float, "momentum": float,
                            "weight_decay": float}, f"{where} optimizer group {index}")
        indices = [i for group in groups for i in group["params"]]
        if indices != list(range(len(parameters))):
            raise UntrustedFileError(
                f"{where}: the optimizer holds parameters {_few(indices)}, but "
                f"{state['result'].model} has {len(parameters)} (0 to {len(parameters) - 1})")
        for key, entry in optimizer["state"].items():
            if not isinstance(key, int) or not 0 <= key < len(parameters) or \
                    not isinstance(entry, dict):
                raise UntrustedFileError(f"{where}: the optimizer's state {key!r} is not a "
                                         f"parameter's")
            buffer = entry.get("momentum_buffer")
            if buffer is not None and (not isinstance(buffer, torch.Tensor) or
                                       tuple(buffer.shape) != tuple(parameters[key].shape)
                                       or not buffer.is_floating_point()):
                raise UntrustedFileError(f"{where}: the momentum of parameter {key} is not a "
                                         f"float tensor shaped {tuple(parameters[key].shape)}")
    except UntrustedFileError as error:
        raise CorruptCheckpoint(f"{error} (an unfinished run needs it to resume){fix}"
                                ) from None


def _few(values: list[Any]) -> str:
    return ", ".join(map(str, values[:5])) + (f" (+{len(values) - 5} more)"
                                              if len(values) > 5 else "") or "none"


def _check_resumable(state: dict[str, Any], path: Path, fix: str) -> None:
    where = f"checkpoint {str(path)!r}"
    try:
        checked(state, {"optimizer": dict, "samples_seen": int, "rng": dict,
                        "bn_calls_per_step": (dict, None), "initial_norms": (dict, None)},
                where, optional=("initial_norms",))
        if state["samples_seen"] < 0:
            raise UntrustedFileError(f"{where}: samples_seen is negative")
        rng = checked(state["rng"], {"torch": torch.Tensor, "cuda": list}, f"{where} rng")
        expected = torch.get_rng_state()
        for name, generator in [("torch", rng["torch"]), *(("cuda", g) for g in rng["cuda"])]:
            if not isinstance(generator, torch.Tensor) or generator.dtype != torch.uint8 or \
                    generator.dim() != 1 or (name == "torch" and
                                             generator.numel() != expected.numel()):
                raise UntrustedFileError(f"{where}: the {name} RNG state is not a generator's "
                                         f"(a 1-D uint8 tensor"
                                         f"{f' of {expected.numel()}' if name == 'torch' else ''}"
                                         f")")
        calls = state["bn_calls_per_step"] or {}
        if not all(isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
                   and v >= 0 for k, v in calls.items()):
            raise UntrustedFileError(f"{where}: bn_calls_per_step must map BN names to counts")
        norms = state.get("initial_norms") or {}
        if not all(isinstance(k, str) and isinstance(v, (int, float)) and
                   not isinstance(v, bool) and math.isfinite(v) for k, v in norms.items()):
            raise UntrustedFileError(f"{where}: initial_norms must map layer names to finite "
                                     f"numbers")
    except UntrustedFileError as error:
        raise CorruptCheckpoint(f"{error} (an unfinished run needs it to resume){fix}"
                                ) from None
    step = state["step"]
    ahead = [f"{name} {int(state['model'][name].item())} (expected {count * step})"
             for name, count in calls.items()
             if name in state["model"] and state["model"][name].numel() == 1
             and int(state['model'][name].item()) != count * step]
    if ahead:
        raise CorruptCheckpoint(
            f"checkpoint {str(path)!r} says step {step}, but its BN statistics belong to "
            f"another step: num_batches_tracked of {'; '.join(ahead[:3])}. It was written in "
            f"the middle of a step, so resuming would not end where an uninterrupted run "
            f"ends{fix}")
