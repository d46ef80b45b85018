"""The papers' claims about why residual nets train, each tested on the analyses' tables: one
row per (claim, depth), with typed columns only (numbers, a ``Claim`` id, an ``Outcome``).
``resnet_probe.report.words`` states the rule (``FINDINGS_RULE``) and says each row in words.

The rule, with the constants below:

* Each claim is a per-seed difference between the plain and the residual net at one depth (or
  a per-seed value of one net), oriented so that the claim says "above zero"; its mean gets a
  Student-t 95% interval over the seeds (``resnet_probe.stats.mean_interval``). The depth's
  outcome: *holds* when the interval lies above zero, *does not hold* when below, *not
  measurable* when it contains zero, *needs 2 seeds* with one.
* Before that, a pair that cannot be compared blocks the depth: *inconclusive* when a net did
  not train (lesions: its test error is not below TRAINED_FRACTION of chance; landscape and
  Hessian: its training loss at the trained weights is not below LOW_LOSS); *confounded*
  when the two nets' losses at the trained weights differ by more than
  MATCHED_LOSS_FRACTION of the chance loss ln C (landscape and Hessian: both measures change
  with depth into a minimum, so nets at different losses differ for that reason alone);
  *not testable at this budget* when a net's BN scales have barely moved from 1 (responses:
  the median over its response layers of mean |γ - 1| is below MIN_GAMMA_DRIFT; at γ = 1 a
  BN output has unit variance whatever the net learned).
* The landscape and Hessian claims carry a no-degradation control: the same difference on
  the shallowest pair of the run (the compared nets' siblings), trained the same way. At every
  deeper depth, the excess = deep difference - control difference is paired by seed with its
  t interval. A depth whose own outcome is *holds* keeps it only when the excess's interval
  lies above zero; when it contains zero or lies below, the outcome is *not beyond the
  control*; with no usable control (one depth, fewer than 2 seeds in common, or a control
  pair that is blocked or needs seeds) it is *no control*. Other outcomes stand, with the
  control's numbers beside them. The control pair's own row has role "control".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from resnet_probe.analysis.measurements import WhyTables
from resnet_probe.results import frame
from resnet_probe.stats import Interval, mean_interval
from resnet_probe.train.verdict import TRAINED_FRACTION

LOW_LOSS = 0.5  # cross-entropy at the trained weights below which a net sits near a minimum
# Two nets' losses at the trained weights match within this share of the chance loss ln C
# (0.23 nats for 10 classes): the half-way loss, L0 + (ln C - L0)/2, then moves by at most
# 0.12 nats between them, a twentieth of the way from a minimum to chance.
MATCHED_LOSS_FRACTION = 0.1
# Responses are BN outputs: with γ within 10% of 1 (β near 0), each sits within about ±0.04
# in log10 of its value at init whatever the net learned, so a difference between the nets'
# sorted curves says nothing about what their layers do.
MIN_GAMMA_DRIFT = 0.1


class Claim(StrEnum):
    """Each claim tested, by id; ``report.words.CLAIM_NAMES`` says each in words."""

    LESION_BLOCKS = "lesion_blocks"  # one block deleted: relative rise, plain - residual
    LESION_COUNT = "lesion_count"  # k blocks deleted: k_half, residual - plain
    PATHS = "paths"  # half the blocks - effective path length (residual)
    RESPONSES = "responses"  # mean log10(residual std / plain std), sign flipped
    LANDSCAPE = "landscape_radius"  # half-way radius, residual - plain
    HESSIAN = "hessian_ratio"  # |λmin/λmax|, plain - residual


class Outcome(StrEnum):
    HOLDS = "holds"
    FAILS = "does not hold"
    NOT_MEASURABLE = "not measurable"
    TOO_FEW_SEEDS = "needs 2 seeds"
    INCONCLUSIVE = "inconclusive: a net did not train"
    CONFOUNDED = "confounded: the nets sit at different losses"
    NOT_TESTABLE = "not testable at this budget"
    WITHIN_CONTROL = "not beyond the control"
    NO_CONTROL = "no control"


class Role(StrEnum):
    TESTED = "tested"
    CONTROL = "control"  # the shallow pair another depth's claim is measured against


@dataclass(frozen=True)
class Blocked:
    """A net (or pair) that keeps a depth from being tested, and the number why."""

    model: str
    seed: int
    measure: str  # the column read: baseline_error, loss_at_0, loss, gamma_drift, ...
    value: float
    bar: float  # what it had to be below (for a loss difference: the tolerance)

    def record(self) -> dict[str, Any]:
        return {"model": self.model, "seed": self.seed, "measure": self.measure,
                "value": self.value, "bar": self.bar}


@dataclass(frozen=True)
class DepthTest:
    """One claim at one depth, before the control: the per-seed values, their interval and
    the outcome, with what blocked it."""

    per_seed: dict[int, float]
    interval: Interval
    outcome: Outcome
    blocked: tuple[Blocked, ...] = ()
    blocked_as: Outcome | None = None


def findings(tables: WhyTables, classes: int = 10) -> pd.DataFrame:
    """One row per (claim, depth): the per-seed values (``seed_list``, ``per_seed``), their
    mean and 95% interval, the outcome by the rule above (``outcome_at_depth`` before the
    control, ``outcome`` after), what blocked it (``blocked``: model, seed, measure, value,
    bar), and for the controlled claims the control pair's numbers and the excess over it."""
    bar = TRAINED_FRACTION * (1 - 1 / classes)
    tolerance = MATCHED_LOSS_FRACTION * math.log(classes)
    rows: list[dict[str, Any]] = []
    if not tables.lesion_blocks.empty:
        lesions = tables.lesion_blocks
        deletable = lesions.dropna(subset=["error"])
        deletable = deletable[~deletable["downsampling"].astype(bool)]
        rise = deletable.groupby(["net_depth", "shortcut", "seed"])["relative_rise"].mean()
        rows += _rows(Claim.LESION_BLOCKS, _per_depth(
            rise, blocks=[_not_below(lesions, "baseline_error", bar, Outcome.INCONCLUSIVE)]))
    if not tables.lesion_count.empty:
        curves = tables.lesion_count.drop_duplicates(["net_depth", "shortcut", "seed"])
        half = curves.set_index(["net_depth", "shortcut", "seed"])["k_half"]
        baselines = tables.lesion_count[tables.lesion_count["removed"] == 0]
        rows += _rows(Claim.LESION_COUNT, _per_depth(
            half, sign=-1, blocks=[_not_below(baselines, "error", bar, Outcome.INCONCLUSIVE)]))
    if not tables.paths.empty:
        paths = tables.paths.drop_duplicates(["net_depth", "seed"])
        margin = (paths["blocks"] / 2 - paths["effective_length"]).to_numpy()
        index = pd.MultiIndex.from_arrays([paths["net_depth"], paths["seed"]],
                                          names=["net_depth", "seed"])
        rows += _rows(Claim.PATHS, _per_depth(pd.Series(margin, index=index),
                                              already_paired=True))
    if not tables.responses.empty:
        responses = tables.responses
        drift = gamma_drift(responses)
        rows += _rows(Claim.RESPONSES, _per_depth(
            -_response_log_ratio(responses), already_paired=True,
            blocks=[_not_above(drift, "gamma_drift", MIN_GAMMA_DRIFT, Outcome.NOT_TESTABLE)]))
    if "half_way_radius" in tables.landscape_summary:
        summary = tables.landscape_summary
        radius = summary.set_index(["net_depth", "shortcut", "seed"])["half_way_radius"]
        rows += _controlled(Claim.LANDSCAPE, _per_depth(radius, sign=-1, blocks=[
            _not_below(summary, "loss_at_0", LOW_LOSS, Outcome.INCONCLUSIVE),
            _unmatched(summary, "loss_at_0", tolerance)]))
    if not tables.hessian.empty:
        hessian = tables.hessian
        ratio = hessian.set_index(["net_depth", "shortcut", "seed"])["min_max_ratio"]
        rows += _controlled(Claim.HESSIAN, _per_depth(ratio, blocks=[
            _not_below(hessian, "loss", LOW_LOSS, Outcome.INCONCLUSIVE),
            _unmatched(hessian, "loss", tolerance)]))
    return frame(rows)


# --- what blocks a depth ----------------------------------------------------------------------

BlockMap = tuple[Outcome, dict[tuple[int, int], list[Blocked]]]


def _nets(table: pd.DataFrame) -> list[dict[str, Any]]:
    """One record per net (model, seed) of a table."""
    return [{str(k): v for k, v in row.items()}
            for row in table.drop_duplicates(["model", "seed"]).to_dict("records")]


def _not_below(table: pd.DataFrame, column: str, bar: float, outcome: Outcome) -> BlockMap:
    """(depth, seed) -> the nets there whose ``column`` is not below ``bar``."""
    found: dict[tuple[int, int], list[Blocked]] = {}
    for net in _nets(table):
        value = float(net[column])
        if not value < bar:
            found.setdefault((int(net["net_depth"]), int(net["seed"])), []).append(
                Blocked(str(net["model"]), int(net["seed"]), column, value, bar))
    return outcome, found


def _not_above(table: pd.DataFrame, column: str, bar: float, outcome: Outcome) -> BlockMap:
    """(depth, seed) -> the nets there whose ``column`` is below ``bar`` (NaN passes)."""
    found: dict[tuple[int, int], list[Blocked]] = {}
    for net in _nets(table):
        value = float(net[column])
        if value < bar:
            found.setdefault((int(net["net_depth"]), int(net["seed"])), []).append(
                Blocked(str(net["model"]), int(net["seed"]), column, value, bar))
    return outcome, found


def _unmatched(table: pd.DataFrame, column: str, tolerance: float) -> BlockMap:
    """(depth, seed) -> the plain net of a pair whose ``column`` differs from its residual
    twin's by more than ``tolerance`` (value: plain minus residual)."""
    pairs: dict[tuple[int, int], dict[bool, dict[str, Any]]] = {}
    for net in _nets(table):
        key = (int(net["net_depth"]), int(net["seed"]))
        pairs.setdefault(key, {})[bool(net["shortcut"])] = net
    found: dict[tuple[int, int], list[Blocked]] = {}
    for (depth, seed), pair in pairs.items():
        if len(pair) < 2:
            continue
        gap = float(pair[False][column]) - float(pair[True][column])
        if not abs(gap) <= tolerance:
            found[(depth, seed)] = [Blocked(str(pair[False]["model"]), seed,
                                            f"{column} plain - residual", gap, tolerance)]
    return Outcome.CONFOUNDED, found


def gamma_drift(responses: pd.DataFrame) -> pd.DataFrame:
    """Per net (model, seed, net_depth, shortcut): ``gamma_drift``, the median over its
    response layers that are BNs of their mean |γ - 1|; NaN where none is a BN (a
    pre-activation net's responses are conv outputs)."""
    keys = ["model", "seed", "net_depth", "shortcut"]
    if "gamma_drift" not in responses:
        return frame([]).reindex(columns=[*keys, "gamma_drift"])
    drift: pd.DataFrame = responses.groupby(keys, as_index=False)[["gamma_drift"]].median()
    return drift


# --- the test at each depth -------------------------------------------------------------------

def _per_depth(values: pd.Series, sign: int = 1, already_paired: bool = False,
               blocks: list[BlockMap] | None = None) -> dict[int, DepthTest]:
    """``values`` by (net_depth, shortcut, seed), differenced plain minus residual (times
    ``sign``), or by (net_depth, seed) when ``already_paired``; tested at each depth."""
    tested: dict[int, DepthTest] = {}
    for depth in sorted(int(d) for d in values.index.get_level_values("net_depth").unique()):
        at_depth = values.xs(depth, level="net_depth")
        if already_paired:
            by_seed = at_depth
        else:
            if at_depth.index.get_level_values("shortcut").nunique() < 2:
                continue
            pivot = at_depth.unstack("shortcut")
            by_seed = (pivot[False] - pivot[True]) * sign
        per_seed = {int(seed): float(value) for seed, value in
                    zip(by_seed.index, by_seed.to_numpy(), strict=True)}
        blocked: tuple[Blocked, ...] = ()
        blocked_as = None
        for outcome, found in blocks or []:  # the first that applies names the outcome
            hits = tuple(b for seed in per_seed for b in found.get((depth, seed), []))
            if hits:
                blocked, blocked_as = hits, outcome
                break
        if not blocked:  # a pair with a missing value cannot be compared
            per_seed = {s: v for s, v in per_seed.items() if v == v}
        if per_seed:
            tested[depth] = _test(dict(sorted(per_seed.items())), blocked, blocked_as)
    return tested


def _test(per_seed: dict[int, float], blocked: tuple[Blocked, ...] = (),
          blocked_as: Outcome | None = None) -> DepthTest:
    finite = [v for v in per_seed.values() if v == v]
    interval = mean_interval(finite) if finite else mean_interval([math.nan])
    if blocked_as is not None:
        outcome = blocked_as
    else:
        outcome = _by_interval(interval)
    return DepthTest(per_seed, interval, outcome, blocked, blocked_as)


def _by_interval(interval: Interval) -> Outcome:
    if math.isnan(interval.low):
        return Outcome.TOO_FEW_SEEDS
    if interval.contains(0.0):
        return Outcome.NOT_MEASURABLE
    return Outcome.HOLDS if interval.estimate > 0 else Outcome.FAILS


# --- the control ------------------------------------------------------------------------------

def control_outcome(deep: DepthTest, control: DepthTest | None) -> tuple[Outcome, Interval | None]:
    """The rule's last step: a deep depth that holds keeps it only when its excess over the
    control (per seed, deep minus control, over the seeds both have) has a 95% interval above
    zero. Returns the outcome and the excess's interval (None without a usable control)."""
    usable = control is not None and control.blocked_as is None and not math.isnan(
        control.interval.low)
    excess = None
    if control is not None:
        common = sorted(set(deep.per_seed) & set(control.per_seed))
        differences = [deep.per_seed[s] - control.per_seed[s] for s in common]
        differences = [d for d in differences if d == d]
        if differences:
            excess = mean_interval(differences)
    if deep.outcome is not Outcome.HOLDS:
        return deep.outcome, excess
    if not usable or excess is None or math.isnan(excess.low):
        return Outcome.NO_CONTROL, excess
    return (Outcome.HOLDS if excess.low > 0 else Outcome.WITHIN_CONTROL), excess


def _controlled(claim: Claim, tested: dict[int, DepthTest]) -> list[dict[str, Any]]:
    """Rows for a claim with a control: the shallowest depth is the control pair of every
    deeper one."""
    if not tested:
        return []
    shallowest = min(tested)
    control = tested[shallowest]
    rows = []
    for depth, found in sorted(tested.items()):
        if depth == shallowest:
            outcome = found.outcome if len(tested) > 1 else control_outcome(found, None)[0]
            rows.append(_row(claim, depth, found, Role.CONTROL if len(tested) > 1
                             else Role.TESTED, outcome))
            continue
        outcome, excess = control_outcome(found, control)
        rows.append({**_row(claim, depth, found, Role.TESTED, outcome),
                     "control_depth": shallowest, "control_seeds": len(control.per_seed),
                     "control_mean": control.interval.estimate,
                     "control_ci95_low": control.interval.low,
                     "control_ci95_high": control.interval.high,
                     "control_outcome": control.outcome.value,
                     "excess_mean": excess.estimate if excess else math.nan,
                     "excess_ci95_low": excess.low if excess else math.nan,
                     "excess_ci95_high": excess.high if excess else math.nan})
    return rows


def _rows(claim: Claim, tested: dict[int, DepthTest]) -> list[dict[str, Any]]:
    return [_row(claim, depth, found, Role.TESTED, found.outcome)
            for depth, found in sorted(tested.items())]


def _row(claim: Claim, depth: int, found: DepthTest, role: Role, outcome: Outcome
         ) -> dict[str, Any]:
    values = list(found.per_seed.values())
    finite = [v for v in values if v == v]
    return {"claim": claim.value, "depth": depth, "role": role.value,
            "seeds": len(values), "seed_list": list(found.per_seed),
            "per_seed": values, "mean": found.interval.estimate,
            "ci95_low": found.interval.low, "ci95_high": found.interval.high,
            "spread_std": float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan,
            "outcome_at_depth": found.outcome.value, "outcome": outcome.value,
            "blocked": [b.record() for b in found.blocked]}


def _response_log_ratio(responses: pd.DataFrame) -> pd.Series:
    values = {}
    for (depth, seed), group in responses.groupby(["net_depth", "seed"]):
        curves = {shortcut: np.sort(g["response_std"].to_numpy())[::-1]
                  for shortcut, g in group.groupby("shortcut")}
        if len(curves) == 2 and len(curves[True]) == len(curves[False]):
            values[(depth, seed)] = float(np.mean(np.log10(curves[True] / curves[False])))
    index = pd.MultiIndex.from_tuples(list(values), names=["net_depth", "seed"])
    return pd.Series(list(values.values()), index=index, dtype=float)
