"""The degradation verdict in words (train.verdict): its endpoint and rule, each reason with the
numbers it rests on, the one-line verdict compare prints, the report's headline and note, and
the record ``verdict.json`` holds."""

from __future__ import annotations

from typing import Any

from resnet_probe.report.words.causal import causal_record
from resnet_probe.report.words.numbers import estimate_record, signed_interval
from resnet_probe.stats import SignTest
from resnet_probe.train.causal import CausalTest
from resnet_probe.train.verdict import (
    MIN_GAP,
    MIN_SEEDS,
    TRAINED_FRACTION,
    DegradationVerdict,
    MissingDepths,
    PlainGapAboveZero,
    PlainGapBelowMinimum,
    PlainGapNotAboveZero,
    Reason,
    ReferenceUntrained,
    SeedRole,
    StoppedEarly,
    TooFewSeeds,
    Unfinished,
    Verdict,
)

ENDPOINT = ("the area under the training-error curve: a run's mean train-mode (minibatch) "
            "error over every step of the budget, a run that diverged counting chance error "
            "from its divergence on")
SLOWER = "slower optimisation at this budget"

# The rule in three paragraphs, its outcomes a list between the second and the third.
_RULE_ENDPOINT = (
    f"The endpoint is {ENDPOINT}. A deeper plain net that trains worse at any step can only "
    f"raise it; one that never left chance counts with its endpoint, the worst there is.")
_RULE_TEST = (
    "As He et al. (2016) frame degradation: the deeper plain net against the shallower plain "
    "net, seed by seed (paired). The one primary test is the 95% Student-t interval of the "
    "mean plain gap = endpoint(deep plain) - endpoint(shallow plain) over seeds:")
_RULE_OUTCOMES = (
    ("inconclusive",
     f"when fewer than {MIN_SEEDS} seeds have all four runs, when a run did not finish, or "
     f"when a reference did not train (a shallow or residual net whose final training error "
     f"is not below {TRAINED_FRACTION:g} of chance error, 1 - 1/classes, or that diverged): "
     f"the budget is then too small. The deeper plain net is never set aside;"),
    ("degradation observed",
     f"when the plain gap is at least {MIN_GAP} and its interval lies above zero, for these "
     f"runs and for every run set in which the deeper plain net did worse on any seeds by any "
     f"amount (the lowest such bound is found exactly: the t bound is concave in the per-seed "
     f"gaps, so it is lowest at a corner of that box). So a worse deeper plain net can never "
     f"turn the verdict off. When the plain gap in final training error is not measurably "
     f"above zero, the verdict says \"{SLOWER}\";"),
    ("no degradation", f"when the plain gap's interval lies wholly below {MIN_GAP};"),
    ("inconclusive", "otherwise."),
)
_RULE_BESIDE = (
    "Beside it, not further tests: the exact one-sided sign test over seeds on the same gaps "
    "(with n seeds its p-value cannot go below 2^-n, 0.125 for three), the residual pair's "
    "gap, the difference of differences (plain gap - residual gap), the twin gap (deep plain "
    "- deep residual), all on the endpoint, and the plain gap in final training error.")

VERDICT_RULE = "\n\n".join([
    _RULE_ENDPOINT, _RULE_TEST,
    "\n".join(f"* ``{outcome}`` {when}" for outcome, when in _RULE_OUTCOMES), _RULE_BESIDE])
# The same rule as one paragraph, its outcomes marked •: the report's method note.
VERDICT_RULE_PARAGRAPH = " ".join([
    _RULE_ENDPOINT, _RULE_TEST,
    *(f"• {outcome} {when}" for outcome, when in _RULE_OUTCOMES), _RULE_BESIDE])


# --- each reason, with its numbers ---------------------------------------------------------------

def sign_test_text(test: SignTest) -> str:
    return (f"sign test: {test.above} of {test.seeds} seeds above zero, one-sided exact "
            f"p = {test.p_value:.3g} (the smallest {test.seeds} seeds allow is "
            f"{test.smallest_p:.3g})")


def verdict_numbers(verdict: DegradationVerdict) -> str:
    """The primary test's numbers, then the supporting ones."""
    assert verdict.plain_gap is not None and verdict.sign_test is not None
    numbers = [f"plain gap in the endpoint {verdict.plain_gap.text()}, lowest bound with a "
               f"worse deeper plain net {verdict.lowest_low:+.3f}",
               sign_test_text(verdict.sign_test)]
    numbers += [f"{e.name} {e.text()}" for e in (verdict.final_plain_gap,
                                                   verdict.difference_of_differences,
                                                   verdict.twin_gap) if e is not None]
    return "; ".join(numbers)


def reason_clauses(reason: Reason, verdict: DegradationVerdict | None = None,
                   runs: str = "all four runs") -> tuple[str, str | None]:
    """One reason of the rule as (what it says, what follows: its numbers or its bar); the
    headline says the first alone. ``runs``: what a seed needs ("both runs" for a twin)."""
    if isinstance(reason, Unfinished):
        unfinished = ", ".join(f"{r.model} seed {r.seed} ({r.status})" for r in reason.runs)
        return f"runs that did not finish: {unfinished}", None
    if isinstance(reason, ReferenceUntrained):
        untrained = ", ".join(f"{r.model} seed {r.seed} ({r.final_train_error:.3f}"
                              f"{', diverged' if r.status == 'diverged' else ''})"
                              for r in reason.runs)
        return (f"the budget is too small: reference runs that did not train (final "
                f"training error not below {TRAINED_FRACTION:g} x chance = {reason.bar:.3f}, "
                f"or diverged): {untrained}"), None
    if isinstance(reason, MissingDepths):
        return "needs a plain and a residual net at each of two depths", None
    if isinstance(reason, TooFewSeeds):
        return f"{reason.seeds} seed(s) have {runs}", f"the rule needs at least {reason.needed}"
    assert verdict is not None, "the verdict's numbers are needed to say this"
    numbers = verdict_numbers(verdict)
    if isinstance(reason, PlainGapAboveZero):
        if reason.final_errors_differ:
            return ("the deeper plain net's training error lies above the shallower one's "
                    "over the budget, and its final training error is higher too"), numbers
        return ("the deeper plain net's training error lies above the shallower one's over "
                "the budget, but their final training errors do not differ measurably"), numbers
    if isinstance(reason, PlainGapBelowMinimum):
        return (f"the deeper plain net trains as well as the shallower one (the plain gap's "
                f"interval lies below {reason.minimum})"), numbers
    assert isinstance(reason, PlainGapNotAboveZero)
    if reason.low > 0 and verdict.plain_gap is not None \
            and verdict.plain_gap.estimate >= reason.minimum:
        return (f"the plain gap's interval lies above zero for these runs, but had the deeper "
                f"plain net trained worse on some seeds its interval would reach "
                f"{reason.lowest_low:+.3f}: a worse deeper plain net could then undo the call, "
                f"so the rule does not make it (more seeds narrow that reach)"), numbers
    if reason.low > 0:
        return f"the plain gap is above zero but below {reason.minimum}", numbers
    return "the plain gap is not measurably above zero", numbers


def reason_text(reason: Reason, verdict: DegradationVerdict | None = None,
                runs: str = "all four runs") -> str:
    """One reason of the verdict's rule, in words (``verdict`` supplies its numbers)."""
    said, then = reason_clauses(reason, verdict, runs)
    return said if then is None else f"{said}; {then}"


def reasons_text(verdict: DegradationVerdict) -> list[str]:
    return [reason_text(reason, verdict) for reason in verdict.reasons]


def stopped_early_text(stopped: StoppedEarly) -> str:
    """Why the remaining seeds were skipped (train.verdict.settled_early)."""
    why = ("a reference run did not train" if isinstance(stopped.reason, ReferenceUntrained)
           else "a run did not finish")
    return (f"stopped after seed {stopped.after_seed}, skipping {stopped.skipped} more: {why}, "
            f"so no later seed can change the verdict")


def residual_finding(verdict: DegradationVerdict) -> str | None:
    """The residual pair's own change in words, from its interval."""
    gap = verdict.residual_gap
    if gap is None or not gap.known:
        return None
    if gap.above_zero:
        return f"the residual pair degrades too: {gap.text()}"
    if gap.below_zero:
        return f"the deeper residual net trains better: {gap.text()}"
    return f"the residual pair shows {gap.text()}"


# --- the verdict in one line, in a headline, as a record ------------------------------------------

def verdict_outcome(verdict: DegradationVerdict) -> str:
    """The outcome's words: "degradation observed (slower optimisation at this budget)"."""
    return (f"{verdict.verdict.value} ({SLOWER})" if verdict.slower_optimisation
            else verdict.verdict.value)


def verdict_line(verdict: DegradationVerdict) -> str:
    """The verdict in one line: what compare prints and the summary shows."""
    roles = sorted({role.value for role in verdict.seed_roles.values()})
    seeds = ", ".join(str(s) for s in verdict.seed_roles)
    line = (f"training verdict: {verdict_outcome(verdict)} (seeds {seeds or 'none'}, "
            f"{' and '.join(roles) or 'none'}): {'; '.join(reasons_text(verdict))}")
    finding = residual_finding(verdict)
    return f"{line}; {finding}" if finding else line


def seeds_with_roles(roles: dict[int, SeedRole]) -> str:
    """"0 (tuning), 1 (held-out)"."""
    return ", ".join(f"{seed} ({role.value})" for seed, role in roles.items())


def seeds_in_words(verdict: DegradationVerdict) -> str:
    """"held-out seeds 8, 9, 10", or each seed with its role when the roles differ."""
    roles = verdict.seed_roles
    if not roles:
        return "no seed with all four runs"
    kinds = {role.value for role in roles.values()}
    if len(kinds) == 1:
        plural = "s" if len(roles) > 1 else ""
        return f"{kinds.pop()} seed{plural} {', '.join(str(s) for s in roles)}"
    return f"seeds {seeds_with_roles(roles)}"


def verdict_headline(verdict: DegradationVerdict, deep: str | None = None,
                     shallow: str | None = None) -> str:
    """The verdict in at most two sentences, for the report's first screen: the outcome, the
    plain gap with its interval, and the seeds. ``deep`` and ``shallow`` name the plain nets
    (by default their depths)."""
    depths = verdict.depths
    deep = deep or (f"the depth-{depths['deep']} plain net" if "deep" in depths
                    else "the deeper plain net")
    shallow = shallow or (f"the depth-{depths['shallow']} one" if "shallow" in depths
                          else "the shallower one")
    if verdict.verdict is Verdict.OBSERVED:
        outcome = f"Yes: the deeper plain net, {deep}, trains worse than the shallower {shallow}."
    elif verdict.verdict is Verdict.NONE:
        outcome = (f"No: the deeper plain net, {deep}, trains as well as the shallower "
                   f"{shallow}.")
    else:
        # The first reason's own words; its numbers are the second sentence's.
        first = reason_clauses(verdict.reasons[0], verdict)[0] if verdict.reasons \
            else "the rule could not decide"
        outcome = f"Not settled: {first}."
    gap = verdict.plain_gap
    if gap is None or not gap.per_seed:
        return f"{outcome} No plain gap was measured ({seeds_in_words(verdict)})."
    return (f"{outcome} Plain gap in training error averaged over the run, {deep} minus "
            f"{shallow}: {gap.estimate:+.3f} ({signed_interval(gap)}), {seeds_in_words(verdict)}.")


def verdict_note_text(verdict: DegradationVerdict, stopped_early: StoppedEarly | None = None
                 ) -> tuple[str, str]:
    """The verdict as the report's training section states it: its title, shown in bold
    ("Verdict: degradation observed"), and the rest (" on seeds 0 (held-out), ...: why.")."""
    reasons = "; ".join(reasons_text(verdict) +
                        ([stopped_early_text(stopped_early)] if stopped_early else []))
    finding = residual_finding(verdict)
    residual = f" {finding[0].upper()}{finding[1:]}." if finding else ""
    return (f"Verdict: {verdict_outcome(verdict)}",
            f" on seeds {seeds_with_roles(verdict.seed_roles) or 'none'}: {reasons}.{residual}")


def verdict_record(verdict: DegradationVerdict, causal: CausalTest | None = None
                   ) -> dict[str, Any]:
    """What verdict.json holds: the outcome, its reasons and rule; the primary endpoint and
    its test, the sign test beside it; the supporting numbers and the controls; the causal
    test's outcome (None when it did not run); the seeds and their roles."""
    sign = verdict.sign_test
    return {"verdict": verdict.verdict.value, "in_words": verdict_outcome(verdict),
            "slower_optimisation": verdict.slower_optimisation,
            "reasons": reasons_text(verdict),
            "seeds": [{"seed": seed, "role": role.value}
                      for seed, role in sorted(verdict.seed_roles.items())],
            "depths": verdict.depths, "chance_error": verdict.chance_error,
            "endpoint": ENDPOINT,
            "primary_test": {
                "name": "paired Student-t 95% interval of the plain gap in the endpoint",
                "plain_gap": estimate_record(verdict.plain_gap),
                "lowest_low_with_a_worse_deep_plain_net": verdict.lowest_low,
                "minimum_gap": MIN_GAP},
            "sign_test": None if sign is None else {
                "above_zero": sign.above, "below_zero": sign.below, "ties": sign.ties,
                "p_value_one_sided": sign.p_value, "smallest_possible_p": sign.smallest_p,
                "in_words": sign_test_text(sign)},
            "supporting": {
                "final_error_plain_gap": estimate_record(verdict.final_plain_gap),
                "difference_of_differences": estimate_record(
                    verdict.difference_of_differences),
                "twin_gap": estimate_record(verdict.twin_gap)},
            "controls": {
                "residual_pair": {"gap": estimate_record(verdict.residual_gap),
                                  "in_words": residual_finding(verdict)},
                "causal_test_control": None if causal is None else {
                    "model": causal.control,
                    "change": estimate_record(causal.control_change),
                    "changes_little_within": causal.control_band}},
            "causal_test": None if causal is None else causal_record(causal),
            "rule": VERDICT_RULE}
