"""What long work reports its progress to: a tqdm bar in the CLI, ``NO_PROGRESS`` elsewhere."""

from __future__ import annotations

from typing import Any, Protocol


class Progress(Protocol):
    def update(self, n: int = 1) -> Any: ...
    def set_description(self, desc: str) -> Any: ...
    def reset(self, total: int | None = None) -> Any: ...


class NullProgress:
    """Progress nobody watches: every call does nothing, so work never checks for None."""

    def update(self, n: int = 1) -> None:
        pass

    def set_description(self, desc: str) -> None:
        pass

    def reset(self, total: int | None = None) -> None:
        pass


NO_PROGRESS: Progress = NullProgress()
