"""What compare says beside its tables, in words: the plan's notes, failed sections and runs,
an early stop, an interruption (and what the console calls one), and a training recipe."""

from __future__ import annotations

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
from resnet_probe.report.words.verdict import stopped_early_text
from resnet_probe.train.loop import TrainConfig


def recipe_text(recipe: TrainConfig) -> str:
    """A training recipe in words."""
    milestones = ", ".join(f"{m:.0%}" for m in recipe.milestones)
    return (f"SGD momentum {recipe.momentum}, lr {recipe.lr} (warm-up "
            f"{recipe.warmup_lr} for {recipe.warmup_steps} steps, x{recipe.gamma} at "
            f"{milestones} of the budget), weight decay {recipe.weight_decay}, batch "
            f"{recipe.batch_size}, {recipe.steps} steps"
            f"{', pad-crop-flip augmentation' if recipe.augment else ''}")


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


def failed_runs_text(failed: tuple[str, ...]) -> str:
    """Runs whose task failed twice (train.executors): named, with why; the rest stand."""
    return (f"{len(failed)} run{'s' * (len(failed) > 1)} failed twice and "
            f"{'are' if len(failed) > 1 else 'is'} missing from the tables ({'; '.join(failed)}); "
            f"the other runs are complete, and a rerun trains only the missing ones")


def interruption_name(interruption: Interruption) -> str:
    """What the console calls an interruption."""
    return ("terminated (SIGTERM)" if interruption is Interruption.SIGTERM
            else "interrupted")


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
