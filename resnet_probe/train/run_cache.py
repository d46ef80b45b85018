"""Finished training runs in the cache (``resnet_probe.cache``), keyed by everything that changes
a run's result: the model's identity, the recipe (device included), the data's content, the
seed, the number of processes and the versions. An entry holds ``run.pt``, the run's finished
checkpoint (its record and final weights in half precision, no optimizer state); reading one
back loads it as data only and checks it, so a damaged or hostile entry is named, deleted and
retrained."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resnet_probe.cache import Cached, CacheUsage, Store, content_key
from resnet_probe.data import ImageDataset
from resnet_probe.sources import ModelSource
from resnet_probe.train.loop import ENDED, RunResult, TrainConfig, load_checkpoint
from resnet_probe.train.run_folder import json_safe

RUN_FILE = "run.pt"
RUN_FORMAT = 4  # part of every key: 1 pickled its record; 3: precise BN before evals; 4: BN
# running statistics kept at full precision (3 could hold inf where they left half's range)


class RunCache:
    def __init__(self, root: Path | None = None, fresh: bool = False) -> None:
        self.store = Store("runs", root, fresh, what="runs")

    @property
    def path(self) -> Path:
        return self.store.path

    @property
    def fresh(self) -> bool:
        return self.store.fresh

    @property
    def problems(self) -> list[str]:
        return self.store.problems

    def content(self, source: ModelSource, dataset: ImageDataset, recipe: TrainConfig,
                seed: int, world_size: int = 1) -> dict[str, Any]:
        return {"format": RUN_FORMAT, "model": source.identity(),
                "recipe": json_safe(dataclasses.asdict(recipe)),
                "data": {"description": dataset.description,
                         "sha256": dataset_fingerprint(dataset)},
                "seed": seed, "world_size": world_size}

    def get_or_train(self, content: dict[str, Any],
                     train: Callable[[], tuple[RunResult, Path]]
                     ) -> Cached[tuple[RunResult, Path]]:
        """(the run, its checkpoint): from the cache, or ``train()``ed and stored when it
        ended (finished or diverged; an interrupted run is not a result)."""
        return self.store.get_or_compute(
            content, train, encode=_copy_checkpoint, decode=_read_run,
            keep=lambda trained: trained[0].status in ENDED)

    def holds(self, content: dict[str, Any]) -> bool:
        """Whether a usable run is stored for ``content`` (a damaged entry is deleted and
        named in ``problems``, as a lookup does), so an executor need not send it."""
        return self.store.lookup(content_key(content), _read_run) is not None

    def checkpoint(self, key: str) -> Path | None:
        """The cached checkpoint of ``key`` (as a compare's data folder records it)."""
        found = self.store.lookup(key, _read_run)
        return found[1] if found is not None else None

    def usage(self) -> CacheUsage:
        return self.store.usage()

    def clear(self) -> CacheUsage:
        return self.store.clear()


def _copy_checkpoint(trained: tuple[RunResult, Path], folder: Path) -> None:
    shutil.copyfile(trained[1], folder / RUN_FILE)


def _read_run(folder: Path) -> tuple[RunResult, Path]:
    path = folder / RUN_FILE
    return load_checkpoint(path)["result"], path


def dataset_fingerprint(dataset: ImageDataset) -> str:
    digest = hashlib.sha256()
    for tensor in (dataset.train_x, dataset.train_y, dataset.test_x, dataset.test_y):
        digest.update(str((tuple(tensor.shape), str(tensor.dtype))).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
