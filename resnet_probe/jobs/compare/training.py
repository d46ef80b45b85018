"""The training section: a short degradation run on the compared models and their shallower
siblings (or an earlier `degradation` run), then the analyses of the nets it trained."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from resnet_probe.analysis import WhyPart, cached_why_part, why_part
from resnet_probe.analysis.trained import collect, load_trained
from resnet_probe.data import load_dataset
from resnet_probe.jobs.compare.plan import WHY_ANALYSES, Plan
from resnet_probe.jobs.parts import CacheReport, Skipped, TrainingPart
from resnet_probe.jobs.sweep import run_degradation
from resnet_probe.progress import Progress
from resnet_probe.sources import ModelSource
from resnet_probe.train.degradation import DegradationConfig, DegradationResult
from resnet_probe.train.fitted_data import fit_dataset_to
from resnet_probe.train.recipes import COMPARE_INTERVENTION
from resnet_probe.train.run_cache import RunCache
from resnet_probe.train.run_folder import RUNS

ANALYSES_INTERRUPTED = ("The analyses of the trained nets did not run: the comparison was "
                        "interrupted first.")


class Interrupted(Exception):
    """Ctrl-C or SIGTERM stopped a section after it kept a partial part."""

    def __init__(self, part: TrainingPart, interruption: KeyboardInterrupt) -> None:
        super().__init__("interrupted")
        self.part = part
        self.interruption = interruption


def training_part(plan: Plan, progress: Progress) -> TrainingPart | Skipped:
    options = plan.options
    if options.degradation_dir is not None:
        return _earlier_run(plan, progress)
    if options.train is None:
        return Skipped("no training was run in this comparison (--no-train); an earlier "
                       "degradation run can be shown here instead (--from-degradation DIR)")
    untrainable = untrainable_reason(plan)
    if untrainable is not None:
        return Skipped(untrainable)
    started = time.perf_counter()
    sources = {source.text: source for source in plan.trained}
    dataset = fit_dataset_to(load_dataset("digits"), list(plan.trained))
    if plan.input_size is not None and any(not s.is_zoo for s in plan.trained):
        dataset = dataset.resized(plan.input_size)  # the size every other section fed
    cache = RunCache(fresh=options.fresh)
    config = DegradationConfig(models=tuple(sources), train=options.train,
                               seeds=options.train_seeds, stop_when_settled=True,
                               tuning_seeds=options.tuning_seeds, intervene=True,
                               intervention=COMPARE_INTERVENTION)
    latest: list[DegradationResult] = []  # after each finished run; kept if interrupted
    interruption: KeyboardInterrupt | None = None
    why: WhyPart | Skipped | None = None
    # compare cannot resume, so checkpoints live in a temporary folder; finished runs are
    # kept in the run cache instead, never in the report's folder. A signal at any moment
    # (a run, the analyses, the folder's clean-up) keeps the runs already recorded.
    try:
        with tempfile.TemporaryDirectory(prefix="resnet-probe-compare-") as runs:
            try:
                run_degradation(config, out_dir=Path(runs), progress=progress,
                                dataset=dataset, on_run_done=latest.append, cache=cache,
                                sources=sources, executor=options.executor)
                if options.why is not None and latest:
                    nets = collect(sorted((Path(runs) / RUNS).glob("*.pt")), dataset,
                                   "this comparison's training runs (their final weights)",
                                   sources)
                    why = cached_why_part(nets, latest[-1].cached_runs, WHY_ANALYSES,
                                         options.why, progress, fresh=options.fresh)
            except KeyboardInterrupt as error:
                interruption = error
    except KeyboardInterrupt as error:
        interruption = interruption or error
    if interruption is not None and options.why is not None and why is None:
        why = Skipped(ANALYSES_INTERRUPTED)
    if not latest:
        if interruption is not None:
            raise interruption
        return Skipped("training recorded no run")
    done = latest[-1]
    part = TrainingPart(
        degradation=done.tables(), why=why, dataset=dataset.description,
        recipe=options.train, seeds=tuple(options.train_seeds),
        cache=CacheReport(str(cache.path), tuple(done.reused), tuple(done.cache_problems),
                          str(cache.usage())),
        source="trained here", interrupted=interruption is not None,
        seconds=round(time.perf_counter() - started, 1), executor=done.executor,
        failed_runs=tuple(done.failed_runs))
    if interruption is not None:
        raise Interrupted(part, interruption)
    return part


def untrainable_reason(plan: Plan) -> str | None:
    """Why the models cannot be trained on the digits here, or None. Training is image
    classification: a model fed other --input tensors, or whose output is not class logits
    (N, classes), is skipped, and the reason says which and why."""
    fed = {source.text: source.inputs for source in plan.trained if source.inputs is not None}
    if fed:
        spec = next(iter(fed.values()))
        return (f"not trained: the training section classifies digit images, and "
                f"{', '.join(fed)} take(s) --input tensors ({spec.text()}), not one image; "
                f"the other sections measured them on those tensors")
    for source in plan.trained:
        if source.is_zoo:
            continue
        shape = output_shape(source, plan.input_size or 32)
        if shape is not None and len(shape) != 2:
            return (f"not trained: {source.text} is not a classifier (its output is "
                    f"{'x'.join(map(str, shape))}, not class logits N x classes), and the "
                    f"training section trains image classifiers with cross-entropy; its "
                    f"gradients were measured with a stated surrogate loss instead")
    return None


def output_shape(source: ModelSource, size: int) -> tuple[int, ...] | None:
    """The shape of the model's output on two images of ``size``, built as training builds
    it (10 classes); None when that output is not one tensor."""
    model = source.build(num_classes=10, structure=False).eval()
    with torch.no_grad():
        output = model(source.example(size, batch_size=2))
    return tuple(output.shape) if isinstance(output, torch.Tensor) else None


def _earlier_run(plan: Plan, progress: Progress) -> TrainingPart:
    """An earlier `degradation --out DIR` run, checked against its checkpoints."""
    directory = plan.options.degradation_dir
    assert directory is not None and plan.earlier_run is not None
    tables, runs = plan.earlier_run
    why = None
    if plan.options.why is not None:
        why = why_part(load_trained(directory, trust_sources=plan.options.trust_sources),
                       WHY_ANALYSES, plan.options.why, progress)
    return TrainingPart(degradation=tables, why=why, dataset="as in the earlier run",
                        recipe=None, seeds=tuple(sorted({run.seed for run in runs})),
                        source=f"reused from {directory}")
