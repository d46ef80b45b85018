"""Where a sweep's training runs execute: in this process, one after another, or each as a Ray
task on a laptop or a cluster.

Both take a batch of (model, seed) runs and hand every finished run back to the caller's
``record``, which writes the run cache, the checkpoint and the snapshots, so the two differ only
in where ``train_run`` runs. Ray does all the scheduling: each run not already settled (cached,
or ended in a checkpoint being resumed) is one task asking for its CPUs and GPU fraction; the
task trains into a task-local temporary folder and returns the run and its checkpoint's bytes
through the object store, so no shared filesystem is assumed. A task that fails is retried once,
then named through ``failed`` while the other runs are kept. Ctrl-C or SIGTERM in the driver
cancels the tasks still pending and keeps every run already recorded.

``ray`` is imported only when a Ray executor trains: everything else works without it.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from resnet_probe.errors import InvalidRequest
from resnet_probe.progress import Progress
from resnet_probe.results import atomic_write_bytes
from resnet_probe.train.loop import RunResult, TrainConfig, train_run

if TYPE_CHECKING:
    from resnet_probe.data import ImageDataset
    from resnet_probe.sources import ModelSource

RAY_EXTRA = "pip install 'resnet-probe[ray]'"


@dataclass(frozen=True)
class PendingRun:
    """One (model, seed) run of a batch, as the sweep wants it trained."""

    source: ModelSource
    seed: int
    recipe: TrainConfig
    checkpoint: Path  # where the driver keeps its checkpoint
    resume: bool = False  # continue from that checkpoint
    intervened: bool = False  # the causal test's run of the net

    @property
    def label(self) -> str:
        return f"{self.source.text} seed {self.seed}" + (" (intervened)" * self.intervened)


# train_run's signature: (source, dataset, config, seed=, checkpoint=, resume=, progress=)
Trainer = Callable[..., RunResult]


@dataclass(frozen=True)
class BatchCallbacks:
    """What the sweep does with its runs; the executor only decides where they train."""

    record: Callable[[PendingRun, Trainer], None]  # train with the trainer (or reuse), store
    failed: Callable[[PendingRun, str], None]  # a run that failed twice, with why
    settled: Callable[[PendingRun], bool]  # needs no training: cached or already ended


class Executor(Protocol):
    def describe(self) -> str:
        """Where the runs train and with how many threads, as the report records it."""
        ...

    def train_batch(self, runs: Sequence[PendingRun], data: ImageDataset,
                    callbacks: BatchCallbacks, progress: Progress) -> None: ...


@dataclass(frozen=True)
class InProcess:
    """Every run here, one after another (progress advances per step)."""

    def describe(self) -> str:
        return f"in this process, {torch.get_num_threads()} torch threads"

    def train_batch(self, runs: Sequence[PendingRun], data: ImageDataset,
                    callbacks: BatchCallbacks, progress: Progress) -> None:
        for run in runs:
            callbacks.record(run, train_run)


IN_PROCESS = InProcess()


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None


@dataclass(frozen=True)
class RayExecutor:
    """Each run not already settled as a Ray task.

    ``workers`` starts a local Ray with that many CPUs, one per concurrent run, each run with
    ``cores // workers`` torch threads; otherwise the driver joins ``address`` (or Ray's own
    default: ``RAY_ADDRESS``, a running local cluster, else a new local one) and each run asks
    for ``threads_per_run`` CPUs. A run on CUDA asks for ``gpus_per_run`` of a GPU, so several
    small nets share one. A Ray already connected in this process is used as it is."""

    address: str | None = None
    workers: int | None = None
    gpus_per_run: float = 1.0
    threads_per_run: int | None = None  # None: cores // workers locally, else 1

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise InvalidRequest(f"workers must be at least 1: workers={self.workers}")
        if not 0 < self.gpus_per_run <= 1:
            raise InvalidRequest(f"the GPU fraction per run must be in (0, 1], e.g. 0.25 for "
                                 f"four runs per GPU: gpus_per_run={self.gpus_per_run}")
        if self.threads_per_run is not None and self.threads_per_run < 1:
            raise InvalidRequest(f"threads per run must be at least 1: "
                                 f"threads_per_run={self.threads_per_run}")
        if self.workers is not None and self.address is not None:
            raise InvalidRequest(f"workers start a local Ray, address joins a running one: "
                                 f"give one of them (workers={self.workers}, "
                                 f"address={self.address!r})")
        if not ray_available():
            raise InvalidRequest(f"the Ray executor needs the ray package, which is not "
                                 f"installed: {RAY_EXTRA}")

    @property
    def threads(self) -> int:
        if self.threads_per_run is not None:
            return self.threads_per_run
        if self.workers is not None:
            return max(1, (os.cpu_count() or 1) // self.workers)
        return 1

    @property
    def cpus_per_run(self) -> int:
        # A local Ray has one CPU per worker; on a cluster a run asks for the cores it uses.
        return 1 if self.workers is not None else self.threads

    def describe(self) -> str:
        where = (f"as Ray tasks on {self.workers} local workers ({os.cpu_count() or 1} cores)"
                 if self.workers is not None
                 else f"as Ray tasks at {self.address or 'the default address'}")
        return (f"{where}; each run {self.threads} torch thread{'s' * (self.threads > 1)}, "
                f"{self.cpus_per_run} CPU, {self.gpus_per_run:g} GPU when on CUDA")

    def resources(self, recipe: TrainConfig) -> dict[str, float]:
        on_gpu = recipe.device.startswith("cuda")
        return {"num_cpus": self.cpus_per_run, "num_gpus": self.gpus_per_run if on_gpu else 0}

    def connect(self) -> Any:
        """Ray, started or joined. ``ray.init`` replaces the driver's SIGTERM handler with an
        exit; ours is put back, so SIGTERM still keeps the finished runs (Ray's own atexit
        hook stops what it started)."""
        import ray

        if ray.is_initialized():
            return ray
        main = threading.current_thread() is threading.main_thread()
        sigterm = signal.getsignal(signal.SIGTERM) if main else None
        try:
            if self.workers is not None:
                ray.init(num_cpus=self.workers, include_dashboard=False,
                         log_to_driver=False, configure_logging=False)
            else:
                ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        finally:
            if sigterm is not None:
                signal.signal(signal.SIGTERM, sigterm)
        return ray

    def train_batch(self, runs: Sequence[PendingRun], data: ImageDataset,
                    callbacks: BatchCallbacks, progress: Progress) -> None:
        to_send = []
        for run in runs:  # settled runs are reused here, in order; only the rest are sent
            if callbacks.settled(run):
                callbacks.record(run, train_run)
            else:
                to_send.append(run)
        if not to_send:
            return
        ray = self.connect()
        task = ray.remote(train_task)
        data_ref = ray.put(data)  # once per batch, shared by its tasks
        pending = {self.submit(task, run, data_ref): run for run in to_send}
        try:
            while pending:
                progress.set_description(f"train: {len(pending)} runs on Ray")
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    run = pending.pop(ref)
                    try:
                        trained, checkpoint_bytes = ray.get(ref)
                    except ray.exceptions.RayError as error:
                        callbacks.failed(run, _reason(error))
                        continue
                    callbacks.record(run, _finished(trained, checkpoint_bytes))
                    progress.update(run.recipe.end_step)
        except KeyboardInterrupt:
            for ref in pending:  # the runs recorded so far are kept by the caller
                ray.cancel(ref, force=True)
            raise

    def submit(self, task: Any, run: PendingRun, data_ref: Any) -> Any:
        """Send one run (with its checkpoint's bytes when it resumes); its object ref."""
        resume_from = run.checkpoint.read_bytes() if run.resume and run.checkpoint.exists() \
            else None
        return task.options(**self.resources(run.recipe), max_retries=1, retry_exceptions=True,
                            name=f"train {run.label}").remote(
            run.source, data_ref, run.recipe, run.seed, self.threads, resume_from)


def train_task(source: ModelSource, data: ImageDataset, recipe: TrainConfig, seed: int,
               threads: int, resume_from: bytes | None) -> tuple[RunResult, bytes]:
    """A Ray task: one run trained into a task-local folder; the run and its checkpoint's bytes
    go back to the driver through the object store."""
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="resnet-probe-run-") as folder:
        checkpoint = Path(folder) / "run.pt"
        if resume_from is not None:
            checkpoint.write_bytes(resume_from)
        run = train_run(source, data, recipe, seed=seed, checkpoint=checkpoint,
                        resume=resume_from is not None)
        return run, checkpoint.read_bytes()


def _finished(run: RunResult, checkpoint_bytes: bytes) -> Trainer:
    """A trainer that hands back a run a task finished, its checkpoint written where the
    driver keeps it."""
    def trainer(*args: Any, checkpoint: Path | None = None, **kwargs: Any) -> RunResult:
        if checkpoint is not None:
            atomic_write_bytes(checkpoint, checkpoint_bytes)
        return run
    return trainer


def _reason(error: Exception) -> str:
    cause = getattr(error, "cause", None)  # a RayTaskError carries the task's own exception
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"
    first = str(error).strip().splitlines()
    return f"{type(error).__name__}: {first[0] if first else ''}"
