"""Why residual nets train: three classic measurements on trained nets.

* lesions (Veit et al. 2016): ``lesion.py``;
* layer responses (He et al. 2016, Fig. 7): ``responses.py``;
* loss-landscape slices (Li et al. 2018): ``landscape.py``.

``analyse`` runs any of them over every trained net of a run and returns tidy tables;
``findings`` tests the papers' three claims on those tables, plain against residual at each
depth, paired by seed, each with the rule it applies.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from resnet_probe.analysis.landscape import BN_STATISTICS, landscape, slice_summary
from resnet_probe.analysis.lesion import lesion_by_block, lesion_by_count
from resnet_probe.analysis.responses import layer_responses
from resnet_probe.analysis.trained import (
    TrainedNet,
    TrainedRuns,
    evaluation_batch,
    load_trained,
)
from resnet_probe.errors import InvalidRequest
from resnet_probe.progress import Progress
from resnet_probe.results import frame, to_json_records
from resnet_probe.settings import check_settings, setting
from resnet_probe.stats import mean_interval
from resnet_probe.train.cache import ResultCache
from resnet_probe.train.verdict import TRAINED_FRACTION

SPLITS = ("test", "train")


class Analysis(StrEnum):
    LESION = "lesion"
    RESPONSES = "responses"
    LANDSCAPE = "landscape"


@dataclass(frozen=True)
class AnalysisOptions:
    # Lesions and responses: the held-out images, as both papers.
    split: str = setting("test", "Which images the nets are evaluated on.", choices=SPLITS)
    limit: int | None = setting(None, "Use the first N images of the split.", minimum=1,
                                none_means="all")
    lesion_views: tuple[str, ...] = ("block", "count")  # single deletions, k-block curve
    lesion_samples: int = setting(10, "Random draws per k in the k-block deletion curve.",
                                  minimum=1, flag="--samples")
    lesion_max_removed: int | None = setting(None, "Largest k in the k-block deletion curve.",
                                             minimum=1, none_means="every shape-preserving "
                                             "block", flag="--max-removed")
    landscape_points: int = setting(21, "Grid points per axis (odd, so the trained weights "
                                    "are on the grid).", minimum=3, flag="--points")
    landscape_dims: int = setting(1, "1-D slice or 2-D surface.", minimum=1, maximum=2,
                                  flag="--dims")
    landscape_extent: float = setting(1.0, "The grid spans [-extent, extent] along each "
                                      "direction.", above=0, flag="--extent")
    landscape_split: str = "train"  # the training loss, as Li et al. plot
    landscape_limit: int | None = setting(512, "Training images the loss is computed on (a "
                                          "fixed subset).", minimum=1, none_means="all",
                                          flag="--limit")
    direction_seed: int = setting(0, "Seed of the random directions.")

    def __post_init__(self) -> None:
        check_settings(self)
        if self.landscape_points % 2 == 0:
            raise InvalidRequest(f"the landscape grid needs an odd number of points, at "
                                 f"least 3, so it holds the trained weights: "
                                 f"points={self.landscape_points}")
        unknown = set(self.lesion_views) - {"block", "count"}
        if unknown or not self.lesion_views:
            raise InvalidRequest(f"lesion views are 'block' and 'count': {self.lesion_views}")

    def work(self, analyses: tuple[Analysis, ...], nets: int) -> int:
        """Progress units: one per net and analysis, plus one per landscape point."""
        points = self.landscape_points ** self.landscape_dims
        return nets * sum(points if a is Analysis.LANDSCAPE else 1 for a in analyses)


def analyse(runs: TrainedRuns, analyses: tuple[Analysis, ...] = tuple(Analysis),
            options: AnalysisOptions = AnalysisOptions(),
            progress: Progress | None = None) -> dict[str, pd.DataFrame]:
    """Tables ``lesion_blocks``, ``lesion_count``, ``responses``, ``landscape`` and
    ``landscape_summary`` (those asked for), one row group per (model, seed)."""
    x, y = evaluation_batch(runs.dataset, options.split, options.limit)
    lx, ly = evaluation_batch(runs.dataset, options.landscape_split, options.landscape_limit)
    rows: dict[str, list[dict[str, Any]]] = {}
    for net in runs.nets:
        key = {"model": net.model, "seed": net.seed, "net_depth": net.depth,
               "shortcut": net.shortcut}
        if Analysis.LESION in analyses:
            _describe(progress, "lesions", net)
            if "block" in options.lesion_views:
                rows.setdefault("lesion_blocks", []).extend(
                    {**key, **row} for row in lesion_by_block(net.net, x, y))
            if "count" in options.lesion_views:
                rows.setdefault("lesion_count", []).extend(
                    {**key, **row} for row in lesion_by_count(
                        net.net, x, y, options.lesion_samples, options.lesion_max_removed,
                        seed=net.seed))
            _step(progress)
        if Analysis.RESPONSES in analyses:
            _describe(progress, "layer responses", net)
            rows.setdefault("responses", []).extend(
                {**key, **row} for row in layer_responses(net.net, x))
            _step(progress)
        if Analysis.LANDSCAPE in analyses:
            _describe(progress, "loss landscape", net)
            points = landscape(net.net, lx, ly, options.landscape_points,
                               options.landscape_extent, options.landscape_dims,
                               seed=options.direction_seed, progress=progress)
            rows.setdefault("landscape", []).extend({**key, **row} for row in points)
            rows.setdefault("landscape_summary", []).append({**key, **slice_summary(points)})
    return {name: frame(table) for name, table in rows.items()}


def _describe(progress: Progress | None, what: str, net: TrainedNet) -> None:
    if progress is not None:
        progress.set_description(f"{what}: {net.model} seed {net.seed}")


def _step(progress: Progress | None) -> None:
    if progress is not None:
        progress.update(1)


def data_note(runs: TrainedRuns, options: AnalysisOptions) -> str:
    subset = lambda split, limit: (f"the {split} split" if limit is None  # noqa: E731
                                   else f"the first {limit} images of the {split} split")
    return (f"Nets: {runs.source}. Data: {runs.dataset.description}. Lesions and responses "
            f"use {subset(options.split, options.limit)}; the landscape uses "
            f"{subset(options.landscape_split, options.landscape_limit)}, BN statistics "
            f"{BN_STATISTICS}.")


def explain(runs: TrainedRuns, analyses: tuple[Analysis, ...] = tuple(Analysis),
            options: AnalysisOptions = AnalysisOptions(), progress: Progress | None = None
            ) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The analyses' tables plus ``why_findings``, and what the report says about them
    (``why_*`` environment keys: data, nets not analysed, nets that did not train, rule)."""
    tables = analyse(runs, analyses, options, progress)
    tables["why_findings"] = findings(tables)
    bar = TRAINED_FRACTION * (1 - 1 / runs.dataset.num_classes)
    environment = {"why_data": data_note(runs, options), "why_rule": FINDINGS_RULE,
                   "why_not_analysed": list(runs.skipped),
                   "why_untrained": [f"{net.model} seed {net.seed} ({net.final_train_error:.3f}"
                                     f" ≥ {bar:.3f})" for net in runs.nets
                                     if net.final_train_error >= bar]}
    return tables, environment


def explain_cached(runs: TrainedRuns, cached_runs: list[dict[str, Any]],
                   analyses: tuple[Analysis, ...], options: AnalysisOptions,
                   progress: Progress | None, cache: ResultCache
                   ) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """``explain``, reused from ``cache`` when every net is a cached run (``cached_runs``: the
    DegradationResult's rows naming each run's cache key) and the analyses and options are
    the same; else computed and stored."""
    run_keys = {(row["model"], row["seed"]): row["cache_key"] for row in cached_runs}
    keys = [run_keys.get((net.model, net.seed)) for net in runs.nets]
    if not keys or None in keys:
        return explain(runs, analyses, options, progress)
    key = cache.key({"format": 1, "runs": sorted(keys), "analyses": [a.value for a in analyses],
                     "options": asdict(options)})
    found = cache.lookup(key)
    if found is not None:
        if progress is not None:
            progress.update(options.work(analyses, len(runs.nets)))
        tables = {name: pd.DataFrame.from_records(rows)
                  for name, rows in found["tables"].items()}
        return tables, {**found["environment"], "why_reused": True}
    tables, environment = explain(runs, analyses, options, progress)
    cache.store(key, {"tables": {name: json.loads(to_json_records(df))
                                 for name, df in tables.items()},
                      "environment": environment})
    return tables, environment


# --- the papers' claims, tested -------------------------------------------------------------

FINDINGS_RULE = (
    "Each claim compares the plain and residual nets of one depth, paired by seed, with a "
    "Student-t 95% interval over the seeds both finished. It holds when the interval lies "
    "wholly on the claimed side of zero; it is 'not measurable' when the interval contains "
    "zero, and 'needs 2 seeds' with one. Lesion: mean error increase over the deletable "
    "non-downsampling blocks, plain minus residual (claim: > 0). Responses: mean over rank "
    "positions of log10(residual std / plain std) in the sorted curves (claim: < 0; the "
    "curves' lengths match for twins). Landscape: the 1-D slice's mean loss rise at ±0.5, "
    "plain minus residual (claim: > 0).")


class Outcome(StrEnum):
    HOLDS = "holds"
    FAILS = "does not hold"
    NOT_MEASURABLE = "not measurable"
    TOO_FEW_SEEDS = "needs 2 seeds"


def findings(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per (claim, depth): the per-seed values, the paired difference and the
    outcome under FINDINGS_RULE."""
    rows = []
    if "lesion_blocks" in tables:
        deletable = tables["lesion_blocks"].dropna(subset=["error"])
        deletable = deletable[~deletable["downsampling"]]
        cost = (deletable.assign(increase=deletable["error"] - deletable["baseline_error"])
                .groupby(["net_depth", "shortcut", "seed"])["increase"].mean())
        rows += _claim("one non-downsampling block deleted: error rise (plain − residual)",
                       cost, expect_positive=True)
    if "responses" in tables:
        rows += _claim("sorted response std: mean log10(residual / plain)",
                       _response_log_ratio(tables["responses"]), expect_positive=False,
                       already_paired=True)
    if "landscape_summary" in tables and "loss_rise_at_0.5" in tables["landscape_summary"]:
        rise = tables["landscape_summary"].set_index(["net_depth", "shortcut", "seed"])[
            "loss_rise_at_0.5"]
        rows += _claim("1-D slice: loss rise at ±0.5 (plain − residual)", rise,
                       expect_positive=True)
    return frame(rows)


def _response_log_ratio(responses: pd.DataFrame) -> pd.Series:
    values = {}
    for (depth, seed), group in responses.groupby(["net_depth", "seed"]):
        curves = {shortcut: np.sort(g["response_std"].to_numpy())[::-1]
                  for shortcut, g in group.groupby("shortcut")}
        if len(curves) == 2 and len(curves[True]) == len(curves[False]):
            values[(depth, seed)] = float(np.mean(np.log10(curves[True] / curves[False])))
    index = pd.MultiIndex.from_tuples(list(values), names=["net_depth", "seed"])
    return pd.Series(list(values.values()), index=index, dtype=float)


def _claim(claim: str, values: pd.Series, expect_positive: bool, already_paired: bool = False
           ) -> list[dict[str, Any]]:
    """``values`` by (net_depth, shortcut, seed), or by (net_depth, seed) when
    ``already_paired``."""
    rows = []
    for depth in sorted(values.index.get_level_values("net_depth").unique()):
        at_depth = values.xs(depth, level="net_depth")
        if already_paired:
            per_seed = at_depth.to_dict()
        else:
            if at_depth.index.get_level_values("shortcut").nunique() < 2:
                continue
            pivot = at_depth.unstack("shortcut").dropna()
            per_seed = (pivot[False] - pivot[True]).to_dict()
        if not per_seed:
            continue
        seeds = sorted(per_seed)
        diffs = [per_seed[s] for s in seeds]
        interval = mean_interval(diffs)  # the differences are already paired by seed
        if math.isnan(interval.low):
            outcome = Outcome.TOO_FEW_SEEDS
        elif interval.contains(0.0):
            outcome = Outcome.NOT_MEASURABLE
        elif (interval.estimate > 0) == expect_positive:
            outcome = Outcome.HOLDS
        else:
            outcome = Outcome.FAILS
        rows.append({"claim": claim, "depth": int(depth), "seeds": len(seeds),
                     "per_seed": ", ".join(f"{v:+.3f}" for v in diffs),
                     "mean": interval.estimate, "ci95_low": interval.low,
                     "ci95_high": interval.high,
                     "spread_std": statistics.stdev(diffs) if len(diffs) > 1 else math.nan,
                     "outcome": outcome.value})
    return rows


__all__ = ["Analysis", "AnalysisOptions", "FINDINGS_RULE", "Outcome", "TrainedRuns",
           "analyse", "data_note", "explain", "explain_cached", "findings", "load_trained"]
