"""A ``--weights`` file: a local state_dict loaded into every build of a source.

The file is untrusted data (``resnet_probe.untrusted``): loaded as tensors only, its declared
size bounded by the model's own, and checked key for key, shape for shape on the meta device
before any tensor data is read. A file that does not fit raises ``WeightsMismatch``, naming
every key that differs.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from resnet_probe.sources.errors import SourceError, WeightsMismatch
from resnet_probe.untrusted import (
    UntrustedFileError,
    allowed_bytes,
    load_tensors,
    state_dict_problems,
)


def load_weights(model: nn.Module, path: Path, label: str) -> None:
    """A local state_dict into ``model``, strictly: every missing or unexpected key, and every
    tensor whose shape or dtype does not fit, named. The file is loaded as data only, and
    checked on the meta device (no tensor data read) before its data is."""
    check_weights(model, read_weights(path, model, "meta"), path, label)
    check_weights(model, read_weights(path, model), path, label, load=True)


def read_weights(path: Path, model: nn.Module, device: str = "cpu"
                 ) -> dict[str, torch.Tensor]:
    """The state_dict in a ``--weights`` file (or the ``state_dict`` a training checkpoint
    wraps), loaded as data only; the file may declare at most a small multiple of ``model``'s
    state_dict bytes (``untrusted.allowed_bytes``), checked before anything is inflated.
    ``device="meta"``: names, shapes and dtypes only."""
    try:
        state = load_tensors(path, "--weights", device, allowed_bytes(model.state_dict()))
    except FileNotFoundError:
        raise SourceError(f"--weights {str(path)!r}: no such file") from None
    except UntrustedFileError as error:
        raise SourceError(str(error)) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint wrapping it
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise SourceError(f"--weights {str(path)!r} holds a {type(state).__name__}, not a "
                          f"state_dict of named tensors")
    return state


def check_weights(model: nn.Module, state: dict[str, torch.Tensor], path: Path, label: str,
                  load: bool = False) -> None:
    """Raise WeightsMismatch unless ``state`` fits ``model`` key for key, shape for shape and
    dtype kind for kind (``untrusted.state_dict_problems``; the check needs no storage, so it
    works on a meta model); with ``load``, copy it in."""
    problems = state_dict_problems(model.state_dict(), state)
    if problems:
        raise WeightsMismatch(f"--weights {str(path)!r} does not fit {label}: "
                              f"{'; '.join(problems)}")
    if load:
        model.load_state_dict(state, strict=True)
