"""What a model's forward takes, when it is more than one image tensor.

On the command line, each ``--input NAME=SHAPE[:DTYPE]`` is one tensor, passed to the forward
as the keyword argument NAME (a NAME that is a number, ``0`` or ``1``, is passed by position
instead): ``--input x=1x3x224x224 --input mask=1x224x224:bool``. SHAPE is dimensions joined by
``x``, the first one the batch. DTYPE is one of ``DTYPES`` (default float32); an integer dtype
takes a value range, ``ids=1x128:int64[0,30522)``, so that an embedding gets valid indices
(values are drawn uniformly from it, seeded; without a range they are 0).

In the API, example inputs come as fvcore and torchinfo take them: a tensor, a tuple of
positional tensors, or a dict of keyword tensors; ``InputSpec.of`` records their shapes, dtypes
and (for integers) the range of values they hold.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

import torch

from resnet_probe.errors import InvalidRequest

DTYPES = {"float32": torch.float32, "float": torch.float32, "float16": torch.float16,
          "half": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64,
          "int64": torch.int64, "long": torch.int64, "int32": torch.int32,
          "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool}
_NAMES = {dtype: name for name, dtype in reversed(list(DTYPES.items()))}
MAX_ELEMENTS = 2**34  # a larger example is a typo, not a model input
_SPEC = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*|\d+)=(?P<shape>\d+(?:x\d+)*)"
                   r"(?::(?P<dtype>[a-z0-9]+)(?:\[(?P<low>-?\d+),(?P<high>-?\d+)\))?)?$")


@dataclass(frozen=True)
class TensorSpec:
    name: str  # the keyword, or a position ("0", "1", ...)
    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32
    low: int | None = None  # integer values are drawn from [low, high)
    high: int | None = None

    @property
    def positional(self) -> bool:
        return self.name.isdigit()

    def make(self, device: str | torch.device = "cpu", batch_size: int | None = None,
             random: bool = False, seed: int = 0) -> torch.Tensor:
        """The tensor, on ``device`` (meta: shape only); ``batch_size`` replaces the first
        dimension; ``random`` draws floats from N(0, 1) and sets a bool tensor (a mask) all
        True, every position real, so that a probe's signal is not masked away (integers
        always use their range)."""
        shape = (batch_size, *self.shape[1:]) if batch_size is not None else self.shape
        if str(device) == "meta":
            return torch.empty(shape, dtype=self.dtype, device="meta")
        generator = torch.Generator().manual_seed(seed)
        if self.low is not None and self.high is not None:
            return torch.randint(self.low, self.high, shape, generator=generator,
                                 dtype=self.dtype).to(device)
        if self.dtype.is_floating_point and random:
            return torch.randn(shape, generator=generator).to(device=device, dtype=self.dtype)
        if self.dtype is torch.bool and random:
            return torch.ones(shape, dtype=torch.bool, device=device)
        return torch.zeros(shape, dtype=self.dtype, device=device)

    def text(self) -> str:
        dtype = _NAMES.get(self.dtype, str(self.dtype))
        bounds = f"[{self.low},{self.high})" if self.low is not None else ""
        return f"{self.name}={'x'.join(map(str, self.shape))}:{dtype}{bounds}"

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape),
                "dtype": _NAMES.get(self.dtype, str(self.dtype)),
                "low": self.low, "high": self.high}


@dataclass(frozen=True)
class InputSpec:
    tensors: tuple[TensorSpec, ...]

    @classmethod
    def parse(cls, texts: list[str] | tuple[str, ...]) -> InputSpec:
        """``--input`` texts; InvalidRequest names the bad one and the accepted form."""
        tensors = []
        for text in texts:
            match = _SPEC.match(text.strip())
            if match is None:
                raise InvalidRequest(
                    f"--input {text!r} is not NAME=SHAPE[:DTYPE], e.g. x=1x3x224x224, "
                    f"mask=1x224x224:bool or ids=1x128:int64[0,30522)")
            dtype_name = match.group("dtype") or "float32"
            if dtype_name not in DTYPES:
                raise InvalidRequest(f"--input {text!r}: unknown dtype {dtype_name!r}; choose "
                                     f"one of: {', '.join(sorted(set(DTYPES)))}")
            dtype = DTYPES[dtype_name]
            low, high = match.group("low"), match.group("high")
            if low is not None and (dtype.is_floating_point or dtype is torch.bool):
                raise InvalidRequest(f"--input {text!r}: a value range [low,high) goes with an "
                                     f"integer dtype, not {dtype_name}")
            if low is not None and int(high) <= int(low):
                raise InvalidRequest(f"--input {text!r}: the range [{low},{high}) is empty")
            shape = tuple(int(d) for d in match.group("shape").split("x"))
            if 0 in shape or math.prod(shape) > MAX_ELEMENTS:
                raise InvalidRequest(f"--input {text!r}: every dimension must be positive and "
                                     f"the tensor at most {MAX_ELEMENTS:,} elements")
            tensors.append(TensorSpec(match.group("name"), shape, dtype,
                                      int(low) if low is not None else None,
                                      int(high) if high is not None else None))
        names = [t.name for t in tensors]
        if len(set(names)) != len(names):
            raise InvalidRequest(f"--input names must be distinct: {', '.join(names)}")
        positions = sorted(int(t.name) for t in tensors if t.positional)
        if positions != list(range(len(positions))):
            raise InvalidRequest(f"positional --input names must be 0, 1, ... in order: "
                                 f"{', '.join(map(str, positions))}")
        return cls(tuple(tensors))

    @classmethod
    def of(cls, example: Any) -> InputSpec:
        """The spec of example inputs: a tensor, a tuple of tensors, or a dict of them."""
        if isinstance(example, torch.Tensor):
            items: list[tuple[str, Any]] = [("0", example)]
        elif isinstance(example, (tuple, list)):
            items = [(str(i), t) for i, t in enumerate(example)]
        elif isinstance(example, dict):
            items = [(str(k), t) for k, t in example.items()]
        else:
            raise InvalidRequest(f"example inputs are a tensor, a tuple of tensors or a dict "
                                 f"of them, not {type(example).__name__}")
        tensors = []
        for name, tensor in items:
            if not isinstance(tensor, torch.Tensor):
                raise InvalidRequest(f"input {name!r} is a {type(tensor).__name__}, not a "
                                     f"tensor")
            low = high = None
            if not tensor.dtype.is_floating_point and tensor.dtype is not torch.bool \
                    and tensor.numel() and tensor.device.type != "meta":
                low, high = int(tensor.min()), int(tensor.max()) + 1
            tensors.append(TensorSpec(name, tuple(tensor.shape), tensor.dtype, low, high))
        return cls(tuple(tensors))

    def example(self, device: str | torch.device = "cpu", batch_size: int | None = None,
                random: bool = False) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """(args, kwargs) for the forward."""
        made = {t.name: t.make(device, batch_size, random, seed=index)
                for index, t in enumerate(self.tensors)}
        args = tuple(made[str(i)] for i in range(sum(t.positional for t in self.tensors)))
        kwargs = {name: value for name, value in made.items() if not name.isdigit()}
        return args, kwargs

    @property
    def batch_size(self) -> int:
        return self.tensors[0].shape[0] if self.tensors else 1

    def with_batch(self, batch_size: int | None) -> InputSpec:
        """The same tensors with ``batch_size`` as every first dimension (None: as given)."""
        if batch_size is None:
            return self
        return InputSpec(tuple(replace(t, shape=(batch_size, *t.shape[1:]))
                               for t in self.tensors))

    def text(self) -> str:
        return " ".join(t.text() for t in self.tensors)

    def record(self) -> list[dict[str, Any]]:
        return [t.record() for t in self.tensors]

    @classmethod
    def from_record(cls, rows: Any, where: str) -> InputSpec:
        """A spec read back from a baseline (untrusted): each field checked."""
        if not isinstance(rows, list) or not rows:
            raise InvalidRequest(f"{where}: inputs must be a non-empty list")
        texts = []
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("name"), str) or \
                    not isinstance(row.get("shape"), list) or not all(
                        isinstance(d, int) and not isinstance(d, bool) for d in row["shape"]) \
                    or not isinstance(row.get("dtype"), str):
                raise InvalidRequest(f"{where}: an input must have a name, a shape (a list "
                                     f"of integers) and a dtype: {row!r}")
            bounds = (f"[{row['low']},{row['high']})" if isinstance(row.get("low"), int)
                      and isinstance(row.get("high"), int) else "")
            texts.append(f"{row['name']}={'x'.join(map(str, row['shape']))}:{row['dtype']}"
                         f"{bounds}")
        try:
            return cls.parse(texts)
        except InvalidRequest as error:
            raise InvalidRequest(f"{where}: {error}") from None
