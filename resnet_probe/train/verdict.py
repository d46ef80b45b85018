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
RULE = __doc__.split("The rule, ")[1].strip()


class Verdict(StrEnum):
    OBSERVED = "degradation observed"
    NONE = "no degradation"
    INCONCLUSIVE = "inconclusive"


class SeedRole(StrEnum):
    TUNING = "tuning"  # recipes, thresholds or budgets were chosen looking at it
    HELD_OUT = "held-out"  # nothing was tuned on it


@dataclass(frozen=True)
class DegradationVerdict:
    verdict: Verdict
    reasons: list[str]
    depths: dict[str, int] = field(default_factory=dict)  # shallow and deep
    plain_gap: SeedEstimate | None = None
    residual_gap: SeedEstimate | None = None
    difference_of_differences: SeedEstimate | None = None
    twin_gap: SeedEstimate | None = None
    seed_roles: dict[int, SeedRole] = field(default_factory=dict)
    chance_error: float = 0.9
    rule: str = RULE

    @property
    def estimates(self) -> list[SeedEstimate]:
        return [e for e in (self.plain_gap, self.residual_gap, self.difference_of_differences,
                            self.twin_gap) if e is not None]

    @property
    def residual_finding(self) -> str | None:
        """The residual pair's own change in words, from its interval."""
        gap = self.residual_gap
        if gap is None or not gap.known:
            return None
        if gap.above_zero:
            return f"the residual pair degrades too: {gap.text()}"
        if gap.below_zero:
            return f"the deeper residual net trains better: {gap.text()}"
        return f"the residual pair shows {gap.text()}"

    def record(self) -> dict[str, Any]:
        """What verdict.json holds: the outcome, its reasons and rule, the seeds and their
        roles, and each comparison with its per-seed values and interval."""
        def estimate(e: SeedEstimate | None) -> dict[str, Any] | None:
            if e is None:
                return None
            return {"per_seed": {str(k): v for k, v in e.per_seed.items()},
                    "mean": e.estimate, "ci95_low": e.low, "ci95_high": e.high,
                    "seeds": e.seeds, "in_words": e.text()}
        return {"verdict": self.verdict.value, "reasons": list(self.reasons),
                "residual_pair": self.residual_finding,
                "seeds": [{"seed": seed, "role": role.value}
                          for seed, role in sorted(self.seed_roles.items())],
                "depths": self.depths, "chance_error": self.chance_error,
                "plain_gap": estimate(self.plain_gap),
                "residual_gap": estimate(self.residual_gap),
                "difference_of_differences": estimate(self.difference_of_differences),
                "twin_gap": estimate(self.twin_gap),
                "rule": self.rule}


def seed_roles(seeds: list[int], tuning: tuple[int, ...]) -> dict[int, SeedRole]:
    return {seed: SeedRole.TUNING if seed in tuning else SeedRole.HELD_OUT for seed in seeds}


def settled_early(finals: list[dict[str, Any]], chance_error: float) -> str | None:
    """Why more seeds cannot change the verdict, or None: once a plain run did not train or a
    run did not finish, the rule says inconclusive whatever later seeds show."""
    if _untrained(finals, chance_error):
        return "a plain run did not train, so no later seed can change the verdict"
    if _unfinished(finals):
        return "a run did not finish, so no later seed can change the verdict"
    return None


def judge(finals: list[dict[str, Any]], chance_error: float,
          tuning_seeds: tuple[int, ...] = ()) -> DegradationVerdict:
    """``finals`` are final_rows(): model, depth, shortcut, seed, final_train_error, status."""
    roles = seed_roles(sorted({int(r["seed"]) for r in finals}), tuning_seeds)
    reasons = []
    unfinished = _unfinished(finals)
    if unfinished:
        reasons.append(f"runs that did not finish: {', '.join(unfinished)}")
    untrained = _untrained(finals, chance_error)
    if untrained:
        reasons.append(f"plain runs that did not train (final training error not below "
                       f"{TRAINED_FRACTION:g} x chance = {TRAINED_FRACTION * chance_error:.3f}): "
                       f"{', '.join(untrained)}")
    errors = _errors_by_kind(finals)
    depths = sorted({depth for (_, depth) in errors})
    if len(depths) < 2 or not all((kind, d) in errors for kind in ("plain", "residual")
                                  for d in (depths[0], depths[-1])):
        reasons.append("needs a plain and a residual net at each of two depths")
        return DegradationVerdict(Verdict.INCONCLUSIVE, reasons, seed_roles=roles,
                                  chance_error=chance_error)
    shallow, deep = depths[0], depths[-1]
    seeds = sorted(set.intersection(*(set(errors[(kind, d)]) for kind in ("plain", "residual")
                                      for d in (shallow, deep))))

    def per_seed(value) -> dict[int, float]:
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
    found = dict(depths={"shallow": shallow, "deep": deep}, plain_gap=plain,
                 residual_gap=residual, difference_of_differences=both, twin_gap=twins,
                 seed_roles={s: roles[s] for s in seeds}, chance_error=chance_error)
    if len(seeds) < MIN_SEEDS:
        reasons.append(f"{len(seeds)} seed(s) have all four runs; the rule needs at least "
                       f"{MIN_SEEDS}")
    if reasons:
        return DegradationVerdict(Verdict.INCONCLUSIVE, reasons, **found)
    numbers = (f"plain gap {plain.text()}; difference of differences {both.text()}; deep "
               f"plain minus deep residual {twins.text()}")
    if plain.estimate >= MIN_GAP and plain.above_zero and both.above_zero and twins.above_zero:
        return DegradationVerdict(Verdict.OBSERVED, [
            f"the deeper plain net trains worse than the shallower one, by more than the "
            f"residual pair changes, and worse than its residual twin; {numbers}"], **found)
    if plain.known and plain.high < MIN_GAP:
        return DegradationVerdict(Verdict.NONE, [
            f"the deeper plain net trains as well as the shallower one (the plain gap's "
            f"interval lies below {MIN_GAP}); {numbers}"], **found)
    open_ = [name for name, estimate in (("the plain gap", plain),
                                         ("the difference of differences", both),
                                         ("the twin gap", twins)) if not estimate.above_zero]
    return DegradationVerdict(Verdict.INCONCLUSIVE, [
        f"{' and '.join(open_) or 'the plain gap'} "
        f"{'is' if len(open_) <= 1 else 'are'} not measurably above zero; {numbers}"], **found)


def _errors_by_kind(finals: list[dict[str, Any]]) -> dict[tuple[str, int], dict[int, float]]:
    errors: dict[tuple[str, int], dict[int, float]] = {}
    for row in finals:
        value = row["final_train_error"]
        if row["depth"] is None or value is None or math.isnan(value):
            continue
        kind = "residual" if row["shortcut"] else "plain"
        errors.setdefault((kind, int(row["depth"])), {})[int(row["seed"])] = float(value)
    return errors


def _unfinished(finals: list[dict[str, Any]]) -> list[str]:
    return sorted({f"{r['model']} seed {r['seed']} ({r['status']})" for r in finals
                   if r["status"] != RunStatus.FINISHED})


def _untrained(finals: list[dict[str, Any]], chance_error: float) -> list[str]:
    bar = TRAINED_FRACTION * chance_error
    return sorted({f"{r['model']} seed {r['seed']} ({r['final_train_error']:.3f})"
                   for r in finals if not r["shortcut"] and not r["final_train_error"] < bar})
