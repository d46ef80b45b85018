"""Why residual nets train: the classic measurements on trained nets.

* lesions (Veit et al. 2016): ``lesion.py``;
* effective path lengths (Veit et al. 2016, Fig. 6): ``paths.py``;
* layer responses (He et al. 2016, Fig. 7): ``responses.py``;
* loss-landscape slices (Li et al. 2018): ``landscape.py``;
* Hessian spectra (Li et al. 2018, Fig. 7; pyhessian's approach): ``hessian.py``.

``analyse`` runs any of them over the trained nets of a run and returns tidy tables;
``findings`` tests the papers' claims on those tables, each by the rule FINDINGS_RULE states.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from resnet_probe.analysis.hessian import hessian_extremes
from resnet_probe.analysis.landscape import BN_STATISTICS, landscape, slice_summary
from resnet_probe.analysis.lesion import k_half, lesion_by_block, lesion_by_count
from resnet_probe.analysis.paths import effective_length, path_gradients
from resnet_probe.analysis.responses import layer_responses
from resnet_probe.analysis.trained import (
    TrainedNet,
    TrainedRuns,
    evaluation_batch,
    load_trained,
)
from resnet_probe.cache import DamagedEntry, json_decoder, json_encoder, results_store
from resnet_probe.errors import InvalidRequest
from resnet_probe.progress import NO_PROGRESS, Progress
from resnet_probe.results import declared_tables, frame, table, to_json_records
from resnet_probe.settings import check_settings, setting
from resnet_probe.stats import mean_interval
from resnet_probe.train.verdict import TRAINED_FRACTION
from resnet_probe.untrusted import checked

SPLITS = ("test", "train")


class Analysis(StrEnum):
    LESION = "lesion"
    RESPONSES = "responses"
    LANDSCAPE = "landscape"
    PATHS = "paths"
    HESSIAN = "hessian"


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
    landscape_directions: int = setting(5, "Filter-normalised random directions per net; the "
                                        "rise at ±0.5 is averaged over them, with its spread.",
                                        minimum=1, flag="--directions")
    hessian_images: int = setting(128, "Training images the Hessian of the loss is taken on.",
                                  minimum=1, flag="--images")
    hessian_iterations: int = setting(20, "Lanczos iterations (Hessian-vector products) per "
                                      "net.", minimum=2, flag="--iterations")
    path_images: int = setting(16, "Test images whose input gradients the path-length "
                               "samples average.", minimum=1, flag="--images")
    path_samples: int = setting(3, "Random branch choices sampled per path length.",
                                minimum=1, flag="--samples")
    deep_pair_only: bool = False  # compare analyses only the deepest plain and residual nets

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
        points = self.landscape_points ** self.landscape_dims * (
            self.landscape_directions if self.landscape_dims == 1 else 1)
        return nets * sum(points if a is Analysis.LANDSCAPE else 1 for a in analyses)


def analyse(runs: TrainedRuns, analyses: tuple[Analysis, ...] = tuple(Analysis),
            options: AnalysisOptions = AnalysisOptions(),
            progress: Progress = NO_PROGRESS) -> dict[str, pd.DataFrame]:
    """Tables ``lesion_blocks``, ``lesion_count``, ``paths``, ``responses``, ``landscape``,
    ``landscape_summary`` and ``hessian`` (those asked for), one row group per (model,
    seed)."""
    x, y = evaluation_batch(runs.dataset, options.split, options.limit)
    lx, ly = evaluation_batch(runs.dataset, options.landscape_split, options.landscape_limit)
    hx, hy = evaluation_batch(runs.dataset, "train", options.hessian_images)
    px, py = evaluation_batch(runs.dataset, options.split, options.path_images)
    chance = 1 - 1 / runs.dataset.num_classes
    rows: dict[str, list[dict[str, Any]]] = {}

    def add(table: str, found: list[dict[str, Any]], key: dict[str, Any]) -> None:
        rows.setdefault(table, []).extend({**key, **row} for row in found)

    for net in _analysed(runs.nets, options):
        key = {"model": net.model, "seed": net.seed, "net_depth": net.depth,
               "shortcut": net.shortcut}
        if Analysis.LESION in analyses:
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
        if Analysis.PATHS in analyses:
            _describe(progress, "path lengths", net)
            found = path_gradients(net.net, px, py, options.path_samples, seed=net.seed)
            length = effective_length(found) if found else math.nan
            add("paths", [{**row, "effective_length": length} for row in found], key)
            progress.update(1)
        if Analysis.RESPONSES in analyses:
            _describe(progress, "layer responses", net)
            add("responses", layer_responses(net.net, x), key)
            progress.update(1)
        if Analysis.LANDSCAPE in analyses:
            _describe(progress, "loss landscape", net)
            points = landscape(net.net, lx, ly, options.landscape_points,
                               options.landscape_extent, options.landscape_dims,
                               seed=options.direction_seed,
                               directions=options.landscape_directions, progress=progress)
            add("landscape", points, key)
            add("landscape_summary", [slice_summary(points)], key)
        if Analysis.HESSIAN in analyses:
            _describe(progress, "Hessian spectrum", net)
            add("hessian", [hessian_extremes(net.net, hx, hy, options.hessian_iterations,
                                             seed=options.direction_seed)], key)
            progress.update(1)
    return {name: frame(table) for name, table in rows.items()}


def _analysed(nets: list[TrainedNet], options: AnalysisOptions) -> list[TrainedNet]:
    """The nets the options ask for: all, or the deepest plain and residual nets."""
    if not options.deep_pair_only or not nets:
        return nets
    deepest = max(net.depth for net in nets)
    return [net for net in nets if net.depth == deepest]


def _describe(progress: Progress, what: str, net: TrainedNet) -> None:
    progress.set_description(f"{what}: {net.model} seed {net.seed}")


def _step(progress: Progress) -> None:
    progress.update(1)


def data_note(runs: TrainedRuns, options: AnalysisOptions) -> str:
    subset = lambda split, limit: (f"the {split} split" if limit is None  # noqa: E731
                                   else f"the first {limit} images of the {split} split")
    return (f"Nets: {runs.source}. Data: {runs.dataset.description}. Lesions and responses "
            f"use {subset(options.split, options.limit)}; the landscape uses "
            f"{subset(options.landscape_split, options.landscape_limit)}, BN statistics "
            f"{BN_STATISTICS}.")


@dataclass(frozen=True)
class WhyPart:
    """The analyses of the trained nets, and the papers' claims tested on them."""

    lesion_blocks: pd.DataFrame = table("lesion_blocks")
    lesion_count: pd.DataFrame = table("lesion_count")
    responses: pd.DataFrame = table("responses")
    landscape: pd.DataFrame = table("landscape")
    landscape_summary: pd.DataFrame = table("landscape_summary")
    paths: pd.DataFrame = table("paths")
    hessian: pd.DataFrame = table("hessian")
    findings: pd.DataFrame = table("why_findings")
    data: str = ""  # which nets and images, in words
    rule: str = ""
    not_analysed: tuple[str, ...] = ()
    untrained: tuple[str, ...] = ()
    reused: bool = False
    seconds: float = 0.0

    @classmethod
    def from_tables(cls, tables: dict[str, pd.DataFrame], **facts: Any) -> WhyPart:
        """A part from the analyses' tables by saved name; the absent ones are empty."""
        names = {f.metadata["table"]: f.name for f in cls.__dataclass_fields__.values()
                 if "table" in f.metadata}
        unknown = set(tables) - set(names)
        if unknown:
            raise ValueError(f"not tables of the Why part: {', '.join(sorted(unknown))}")
        return cls(**{names[key]: value for key, value in tables.items()},
                   **{name: frame([]) for key, name in names.items() if key not in tables},
                   **facts)

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name).empty for f in self.__dataclass_fields__.values()
                   if "table" in f.metadata)



def explain(runs: TrainedRuns, analyses: tuple[Analysis, ...] = tuple(Analysis),
            options: AnalysisOptions = AnalysisOptions(), progress: Progress = NO_PROGRESS
            ) -> WhyPart:
    """The analyses' tables, the papers' claims tested on them, and what the report says
    about them (data, nets not analysed, nets that did not train, the rule)."""
    started = time.perf_counter()
    tables = analyse(runs, analyses, options, progress)
    tables["why_findings"] = findings(tables, runs.dataset.num_classes)
    bar = TRAINED_FRACTION * (1 - 1 / runs.dataset.num_classes)
    return WhyPart.from_tables(
        tables, data=data_note(runs, options), rule=FINDINGS_RULE,
        not_analysed=tuple(runs.skipped),
        untrained=tuple(f"{net.model} seed {net.seed} ({net.final_train_error:.3f} ≥ "
                        f"{bar:.3f})" for net in runs.nets if net.final_train_error >= bar),
        seconds=round(time.perf_counter() - started, 1))


def explain_cached(runs: TrainedRuns, cached_runs: list[dict[str, Any]],
                   analyses: tuple[Analysis, ...], options: AnalysisOptions,
                   progress: Progress, fresh: bool = False) -> WhyPart:
    """``explain``, reused from the cache of results when every net is a cached run
    (``cached_runs``: rows naming each run's cache key) and the analyses and options are the
    same; else computed and stored."""
    run_keys = {(row["model"], row["seed"]): row["cache_key"] for row in cached_runs}
    keys = [run_keys.get((net.model, net.seed)) for net in runs.nets]
    if not keys or None in keys:
        return explain(runs, analyses, options, progress)
    # format 3: the k-curve claim read plain − residual before (a double negation)
    content = {"format": 3, "runs": sorted(k for k in keys if k),
               "analyses": [a.value for a in analyses], "options": asdict(options)}
    started = time.perf_counter()
    cached = results_store(fresh).get_or_compute(
        content, lambda: _encoded(explain(runs, analyses, options, progress)),
        json_encoder, _checked_why)
    if cached.reused:
        progress.update(options.work(analyses, len(_analysed(runs.nets, options))))
    value = cached.value
    tables = {name: pd.DataFrame.from_records(rows) for name, rows in value["tables"].items()}
    facts = {**value["facts"], "not_analysed": tuple(value["facts"]["not_analysed"]),
             "untrained": tuple(value["facts"]["untrained"]), "reused": cached.reused}
    if cached.reused:  # this run's time, not the stored run's
        facts["seconds"] = round(time.perf_counter() - started, 1)
    return WhyPart.from_tables(tables, **facts)


def _encoded(part: WhyPart) -> dict[str, Any]:
    tables = {name: json.loads(to_json_records(df)) for name, df in declared_tables(part).items()}
    facts = {name: getattr(part, name) for name in ("data", "rule", "seconds")}
    facts.update(not_analysed=list(part.not_analysed), untrained=list(part.untrained))
    return {"tables": tables, "facts": facts}


def _checked_why(folder: Path) -> dict[str, Any]:
    value = json_decoder(folder)
    checked(value, {"tables": dict, "facts": dict}, f"cached analyses {folder}")
    checked(value["facts"], {"data": str, "rule": str, "seconds": float, "not_analysed": list,
                             "untrained": list}, f"cached analyses {folder}")
    for name, rows in value["tables"].items():
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise DamagedEntry(f"table {name!r} is not a list of rows")
    return value


# --- the papers' claims, tested -------------------------------------------------------------

LOW_LOSS = 0.5  # cross-entropy at the trained weights below which a net sits near a minimum
FINDINGS_RULE = (
    "Each claim is tested at one depth, paired by seed, with a Student-t 95% interval over the "
    "seeds (resnet_probe.stats): it holds when the interval lies wholly on the claimed side "
    "of zero, does not hold when it lies wholly on the other side, is 'not measurable' when "
    "it contains zero, and needs 2 seeds with one. A claim is 'inconclusive' when a net it "
    "compares did not train: for lesions, its own test error is not below 3/4 of chance (it "
    "has no room to lose); for the landscape and the Hessian, its training loss at the "
    f"trained weights is not below {LOW_LOSS} (it is not at a minimum). Lesion: the mean "
    "relative rise, (error - own error) / (chance - own error), over the deletable "
    "non-downsampling blocks, plain minus residual (claim: > 0). Lesion curve: k_half, the "
    "number of deleted blocks that takes a net halfway to chance, residual minus plain "
    "(claim: > 0). Paths: half the number of blocks minus the effective path length of the "
    "residual net (claim: > 0, the gradient comes from short paths). Responses: mean over "
    "rank positions of log10(residual std / plain std) in the sorted curves (claim: < 0). "
    "Landscape: the relative loss rise at ±0.5, averaged over the directions, plain minus "
    "residual (claim: > 0). Hessian: |λmin/λmax|, plain minus residual (claim: > 0).")


class Outcome(StrEnum):
    HOLDS = "holds"
    FAILS = "does not hold"
    NOT_MEASURABLE = "not measurable"
    TOO_FEW_SEEDS = "needs 2 seeds"
    INCONCLUSIVE = "inconclusive: a net did not train"


def findings(tables: dict[str, pd.DataFrame], classes: int = 10) -> pd.DataFrame:
    """One row per (claim, depth): the per-seed values, the paired difference, the outcome
    under FINDINGS_RULE and the evidence in words."""
    bar = TRAINED_FRACTION * (1 - 1 / classes)
    rows = []
    if "lesion_blocks" in tables:
        lesions = tables["lesion_blocks"]
        deletable = lesions.dropna(subset=["error"])
        deletable = deletable[~deletable["downsampling"].astype(bool)]
        rise = deletable.groupby(["net_depth", "shortcut", "seed"])["relative_rise"].mean()
        rows += _claim("one block deleted: relative error rise (plain − residual)", rise,
                       expect_positive=True, untrained=_untrained(lesions, "baseline_error",
                                                                  bar))
    if "lesion_count" in tables:
        curves = tables["lesion_count"].drop_duplicates(["net_depth", "shortcut", "seed"])
        half = curves.set_index(["net_depth", "shortcut", "seed"])["k_half"]
        baselines = tables["lesion_count"][tables["lesion_count"]["removed"] == 0]
        rows += _claim("k blocks deleted: k_half (residual − plain)", half,
                       expect_positive=True, untrained=_untrained(baselines, "error", bar),
                       sign=-1)
    if "paths" in tables and not tables["paths"].empty:
        paths = tables["paths"].drop_duplicates(["net_depth", "seed"])
        margin = (paths["blocks"] / 2 - paths["effective_length"]).to_numpy()
        index = pd.MultiIndex.from_arrays([paths["net_depth"], paths["seed"]],
                                          names=["net_depth", "seed"])
        rows += _claim("paths: half the blocks − the effective path length (residual)",
                       pd.Series(margin, index=index), expect_positive=True,
                       already_paired=True)
    if "responses" in tables:
        rows += _claim("sorted response std: mean log10(residual / plain)",
                       _response_log_ratio(tables["responses"]), expect_positive=False,
                       already_paired=True, expected_sign="below zero (He et al. Fig. 7)")
    if "landscape_summary" in tables and "relative_rise" in tables["landscape_summary"]:
        summary = tables["landscape_summary"]
        rise = summary.set_index(["net_depth", "shortcut", "seed"])["relative_rise"]
        rows += _claim("1-D slices: relative loss rise at ±0.5 (plain − residual)", rise,
                       expect_positive=True,
                       untrained=_untrained(summary, "loss_at_0", LOW_LOSS))
    if "hessian" in tables:
        hessian = tables["hessian"]
        ratio = hessian.set_index(["net_depth", "shortcut", "seed"])["min_max_ratio"]
        rows += _claim("Hessian: |λmin/λmax| (plain − residual)", ratio, expect_positive=True,
                       untrained=_untrained(hessian, "loss", LOW_LOSS))
    return frame(rows)


def _untrained(table: pd.DataFrame, column: str, bar: float) -> dict[tuple[int, int], str]:
    """(depth, seed) -> the nets there whose ``column`` is not below ``bar``, in words."""
    found: dict[tuple[int, int], str] = {}
    for row in table.drop_duplicates(["model", "seed"]).itertuples():
        value = getattr(row, column)
        if not value < bar:
            key = (int(row.net_depth), int(row.seed))
            found[key] = ", ".join(filter(None, [found.get(key), f"{row.model} seed "
                                                 f"{row.seed} ({column} {value:.3f})"]))
    return found


def _response_log_ratio(responses: pd.DataFrame) -> pd.Series:
    values = {}
    for (depth, seed), group in responses.groupby(["net_depth", "seed"]):
        curves = {shortcut: np.sort(g["response_std"].to_numpy())[::-1]
                  for shortcut, g in group.groupby("shortcut")}
        if len(curves) == 2 and len(curves[True]) == len(curves[False]):
            values[(depth, seed)] = float(np.mean(np.log10(curves[True] / curves[False])))
    index = pd.MultiIndex.from_tuples(list(values), names=["net_depth", "seed"])
    return pd.Series(list(values.values()), index=index, dtype=float)


def _claim(claim: str, values: pd.Series, expect_positive: bool, already_paired: bool = False,
           untrained: dict[tuple[int, int], str] | None = None, sign: int = 1,
           expected_sign: str | None = None) -> list[dict[str, Any]]:
    """``values`` by (net_depth, shortcut, seed), or by (net_depth, seed) when
    ``already_paired``; plain minus residual (times ``sign``)."""
    rows = []
    for depth in sorted(values.index.get_level_values("net_depth").unique()):
        at_depth = values.xs(depth, level="net_depth")
        if already_paired:
            per_seed = at_depth.to_dict()
        else:
            if at_depth.index.get_level_values("shortcut").nunique() < 2:
                continue
            pivot = at_depth.unstack("shortcut")
            per_seed = ((pivot[False] - pivot[True]) * sign).to_dict()
        blocked = [(untrained or {}).get((int(depth), int(seed))) for seed in per_seed]
        if not any(blocked):  # a pair with a missing value cannot be compared
            per_seed = {s: v for s, v in per_seed.items() if v == v}
        if not per_seed:
            continue
        seeds = sorted(per_seed)
        diffs = [float(per_seed[s]) for s in seeds]
        finite = [d for d in diffs if d == d]
        interval = mean_interval(finite) if finite else mean_interval([math.nan])
        if any(blocked):
            outcome = Outcome.INCONCLUSIVE
        elif math.isnan(interval.low):
            outcome = Outcome.TOO_FEW_SEEDS
        elif interval.contains(0.0):
            outcome = Outcome.NOT_MEASURABLE
        elif (interval.estimate > 0) == expect_positive:
            outcome = Outcome.HOLDS
        else:
            outcome = Outcome.FAILS
        per_seed_text = ", ".join(f"{v:+.3f}" for v in diffs)
        interval_text = (f"95% CI {interval.low:+.3f} to {interval.high:+.3f}, "
                         if interval.low == interval.low else "")
        evidence = f"mean {interval.estimate:+.3f}, {interval_text}seeds {per_seed_text}"
        opposite = sum((d > 0) == (not expect_positive) and d != 0 for d in diffs)
        if opposite and outcome is not Outcome.HOLDS:
            evidence += (f"; {opposite} of {len(diffs)} seeds on the opposite side to the "
                         f"claim{f', which expects {expected_sign}' if expected_sign else ''}")
        if any(blocked):
            evidence += f"; did not train: {'; '.join(b for b in blocked if b)}"
        rows.append({"claim": claim, "depth": int(depth), "seeds": len(seeds),
                     "per_seed": per_seed_text, "mean": interval.estimate,
                     "ci95_low": interval.low, "ci95_high": interval.high,
                     "spread_std": statistics.stdev(finite) if len(finite) > 1 else math.nan,
                     "outcome": outcome.value, "evidence": evidence})
    return rows


__all__ = ["Analysis", "AnalysisOptions", "FINDINGS_RULE", "Outcome", "TrainedRuns", "WhyPart",
           "analyse", "data_note", "explain", "explain_cached", "findings", "load_trained"]
