"""What a comparison is asked to do: the models, resolved and validated once at the edge, the
options, and the shared input size, in one ``Plan`` every section reads."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from torch import nn

from resnet_probe.analysis import Analysis, AnalysisOptions
from resnet_probe.device import training_device
from resnet_probe.errors import InvalidRequest
from resnet_probe.jobs.parts import ForeignModels, PlanNote, SharedInputSize
from resnet_probe.measure.gradients import GradientConfig
from resnet_probe.measure.latency import LatencyConfig
from resnet_probe.sources import InputSpec, ModelSource, resolve
from resnet_probe.train.degradation import DegradationTables, load_degradation_run
from resnet_probe.train.executors import IN_PROCESS, Executor
from resnet_probe.train.loop import RunResult, TrainConfig
from resnet_probe.train.recipes import COMPARE_SEEDS, COMPARE_TRAIN, COMPARE_TUNING_SEEDS
from resnet_probe.zoo import name_of

# The analyses of the trained nets in compare: the deep pair only, on small fixed subsets, to
# keep the main job's budget (`lesion`, `landscape`, ... RUN analyse every net in full).
COMPARE_WHY = AnalysisOptions(limit=128, lesion_samples=2, landscape_points=7,
                              landscape_limit=128, landscape_directions=5,
                              hessian_images=32, hessian_iterations=12, path_images=8,
                              deep_pair_only=True)
COMPARE_LATENCY = LatencyConfig(repeats=10, warmup=3, sweep_batch_sizes=(1, 8))
COMPARE_GRADIENTS = GradientConfig(batch_size=32, seeds=(0, 1, 2), shatter_points=128,
                                   shatter_projections=2)
WHY_ANALYSES = tuple(Analysis)


@dataclass(frozen=True)
class CompareOptions:
    input_size: int | None = None  # None: the family's standard, shared when families mix
    latency: LatencyConfig | None = COMPARE_LATENCY  # None skips the section
    gradients: GradientConfig | None = COMPARE_GRADIENTS
    train: TrainConfig | None = COMPARE_TRAIN  # None skips training
    train_seeds: tuple[int, ...] = COMPARE_SEEDS
    tuning_seeds: tuple[int, ...] = COMPARE_TUNING_SEEDS
    degradation_dir: Path | None = None  # reuse a previous `degradation` run instead
    bottleneck_width: int = 64
    bottleneck_size: int = 56
    fresh: bool = False  # retrain and measure again where the caches hold a result
    why: AnalysisOptions | None = COMPARE_WHY  # analyses of the trained nets; None skips
    # --from-degradation: a FILE.py:factory the earlier run's files name (inside its folder)
    # may run; without it only zoo, spec, torchvision: and timm: models are rebuilt from them
    trust_sources: bool = False
    executor: Executor = IN_PROCESS  # where the training runs execute (train.executors)

    def __post_init__(self) -> None:
        if len(set(self.train_seeds)) != len(self.train_seeds):
            raise InvalidRequest(f"seeds must be distinct: seeds={self.train_seeds!r}")

    @classmethod
    def choose(cls, input_size: int | None = None, device: str = "auto", latency: bool = True,
               train: bool = True, train_steps: int | None = None,
               train_seeds: tuple[int, ...] = COMPARE_SEEDS,
               degradation_dir: Path | None = None, fresh: bool = False, why: bool = True,
               latency_engine: str | None = None, trust_sources: bool = False,
               executor: Executor = IN_PROCESS, threads: int | None = None
               ) -> CompareOptions:
        """The defaults with a user's choices applied (what the CLI's flags say)."""
        latency_config = replace(COMPARE_LATENCY, device=device, threads=threads)
        if latency_engine is not None:
            latency_config = replace(latency_config, engine=latency_engine)
        steps = train_steps or COMPARE_TRAIN.steps
        return cls(
            input_size=input_size,
            latency=latency_config if latency else None,
            train=replace(COMPARE_TRAIN, device=training_device(device), steps=steps,
                          eval_every=steps, checkpoint_every=steps,
                          record_steps=tuple(s for s in COMPARE_TRAIN.record_steps
                                             if s < steps)) if train else None,
            train_seeds=tuple(train_seeds), degradation_dir=degradation_dir, fresh=fresh,
            why=COMPARE_WHY if why else None, trust_sources=trust_sources,
            executor=executor)

    @property
    def trains(self) -> bool:
        return self.train is not None and self.degradation_dir is None


@dataclass(frozen=True)
class Plan:
    """The models as resolved sources (the first is the baseline), their shallower siblings
    for the training section, and what every section needs to know."""

    sources: tuple[ModelSource, ...]
    options: CompareOptions = CompareOptions()
    input_size: int | None = None  # the shared size, when one is needed
    siblings: tuple[ModelSource, ...] = ()
    notes: tuple[PlanNote, ...] = field(default=())
    # --from-degradation: the earlier run, loaded and checked against its checkpoints before
    # anything is measured
    earlier_run: tuple[DegradationTables, list[RunResult]] | None = None

    @property
    def models(self) -> list[str]:
        return [source.text for source in self.sources]

    @property
    def trained(self) -> tuple[ModelSource, ...]:
        return self.sources + self.siblings

    @classmethod
    def build(cls, models: list[str | nn.Module | ModelSource],
              options: CompareOptions = CompareOptions(), in_channels: int | None = None,
              inputs: InputSpec | None = None) -> Plan:
        """Resolve and check the model list once: two or more, distinct, and an input size
        every zoo model takes. ``inputs``: what each model's forward takes, when it is not
        one image (--input); those tensors are used at their shapes in every section."""
        if len(models) < 2:
            raise InvalidRequest(f"compare needs at least two models (the first is the "
                                 f"baseline): got {list(map(str, models))}; e.g. "
                                 f"`resnet-probe compare resnet34 plain34`")
        if inputs is not None and options.input_size is not None:
            raise InvalidRequest(f"give the models' inputs (--input) or --input-size, not "
                                 f"both: input_size={options.input_size}")
        sources = tuple(resolve(model, in_channels, options.input_size, inputs=inputs)
                        for model in models)
        seen: set[str] = set()
        for source in sources:
            if source.text in seen:
                raise InvalidRequest(f"model {source.text!r} is named twice; compare "
                                     f"distinct models (give each module its own .name)")
            seen.add(source.text)
        notes: list[PlanNote] = []
        input_size = options.input_size
        defaults = {source.default_input_size for source in sources}
        foreign = tuple(source.text for source in sources if not source.is_zoo)
        if foreign and input_size is None:
            # One size for every section: the one training feeds (the digits upscaled to
            # what every stride stack needs), never a foreign model's 224 beside it.
            input_size = trained_size(sources)
        elif input_size is None and len(defaults) > 1:
            input_size = max(defaults)
            notes.append(SharedInputSize(tuple(sorted(defaults)), input_size))
        if input_size is not None:
            for source in sources:
                if source.spec is not None:  # a zoo model
                    source.spec.check_input_size(input_size)
        if foreign:
            notes.append(ForeignModels(foreign, input_size or trained_size(sources), tuple(
                source.text for source in sources if source.inputs is not None)))
        earlier = None
        if options.degradation_dir is not None:
            earlier = load_degradation_run(options.degradation_dir)
        return cls(sources, options, input_size, siblings(sources), tuple(notes), earlier)


def size_for(plan: Plan, source: ModelSource) -> int | None:
    """The image size a section feeds ``source``: the plan's, or None where its --input
    tensors say what it takes."""
    return None if source.inputs is not None else plan.input_size


def trained_size(sources: tuple[ModelSource, ...]) -> int:
    """The image size the training section feeds these models: the digits upscaled to 32,
    or to what a stride stack needs (``train.fitted_data.fit_dataset_to``)."""
    return max(32, *(source.min_input_size for source in sources))


def siblings(sources: tuple[ModelSource, ...]) -> tuple[ModelSource, ...]:
    """Shallower references for the training section: each zoo model's design at the
    family's shallowest standard layout (resnet20/plain20, resnet18/plain18 for the original
    design; e.g. preact_resnet110[layers=3-3-3] for a pre-activation net)."""
    names = [source.text for source in sources]
    extra: list[ModelSource] = []
    for source in sources:
        spec = source.spec
        if spec is None:
            continue  # a foreign model: no layout to shorten
        layers = (3, 3, 3) if spec.family == "cifar" else (2, 2, 2, 2)
        if sum(layers) >= sum(spec.layers) or len(layers) != len(spec.layers):
            continue
        reference = name_of(spec.replace(layers=layers)) or \
            f"{source.text}[layers={'-'.join(map(str, layers))}]"
        if reference not in names + [s.text for s in extra]:
            extra.append(resolve(reference))
    return tuple(extra)
