"""The errors a MODEL source raises: one that cannot be had, and weights that do not fit it.

Both are ``InvalidRequest``s, so the CLI exits 2 on them with the message alone. A failure of a
user's own code is ``resnet_probe.errors.UserCodeError`` (see ``sources.user_code``).
"""

from __future__ import annotations

from resnet_probe.errors import InvalidRequest


class SourceError(InvalidRequest):
    """A MODEL that cannot be resolved: unknown name, missing library, bad factory."""


class WeightsMismatch(SourceError):
    """A ``--weights`` state_dict whose keys or shapes do not fit the model as built;
    ``mismatch`` is what differs, the message adds how to build the model to fit."""

    def __init__(self, mismatch: str) -> None:
        super().__init__(f"{mismatch}; weights trained for other classes or input channels "
                         f"fit a model built with --num-classes and --in-channels")
        self.mismatch = mismatch
