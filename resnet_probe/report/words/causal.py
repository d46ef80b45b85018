"""The causal test of the early-layer freeze in words (train.causal): its rule, the
intervention, each reason with its numbers, the line the report shows, the Why answer's
sentence, and the record ``verdict.json`` holds."""

from __future__ import annotations

from typing import Any

from resnet_probe.report.words.numbers import estimate_record
from resnet_probe.train.causal import (
    CONTROL_FRACTION,
    CausalReason,
    CausalTest,
    ControlChangesLittle,
    ControlChangesToo,
    InterventionDiverged,
    InterventionUnfinished,
    MissingRuns,
    NoGapToExplain,
    PlainGapDoesNotShrink,
    PlainGapShrinks,
    TooFewPairs,
)
from resnet_probe.train.interventions import InterventionVariant

CAUSAL_RULE = (
    "The hypothesis: the deeper plain net's exploding gradients at init make huge first steps; "
    "they inflate the norm of every conv that feeds a BN, and BN's scale invariance divides "
    "such a layer's effective step by ||W||^2, so the early layers stall. The test: the "
    "deeper plain net and its residual twin (the control) trained again on the same seeds, "
    "with every conv that feeds a BN projected back to its norm at init after each of the "
    "first K steps (the BN's running statistics and the momentum buffer scaled with it, so "
    "the function is unchanged). Endpoint: the mean training error over those K steps, "
    "intervened minus normal, paired by seed, with 95% t intervals. The mechanism is "
    "*supported* when the deeper plain net's change lies wholly below zero (the intervention "
    "shrinks the plain gap) and the control changes little: its change's interval lies "
    f"within +-{CONTROL_FRACTION:g} of the plain change's size. Otherwise it is *not "
    "supported*. It is *not tested* when the plain gap over the first K steps is not above "
    "zero (nothing to explain there), when runs are missing, or when an intervened run "
    "diverged (non-finite loss): the projection then broke training, and a broken run says "
    "nothing about the mechanism.")

# What the compare report's Why answer calls the test, run or not.
MECHANISM_TEST = ("The mechanism test (the early layers' weight norms held at init, paired by "
                  "seed)")
MECHANISM_NOT_RUN = f"{MECHANISM_TEST}: not run in this report."


def intervention_text(test: CausalTest) -> str:
    how = ("each conv that feeds a BN projected back to its norm at init"
           if test.intervention.variant is InterventionVariant.PROJECT else
           "each conv that feeds a BN given lr x ||W||^2/||W0||^2")
    return f"{how} after each of the first {test.steps} steps"


def causal_reason_text(reason: CausalReason, test: CausalTest) -> str:
    if isinstance(reason, MissingRuns):
        runs = ", ".join(f"{r.model} seed {r.seed}" for r in reason.runs)
        return f"intervened runs missing: {runs}"
    if isinstance(reason, InterventionUnfinished):
        runs = ", ".join(f"{r.model} seed {r.seed} ({r.status})" for r in reason.runs)
        return f"intervened runs that did not finish: {runs}"
    if isinstance(reason, InterventionDiverged):
        runs = ", ".join(f"{r.model} seed {r.seed} at step {r.step}" for r in reason.runs)
        return (f"the intervention made runs diverge ({runs}): a run the projection broke "
                f"says nothing about the mechanism")
    if isinstance(reason, TooFewPairs):
        return (f"{reason.seeds} seed(s) have the runs the test pairs; it needs at least "
                f"{reason.needed}")
    if isinstance(reason, NoGapToExplain):
        gap = test.gap_before.text() if test.gap_before else "not measured"
        return (f"nothing to explain in the first {test.steps} steps: the plain gap there is "
                f"{gap}")
    if isinstance(reason, PlainGapShrinks):
        assert test.plain_change is not None
        return (f"the intervention shrinks the plain gap: {test.plain} "
                f"{test.plain_change.text()}")
    if isinstance(reason, PlainGapDoesNotShrink):
        assert test.plain_change is not None
        verb = "makes it train slower" if reason.slower else "does not shrink the plain gap"
        return f"the intervention {verb}: {test.plain} {test.plain_change.text()}"
    assert test.control_change is not None
    if isinstance(reason, ControlChangesLittle):
        return (f"the control changes little (within +-{reason.band:.3f}): {test.control} "
                f"{test.control_change.text()}")
    assert isinstance(reason, ControlChangesToo)
    return (f"the control changes too (not within +-{reason.band:.3f}): {test.control} "
            f"{test.control_change.text()}")


def diverged_text(test: CausalTest) -> str | None:
    if not test.diverged:
        return None
    runs = ", ".join(f"{r.model} seed {r.seed} at step {r.step}" for r in test.diverged)
    return (f"intervened runs that diverged (each counted at chance error from there on): "
            f"{runs}")


def causal_line(test: CausalTest) -> str:
    """The causal test in one line, as its rule decided."""
    parts = [causal_reason_text(r, test) for r in test.reasons]
    if not any(isinstance(r, InterventionDiverged) for r in test.reasons):
        parts += [text for text in (diverged_text(test),) if text]
    return (f"causal test of the early-layer freeze ({intervention_text(test)}): "
            f"mechanism {test.outcome.value}: {'; '.join(parts)}")


def mechanism_finding(test: CausalTest) -> str:
    """The causal test in the Why answer's one line: the outcome its rule gave."""
    return f"{MECHANISM_TEST}: {test.outcome.value}."


def causal_record(test: CausalTest) -> dict[str, Any]:
    return {"outcome": test.outcome.value, "in_words": causal_line(test),
            "reasons": [causal_reason_text(r, test) for r in test.reasons],
            "intervention": {"variant": test.intervention.variant.value,
                             "steps": test.steps, "in_words": intervention_text(test)},
            "endpoint": f"mean train-mode error over the first {test.steps} steps",
            "models": {"plain": test.plain, "control": test.control,
                       "shallow_plain": test.shallow},
            "plain_change": estimate_record(test.plain_change),
            "control_change": estimate_record(test.control_change),
            "control_changes_little_within": test.control_band,
            "control_fraction": CONTROL_FRACTION,
            "plain_gap_first_steps": estimate_record(test.gap_before),
            "plain_gap_first_steps_intervened": estimate_record(test.gap_after),
            "diverged": [{"model": r.model, "seed": r.seed, "step": r.step}
                         for r in test.diverged],
            "seconds": test.seconds, "rule": CAUSAL_RULE}
