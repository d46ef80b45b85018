"""The degradation verdict: one of three outcomes, from a stated rule applied to the runs.

The endpoint is the area under the training-error curve: a run's mean train-mode (minibatch)
error over every step of the budget, a run that diverged counting chance error from its
divergence on. A deeper plain net that trains worse at any step can only raise it, and a net
that never left chance counts with its endpoint (the worst there is), not set aside.

The rule, as He et al. (2016) frame degradation: the deeper plain net against the shallower
plain net, compared seed by seed (paired). Per seed, with A the endpoint,

    plain gap = A(deep plain) - A(shallow plain),

and the one primary test is the 95% Student-t interval of its mean over seeds
(``resnet_probe.stats``), taken so that it cannot be undone by a worse deep plain net:

* ``inconclusive`` when fewer than MIN_SEEDS (3) seeds have all four runs, when a run did not
  finish, or when a reference did not train: a shallow net or a residual net whose final
  training error is not below TRAINED_FRACTION (3/4) of chance error, or that diverged. The
  budget is then too small to compare anything; the deep plain net is never set aside.
* ``degradation observed`` when the plain gap is at least MIN_GAP (0.01) and its interval
  lies above zero for these runs and for every run set in which the deeper plain net did
  worse, on any seeds, by any amount (up to error 1 at every step). The t bound is concave in
  the per-seed gaps, so the lowest such bound is at a corner of that box and is computed
  exactly (``stats.lowest_lower_bound``); a worse deep plain net can only shrink the box.
* ``no degradation`` when the plain gap's interval lies wholly below MIN_GAP.
* ``inconclusive`` otherwise.

Beside the test, not as further gates: the exact sign test over seeds on the plain gap (with
three seeds its p-value cannot go below 0.125), the residual pair's gap, the difference of
differences (plain gap - residual gap), the twin gap (deep plain - deep residual), and the
plain gap in final training error. When that last one is not measurably above zero but the
endpoint's is, the verdict says "slower optimisation at this budget".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from resnet_probe.stats import SeedEstimate, SignTest, lowest_lower_bound, seed_estimate, sign_test
from resnet_probe.train.loop import RunStatus

MIN_SEEDS = 3
MIN_GAP = 0.01  # one digit-image in a hundred: below this a gap is not worth a verdict
# A reference net (shallow, or residual) has trained when its final training error is below
# 3/4 of chance (0.675 for ten classes); below that the budget is too small to compare. The
# deeper plain net is not held to it: its endpoint counts whatever it is.
TRAINED_FRACTION = 0.75
WORST_ERROR = 1.0  # the highest a training error, and so the endpoint, can be


def error_auc(errors: list[float], steps: int, chance_error: float) -> float:
    """The endpoint: the mean train-mode error over ``steps`` steps, the steps the run did
    not reach (it diverged) counted at chance error."""
    if steps < 1:
        raise ValueError(f"the endpoint needs a budget of at least one step: steps={steps}")
    done = list(errors[:steps])
    return (math.fsum(done) + chance_error * (steps - len(done))) / steps


class Verdict(StrEnum):
    OBSERVED = "degradation observed"
    NONE = "no degradation"
    INCONCLUSIVE = "inconclusive"


class SeedRole(StrEnum):
    TUNING = "tuning"  # recipes, thresholds or budgets were chosen looking at it
    HELD_OUT = "held-out"  # nothing was tuned on it


# --- why the rule decided as it did: typed, put into words by report/words/ -----------------

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
class ReferenceUntrained:
    """Reference runs (shallow or residual) whose final training error is not below ``bar``
    (TRAINED_FRACTION of chance), or that diverged: the budget is too small."""

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
class PlainGapAboveZero:
    """``degradation observed``. ``final_errors_differ``: the plain gap in final training
    error is measurably above zero too; when it is not, the deeper plain net is slower to
    optimise at this budget, not (yet) stuck higher."""

    final_errors_differ: bool


@dataclass(frozen=True)
class PlainGapNotAboveZero:
    """``inconclusive``: the plain gap's interval (``low``), or its lowest bound over the
    run sets with a worse deep plain net (``lowest_low``), does not clear zero, or the gap is
    below MIN_GAP."""

    low: float
    lowest_low: float
    minimum: float = MIN_GAP


@dataclass(frozen=True)
class PlainGapBelowMinimum:
    """``no degradation``: the plain gap's interval lies wholly below MIN_GAP."""

    minimum: float = MIN_GAP


@dataclass(frozen=True)
class StoppedEarly:
    """The remaining seeds were skipped once ``reason`` settled the verdict."""

    after_seed: int
    skipped: int  # seeds left untrained
    reason: Unfinished | ReferenceUntrained


Reason = (Unfinished | ReferenceUntrained | MissingDepths | TooFewSeeds | PlainGapAboveZero
          | PlainGapNotAboveZero | PlainGapBelowMinimum)


@dataclass(frozen=True)
class DegradationVerdict:
    verdict: Verdict
    reasons: tuple[Reason, ...]
    depths: dict[str, int] = field(default_factory=dict)  # shallow and deep
    plain_gap: SeedEstimate | None = None  # the primary test, on the endpoint
    lowest_low: float = math.nan  # its lowest interval bound with a worse deep plain net
    sign_test: SignTest | None = None  # beside it, on the same per-seed gaps
    residual_gap: SeedEstimate | None = None  # supporting numbers, all on the endpoint
    difference_of_differences: SeedEstimate | None = None
    twin_gap: SeedEstimate | None = None
    final_plain_gap: SeedEstimate | None = None  # the plain gap in final training error
    seed_roles: dict[int, SeedRole] = field(default_factory=dict)
    chance_error: float = 0.9

    @property
    def estimates(self) -> list[SeedEstimate]:
        return [e for e in (self.plain_gap, self.residual_gap, self.difference_of_differences,
                            self.twin_gap, self.final_plain_gap) if e is not None]

    @property
    def slower_optimisation(self) -> bool:
        """Observed on the endpoint, while the final training errors do not differ
        measurably: "slower optimisation at this budget"."""
        return any(isinstance(r, PlainGapAboveZero) and not r.final_errors_differ
                   for r in self.reasons)


def seed_roles(seeds: list[int], tuning: tuple[int, ...]) -> dict[int, SeedRole]:
    return {seed: SeedRole.TUNING if seed in tuning else SeedRole.HELD_OUT for seed in seeds}


def settled_early(finals: list[dict[str, Any]], chance_error: float
                  ) -> Unfinished | ReferenceUntrained | None:
    """Why more seeds cannot change the verdict, or None: once a reference did not train or
    a run did not finish, the rule says inconclusive whatever later seeds show."""
    untrained = _untrained_references(finals, chance_error)
    if untrained:
        return ReferenceUntrained(untrained, TRAINED_FRACTION * chance_error)
    unfinished = _unfinished(finals)
    if unfinished:
        return Unfinished(unfinished)
    return None


def judge(finals: list[dict[str, Any]], chance_error: float,
          tuning_seeds: tuple[int, ...] = ()) -> DegradationVerdict:
    """``finals`` are final_rows(): model, depth, shortcut, seed, status, final_train_error
    and train_error_auc (the endpoint)."""
    roles = seed_roles(sorted({int(r["seed"]) for r in finals}), tuning_seeds)
    reasons: list[Reason] = []
    unfinished = _unfinished(finals)
    if unfinished:
        reasons.append(Unfinished(unfinished))
    untrained = _untrained_references(finals, chance_error)
    if untrained:
        reasons.append(ReferenceUntrained(untrained, TRAINED_FRACTION * chance_error))
    auc = _values_by_kind(finals, "train_error_auc")
    final = _values_by_kind(finals, "final_train_error")
    depths = sorted({depth for (_, depth) in auc})
    if len(depths) < 2 or not all((kind, d) in auc for kind in ("plain", "residual")
                                  for d in (depths[0], depths[-1])):
        reasons.append(MissingDepths())
        return DegradationVerdict(Verdict.INCONCLUSIVE, tuple(reasons), seed_roles=roles,
                                  chance_error=chance_error)
    shallow, deep = depths[0], depths[-1]
    seeds = sorted(set.intersection(*(set(auc[(kind, d)]) for kind in ("plain", "residual")
                                      for d in (shallow, deep))))

    def per_seed(value: Callable[[int], float]) -> dict[int, float]:
        return {seed: value(seed) for seed in seeds}

    def a(kind: str, depth: int, seed: int) -> float:
        return auc[(kind, depth)][seed]

    plain = seed_estimate("plain gap", per_seed(
        lambda s: a("plain", deep, s) - a("plain", shallow, s)))
    residual = seed_estimate("residual gap", per_seed(
        lambda s: a("residual", deep, s) - a("residual", shallow, s)))
    both = seed_estimate("difference of differences", per_seed(
        lambda s: plain.per_seed[s] - residual.per_seed[s]))
    twins = seed_estimate("twin gap", per_seed(
        lambda s: a("plain", deep, s) - a("residual", deep, s)))
    final_seeds = [s for s in seeds if s in final.get(("plain", deep), {})
                   and s in final.get(("plain", shallow), {})]
    final_plain = seed_estimate("plain gap in final training error", {
        s: final[("plain", deep)][s] - final[("plain", shallow)][s] for s in final_seeds})
    gaps = [plain.per_seed[s] for s in seeds]
    lowest = lowest_lower_bound(gaps, [WORST_ERROR - a("plain", shallow, s) for s in seeds])

    def verdict(outcome: Verdict, why: list[Reason]) -> DegradationVerdict:
        return DegradationVerdict(
            outcome, tuple(why), depths={"shallow": shallow, "deep": deep}, plain_gap=plain,
            lowest_low=lowest, sign_test=sign_test(gaps), residual_gap=residual,
            difference_of_differences=both, twin_gap=twins, final_plain_gap=final_plain,
            seed_roles={s: roles[s] for s in seeds}, chance_error=chance_error)

    if len(seeds) < MIN_SEEDS:
        reasons.append(TooFewSeeds(len(seeds)))
    if reasons:
        return verdict(Verdict.INCONCLUSIVE, reasons)
    if plain.estimate >= MIN_GAP and lowest > 0:
        return verdict(Verdict.OBSERVED, [PlainGapAboveZero(final_plain.above_zero)])
    if plain.known and plain.high < MIN_GAP:
        return verdict(Verdict.NONE, [PlainGapBelowMinimum()])
    return verdict(Verdict.INCONCLUSIVE, [PlainGapNotAboveZero(plain.low, lowest)])


def _kind(row: dict[str, Any]) -> str:
    return "residual" if row["shortcut"] else "plain"


def _values_by_kind(finals: list[dict[str, Any]], column: str
                    ) -> dict[tuple[str, int], dict[int, float]]:
    values: dict[tuple[str, int], dict[int, float]] = {}
    for row in finals:
        value = row.get(column)
        if row["depth"] is None or value is None or math.isnan(value):
            continue
        values.setdefault((_kind(row), int(row["depth"])), {})[int(row["seed"])] = float(value)
    return values


def _unfinished(finals: list[dict[str, Any]]) -> tuple[RunLabel, ...]:
    ended = (RunStatus.FINISHED, RunStatus.DIVERGED)
    runs = {(r["model"], int(r["seed"]), str(r["status"])) for r in finals
            if r["status"] not in ended}
    return tuple(RunLabel(model, seed, status) for model, seed, status in
                 sorted(runs, key=lambda run: f"{run[0]} seed {run[1]} ({run[2]})"))


def _untrained_references(finals: list[dict[str, Any]], chance_error: float
                          ) -> tuple[RunLabel, ...]:
    """Shallow nets (of either kind) and residual nets that did not train; the deepest
    plain net is the one under test and is never one of them."""
    depths = [int(r["depth"]) for r in finals if r["depth"] is not None and not r["shortcut"]]
    deep_plain = max(depths, default=None)
    bar = TRAINED_FRACTION * chance_error
    runs = {(r["model"], int(r["seed"]), str(r["status"]), float(r["final_train_error"]))
            for r in finals
            if (r["shortcut"] or r["depth"] is None or int(r["depth"]) != deep_plain)
            and (r["status"] == RunStatus.DIVERGED or (r["status"] == RunStatus.FINISHED
                                                       and not r["final_train_error"] < bar))}
    return tuple(RunLabel(model, seed, status, error) for model, seed, status, error in
                 sorted(runs, key=lambda run: f"{run[0]} seed {run[1]} ({run[3]:.3f})"))


# --- a model against its plain twin ------------------------------------------------------------
#
# A pair of one residual model and its plain twin (the same depth, the shortcuts removed) has
# no second depth, so the degradation rule cannot apply; the question asked is the twin's.
# The same standard, on the same endpoint: per seed, paired,
#
#     twin gap = A(plain twin) - A(model),
#
# with its 95% Student-t interval over at least MIN_SEEDS seeds, every run finished and the
# residual model trained (TRAINED_FRACTION of chance; the twin is the net under test and
# counts whatever it reaches). ``worse`` when the gap is at least MIN_GAP and its interval
# lies above zero for these runs and for every run set with a worse twin (the same lowest
# bound as the plain gap's); ``better`` when it is at most -MIN_GAP and its interval lies
# below zero; ``no measurable difference`` when the interval lies within +-MIN_GAP;
# ``inconclusive`` otherwise.

class TwinOutcome(StrEnum):
    WORSE = "the twin trains worse"
    BETTER = "the twin trains better"
    NO_DIFFERENCE = "no measurable difference"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class TwinGapAboveZero:
    """``worse``: the twin gap is at least MIN_GAP and its interval (and its lowest bound
    with a worse twin) lies above zero."""


@dataclass(frozen=True)
class TwinGapBelowZero:
    """``better``: the twin gap is at most -MIN_GAP and its interval lies below zero."""


@dataclass(frozen=True)
class TwinGapWithinMinimum:
    """``no measurable difference``: the interval lies within +-MIN_GAP."""

    minimum: float = MIN_GAP


@dataclass(frozen=True)
class TwinGapUnsettled:
    """``inconclusive``: the interval reaches past +-MIN_GAP without clearing zero (or clears
    it by less than MIN_GAP, or only for these runs: ``lowest_low``)."""

    low: float
    high: float
    lowest_low: float
    minimum: float = MIN_GAP


TwinReason = (Unfinished | ReferenceUntrained | TooFewSeeds | TwinGapAboveZero
              | TwinGapBelowZero | TwinGapWithinMinimum | TwinGapUnsettled)


@dataclass(frozen=True)
class TwinVerdict:
    """A residual model against its plain twin, trained on the same seeds."""

    verdict: TwinOutcome
    reasons: tuple[TwinReason, ...]
    model: str  # the residual model
    twin: str  # its plain twin
    depth: int | None
    twin_gap: SeedEstimate | None = None  # the test, on the endpoint
    lowest_low: float = math.nan
    sign_test: SignTest | None = None
    final_twin_gap: SeedEstimate | None = None  # the same gap in final training error
    seed_roles: dict[int, SeedRole] = field(default_factory=dict)
    chance_error: float = 0.9


def twin_pair(finals: list[dict[str, Any]]) -> tuple[str, str, int | None] | None:
    """(model, twin, depth) when the runs are of one residual model and one plain model of
    the same depth (a model and its plain twin); None otherwise, where the depth rule
    applies or there is no pair to judge."""
    models = {(str(r["model"]), bool(r["shortcut"]),
               None if r["depth"] is None else int(r["depth"])) for r in finals}
    residual = [m for m in models if m[1]]
    plain = [m for m in models if not m[1]]
    if len(residual) != 1 or len(plain) != 1 or residual[0][2] != plain[0][2]:
        return None
    return residual[0][0], plain[0][0], residual[0][2]


def judge_twins(finals: list[dict[str, Any]], chance_error: float,
                tuning_seeds: tuple[int, ...] = ()) -> TwinVerdict | None:
    """The twin verdict on ``finals`` (as ``judge`` takes them), or None when they are not
    one model and its plain twin."""
    pair = twin_pair(finals)
    if pair is None:
        return None
    model, twin, depth = pair
    roles = seed_roles(sorted({int(r["seed"]) for r in finals}), tuning_seeds)
    reasons: list[TwinReason] = []
    unfinished = _unfinished(finals)
    if unfinished:
        reasons.append(Unfinished(unfinished))
    bar = TRAINED_FRACTION * chance_error
    untrained = tuple(
        RunLabel(str(r["model"]), int(r["seed"]), str(r["status"]),
                 float(r["final_train_error"])) for r in finals
        if r["model"] == model and (r["status"] == RunStatus.DIVERGED or (
            r["status"] == RunStatus.FINISHED and not r["final_train_error"] < bar)))
    if untrained:
        reasons.append(ReferenceUntrained(untrained, bar))

    def by_seed(name: str, column: str) -> dict[int, float]:
        return {int(r["seed"]): float(r[column]) for r in finals if r["model"] == name
                and r.get(column) is not None and not math.isnan(r[column])}

    auc = {name: by_seed(name, "train_error_auc") for name in (model, twin)}
    final = {name: by_seed(name, "final_train_error") for name in (model, twin)}
    seeds = sorted(set(auc[model]) & set(auc[twin]))
    gap = seed_estimate("twin gap", {s: auc[twin][s] - auc[model][s] for s in seeds})
    final_seeds = sorted(set(final[model]) & set(final[twin]))
    final_gap = seed_estimate("twin gap in final training error",
                              {s: final[twin][s] - final[model][s] for s in final_seeds})
    gaps = [gap.per_seed[s] for s in seeds]
    lowest = lowest_lower_bound(gaps, [WORST_ERROR - auc[model][s] for s in seeds]) \
        if seeds else math.nan

    def verdict(outcome: TwinOutcome, why: list[TwinReason]) -> TwinVerdict:
        return TwinVerdict(outcome, tuple(why), model, twin, depth, gap, lowest,
                           sign_test(gaps) if gaps else None, final_gap,
                           {s: roles[s] for s in seeds}, chance_error)

    if len(seeds) < MIN_SEEDS:
        reasons.append(TooFewSeeds(len(seeds)))
    if reasons:
        return verdict(TwinOutcome.INCONCLUSIVE, reasons)
    if gap.estimate >= MIN_GAP and lowest > 0:
        return verdict(TwinOutcome.WORSE, [TwinGapAboveZero()])
    if gap.estimate <= -MIN_GAP and gap.known and gap.high < 0:
        return verdict(TwinOutcome.BETTER, [TwinGapBelowZero()])
    if gap.known and -MIN_GAP < gap.low and gap.high < MIN_GAP:
        return verdict(TwinOutcome.NO_DIFFERENCE, [TwinGapWithinMinimum()])
    return verdict(TwinOutcome.INCONCLUSIVE, [TwinGapUnsettled(gap.low, gap.high, lowest)])
