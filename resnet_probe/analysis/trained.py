"""Trained nets to analyse: from a `degradation --out DIR` folder, or from compare's runs (found
in the run cache through the keys its data folder records). Nothing is trained here: the
default run an analysis trains on demand comes from ``jobs.sweep.train_default``.

Finished runs keep their final weights in half precision (train/loop.py); they are loaded back
into float32 models in eval mode, so BN uses the running statistics the run ended with.

Everything read here may come from someone else, so it is data: model names recorded in a
checkpoint, a manifest or ``train_runs.json`` go through ``resolve_recorded`` (a FILE.py
source runs only with ``trust_sources``, from inside the folder of the file naming it), every
field is checked, a recorded cache key must be a sha256, and a checkpoint's weights are
checked against the net its record names (and for NaN and infinities) before any analysis.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from resnet_probe.contained import cache_key
from resnet_probe.data import DATASETS, ChecksumError, ImageDataset, load_dataset
from resnet_probe.errors import InvalidRequest
from resnet_probe.sources import ModelSource
from resnet_probe.sources.recorded import resolve_recorded
from resnet_probe.train.degradation import DegradationConfig
from resnet_probe.train.fitted_data import fit_dataset_to
from resnet_probe.train.loop import (
    CorruptCheckpoint,
    RunStatus,
    build_for_dataset,
    final_metrics,
    load_checkpoint,
)
from resnet_probe.train.run_cache import RunCache
from resnet_probe.train.run_folder import MANIFEST, RUNS, TRAIN_RUNS
from resnet_probe.untrusted import UntrustedFileError, checked, read_json

MAX_RECORDED_RUNS = 100_000  # rows of a train_runs.json: more is not a file we wrote


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
                        sources: Mapping[str, ModelSource] | None = None,
                        trust_sources: bool = False) -> TrainedNet | str:
    """The finished run in ``path``, or why it cannot be analysed. ``sources`` are the run's
    models by label, as the file that lists the run named them (a manifest, train_runs.json)
    or as the caller resolved them: a checkpoint whose record names another model belongs to
    another run (CorruptCheckpoint). Without ``sources`` the record's model is resolved as
    data (``resolve_recorded``). The record is read first (no tensor data); the weights are
    loaded only once they fit the net it names."""
    run = load_checkpoint(path)["result"]
    if run.status is not RunStatus.FINISHED:
        return f"{run.model} seed {run.seed} ({run.status}, not finished)"
    if sources is not None and run.model not in sources:
        raise CorruptCheckpoint(f"checkpoint {str(path)!r} records the model "
                                f"{run.model[:80]!r}, which is not one of this run's models "
                                f"({', '.join(list(sources)[:6])}): it belongs to another run "
                                f"or was edited; delete it to retrain that run")
    source = sources[run.model] if sources is not None else resolve_recorded(
        run.model, f"checkpoint {str(path)!r} field 'model'", base_dir=Path(path).parent,
        trust_sources=trust_sources)
    net = build_for_dataset(source, dataset)
    state = load_checkpoint(path, model=net)
    weights = {key: value.float() if value.is_floating_point() else value
               for key, value in state["model"].items()}
    net.load_state_dict(weights)
    depth, shortcut = (run.depth, run.shortcut) if run.depth is not None else source.traits()
    return TrainedNet(run.model, run.seed, net.eval(), final_metrics(run)["final_train_error"],
                      bool(shortcut), int(depth or 0))


def load_trained(run: Path, cache: RunCache | None = None, trust_sources: bool = False
                 ) -> TrainedRuns:
    """RUN as the analysis commands take it: a degradation folder, or a compare report or its
    data folder (given no RUN, they train the default run through ``jobs.sweep``).
    ``trust_sources``: a FILE.py:factory the run's files name, inside their folder, may run
    (the CLI's --trust-sources); without it only zoo, spec, torchvision: and timm: models
    are built."""
    run = Path(run)
    if not run.exists():
        raise InvalidRequest(f"RUN {str(run)!r} does not exist; give a `degradation --out DIR` "
                             f"folder, a compare report's data folder, or no RUN to train the "
                             f"default degradation run")
    if run.suffix == ".html":  # a compare report: its tables are in NAME-data/
        run = run.with_name(run.stem + "-data")
    if (run / MANIFEST).exists() and (run / RUNS).is_dir():
        return _from_degradation_folder(run, trust_sources)
    for folder in (run, run / "data"):
        if (folder / f"{TRAIN_RUNS}.json").exists():
            return _from_recorded_keys(folder, cache or RunCache(), trust_sources)
    raise InvalidRequest(f"{str(run)!r} holds no trained runs: expected a `degradation --out "
                         f"DIR` folder ({MANIFEST} and {RUNS}/) or a compare data folder "
                         f"({TRAIN_RUNS}.json)")


MANIFEST_CONFIG = {"family": str, "depths": list, "seeds": list, "models": list,
                   "preact": bool, "dataset": str, "data_dir": (str, None)}


def _from_degradation_folder(folder: Path, trust_sources: bool = False) -> TrainedRuns:
    path = folder / MANIFEST
    manifest = read_json(path, "run manifest")
    if not isinstance(manifest, dict):
        raise UntrustedFileError(f"{str(path)!r}: expected an object holding 'config'; rerun "
                                 f"the degradation into {str(folder)!r}")
    config = checked(manifest.get("config"), MANIFEST_CONFIG, f"{str(path)!r} config",
                     optional=("models", "preact", "data_dir"))
    for field_name in ("depths", "seeds"):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in config[field_name]):
            raise UntrustedFileError(f"{str(path)!r} config: the field {field_name!r} must "
                                     f"be a list of integers")
    names = DegradationConfig(
        family=config["family"], depths=tuple(config["depths"]),
        seeds=tuple(config["seeds"]), models=tuple(config.get("models") or ()),
        preact=config.get("preact", False), dataset=config["dataset"]).model_names()
    sources = {name: resolve_recorded(name, f"{str(path)!r} config field 'models'",
                                      base_dir=folder, trust_sources=trust_sources)
               for name in names}
    dataset = fit_dataset_to(_recorded_dataset(config["dataset"], config.get("data_dir")),
                             list(sources.values()))
    checkpoints = sorted((folder / RUNS).glob("*.pt"))
    if not checkpoints:
        raise InvalidRequest(f"{str(folder / RUNS)!r} holds no checkpoints (their weights "
                             f"were deleted?); rerun the degradation into {str(folder)!r}")
    return collect(checkpoints, dataset, f"degradation run {folder}", sources, trust_sources)


def _recorded_dataset(name: str, data_dir: str | None) -> ImageDataset:
    """The dataset a run folder names, read from the folder it recorded when the files are
    there (checksums verified; nothing is downloaded or written there: the folder is the
    file's word, not the user's), else from resnet-probe's own data cache."""
    if data_dir:
        try:
            return load_dataset(name, data_dir, download=False)
        except (FileNotFoundError, NotADirectoryError, ChecksumError):
            pass
    return load_dataset(name)


TRAIN_RUNS_ROW = {"model": str, "seed": int, "dataset": str, "cache_key": str}


def _from_recorded_keys(folder: Path, cache: RunCache, trust_sources: bool = False
                        ) -> TrainedRuns:
    """A compare data folder: its train_runs table names each run's cache key."""
    path = folder / f"{TRAIN_RUNS}.json"
    rows = read_json(path, "the table of runs")
    if not isinstance(rows, list) or not rows or len(rows) > MAX_RECORDED_RUNS:
        raise UntrustedFileError(f"{str(path)!r} is damaged or empty (expected a JSON array "
                                 f"of 1 to {MAX_RECORDED_RUNS:,} run rows); rerun the compare")
    for index, row in enumerate(rows):
        where = f"{str(path)!r} row {index + 1}"
        checked(row, TRAIN_RUNS_ROW, where)
        cache_key(row["cache_key"], f"{where} field 'cache_key'")
        if row["dataset"] not in DATASETS:
            raise UntrustedFileError(f"{where}: the field 'dataset' holds {row['dataset']!r:.60}"
                                     f"; expected one of {', '.join(DATASETS)}")
    datasets = {row["dataset"] for row in rows}
    if len(datasets) > 1:
        raise UntrustedFileError(f"{str(path)!r} mixes datasets ({', '.join(sorted(datasets))})"
                                 f"; one compare trains on one")
    sources = {name: resolve_recorded(name, f"{str(path)!r} field 'model'", base_dir=folder,
                                      trust_sources=trust_sources)
               for name in dict.fromkeys(row["model"] for row in rows)}
    dataset = fit_dataset_to(load_dataset(rows[0]["dataset"]), list(sources.values()))
    checkpoints, missing = [], []
    for row in rows:
        found = cache.checkpoint(row["cache_key"])
        if found is None:
            missing.append(f"{row['model']} seed {row['seed']}")
        else:
            checkpoints.append(found)
    runs = collect(checkpoints, dataset, f"compare runs recorded in {folder} (weights from "
                   f"the run cache, {cache.path})", sources, trust_sources)
    runs.skipped += [f"{name} (not in the run cache: cleared, or trained with --fresh "
                     f"elsewhere; rerun the compare to retrain it)" for name in missing]
    runs.skipped += cache.problems
    if not runs.nets:
        raise InvalidRequest(f"none of the runs {str(path)!r} records is in the run cache "
                             f"({cache.path}): {', '.join(missing)}; rerun the compare")
    return runs


def collect(checkpoints: list[Path], dataset: ImageDataset, source: str,
            sources: Mapping[str, ModelSource] | None = None,
            trust_sources: bool = False) -> TrainedRuns:
    """Every finished run among ``checkpoints``; a damaged one (NaN weights included) is
    skipped and named, a file that would run code is refused (UnsafeFileError), and so is a
    record naming a model that would (``resolve_recorded``)."""
    nets, skipped = [], []
    for checkpoint in checkpoints:
        try:
            loaded = net_from_checkpoint(checkpoint, dataset, sources, trust_sources)
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
