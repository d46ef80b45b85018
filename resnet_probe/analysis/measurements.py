"""The analyses run over trained nets, one table per analysis and a row group per (model,
seed): ``analyse(runs) -> WhyTables``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from resnet_probe.analysis.hessian import hessian_extremes
from resnet_probe.analysis.landscape import (
    BN_STATISTICS,
    landscape_radii,
    slice_hessian_ratio,
    surface,
)
from resnet_probe.analysis.lesion import k_half, lesion_by_block, lesion_by_count
from resnet_probe.analysis.options import (
    CONTROLLED,
    DEFAULT_OPTIONS,
    Analysis,
    AnalysisOptions,
)
from resnet_probe.analysis.paths import effective_length, path_gradients
from resnet_probe.analysis.responses import layer_responses
from resnet_probe.analysis.trained import TrainedNet, TrainedRuns, evaluation_batch
from resnet_probe.progress import NO_PROGRESS, Progress
from resnet_probe.results import frame, table


@dataclass(frozen=True)
class WhyTables:
    """One table per analysis; an analysis that did not run leaves its table empty."""

    lesion_blocks: pd.DataFrame = table("lesion_blocks")
    lesion_count: pd.DataFrame = table("lesion_count")
    responses: pd.DataFrame = table("responses")
    landscape: pd.DataFrame = table("landscape")  # the points probed (and a 2-D surface's)
    landscape_radii: pd.DataFrame = table("landscape_radii")  # r½ per side of a direction
    landscape_summary: pd.DataFrame = table("landscape_summary")  # r½, Keskar, L0 per net
    paths: pd.DataFrame = table("paths")
    hessian: pd.DataFrame = table("hessian")

    @classmethod
    def of(cls, tables: dict[str, pd.DataFrame]) -> WhyTables:
        """From tables by saved name (as a cache entry holds them); absent ones are empty."""
        names = {f.metadata["table"]: f.name for f in cls.__dataclass_fields__.values()}
        unknown = set(tables) - set(names)
        if unknown:
            raise ValueError(f"not tables of the analyses: {', '.join(sorted(unknown))}")
        return cls(**{names[key]: tables.get(key, frame([])) for key in names})

    @property
    def empty(self) -> bool:
        return all(getattr(self, name).empty for name in self.__dataclass_fields__)


def analyse(runs: TrainedRuns, analyses: tuple[Analysis, ...] = tuple(Analysis),
            options: AnalysisOptions = DEFAULT_OPTIONS,
            progress: Progress = NO_PROGRESS) -> WhyTables:
    """The tables of the analyses asked for, one row group per (model, seed)."""
    x, y = evaluation_batch(runs.dataset, options.split, options.limit)
    lx, ly = evaluation_batch(runs.dataset, options.landscape_split, options.landscape_limit)
    hx, hy = evaluation_batch(runs.dataset, "train", options.hessian_images)
    px, py = evaluation_batch(runs.dataset, options.split, options.path_images)
    chance = 1 - 1 / runs.dataset.num_classes
    rows: dict[str, list[dict[str, Any]]] = {}

    def add(name: str, found: list[dict[str, Any]], key: dict[str, Any]) -> None:
        rows.setdefault(name, []).extend({**key, **row} for row in found)

    for net, chosen in nets_and_analyses(runs.nets, analyses, options):
        key = {"model": net.model, "seed": net.seed, "net_depth": net.depth,
               "shortcut": net.shortcut}
        if Analysis.LESION in chosen:
            _describe(progress, "lesions", net)
            if "block" in options.lesion_views:
                add("lesion_blocks", lesion_by_block(net.net, x, y, chance), key)
            if "count" in options.lesion_views:
                curve = lesion_by_count(net.net, x, y, chance, options.lesion_samples,
                                        options.lesion_max_removed, seed=net.seed)
                half, reached = k_half(curve)
                add("lesion_count", [{**row, "k_half": half, "k_half_reached": reached}
                                     for row in curve], key)
            progress.update(1)
        if Analysis.PATHS in chosen:
            _describe(progress, "path lengths", net)
            found = path_gradients(net.net, px, py, options.path_samples, seed=net.seed)
            length = effective_length(found) if found else math.nan
            add("paths", [{**row, "effective_length": length} for row in found], key)
            progress.update(1)
        if Analysis.RESPONSES in chosen:
            _describe(progress, "layer responses", net)
            add("responses", layer_responses(net.net, x), key)
            progress.update(1)
        if Analysis.LANDSCAPE in chosen:
            _describe(progress, "loss landscape", net)
            points, sides, summary = landscape_radii(
                net.net, lx, ly, runs.dataset.num_classes, options.landscape_directions,
                options.landscape_extent, seed=options.direction_seed, progress=progress)
            if options.landscape_dims == 2:
                grid = surface(net.net, lx, ly, options.landscape_points,
                               options.landscape_extent, seed=options.direction_seed,
                               progress=progress)
                points += [{"direction": None, **row} for row in grid]
                summary["slice_hessian_ratio"] = slice_hessian_ratio(grid)
            add("landscape", points, key)
            add("landscape_radii", sides, key)
            add("landscape_summary", [summary], key)
        if Analysis.HESSIAN in chosen:
            _describe(progress, "Hessian spectrum", net)
            add("hessian", [hessian_extremes(net.net, hx, hy, options.hessian_iterations,
                                             seed=options.direction_seed)], key)
            progress.update(1)
    return WhyTables.of({name: frame(found) for name, found in rows.items()})


def nets_and_analyses(nets: list[TrainedNet], analyses: tuple[Analysis, ...],
                      options: AnalysisOptions
                      ) -> list[tuple[TrainedNet, tuple[Analysis, ...]]]:
    """Each net analysed and what it gets: every net all of ``analyses``; with
    ``deep_pair_only`` the deepest nets all of them, the shallowest the CONTROLLED ones (their
    claims' no-degradation control) and nets between nothing."""
    if not options.deep_pair_only or not nets:
        return [(net, analyses) for net in nets]
    deepest = max(net.depth for net in nets)
    shallowest = min(net.depth for net in nets)
    controlled = tuple(a for a in analyses if a in CONTROLLED)
    return [(net, analyses if net.depth == deepest else controlled) for net in nets
            if net.depth in (deepest, shallowest)]


def analysis_work(nets: list[TrainedNet], analyses: tuple[Analysis, ...],
                  options: AnalysisOptions) -> int:
    """The progress units ``analyse`` reports on these nets."""
    chosen = nets_and_analyses(nets, analyses, options)
    full = sum(1 for _, picked in chosen if picked == analyses)
    return options.work(analyses, full, len(chosen) - full)


def _describe(progress: Progress, what: str, net: TrainedNet) -> None:
    progress.set_description(f"{what}: {net.model} seed {net.seed}")


def data_note(runs: TrainedRuns, options: AnalysisOptions) -> str:
    subset = lambda split, limit: (f"the {split} split" if limit is None  # noqa: E731
                                   else f"the first {limit} images of the {split} split")
    return (f"Nets: {runs.source}. Data: {runs.dataset.description}. Lesions and responses "
            f"use {subset(options.split, options.limit)}; the landscape uses "
            f"{subset(options.landscape_split, options.landscape_limit)}, BN statistics "
            f"{BN_STATISTICS}.")
