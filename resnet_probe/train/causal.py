"""The causal test's rule: does removing the early-layer norm growth shrink the plain gap?

The runs: the deeper plain net and its residual twin (the control), each trained again per
seed with the intervention (``resnet_probe.train.interventions``) for its K steps. The
endpoint is the verdict's (``train.verdict.error_auc``) over those first K steps, which the
normal runs already recorded. Per seed:

* plain change = A_K(deep plain, intervened) - A_K(deep plain, normal);
* control change = the same for the deep residual net;
* the plain gap over the first K steps, A_K(deep plain) - A_K(shallow plain), before and
  with the deep plain net intervened (the shallow net is not intervened on).

The rule, on 95% t intervals over seeds (``resnet_probe.stats``):

* ``not tested`` when fewer than MIN_SEEDS seeds have the four runs it needs, when an
  intervened run did not finish, or when the plain gap over the first K steps is not
  measurably above zero (there is then nothing at K for the mechanism to explain);
* ``supported`` when the plain change's interval lies wholly below zero (the intervention
  shrinks the plain gap) and the control changes little: its change's interval lies within
  +-CONTROL_FRACTION (1/2) of the plain change's mean size. An intervention that speeds up
  both nets alike is a better optimiser, not evidence for a mechanism of the plain net;
* ``not supported`` otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from resnet_probe.stats import SeedEstimate, seed_estimate
from resnet_probe.train.interventions import Intervention
from resnet_probe.train.loop import ENDED, RunResult
from resnet_probe.train.verdict import MIN_SEEDS, RunLabel, error_auc

# "Changes little": the control's change, interval and all, stays within this fraction of
# the plain net's mean change. Set before any run was made, as the rule's statement.
CONTROL_FRACTION = 0.5


class CausalOutcome(StrEnum):
    SUPPORTED = "supported"
    NOT_SUPPORTED = "not supported"
    UNTESTED = "not tested"


@dataclass(frozen=True)
class MissingRuns:
    """Runs the test needs (model, seed) that are not there."""

    runs: tuple[RunLabel, ...]


@dataclass(frozen=True)
class InterventionUnfinished:
    runs: tuple[RunLabel, ...]


@dataclass(frozen=True)
class TooFewPairs:
    seeds: int
    needed: int = MIN_SEEDS


@dataclass(frozen=True)
class NoGapToExplain:
    """The plain gap over the first K steps is not measurably above zero."""


@dataclass(frozen=True)
class PlainGapShrinks:
    """The plain change's interval lies wholly below zero."""


@dataclass(frozen=True)
class PlainGapDoesNotShrink:
    """The plain change's interval is not wholly below zero (``slower``: it lies above)."""

    slower: bool


@dataclass(frozen=True)
class ControlChangesLittle:
    band: float  # the control's change lies within +-band


@dataclass(frozen=True)
class ControlChangesToo:
    band: float


@dataclass(frozen=True)
class DivergedRun:
    """An intervened run that diverged: its endpoint counts chance error from ``step`` on."""

    model: str
    seed: int
    step: int


@dataclass(frozen=True)
class InterventionDiverged:
    """Intervened runs that diverged: the projection, not the mechanism, decided them."""

    runs: tuple[DivergedRun, ...]


CausalReason = (MissingRuns | InterventionUnfinished | InterventionDiverged | TooFewPairs
                | NoGapToExplain
                | PlainGapShrinks | PlainGapDoesNotShrink | ControlChangesLittle
                | ControlChangesToo)


@dataclass(frozen=True)
class CausalTest:
    outcome: CausalOutcome
    reasons: tuple[CausalReason, ...]
    intervention: Intervention
    plain: str = ""  # the deeper plain net
    control: str = ""  # its residual twin
    shallow: str = ""  # the shallower plain net, for the gap
    plain_change: SeedEstimate | None = None  # intervened minus normal, endpoint over K steps
    control_change: SeedEstimate | None = None
    gap_before: SeedEstimate | None = None  # the plain gap over the first K steps
    gap_after: SeedEstimate | None = None  # the same with the deep plain net intervened
    control_band: float = math.nan  # CONTROL_FRACTION x |mean plain change|
    seconds: float = 0.0  # the intervened runs' wall time, together
    diverged: tuple[DivergedRun, ...] = ()  # intervened runs that diverged within K steps

    @property
    def steps(self) -> int:
        return self.intervention.steps


def causal_test(normal: list[RunResult], intervened: list[RunResult],
                intervention: Intervention, chance_error: float) -> CausalTest:
    """The rule of the module docstring, on the normal runs (every depth; the shallowest and
    deepest plain and the deepest residual are used) and the intervened ones."""
    steps = intervention.steps
    plains = sorted((r.depth, r.model) for r in normal if r.shortcut is False and r.depth)
    residuals = sorted((r.depth, r.model) for r in normal if r.shortcut and r.depth)
    if not plains or not residuals or plains[0][0] == plains[-1][0]:
        return CausalTest(CausalOutcome.UNTESTED, (TooFewPairs(0),), intervention)
    shallow, plain, control = plains[0][1], plains[-1][1], residuals[-1][1]
    base = {(r.model, r.seed): r for r in normal}
    treated = {(r.model, r.seed): r for r in intervened}
    seconds = sum(r.seconds for r in intervened)
    diverged = tuple(DivergedRun(r.model, r.seed, r.diverged_at) for r in intervened
                     if r.diverged_at is not None)
    reasons: list[CausalReason] = []
    unfinished = tuple(RunLabel(r.model, r.seed, str(r.status)) for r in intervened
                       if r.status not in ENDED)
    if unfinished:
        reasons.append(InterventionUnfinished(unfinished))
    seeds = sorted({seed for (model, seed) in base if model == plain})
    missing = tuple(RunLabel(model, seed) for seed in seeds for model in (plain, control)
                    if (model, seed) not in treated)
    if missing:
        reasons.append(MissingRuns(missing))
    if diverged:  # the intervention broke training: it tests nothing about the mechanism
        reasons.append(InterventionDiverged(diverged))
    paired = [s for s in seeds if all((m, s) in base for m in (plain, shallow, control))
              and all((m, s) in treated and treated[(m, s)].status in ENDED
                      for m in (plain, control))]

    def a(run: RunResult) -> float:
        return error_auc([row["train_error"] for row in run.history], steps, chance_error)

    def change(model: str) -> SeedEstimate:
        return seed_estimate(f"{model}: intervened minus normal", {
            s: a(treated[(model, s)]) - a(base[(model, s)]) for s in paired})

    plain_change, control_change = change(plain), change(control)
    before = seed_estimate("plain gap over the first K steps", {
        s: a(base[(plain, s)]) - a(base[(shallow, s)]) for s in paired})
    after = seed_estimate("plain gap over the first K steps, deep plain intervened", {
        s: a(treated[(plain, s)]) - a(base[(shallow, s)]) for s in paired})
    band = CONTROL_FRACTION * abs(plain_change.estimate) if paired else math.nan

    def result(outcome: CausalOutcome) -> CausalTest:
        return CausalTest(outcome, tuple(reasons), intervention, plain, control, shallow,
                          plain_change, control_change, before, after, band, seconds, diverged)

    if len(paired) < MIN_SEEDS:
        reasons.append(TooFewPairs(len(paired)))
    if reasons:
        return result(CausalOutcome.UNTESTED)
    if not before.above_zero:
        reasons.append(NoGapToExplain())
        return result(CausalOutcome.UNTESTED)
    shrinks = plain_change.below_zero
    little = -band <= control_change.low and control_change.high <= band
    reasons.append(PlainGapShrinks() if shrinks else
                   PlainGapDoesNotShrink(slower=plain_change.above_zero))
    reasons.append(ControlChangesLittle(band) if little else ControlChangesToo(band))
    return result(CausalOutcome.SUPPORTED if shrinks and little
                  else CausalOutcome.NOT_SUPPORTED)
