"""The twin verdict in words (train.verdict.judge_twins): a model against its plain twin, one
depth. Its rule, each reason with its numbers, the line compare prints, the report's headline
and note, and the record ``verdict.json`` holds."""

from __future__ import annotations

from typing import Any

from resnet_probe.report.words.numbers import estimate_record, signed_interval
from resnet_probe.report.words.verdict import ENDPOINT, reason_clauses
from resnet_probe.train.verdict import (
    MIN_GAP,
    MIN_SEEDS,
    TRAINED_FRACTION,
    ReferenceUntrained,
    TooFewSeeds,
    TwinGapAboveZero,
    TwinGapBelowZero,
    TwinGapUnsettled,
    TwinGapWithinMinimum,
    TwinOutcome,
    TwinReason,
    TwinVerdict,
    Unfinished,
)

TWIN_RULE = (
    "A model and its plain twin (the same depth, the shortcuts removed) are one depth, so the "
    "degradation rule cannot apply; the twin verdict asks the pair's own question by the "
    "same standard. Per seed, paired: twin gap = A(plain twin) - A(model), A the endpoint "
    "(the mean training error over the budget). With at least "
    f"{MIN_SEEDS} seeds, every run finished and the model trained (final training error "
    f"below {TRAINED_FRACTION:g} x chance): *the twin trains worse* when the gap is at least "
    f"{MIN_GAP} and its 95% t interval lies above zero, also had the twin trained worse on "
    f"any seed; *the twin trains better* when it is at most -{MIN_GAP} and the interval "
    f"lies below zero; *no measurable difference* when the interval lies within "
    f"+-{MIN_GAP}; *inconclusive* otherwise.")


def twin_reason_clauses(reason: TwinReason, verdict: TwinVerdict) -> tuple[str, str | None]:
    """One reason of the twin verdict as (what it says, its numbers or its bar)."""
    if isinstance(reason, (Unfinished, ReferenceUntrained, TooFewSeeds)):
        return reason_clauses(reason, runs="both runs")
    gap = verdict.twin_gap
    numbers = f"twin gap in the endpoint {gap.text()}" if gap is not None else ""
    if verdict.final_twin_gap is not None:
        numbers += f"; in final training error {verdict.final_twin_gap.text()}"
    if isinstance(reason, TwinGapAboveZero):
        return (f"the twin's training error lies above the model's over the budget, on every "
                f"seed's reckoning (lowest bound with a worse twin {verdict.lowest_low:+.3f})"
                ), numbers
    if isinstance(reason, TwinGapBelowZero):
        return "the twin's training error lies below the model's over the budget", numbers
    if isinstance(reason, TwinGapWithinMinimum):
        return (f"the twin gap's interval lies within +-{reason.minimum}: the two train "
                f"alike at this budget"), numbers
    assert isinstance(reason, TwinGapUnsettled)
    if reason.low > 0 and gap is not None and gap.estimate >= reason.minimum:
        return (f"the twin gap's interval lies above zero for these runs, but had the twin "
                f"trained worse on some seeds its interval would reach {reason.lowest_low:+.3f}: "
                f"a worse twin could then undo the call, so the rule does not make it (more "
                f"seeds narrow that reach)"), numbers
    return (f"the twin gap's interval ({reason.low:+.3f} to {reason.high:+.3f}) neither "
            f"clears zero by {reason.minimum} nor lies within +-{reason.minimum} (more seeds "
            f"or steps narrow it)"), numbers


def twin_reason_text(reason: TwinReason, verdict: TwinVerdict) -> str:
    """One reason of the twin verdict, in words, with its numbers."""
    said, then = twin_reason_clauses(reason, verdict)
    return said if then is None else f"{said}; {then}"


def twin_reasons_text(verdict: TwinVerdict) -> str:
    return "; ".join(twin_reason_text(r, verdict) for r in verdict.reasons)


def twin_verdict_line(verdict: TwinVerdict) -> str:
    """The twin verdict in one line: what compare prints and the summary shows."""
    roles = sorted({role.value for role in verdict.seed_roles.values()})
    seeds = ", ".join(str(s) for s in verdict.seed_roles)
    reasons = twin_reasons_text(verdict)
    return (f"twin verdict: {verdict.verdict.value}, {verdict.twin} against {verdict.model} "
            f"(seeds {seeds or 'none'}, {' and '.join(roles) or 'none'}): {reasons}")


def twin_headline(verdict: TwinVerdict) -> str:
    """The twin verdict in at most two sentences, for the report's first screen."""
    outcome = {
        TwinOutcome.WORSE: f"Yes: the plain twin, {verdict.twin}, trains worse than "
                           f"{verdict.model}.",
        TwinOutcome.BETTER: f"No, the reverse: the plain twin, {verdict.twin}, trains better "
                            f"than {verdict.model}.",
        TwinOutcome.NO_DIFFERENCE: f"No measurable difference: the plain twin, "
                                   f"{verdict.twin}, trains as well as {verdict.model}.",
    }.get(verdict.verdict)
    if outcome is None:
        # The first reason's own words; its numbers are the second sentence's.
        first = twin_reason_clauses(verdict.reasons[0], verdict)[0] if verdict.reasons \
            else "the rule could not decide"
        outcome = f"Not settled: {first}."
    gap = verdict.twin_gap
    if gap is None or not gap.per_seed:
        return f"{outcome} No twin gap was measured."
    return (f"{outcome} Twin gap in training error, {verdict.twin} minus {verdict.model}: "
            f"{gap.estimate:+.3f} ({signed_interval(gap)}), {len(gap.per_seed)} seed(s).")


def twin_note_text(verdict: TwinVerdict) -> tuple[str, str]:
    """The twin verdict as the report's training section states it: its title, shown in bold
    ("Twin verdict: the twin trains worse"), and the rest (", plain8 against resnet8: why.")."""
    return (f"Twin verdict: {verdict.verdict.value}",
            f", {verdict.twin} against {verdict.model}: {twin_reasons_text(verdict)}.")


def twin_verdict_record(verdict: TwinVerdict) -> dict[str, Any]:
    """What verdict.json holds of the twin verdict."""
    return {"verdict": verdict.verdict.value, "model": verdict.model, "twin": verdict.twin,
            "depth": verdict.depth,
            "reasons": [twin_reason_text(r, verdict) for r in verdict.reasons],
            "seeds": [{"seed": seed, "role": role.value}
                      for seed, role in sorted(verdict.seed_roles.items())],
            "twin_gap": estimate_record(verdict.twin_gap),
            "lowest_low_with_a_worse_twin": verdict.lowest_low,
            "final_twin_gap": estimate_record(verdict.final_twin_gap),
            "minimum_gap": MIN_GAP, "endpoint": ENDPOINT, "rule": TWIN_RULE}
