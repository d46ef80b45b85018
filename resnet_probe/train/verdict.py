"""The degradation verdict: one of three outcomes, from a stated rule applied to the runs.

The rule, as He et al. (2016) frame degradation: the deeper plain net against the shallower
plain net, the same for the residual pair, compared seed by seed (paired) with the 95% t
intervals of ``resnet_probe.stats``. Per seed, with E the final training error:

* plain gap = E(deep plain) - E(shallow plain); residual gap = the same for the residual nets;
* difference of differences = plain gap - residual gap;
* twin gap = E(deep plain) - E(deep residual).

Then:

* ``inconclusive`` when fewer than MIN_SEEDS (3) seeds have all four runs, when a run did not
  finish, or when a plain run did not train (its final training error is not below
  TRAINED_FRACTION, 3/4, of chance error, 1 - 1/classes);
* ``degradation observed`` when the plain gap is at least MIN_GAP (0.01) and its interval lies
  above zero, and the intervals of the difference of differences and of the twin gap lie above
  zero too: the deeper plain net trains worse than the shallower one, by more than the residual
  pair changes, and worse than its own residual twin;
* ``no degradation`` when the plain gap's interval lies wholly below MIN_GAP;
* ``inconclusive`` otherwise: the reason names the comparison whose interval contains zero.

The residual pair's own gap is reported beside the verdict with its interval ("the residual
pair degrades too" when it lies above zero); it does not decide the verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from resnet_probe.stats import SeedEstimate, seed_estimate
from resnet_probe.train.loop import RunStatus

MIN_SEEDS = 3
MIN_GAP = 0.01  # one digit-image in a hundred: below this a gap is not worth a verdict
# "Trained" = final training error below 3/4 of chance (0.675 for ten classes). The rule exists
# to set aside nets stuck at chance (plain34 at 0.867 of 0.9). It was first set at 1/2 and
# raised to 3/4 in an earlier round after a plain56 run read 0.450; it has been frozen since,
# and every seed reported now is one it was not chosen on.
TRAINED_FRACTION = 0.75


class Verdict(StrEnum):
    OBSERVED = "degradation observed"
    NONE = "no degradation"
    INCONCLUSIVE = "inconclusive"


class SeedRole(StrEnum):
    TUNING = "tuning"  # recipes, thresholds or budgets were chosen looking at it
    HELD_OUT = "held-out"  # nothing was tuned on it


# --- why the rule decided as it did: typed, put into words by report/words.py ---------------

@dataclass(frozen=True)
class RunLabel:
    model: str
    seed: int
    status: str = RunStatus.FINISHED
    final_train_error: float = math.nan


@dataclass(frozen=True)
class Unfinished:
    """Runs that stopped before their budget: no later seed can settle the verdict."""

    runs: tuple[RunLabel, ...]


@dataclass(frozen=True)
class Untrained:
    """Plain runs whose final training error is not below ``bar`` (TRAINED_FRACTION of chance)."""

    runs: tuple[RunLabel, ...]
    bar: float


@dataclass(frozen=True)
class MissingDepths:
    """The rule needs a plain and a residual net at each of two depths."""


@dataclass(frozen=True)
class TooFewSeeds:
    seeds: int  # seeds that have all four runs
    needed: int = MIN_SEEDS


@dataclass(frozen=True)
class NotAboveZero:
    """The comparisons (by name) whose interval is not wholly above zero."""

    comparisons: tuple[str, ...]


@dataclass(frozen=True)
class DegradesMoreThanResidual:
    """``degradation observed``: the deeper plain net trains worse than the shallower one, by
    more than the residual pair changes, and worse than its residual twin."""


@dataclass(frozen=True)
class PlainGapBelowMinimum:
    """``no degradation``: the plain gap's interval lies wholly below MIN_GAP."""

    minimum: float = MIN_GAP


@dataclass(frozen=True)
class StoppedEarly:
    """The remaining seeds were skipped once ``reason`` settled the verdict."""

    after_seed: int
    skipped: int  # seeds left untrained
    reason: Unfinished | Untrained


Reason = (Unfinished | Untrained | MissingDepths | TooFewSeeds | NotAboveZero
          | DegradesMoreThanResidual | PlainGapBelowMinimum)


@dataclass(frozen=True)
class DegradationVerdict:
    verdict: Verdict
    reasons: tuple[Reason, ...]
    depths: dict[str, int] = field(default_factory=dict)  # shallow and deep
    plain_gap: SeedEstimate | None = None
    residual_gap: SeedEstimate | None = None
    difference_of_differences: SeedEstimate | None = None
    twin_gap: SeedEstimate | None = None
    seed_roles: dict[int, SeedRole] = field(default_factory=dict)
    chance_error: float = 0.9

    @property
    def estimates(self) -> list[SeedEstimate]:
        return [e for e in (self.plain_gap, self.residual_gap, self.difference_of_differences,
                            self.twin_gap) if e is not None]


def seed_roles(seeds: list[int], tuning: tuple[int, ...]) -> dict[int, SeedRole]:
    return {seed: SeedRole.TUNING if seed in tuning else SeedRole.HELD_OUT for seed in seeds}


def settled_early(finals: list[dict[str, Any]], chance_error: float
                  ) -> Unfinished | Untrained | None:
    """Why more seeds cannot change the verdict, or None: once a plain run did not train or a
    run did not finish, the rule says inconclusive whatever later seeds show."""
    untrained = _untrained(finals, chance_error)
    if untrained:
        return Untrained(untrained, TRAINED_FRACTION * chance_error)
    unfinished = _unfinished(finals)
    if unfinished:
        return Unfinished(unfinished)
    return None


def judge(finals: list[dict[str, Any]], chance_error: float,
          tuning_seeds: tuple[int, ...] = ()) -> DegradationVerdict:
    """``finals`` are final_rows(): model, depth, shortcut, seed, final_train_error, status."""
    roles = seed_roles(sorted({int(r["seed"]) for r in finals}), tuning_seeds)
    reasons: list[Reason] = []
    unfinished = _unfinished(finals)
    if unfinished:
        reasons.append(Unfinished(unfinished))
    untrained = _untrained(finals, chance_error)
    if untrained:
        reasons.append(Untrained(untrained, TRAINED_FRACTION * chance_error))
    errors = _errors_by_kind(finals)
    depths = sorted({depth for (_, depth) in errors})
    if len(depths) < 2 or not all((kind, d) in errors for kind in ("plain", "residual")
                                  for d in (depths[0], depths[-1])):
        reasons.append(MissingDepths())
        return DegradationVerdict(Verdict.INCONCLUSIVE, tuple(reasons), seed_roles=roles,
                                  chance_error=chance_error)
    shallow, deep = depths[0], depths[-1]
    seeds = sorted(set.intersection(*(set(errors[(kind, d)]) for kind in ("plain", "residual")
                                      for d in (shallow, deep))))

    def per_seed(value: Callable[[int], float]) -> dict[int, float]:
        return {seed: value(seed) for seed in seeds}

    def e(kind: str, depth: int, seed: int) -> float:
        return errors[(kind, depth)][seed]

    plain = seed_estimate("plain gap", per_seed(
        lambda s: e("plain", deep, s) - e("plain", shallow, s)))
    residual = seed_estimate("residual gap", per_seed(
        lambda s: e("residual", deep, s) - e("residual", shallow, s)))
    both = seed_estimate("difference of differences", per_seed(
        lambda s: plain.per_seed[s] - residual.per_seed[s]))
    twins = seed_estimate("twin gap", per_seed(
        lambda s: e("plain", deep, s) - e("residual", deep, s)))

    def verdict(outcome: Verdict, why: list[Reason]) -> DegradationVerdict:
        return DegradationVerdict(
            outcome, tuple(why), depths={"shallow": shallow, "deep": deep}, plain_gap=plain,
            residual_gap=residual, difference_of_differences=both, twin_gap=twins,
            seed_roles={s: roles[s] for s in seeds}, chance_error=chance_error)

    if len(seeds) < MIN_SEEDS:
        reasons.append(TooFewSeeds(len(seeds)))
    if reasons:
        return verdict(Verdict.INCONCLUSIVE, reasons)
    if plain.estimate >= MIN_GAP and plain.above_zero and both.above_zero and twins.above_zero:
        return verdict(Verdict.OBSERVED, [DegradesMoreThanResidual()])
    if plain.known and plain.high < MIN_GAP:
        return verdict(Verdict.NONE, [PlainGapBelowMinimum()])
    open_ = tuple(name for name, estimate in (("the plain gap", plain),
                                              ("the difference of differences", both),
                                              ("the twin gap", twins))
                  if not estimate.above_zero)
    return verdict(Verdict.INCONCLUSIVE, [NotAboveZero(open_ or ("the plain gap",))])


def _errors_by_kind(finals: list[dict[str, Any]]) -> dict[tuple[str, int], dict[int, float]]:
    errors: dict[tuple[str, int], dict[int, float]] = {}
    for row in finals:
        value = row["final_train_error"]
        if row["depth"] is None or value is None or math.isnan(value):
            continue
        kind = "residual" if row["shortcut"] else "plain"
        errors.setdefault((kind, int(row["depth"])), {})[int(row["seed"])] = float(value)
    return errors


def _unfinished(finals: list[dict[str, Any]]) -> tuple[RunLabel, ...]:
    runs = {(r["model"], int(r["seed"]), str(r["status"])) for r in finals
            if r["status"] != RunStatus.FINISHED}
    return tuple(RunLabel(model, seed, status) for model, seed, status in
                 sorted(runs, key=lambda run: f"{run[0]} seed {run[1]} ({run[2]})"))


def _untrained(finals: list[dict[str, Any]], chance_error: float) -> tuple[RunLabel, ...]:
    bar = TRAINED_FRACTION * chance_error
    runs = {(r["model"], int(r["seed"]), float(r["final_train_error"])) for r in finals
            if not r["shortcut"] and not r["final_train_error"] < bar}
    return tuple(RunLabel(model, seed, final_train_error=error) for model, seed, error in
                 sorted(runs, key=lambda run: f"{run[0]} seed {run[1]} ({run[2]:.3f})"))
