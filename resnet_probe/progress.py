"""What long work reports its progress to: a tqdm bar in the CLI, nothing in the API."""

from __future__ import annotations

from typing import Any, Protocol


class Progress(Protocol):
    def update(self, n: int = 1) -> Any: ...
    def set_description(self, desc: str) -> Any: ...
