"""Trained nets to analyse: from a `degradation --out DIR` folder, from compare's runs (found in
the run cache through the keys its data folder records), or trained on demand through the same
path and cache as `degradation`.

Finished runs keep their final weights in half precision (train/loop.py); they are loaded back
into float32 models in eval mode, so BN uses the running statistics the run ended with.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from resnet_probe.data import ImageDataset, load_dataset
from resnet_probe.errors import InvalidRequest
from resnet_probe.progress import NO_PROGRESS, Progress
from resnet_probe.sources import ModelSource, resolve
from resnet_probe.train.degradation import (
    RUNS,
    TRAIN_RUNS,
    DegradationConfig,
    fit_dataset_to,
    run_degradation,
)
from resnet_probe.train.loop import (
    CorruptCheckpoint,
    RunStatus,
    build_for_dataset,
    final_metrics,
    load_checkpoint,
)
from resnet_probe.train.run_cache import RunCache
from resnet_probe.train.run_folder import MANIFEST


@dataclass
class TrainedNet:
    model: str  # zoo name or spec text
    seed: int
    net: nn.Module  # float32, eval mode, on the CPU
    final_train_error: float
    shortcut: bool
    depth: int


@dataclass
class TrainedRuns:
    nets: list[TrainedNet]
    dataset: ImageDataset
    source: str  # where the nets came from, in words
    skipped: list[str] = field(default_factory=list)  # runs not analysed, and why

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(net.model for net in self.nets))


def net_from_checkpoint(path: Path, dataset: ImageDataset,
                        sources: Mapping[str, ModelSource] | None = None) -> TrainedNet | str:
    """The finished run in ``path``, or why it cannot be analysed. ``sources`` build the nets
    by label (a model given as a module has no name to resolve); a label missing from them is
    resolved as a MODEL text."""
    state = load_checkpoint(path)
    run = state["result"]
    if run.status is not RunStatus.FINISHED:
        return f"{run.model} seed {run.seed} ({run.status}, not finished)"
    source = (sources or {}).get(run.model) or resolve(run.model)
    net = build_for_dataset(source, dataset)
    weights = {key: value.float() if value.is_floating_point() else value
               for key, value in state["model"].items()}
    try:
        net.load_state_dict(weights)
    except RuntimeError as error:
        raise CorruptCheckpoint(f"checkpoint {str(path)!r} does not fit {run.model} "
                                f"({str(error).splitlines()[0]}); delete it to retrain that "
                                f"run") from None
    depth, shortcut = (run.depth, run.shortcut) if run.depth is not None else source.traits()
    return TrainedNet(run.model, run.seed, net.eval(), final_metrics(run)["final_train_error"],
                      bool(shortcut), int(depth or 0))


def load_trained(run: Path | None, progress: Progress = NO_PROGRESS,
                 cache: RunCache | None = None) -> TrainedRuns:
    """RUN as the analysis commands take it: a degradation folder, a compare report or its
    data folder, or None to train (or reuse from the cache) the default degradation run."""
    if run is None:
        return train_default(progress, cache)
    run = Path(run)
    if not run.exists():
        raise InvalidRequest(f"RUN {str(run)!r} does not exist; give a `degradation --out DIR` "
                             f"folder, a compare report's data folder, or no RUN to train the "
                             f"default degradation run")
    if run.suffix == ".html":  # a compare report: its tables are in NAME-data/
        run = run.with_name(run.stem + "-data")
    if (run / MANIFEST).exists() and (run / RUNS).is_dir():
        return _from_degradation_folder(run)
    for folder in (run, run / "data"):
        if (folder / f"{TRAIN_RUNS}.json").exists():
            return _from_recorded_keys(folder, cache or RunCache())
    raise InvalidRequest(f"{str(run)!r} holds no trained runs: expected a `degradation --out "
                         f"DIR` folder ({MANIFEST} and {RUNS}/) or a compare data folder "
                         f"({TRAIN_RUNS}.json)")


def train_default(progress: Progress = NO_PROGRESS, cache: RunCache | None = None,
                  config: DegradationConfig | None = None) -> TrainedRuns:
    """The default degradation run, from the run cache where it holds the runs."""
    from resnet_probe.train.recipes import degradation_recipe

    config = config or DegradationConfig(train=degradation_recipe())
    dataset = fit_dataset_to(load_dataset(config.dataset, config.data_dir),
                             [resolve(name) for name in config.model_names()])
    with tempfile.TemporaryDirectory(prefix="resnet-probe-analysis-") as folder:
        run_degradation(config, Path(folder), progress=progress, dataset=dataset,
                        cache=cache or RunCache())
        return collect(sorted((Path(folder) / RUNS).glob("*.pt")), dataset,
                        "the default degradation run (trained on demand, kept in the run "
                        "cache)")


def _from_degradation_folder(folder: Path) -> TrainedRuns:
    try:
        config = json.loads((folder / MANIFEST).read_text())["config"]
        dataset_name, data_dir = config["dataset"], config.get("data_dir")
        names = DegradationConfig(
            family=config["family"], depths=tuple(config["depths"]),
            seeds=tuple(config["seeds"]), models=tuple(config.get("models") or ()),
            preact=bool(config.get("preact", False))).model_names()
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{str(folder / MANIFEST)!r} is damaged ({error}); rerun the "
                         f"degradation into {str(folder)!r}") from None
    dataset = fit_dataset_to(load_dataset(dataset_name, data_dir),
                             [resolve(name) for name in names])
    checkpoints = sorted((folder / RUNS).glob("*.pt"))
    if not checkpoints:
        raise InvalidRequest(f"{str(folder / RUNS)!r} holds no checkpoints (their weights "
                             f"were deleted?); rerun the degradation into {str(folder)!r}")
    return collect(checkpoints, dataset, f"degradation run {folder}")


def _from_recorded_keys(folder: Path, cache: RunCache) -> TrainedRuns:
    """A compare data folder: its train_runs table names each run's cache key."""
    path = folder / f"{TRAIN_RUNS}.json"
    try:
        rows = json.loads(path.read_text())
        names = list(dict.fromkeys(row["model"] for row in rows))
        dataset_name = rows[0]["dataset"]
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise ValueError(f"{str(path)!r} is damaged or empty ({error}); rerun the compare"
                         ) from None
    dataset = fit_dataset_to(load_dataset(dataset_name), [resolve(name) for name in names])
    checkpoints, missing = [], []
    for row in rows:
        found = cache.checkpoint(row["cache_key"])
        if found is None:
            missing.append(f"{row['model']} seed {row['seed']}")
        else:
            checkpoints.append(found)
    runs = collect(checkpoints, dataset, f"compare runs recorded in {folder} (weights from "
                    f"the run cache, {cache.path})")
    runs.skipped += [f"{name} (not in the run cache: cleared, or trained with --fresh "
                     f"elsewhere; rerun the compare to retrain it)" for name in missing]
    runs.skipped += cache.problems
    if not runs.nets:
        raise InvalidRequest(f"none of the runs {str(path)!r} records is in the run cache "
                             f"({cache.path}): {', '.join(missing)}; rerun the compare")
    return runs


def collect(checkpoints: list[Path], dataset: ImageDataset, source: str,
            sources: Mapping[str, ModelSource] | None = None) -> TrainedRuns:
    """Every finished run among ``checkpoints``; a damaged one is skipped and named, a file
    that would run code is refused (UnsafeFileError)."""
    nets, skipped = [], []
    for checkpoint in checkpoints:
        try:
            loaded = net_from_checkpoint(checkpoint, dataset, sources)
        except CorruptCheckpoint as error:
            skipped.append(str(error))
            continue
        if isinstance(loaded, str):
            skipped.append(loaded)
        else:
            nets.append(loaded)
    nets.sort(key=lambda net: (net.depth, net.shortcut, net.seed))
    return TrainedRuns(nets, dataset, source, skipped)


def evaluation_batch(dataset: ImageDataset, split: str, limit: int | None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed subset (the first ``limit`` images) of one split, the same for every net."""
    if split not in ("train", "test"):
        raise InvalidRequest(f"split must be 'train' or 'test': {split!r}")
    x, y = ((dataset.train_x, dataset.train_y) if split == "train"
            else (dataset.test_x, dataset.test_y))
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return x, y
