"""The prose of every report and console line, made once from typed results.

Jobs and measurements return numbers and typed outcomes; this module is the one place they
become sentences, so the HTML report, the console and ``verdict.json`` say the same thing.
"""

from __future__ import annotations

from typing import Any

from resnet_probe.interrupts import Interruption
from resnet_probe.jobs.parts import (
    CompareResult,
    ForeignModels,
    InProgress,
    PlanNote,
    SharedInputSize,
    Skipped,
    TrainingPart,
)
from resnet_probe.stats import SeedEstimate, SignTest
from resnet_probe.train.causal import (
    CONTROL_FRACTION,
    CausalReason,
    CausalTest,
    ControlChangesLittle,
    ControlChangesToo,
    InterventionUnfinished,
    MissingRuns,
    NoGapToExplain,
    PlainGapDoesNotShrink,
    PlainGapShrinks,
    TooFewPairs,
)
from resnet_probe.train.interventions import InterventionVariant
from resnet_probe.train.loop import TrainConfig
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
    StoppedEarly,
    TooFewSeeds,
    Unfinished,
)

ENDPOINT = ("the area under the training-error curve: a run's mean train-mode (minibatch) "
            "error over every step of the budget, a run that diverged counting chance error "
            "from its divergence on")
SLOWER = "slower optimisation at this budget"

VERDICT_RULE = (
    f"The endpoint is {ENDPOINT}. A deeper plain net that trains worse at any step can only "
    f"raise it; one that never left chance counts with its endpoint, the worst there is.\n\n"
    f"As He et al. (2016) frame degradation: the deeper plain net against the shallower plain "
    f"net, seed by seed (paired). The one primary test is the 95% Student-t interval of the "
    f"mean plain gap = endpoint(deep plain) - endpoint(shallow plain) over seeds:\n\n"
    f"* ``inconclusive`` when fewer than {MIN_SEEDS} seeds have all four runs, when a run did "
    f"not finish, or when a reference did not train (a shallow or residual net whose final "
    f"training error is not below {TRAINED_FRACTION:g} of chance error, 1 - 1/classes, or "
    f"that diverged): the budget is then too small. The deeper plain net is never set "
    f"aside;\n"
    f"* ``degradation observed`` when the plain gap is at least {MIN_GAP} and its interval "
    f"lies above zero, for these runs and for every run set in which the deeper plain net "
    f"did worse on any seeds by any amount (the lowest such bound is found exactly: the t "
    f"bound is concave in the per-seed gaps, so it is lowest at a corner of that box). So a "
    f"worse deeper plain net can never turn the verdict off. When the plain gap in final "
    f"training error is not measurably above zero, the verdict says \"{SLOWER}\";\n"
    f"* ``no degradation`` when the plain gap's interval lies wholly below {MIN_GAP};\n"
    f"* ``inconclusive`` otherwise.\n\n"
    f"Beside it, not further tests: the exact one-sided sign test over seeds on the same "
    f"gaps (with n seeds its p-value cannot go below 2^-n, 0.125 for three), the residual "
    f"pair's gap, the difference of differences (plain gap - residual gap), the twin gap "
    f"(deep plain - deep residual), all on the endpoint, and the plain gap in final training "
    f"error.")

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
    "zero (nothing to explain there), or runs are missing.")


# --- the degradation verdict -----------------------------------------------------------------

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


def reason_text(reason: Reason, verdict: DegradationVerdict | None = None) -> str:
    """One reason of the verdict's rule, in words (``verdict`` supplies its numbers)."""
    if isinstance(reason, Unfinished):
        runs = ", ".join(f"{r.model} seed {r.seed} ({r.status})" for r in reason.runs)
        return f"runs that did not finish: {runs}"
    if isinstance(reason, ReferenceUntrained):
        runs = ", ".join(f"{r.model} seed {r.seed} ({r.final_train_error:.3f}"
                         f"{', diverged' if r.status == 'diverged' else ''})"
                         for r in reason.runs)
        return (f"the budget is too small: reference runs that did not train (final "
                f"training error not below {TRAINED_FRACTION:g} x chance = {reason.bar:.3f}, "
                f"or diverged): {runs}")
    if isinstance(reason, MissingDepths):
        return "needs a plain and a residual net at each of two depths"
    if isinstance(reason, TooFewSeeds):
        return (f"{reason.seeds} seed(s) have all four runs; the rule needs at least "
                f"{reason.needed}")
    assert verdict is not None, "the verdict's numbers are needed to say this"
    numbers = verdict_numbers(verdict)
    if isinstance(reason, PlainGapAboveZero):
        if reason.final_errors_differ:
            return (f"the deeper plain net's training error lies above the shallower one's "
                    f"over the budget, and its final training error is higher too; {numbers}")
        return (f"the deeper plain net's training error lies above the shallower one's over "
                f"the budget, but their final training errors do not differ measurably; "
                f"{numbers}")
    if isinstance(reason, PlainGapBelowMinimum):
        return (f"the deeper plain net trains as well as the shallower one (the plain gap's "
                f"interval lies below {reason.minimum}); {numbers}")
    assert isinstance(reason, PlainGapNotAboveZero)
    if reason.low > 0 and verdict.plain_gap is not None \
            and verdict.plain_gap.estimate >= reason.minimum:
        return (f"the plain gap's interval lies above zero for these runs, but had the deeper "
                f"plain net trained worse on some seeds its interval would reach "
                f"{reason.lowest_low:+.3f}: a worse deeper plain net could then undo the call, "
                f"so the rule does not make it (more seeds narrow that reach); {numbers}")
    if reason.low > 0:
        return f"the plain gap is above zero but below {reason.minimum}; {numbers}"
    return f"the plain gap is not measurably above zero; {numbers}"


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


def estimate_record(e: SeedEstimate | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {"per_seed": {str(k): v for k, v in e.per_seed.items()},
            "mean": e.estimate, "ci95_low": e.low, "ci95_high": e.high,
            "seeds": e.seeds, "in_words": e.text()}


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


# --- the causal test ---------------------------------------------------------------------------

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
    parts += [text for text in (diverged_text(test),) if text]
    return (f"causal test of the early-layer freeze ({intervention_text(test)}): "
            f"mechanism {test.outcome.value}: {'; '.join(parts)}")


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


def recipe_text(recipe: TrainConfig) -> str:
    """A training recipe in words."""
    milestones = ", ".join(f"{m:.0%}" for m in recipe.milestones)
    return (f"SGD momentum {recipe.momentum}, lr {recipe.lr} (warm-up "
            f"{recipe.warmup_lr} for {recipe.warmup_steps} steps, x{recipe.gamma} at "
            f"{milestones} of the budget), weight decay {recipe.weight_decay}, batch "
            f"{recipe.batch_size}, {recipe.steps} steps"
            f"{', pad-crop-flip augmentation' if recipe.augment else ''}")


# --- compare's notes ---------------------------------------------------------------------------

def plan_note_text(note: PlanNote) -> str:
    if isinstance(note, SharedInputSize):
        sizes = ", ".join(f"{s}x{s}" for s in note.standard_sizes)
        return (f"The models come from different families (standard inputs {sizes}); every "
                f"model is measured at the shared size {note.size}x{note.size}. Pass "
                f"--input-size to choose another.")
    assert isinstance(note, ForeignModels)
    return (f"Foreign models ({', '.join(note.models)}): their blocks and stages were found "
            f"from their graphs; they train on the digits at {note.size}x{note.size} with no "
            f"shallower sibling, so the degradation verdict has one depth to go on.")


def interruption_text(result: CompareResult) -> str:
    assert result.interruption is not None
    sections = {"latency": result.latency, "gradients": result.gradients,
                "training": result.training}
    kept = [name for name, part in sections.items()
            if not isinstance(part, (Skipped, InProgress)) and name not in
            {failed.section for failed in result.failures}]
    training = " (training: the runs recorded so far)" if "training" in kept else ""
    return (f"Interrupted ({result.interruption.value}): this report holds the costs and "
            f"{', '.join(kept) if kept else 'no measured section'}{training}.")


def compare_notes(result: CompareResult) -> list[str]:
    """Everything compare says beside its tables: the plan's notes, failed sections, the
    run cache's problems, an early stop, an interruption."""
    notes = [plan_note_text(note) for note in result.plan_notes]
    notes += [f"The {failed.section} section failed ({failed.error}); the other sections are "
              f"complete." for failed in result.failures]
    training = result.training
    if isinstance(training, TrainingPart):
        notes += list(training.cache.problems if training.cache else ())
        stopped = training.degradation.stopped_early
        if stopped:
            notes.append(f"Training {stopped_early_text(stopped)}.")
    if result.interruption is not None:
        notes.append(interruption_text(result))
    return notes


def interruption_name(interruption: Interruption) -> str:
    """What the console calls an interruption."""
    return ("terminated (SIGTERM)" if interruption is Interruption.SIGTERM
            else "interrupted")
