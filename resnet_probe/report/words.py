"""The prose of every report and console line, made once from typed results.

Jobs and measurements return numbers and typed outcomes; this module is the one place they
become sentences, so the HTML report, the console and ``verdict.json`` say the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any, TypeGuard

import pandas as pd

from resnet_probe.analysis.claims import (
    LOW_LOSS,
    MATCHED_LOSS_FRACTION,
    MIN_GAMMA_DRIFT,
    Claim,
    Outcome,
    Role,
)
from resnet_probe.analysis.landscape import KESKAR_RADIUS
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
    InterventionDiverged,
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
    TwinGapAboveZero,
    TwinGapBelowZero,
    TwinGapUnsettled,
    TwinGapWithinMinimum,
    TwinOutcome,
    TwinReason,
    TwinVerdict,
    Unfinished,
    Verdict,
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
    "zero (nothing to explain there), when runs are missing, or when an intervened run "
    "diverged (non-finite loss): the projection then broke training, and a broken run says "
    "nothing about the mechanism.")


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


def failed_runs_text(failed: tuple[str, ...]) -> str:
    """Runs whose task failed twice (train.executors): named, with why; the rest stand."""
    return (f"{len(failed)} run{'s' * (len(failed) > 1)} failed twice and "
            f"{'are' if len(failed) > 1 else 'is'} missing from the tables ({'; '.join(failed)}); "
            f"the other runs are complete, and a rerun trains only the missing ones")


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



# --- the twin verdict ---------------------------------------------------------------------------

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


def twin_reason_text(reason: TwinReason, verdict: TwinVerdict) -> str:
    """One reason of the twin verdict, in words, with its numbers."""
    if isinstance(reason, (Unfinished, ReferenceUntrained, TooFewSeeds)):
        return reason_text(reason).replace("all four runs", "both runs")
    gap = verdict.twin_gap
    numbers = f"twin gap in the endpoint {gap.text()}" if gap is not None else ""
    if verdict.final_twin_gap is not None:
        numbers += f"; in final training error {verdict.final_twin_gap.text()}"
    if isinstance(reason, TwinGapAboveZero):
        return (f"the twin's training error lies above the model's over the budget, on every "
                f"seed's reckoning (lowest bound with a worse twin {verdict.lowest_low:+.3f}); "
                f"{numbers}")
    if isinstance(reason, TwinGapBelowZero):
        return f"the twin's training error lies below the model's over the budget; {numbers}"
    if isinstance(reason, TwinGapWithinMinimum):
        return (f"the twin gap's interval lies within +-{reason.minimum}: the two train "
                f"alike at this budget; {numbers}")
    assert isinstance(reason, TwinGapUnsettled)
    if reason.low > 0 and gap is not None and gap.estimate >= reason.minimum:
        return (f"the twin gap's interval lies above zero for these runs, but had the twin "
                f"trained worse on some seeds its interval would reach {reason.lowest_low:+.3f}: "
                f"a worse twin could then undo the call, so the rule does not make it (more "
                f"seeds narrow that reach); {numbers}")
    return (f"the twin gap's interval ({reason.low:+.3f} to {reason.high:+.3f}) neither "
            f"clears zero by {reason.minimum} nor lies within +-{reason.minimum} (more seeds "
            f"or steps narrow it); {numbers}")


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
        first = twin_reason_text(verdict.reasons[0], verdict).split("; ")[0] \
            if verdict.reasons else "the rule could not decide"
        outcome = f"Not settled: {first}."
    gap = verdict.twin_gap
    if gap is None or not gap.per_seed:
        return f"{outcome} No twin gap was measured."
    return (f"{outcome} Twin gap in training error, {verdict.twin} minus {verdict.model}: "
            f"{gap.estimate:+.3f} ({_signed_interval(gap)}), {len(gap.per_seed)} seed(s).")


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
    images = [model for model in note.models if model not in note.fed]
    sentences = [f"Foreign models ({', '.join(note.models)}): their blocks and stages were "
                 f"found from their graphs, and they have no shallower sibling: a model and "
                 f"its plain twin get the twin verdict."]
    if images:
        sentences.append(f"{', '.join(images)}: counted, timed, probed and trained at one "
                         f"size, {note.size}x{note.size}, the one training feeds.")
    if note.fed:
        sentences.append(f"{', '.join(note.fed)}: fed --input tensors, counted, timed and "
                         f"probed at their shapes (training, which classifies images, is "
                         f"skipped).")
    return " ".join(sentences)


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
        if training.failed_runs:
            notes.append(f"Training: {failed_runs_text(training.failed_runs)}.")
    if result.interruption is not None:
        notes.append(interruption_text(result))
    return notes


def interruption_name(interruption: Interruption) -> str:
    """What the console calls an interruption."""
    return ("terminated (SIGTERM)" if interruption is Interruption.SIGTERM
            else "interrupted")


# --- the compare report's three answers (report/answers.py) ------------------------------------

def seeds_in_words(verdict: DegradationVerdict) -> str:
    """"held-out seeds 8, 9, 10", or each seed with its role when the roles differ."""
    roles = verdict.seed_roles
    if not roles:
        return "no seed with all four runs"
    kinds = {role.value for role in roles.values()}
    if len(kinds) == 1:
        plural = "s" if len(roles) > 1 else ""
        return f"{kinds.pop()} seed{plural} {', '.join(str(s) for s in roles)}"
    return "seeds " + ", ".join(f"{seed} ({role.value})" for seed, role in roles.items())


def _signed_interval(estimate: SeedEstimate) -> str:
    if not estimate.known:
        return "one seed: no interval"
    return f"95% CI {estimate.low:+.3f} to {estimate.high:+.3f}"


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
        # A reason's own words up to its numbers, which the second sentence gives.
        first = reason_text(verdict.reasons[0], verdict).split("; ")[0] if verdict.reasons \
            else "the rule could not decide"
        outcome = f"Not settled: {first}."
    gap = verdict.plain_gap
    if gap is None or not gap.per_seed:
        return f"{outcome} No plain gap was measured ({seeds_in_words(verdict)})."
    return (f"{outcome} Plain gap in training error averaged over the run, {deep} minus "
            f"{shallow}: {gap.estimate:+.3f} ({_signed_interval(gap)}), {seeds_in_words(verdict)}.")


def ratio_interval(ratio: float, low: float, high: float, seeds: int | None = None) -> str:
    """"170× (95% CI 120× to 220×, 3 seeds)"; a ratio with no interval says so."""
    def times(value: float) -> str:
        return f"{value:.3g}×"

    count = f", {seeds} seeds" if seeds else ""
    if low != low or high != high:
        return f"{times(ratio)} (one seed: no interval)"
    return f"{times(ratio)} (95% CI {times(low)} to {times(high)}{count})"


def gradient_direction(low: float, high: float, ratio: float) -> str:
    """The direction the first/last ratio's interval settles: the gradient grows toward the
    input when it lies above 1, shrinks (vanishes) when below, else no settled direction."""
    if low == low and high == high:
        if low > 1:
            return "grows toward the input"
        if high < 1:
            return "shrinks toward the input"
        return "has no settled direction"
    return ("grows toward the input" if ratio > 1 else "shrinks toward the input") + \
        " (one seed)"


def gradient_finding(rows: list[dict[str, Any]]) -> str:
    """The gradients at init in one line: per model the first/last block ratio with its
    interval, the last plain net named first (its interval says the direction), then the other
    plain nets, then the residual ones. ``rows``: model, shortcut, ratio, low, high, seeds."""
    plain = [r for r in rows if not r["shortcut"]]
    lead = plain[-1] if plain else rows[-1]
    direction = gradient_direction(lead["low"], lead["high"], lead["ratio"])
    said = {"grows toward the input": "grow toward the input, they do not vanish",
            "shrinks toward the input": "shrink toward the input: they vanish"}.get(
        direction.removesuffix(" (one seed)"), "have no settled direction")
    kind = "the plain nets'" if plain else "the nets'"
    others = [r for r in rows if r is not lead]
    each = [f"{lead['model']}'s gradient at the first block is "
            f"{ratio_interval(lead['ratio'], lead['low'], lead['high'], lead['seeds'])} its "
            f"gradient at the last",
            *(f"{r['model']}'s {ratio_interval(r['ratio'], r['low'], r['high'], r['seeds'])}"
              for r in sorted(others, key=lambda r: bool(r["shortcut"])))]
    return f"At init, with BN, {kind} gradients {said}: {'; '.join(each)}."


def claim_finding(what: str, row: dict[Hashable, Any]) -> str:
    """One tested claim of the trained nets (a findings row, analysis.claims) in one line."""
    low, high, mean = row.get("ci95_low"), row.get("ci95_high"), row.get("mean")
    interval = (f"95% CI {low:+.3f} to {high:+.3f}, " if _known(low) and _known(high)
                else "no interval, ")
    said = f"mean {mean:+.3f}, " if _known(mean) else ""
    return (f"{what} at depth {row['depth']}: {row['outcome']} ({said}{interval}"
            f"{_counted(int(row['seeds']), 'seed')}).")


MECHANISM_NOT_RUN = ("The mechanism test (the early layers' weight norms held at init, "
                     "paired by seed): not run in this report.")


def cost_change(value: float, base: float, unit: str) -> str:
    """An exact count's change against the baseline: "-0.88%, -192 K params (exact count)";
    "no difference (exact count)" when equal."""
    difference = value - base
    if difference == 0:
        return "no difference (exact count)"
    pct = difference / base * 100 if base else float("nan")
    percent = "" if pct != pct else f"{pct:+,.0f}%, " if abs(pct) >= 100 else f"{pct:+.2f}%, "
    sign = "+" if difference > 0 else "-"
    return f"{percent}{sign}{readable_count(abs(difference))} {unit} (exact count)"


# --- what the tutorials say, measured (numbers from report/tutorials.py) -----------------------

TUTORIAL_CLAIMS = (
    ("a", "Degradation is overfitting."),
    ("b", "Vanishing gradients are the root cause."),
    ("c", "dy/dx = dF/dx + I: the identity carries the gradient."),
    ("d", "An identity shortcut adds no parameters and negligible FLOPs."),
    ("e", "Bottleneck blocks are cheaper."),
    ("f", "bias=False before BN loses nothing."),
    ("g", "BN uses running statistics at eval."),
)
ZERO_INIT_TEST = ("tests/test_gradients.py::"
                  "test_zero_init_residual_net_passes_gradients_unchanged_through_every_join")
BIAS_TEST = "tests/test_docs.py::test_a_conv_bias_before_bn_folds_into_the_bn_shift"
EVAL_BN_TEST = "tests/test_docs.py::test_eval_outputs_are_deterministic_and_batch_independent"


def readable_count(value: float, digits: int = 3) -> str:
    """A count in K, M or G to ``digits`` significant digits: "21.8 M", "4.09 G", "512"."""
    for divisor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= divisor:
            return f"{value / divisor:.{digits}g} {prefix}"
    return f"{value:,.0f}"


def overfitting_answer(errors: list[Any]) -> str | None:
    """Claim (a), from report.tutorials.errors_by_depth: training vs test error by depth."""
    if not errors:
        return None

    def arrow(values: tuple[float, ...]) -> str:
        return " → ".join(f"{v:.3f}" for v in values)

    parts = []
    for kind in errors:
        name = "residual" if kind.shortcut else "plain"
        depths = " → ".join(str(d) for d in kind.depths)
        parts.append(f"{name} nets, depth {depths}: training error {arrow(kind.train)}, test "
                     f"error {arrow(kind.test)}")
    plain = next((k for k in errors if not k.shortcut and len(k.depths) > 1), None)
    if plain is None:
        lead = "One depth per kind in this run, so nothing to compare by depth"
    elif plain.train[-1] > plain.train[0]:
        lead = ("No: the plain nets' training error itself rises with depth, and the test "
                "error follows it; overfitting would show a low training error under a high "
                "test error")
    else:
        lead = "In this run the plain nets' training error does not rise with depth"
    return f"{lead} ({'; '.join(parts)})."


def vanishing_answer(ratios: list[Any]) -> str | None:
    """Claim (b), from report.tutorials.gradient_ratios: the first/last ratio at init."""
    plain = [r for r in ratios if not r.shortcut]
    if not plain:
        return None
    deep = plain[-1]
    direction = gradient_direction(deep.low, deep.high, deep.ratio)
    lead = {"grows toward the input": "Not with BN: the gradient grows toward the input",
            "shrinks toward the input": "Here it does shrink toward the input"}.get(
        direction.removesuffix(" (one seed)"), "Not settled here")
    return (f"{lead}. At init, {deep.model}'s gradient at the first block over the last "
            f"block's is {ratio_interval(deep.ratio, deep.low, deep.high, deep.seeds)}.")


def identity_answer(within: dict[str, float]) -> str | None:
    """Claim (c), from report.tutorials.within_stage_ratios."""
    if not within:
        return None
    each = "; ".join(f"{model} ×{ratio:.3g}" for model, ratio in within.items())
    return (f"Across identity blocks (within a stage) the join gradient changes from the "
            f"stage's first block to its last by {each}: each block adds its branch's term to "
            f"the identity's. With a zero-initialised branch the ratio is exactly 1 "
            f"({ZERO_INIT_TEST}).")


def shortcut_cost_answer(costs: list[Any]) -> str | None:
    """Claim (d), from report.tutorials.shortcut_costs."""
    if not costs:
        return None
    parts = []
    for cost in costs:
        twin = (f" {cost.params_over_twin:+,} parameters against its plain twin {cost.twin};"
                if cost.twin is not None else "")
        projections = (f" {_counted(cost.projections, 'projection shortcut')} hold "
                       f"{cost.projection_params:,} parameters;" if cost.projections else
                       " no projection shortcut;")
        share = cost.add_elements / cost.macs if cost.macs else float("nan")
        parts.append(f"{cost.model}:{twin}{projections} "
                     f"{_counted(cost.identity_blocks, 'identity block')}; its residual adds "
                     f"are {readable_count(cost.add_elements)} additions, {share:.2%} of its "
                     f"conv and linear MACs")
    return "; ".join(parts) + "."


def _counted(count: int, thing: str) -> str:
    return f"{count} {thing}{'' if count == 1 else 's'}"


def bottleneck_answer(saving: Any) -> str | None:
    """Claim (e), from report.tutorials.bottleneck_saving."""
    if saving is None:
        return None
    return (f"A bottleneck block at 4d channels has {saving.bottleneck_weights:,} weights and "
            f"{readable_count(saving.bottleneck_macs)} MACs, about a basic block at d "
            f"({readable_count(saving.basic_macs)}); a basic block at 4d costs "
            f"{readable_count(saving.wide_macs)}, {saving.wide_over_bottleneck:.1f}× the "
            f"bottleneck.")


def bias_answer(biases: dict[str, tuple[int, int]]) -> str:
    """Claim (f), from report.tutorials.bn_biases, and the test that checks the function."""
    each = "; ".join(f"{model}: {count:,} ({count / params:.2%} of its {params:,} parameters)"
                     for model, (count, params) in biases.items() if params)
    saved = f"A bias on each conv before a BN would add {each}. " if each else ""
    return (f"{saved}The BN's shift absorbs such a bias: folding it in gives the same function "
            f"({BIAS_TEST}).")


def eval_bn_answer() -> str:
    """Claim (g): a test, not a number of the run."""
    return (f"An image's eval-mode output is the same alone and among others, and on every "
            f"call ({EVAL_BN_TEST}).")


def mechanism_finding(test: Any) -> str:
    """The mechanism test (issue 37's intervention) in one line, by the outcome its rule
    gave."""
    outcome = getattr(test, "outcome", None)
    said = getattr(outcome, "value", outcome) or "no outcome"
    return (f"The mechanism test (the early layers' weight norms held at init, paired by "
            f"seed): {said}.")


# --- the papers' claims on the trained nets (analysis.claims) ---------------------------------

CLAIM_NAMES = {
    Claim.LESION_BLOCKS: "one block deleted: relative error rise (plain − residual)",
    Claim.LESION_COUNT: "k blocks deleted: k_half (residual − plain)",
    Claim.PATHS: "paths: half the blocks − the effective path length (residual)",
    Claim.RESPONSES: "sorted response std: mean log10(plain / residual)",
    Claim.LANDSCAPE: "half-way radius r½ (residual − plain)",
    Claim.HESSIAN: "Hessian: |λmin/λmax| (plain − residual)",
}

FINDINGS_RULE = (
    "Each claim is tested at one depth, paired by seed, with a Student-t 95% interval over the "
    "seeds (resnet_probe.stats), on a per-seed value oriented so that the claim says 'above "
    "zero': it holds when the interval lies above zero, does not hold when it lies below, is "
    "'not measurable' when it contains zero, and needs 2 seeds with one. Before that, a depth "
    "is 'inconclusive' when a net it compares did not train: for lesions, its own test error "
    "is not below 3/4 of chance (it has no room to lose); for the landscape and the Hessian, "
    f"its training loss at the trained weights is not below {LOW_LOSS} (it is not at a "
    "minimum). The landscape and Hessian claims are 'confounded' when the plain and residual "
    "nets' losses at the trained weights differ by more than "
    f"{MATCHED_LOSS_FRACTION:g} × ln C (C classes): both measures change as a net goes deeper "
    "into a minimum, so nets at different losses differ for that reason alone. The responses "
    "claim is 'not testable at this budget' when a net's BN scales have barely moved: the "
    "median over its response layers of the mean |γ − 1| is below "
    f"{MIN_GAMMA_DRIFT:g} (a BN output with γ = 1 has unit variance whatever the net "
    "learned). The landscape and Hessian claims carry a no-degradation control: the same "
    "difference on the run's shallowest pair (the compared nets' siblings), trained the same "
    "way. A deeper depth that holds keeps 'holds' only when its excess over the control "
    "(deep minus control difference, paired by seed) has a 95% t interval above zero; else "
    "it is 'not beyond the control', and with no usable control (one depth, fewer than 2 "
    "seeds in common, or a control pair that is blocked or has one seed) 'no control'. "
    "Lesion: the mean relative rise, (error − own error) / (chance − own error), over the "
    "deletable non-downsampling blocks, plain minus residual. Lesion curve: k_half, the number "
    "of deleted blocks that takes a net halfway to chance, residual minus plain. Paths: half "
    "the number of blocks minus the effective path length of the residual net (the gradient "
    "comes from short paths). Responses: mean over rank positions of log10(plain std / "
    "residual std) in the sorted curves (He et al. Fig. 7: residual responses are smaller). "
    "Landscape: the half-way radius r½, the smallest step |α| along a filter-normalised "
    "direction at which the training loss reaches L0 + (ln C − L0)/2, on both sides of each "
    "direction, averaged over the directions and censored at the extent; residual minus plain "
    "(a flatter residual minimum). Hessian: |λmin/λmax|, plain minus residual.")


LANDSCAPE_METHOD = (
    "Li et al. 2018's filter-normalised random directions: the "
    "training loss probed along each direction out to where it reaches half-way from the "
    "trained loss L0 to a uniform guess's, ln C; that step, the half-way radius r½, is "
    "averaged over both sides of every direction and censored at the extent, so it stays "
    "bounded as L0 goes to 0. Keskar's sharpness is the largest rise within "
    f"|α| ≤ {KESKAR_RADIUS:g}, over 1 + L0.")


def claim_name(claim: str) -> str:
    """A claim id (analysis.claims.Claim) in words."""
    return CLAIM_NAMES[Claim(claim)]


def _blocked_text(blocked: dict[str, Any]) -> str:
    measure, value, bar = blocked["measure"], blocked["value"], blocked["bar"]
    if measure.endswith("plain - residual"):
        return (f"seed {blocked['seed']} ({measure.replace(' plain - residual', '')} plain "
                f"minus residual {value:+.3f}, beyond ±{bar:.3f})")
    if measure == "gamma_drift":
        return (f"{blocked['model']} seed {blocked['seed']} (median mean |γ − 1| {value:.3f} "
                f"< {bar:g})")
    return f"{blocked['model']} seed {blocked['seed']} ({measure} {value:.3f})"


def _known(value: object) -> TypeGuard[float]:
    """A number, not NaN or a null read back from JSON."""
    return isinstance(value, (int, float)) and not math.isnan(value)


def finding_evidence(row: Any) -> str:
    """One findings row (analysis.claims.findings) in words: the mean, its interval, the
    per-seed values, what blocked it, and the control."""
    def number(value: float | None) -> str:
        return f"{value:+.3f}" if _known(value) else "n/a"  # NaN reads back from JSON as null

    interval = (f"95% CI {number(row.ci95_low)} to {number(row.ci95_high)}, "
                if _known(row.ci95_low) else "")
    values = list(row.per_seed)
    text = (f"mean {number(row.mean)}, {interval}seeds "
            f"{', '.join(number(v) for v in values)}")
    opposite = sum(_known(v) and v < 0 for v in values)
    if opposite and row.outcome_at_depth != Outcome.HOLDS:
        text += f"; {opposite} of {len(values)} seeds on the opposite side to the claim"
    blocked = list(row.blocked) if isinstance(row.blocked, (list, tuple)) else []
    if blocked:
        why = {Outcome.INCONCLUSIVE.value: "did not train",
               Outcome.CONFOUNDED.value: "losses at the trained weights differ",
               Outcome.NOT_TESTABLE.value: "BN scales barely moved"}.get(
            row.outcome_at_depth, "blocked")
        text += f"; {why}: {'; '.join(_blocked_text(b) for b in blocked)}"
    if getattr(row, "role", None) == Role.CONTROL:
        text += "; this is the control pair of the deeper depths"
    control_depth = getattr(row, "control_depth", None)
    if _known(control_depth):
        control_interval = (f", 95% CI {number(row.control_ci95_low)} to "
                            f"{number(row.control_ci95_high)}"
                            if _known(row.control_ci95_low) else "")
        excess = (f"excess over it {number(row.excess_mean)} (95% CI "
                  f"{number(row.excess_ci95_low)} to {number(row.excess_ci95_high)})"
                  if _known(row.excess_ci95_low) else
                  "no excess interval (fewer than 2 seeds in common)")
        text += (f"; control at depth {int(control_depth)} {number(row.control_mean)}"
                 f"{control_interval} ({row.control_outcome}); {excess}")
    return text


def findings_in_words(findings: pd.DataFrame) -> pd.DataFrame:
    """The findings table as the report shows it: the claim in words (``claim``; the id in
    ``claim_id``) and ``evidence``, a sentence per row."""
    if findings.empty:
        return findings
    return findings.assign(
        claim_id=findings["claim"], claim=[claim_name(c) for c in findings["claim"]],
        evidence=[finding_evidence(row) for row in findings.itertuples()])
