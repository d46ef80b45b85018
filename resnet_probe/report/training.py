"""The training part rendered: the degradation curves and verdict with every number behind it,
the dynamics of the first steps in the recipe, and the Why part (analyses of the trained
nets)."""

from __future__ import annotations

from markupsafe import Markup

from resnet_probe.analysis import WhyPart
from resnet_probe.jobs.parts import InProgress, Skipped, TrainingPart
from resnet_probe.report import figures
from resnet_probe.report.html import Section, join, markup
from resnet_probe.report.words import (
    FINDINGS_RULE,
    LANDSCAPE_METHOD,
    TWIN_RULE,
    VERDICT_RULE_PARAGRAPH,
    causal_line,
    failed_runs_text,
    findings_in_words,
    recipe_text,
    twin_note_text,
    verdict_note_text,
)
from resnet_probe.stats import RULE
from resnet_probe.train.verdict import DegradationVerdict, StoppedEarly, TwinOutcome, Verdict


def render_training(part: TrainingPart, number: str = "6.") -> Section:
    section = Section("degradation", f"{number} Degradation: training error by depth",
                      nav="Degradation")
    tables = part.degradation
    if part.failed_runs:
        section.note(failed_runs_text(part.failed_runs) + ".", kind="warning")
    if tables.final.empty:
        return section.note("Training was interrupted before any run recorded a step; "
                            "nothing to show.", kind="warning")
    unfinished = tables.final.query("status != 'finished'")
    if not unfinished.empty:
        runs = ", ".join(f"{row.model} seed {row.seed} ({row.status} after {row.steps_done} "
                         f"steps)" for row in unfinished.itertuples())
        section.note(f"Not every run finished: {runs}. Their rows and curves show the "
                     f"steps recorded before they stopped; conclusions below use them as they "
                     f"are.", kind="warning")
    if part.cache is not None and part.cache.reused:
        section.note(f"Reused from the run cache ({part.cache.path}): "
                     f"{', '.join(part.cache.reused)}. These runs finished earlier with "
                     f"the same model, recipe, data, seed, device and versions; --fresh "
                     f"retrains them.")
    for problem in part.cache.problems if part.cache is not None else ():
        section.note(problem, kind="warning")
    if part.recipe is not None:
        section.text(f"Data: {part.dataset}. Recipe: {recipe_text(part.recipe)}. "
                     f"The primary curve is the train-mode minibatch error; eval-mode errors "
                     f"are beside it." + (f" Trained {part.executor}." if part.executor
                                          else ""))
    elif part.source:
        section.text(f"Runs {part.source}.")
    if tables.twin_verdict is not None:  # a model and its plain twin: their own question
        twin = tables.twin_verdict
        section.note(markup("<b>{}</b>{}", *twin_note_text(twin)),
                     kind="warning" if twin.verdict is TwinOutcome.INCONCLUSIVE
                     else "finding")
        section.method(f"Rule, {TWIN_RULE}", f"Intervals: {RULE}",
                       summary="The rule the twin verdict follows, and its intervals")
    else:
        text, kind = verdict_note(tables.verdict, tables.stopped_early)
        section.note(text, kind=kind)
        section.method(f"Rule, {VERDICT_RULE_PARAGRAPH}", f"Intervals: {RULE}",
                       summary="The rule the verdict follows, and its intervals")
    if not tables.estimates.empty:
        section.table(tables.estimates, caption="The comparisons the verdict rests on: per "
                                                "seed, mean, and 95% t interval")
    section.figure(figures.training_curves(tables.history, tables.final))
    if not tables.evals.empty:
        section.figure(figures.eval_curves(tables.evals))
    section.table(tables.final, caption="Final errors (train-mode error averaged over the last "
                                        "10% of steps; eval-mode errors at the last evaluation)")
    if not tables.grad_norms.empty:
        section.figure(figures.grad_ratio_training(tables.grad_norms))
    if not tables.dynamics.empty:
        section.text(markup("<b>The first steps, in this recipe</b> (the runs above, watched at "
                            "the recorded steps): {}", FIRST_STEPS))
        section.figure(figures.recipe_dynamics(tables.dynamics, tables.joins))
        if not tables.dynamics_summary.empty:
            section.table(tables.dynamics_summary, caption="The first conv over the recorded "
                          "steps, mean over seeds with 95% t intervals: ‖W‖ growth, and "
                          "‖∇W‖/‖W‖ and the effective step at the last recorded step")
    if tables.causal is not None:
        section.note(causal_line(tables.causal))
    section.method("These are short runs on small data: the gap shows that the deeper plain net "
                 "trains more slowly at this budget, not that it cannot reach a low training "
                 "error. Trained much longer, a deep plain net on data this easy can get low "
                 "too; the paper's Fig. 6 shows the gap persisting on CIFAR-10 over 64k "
                 "iterations.", summary="What a short run can and cannot show")
    return section


FIRST_STEPS = (
    "per layer, ‖∇W‖/‖W‖ and the effective step lr·‖∇W‖/‖W‖ that plain SGD would take, and "
    "‖ΔW‖/‖W‖ of the update actually made. That last one is dominated by momentum after a "
    "large first step: with μ = 0.9 it follows μ^t / Σ_{k<t} μ^k = 0.90, 0.43, 0.14, ... "
    "whatever the layer does, so the figure draws that curve beside it.")


def verdict_note(verdict: DegradationVerdict, stopped_early: StoppedEarly | None
                 ) -> tuple[Markup, str]:
    """The verdict as train/verdict.py made it, with the numbers it rests on."""
    text = markup("<b>{}</b>{}", *verdict_note_text(verdict, stopped_early))
    return text, ("finding" if verdict.verdict is not Verdict.INCONCLUSIVE else "warning")


def render_why(part: WhyPart | InProgress | Skipped | None, number: str = "") -> Section:
    """Why the residual nets train: the analyses of the trained nets, each claim tested by
    its stated rule."""
    section = Section("why", f"{number} Why: what the trained nets show".strip(),
                      nav="Trained nets")
    if isinstance(part, InProgress):
        return section.note(part.note, kind="warning")
    if part is None or isinstance(part, Skipped) or part.empty:
        reason = part.reason if isinstance(part, Skipped) else \
            "No trained nets were analysed in this report."
        return section.note(reason)
    reused = (" Reused from the cache of results: the same runs, analyses and options were "
              "analysed before (--fresh recomputes)." if part.reused else "")
    section.text(part.data + reused)
    for skipped in part.not_analysed:
        section.note(f"Not analysed: {skipped}", kind="warning")
    if part.untrained:
        section.note(f"These nets did not train (final training error not below the verdict's "
                     f"bar): {', '.join(part.untrained)}. Their rows describe a net stuck "
                     f"near chance, not a trained one.", kind="warning")
    findings = findings_in_words(part.findings)
    if not findings.empty:
        held = findings["outcome"].eq("holds")
        lines = join("; ", (markup("{} at depth {}: <b>{}</b> ({})", row.claim, row.depth,
                                   row.outcome, row.evidence) for row in findings.itertuples()))
        section.note(markup("{}.", lines), kind="finding" if held.all() else "warning")
        section.method(f"Rule: {FINDINGS_RULE}", summary="The rule each claim is tested by")
        section.table(findings, caption="The papers' claims, tested at this budget")
    if not part.tables.lesion_blocks.empty or not part.tables.lesion_count.empty:
        section.method("A residual block's branch is deleted and its shortcut kept; a plain "
                       "block is replaced by the identity where its shape allows. The rise is "
                       "given as a fraction of the room the net had (chance minus its own "
                       "error), so a net that trained worse is not favoured by having less to "
                       "lose.", summary="Lesions (Veit et al. 2016): how")
    if not part.tables.lesion_blocks.empty:
        section.figure(figures.lesion_blocks(part.tables.lesion_blocks))
        lesions = part.tables.lesion_blocks
        blocked = lesions[lesions["not_deletable_because"].notna()].drop_duplicates(
            ["model", "block"])
        if not blocked.empty:
            section.table(blocked[["model", "block", "not_deletable_because"]],
                          caption="Blocks that cannot be deleted, and why")
    if not part.tables.lesion_count.empty:
        section.figure(figures.lesion_count(part.tables.lesion_count))
    if not part.tables.paths.empty:
        section.method("A net of n residual blocks holds C(n, k) paths through k branches. The "
                       "gradient reaching the input through paths of each length is measured by "
                       "letting the gradient flow through either the branch or the shortcut of "
                       "each block, with k branches drawn at random.",
                       summary="Effective paths (Veit et al. 2016, Fig. 6): how")
        section.figure(figures.path_lengths(part.tables.paths))
    if not part.tables.responses.empty:
        section.method("Residual functions that stay close to zero give smaller responses than "
                       "the plain net's layers, which must carry the whole signal.",
                       summary="Layer responses (He et al. 2016, Fig. 7): why")
        section.figure(figures.layer_responses(part.tables.responses))
    if not part.tables.landscape.empty:
        section.method(LANDSCAPE_METHOD, summary="Loss landscape (Li et al. 2018): how")
        section.figure(figures.landscape_slices(part.tables.landscape))
        if "beta" in part.tables.landscape and part.tables.landscape["beta"].notna().any():
            section.figure(figures.landscape_surfaces(part.tables.landscape))
    if not part.tables.landscape_summary.empty:
        section.table(part.tables.landscape_summary, caption="Landscape summary per net: loss "
                      "at the trained weights, the half-way radius r½ over the directions "
                      "(95% interval over the directions, log scale), Keskar's sharpness")
    if not part.tables.hessian.empty:
        section.method("The largest and smallest eigenvalues of the Hessian of the training "
                       "loss at the trained weights, by Lanczos on Hessian-vector products.",
                       summary="Hessian spectra (Li et al. 2018; pyhessian's approach): how")
        section.table(part.tables.hessian, caption="Top eigenvalue and |λmin/λmax| per net")
    return section
