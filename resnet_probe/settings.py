"""A config field declared once: its default, what it means, and the values it accepts.

Each config (``LatencyConfig``, ``TrainConfig``, ...) checks itself against these declarations,
and the command line builds its options from the same ones, so a range, a choice or a default
is never restated in a second place (as transformers' ``HfArgumentParser`` builds its options
from dataclass fields).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any

from resnet_probe.errors import InvalidRequest


@dataclass(frozen=True)
class Setting:
    help: str
    minimum: float | None = None  # inclusive
    above: float | None = None  # exclusive lower bound (a learning rate is above 0)
    maximum: float | None = None  # inclusive
    choices: tuple[str, ...] = ()
    none_means: str | None = None  # what a None default stands for, e.g. "every core"
    flag: str | None = None  # the option's name where it is not --field-name
    metavar: str | None = None

    def rule(self) -> str:
        """The accepted values in words, for error messages."""
        if self.choices:
            return f"one of: {', '.join(self.choices)}"
        bounds = [f"at least {self.minimum:g}" if self.minimum is not None else "",
                  f"above {self.above:g}" if self.above is not None else "",
                  f"at most {self.maximum:g}" if self.maximum is not None else ""]
        return " and ".join(b for b in bounds if b)

    def accepts(self, value: Any, kind: type) -> bool:
        if self.choices:
            return value in self.choices
        if kind is bool:
            return isinstance(value, bool)
        if kind is str:
            return isinstance(value, str)
        return isinstance(value, (int, float) if kind is float else int) \
            and not isinstance(value, bool) and (isinstance(value, int) or math.isfinite(value)) \
            and (self.minimum is None or value >= self.minimum) \
            and (self.above is None or value > self.above) \
            and (self.maximum is None or value <= self.maximum)


def setting(default: Any, help: str | Setting, **accepts: Any) -> Any:
    """A dataclass field with its declaration: ``help`` and ``accepts`` (``Setting``'s other
    fields), or a shared ``Setting``."""
    declared = help if isinstance(help, Setting) else Setting(help=help, **accepts)
    return dataclasses.field(default=default, metadata={"setting": declared})


# Shared by every measurement that builds its input from a model's family.
INPUT_SIZE = Setting("Square input side in pixels.", minimum=1,
                     none_means="224 for ImageNet-style, 32 for CIFAR-style")


_KINDS = {int: ("an integer", "integers"), float: ("a number", "numbers"),
          str: ("a string", "strings"), bool: ("True or False", "booleans")}


@dataclass(frozen=True)
class Declared:
    """One declared field: its name, default, declaration, and the type of one value (a
    ``tuple[int, ...]`` field is a sequence of ints; ``optional`` fields also take None)."""

    name: str
    default: Any
    setting: Setting
    kind: type
    sequence: bool
    optional: bool

    def accepted(self) -> str:
        """What the field accepts, in words: "an integer, at least 1", "one of: fp32, ..."."""
        if self.setting.choices:
            return self.setting.rule()
        singular, plural = _KINDS[self.kind]
        rule = self.setting.rule()
        if self.sequence:
            return f"a tuple of {plural}" + (f", each {rule}" if rule else "")
        return singular + (f", {rule}" if rule else "")


@cache
def declared_fields(config: type) -> dict[str, Declared]:
    hints = typing.get_type_hints(config)
    declared = {}
    for f in dataclasses.fields(config):
        if "setting" in f.metadata:
            args = typing.get_args(hints[f.name])
            optional = isinstance(hints[f.name], types.UnionType) and type(None) in args
            hint = next(a for a in args if a is not type(None)) if optional else hints[f.name]
            sequence = typing.get_origin(hint) is tuple
            kind = typing.get_args(hint)[0] if sequence else hint
            declared[f.name] = Declared(f.name, f.default, f.metadata["setting"], kind,
                                        sequence, optional)
    return declared


def check_settings(config: Any) -> None:
    """Every declared field of ``config`` holds an accepted value, or InvalidRequest names the
    field, the value and what is accepted. A list given for a sequence becomes a tuple."""
    # mypy does not take a class for Hashable, though every class hashes.
    for name, field in declared_fields(type(config)).items():  # type: ignore[arg-type]
        value = getattr(config, name)
        if field.sequence and isinstance(value, list):
            value = tuple(value)
            object.__setattr__(config, name, value)  # frozen configs hash their fields
        if value is None and field.optional:
            continue
        values = value if field.sequence and isinstance(value, tuple) else (value,)
        wrong_shape = field.sequence != isinstance(value, tuple)
        if wrong_shape or not all(field.setting.accepts(v, field.kind) for v in values):
            raise InvalidRequest(f"{name} must be {field.accepted()}: {name}={value!r}")
