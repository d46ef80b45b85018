"""Training runs as Ray tasks (resnet_probe.train.executors): the same numbers as in-process, a
failed task retried once then named, an interruption that keeps the finished runs, and a
rerun that sends only the missing ones. The Ray tests run on a local 2-CPU cluster and skip
where ray is not installed (`pip install -e '.[ray]'`); the flag checks run everywhere."""

from __future__ import annotations

import json
import os

import pytest
import torch

from resnet_probe.data import load_dataset
from resnet_probe.jobs.sweep import run_degradation
from resnet_probe.train import executors
from resnet_probe.train.degradation import DegradationConfig
from resnet_probe.train.executors import IN_PROCESS, RayExecutor
from resnet_probe.train.loop import TrainConfig
from resnet_probe.train.run_cache import RunCache

# The tiny sweep, 2 depths x 2 kinds x 2 seeds of 12 steps, evaluated only at the end
# so it takes seconds.
TINY = TrainConfig(steps=12, batch_size=16, warmup_steps=1, eval_every=12, grad_norm_every=6,
                   checkpoint_every=12, eval_images=64)
SWEEP = DegradationConfig(depths=(8, 14), seeds=(0, 1), train=TINY)
RUNS = 2 * 2 * 2


@pytest.fixture(scope="module")
def ray_cluster():
    """A local 2-CPU Ray; skipped without ray, failed instead under RESNET_PROBE_REQUIRE_RAY=1
    (.ci/run, the second environment, which installs the [ray] extra)."""
    if os.environ.get("RESNET_PROBE_REQUIRE_RAY") == "1":
        import ray
    else:
        ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def one_thread():
    """Both executors at the same thread count: 1 (a Ray run's threads_per_run below)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _finals(result) -> dict[tuple[str, int], dict]:
    return {(row["model"], row["seed"]): row for row in result.final_rows()}


def test_ray_runs_give_the_in_process_numbers_bit_for_bit(ray_cluster, one_thread, tmp_path):
    digits = load_dataset("digits")
    here = run_degradation(SWEEP, tmp_path / "here", dataset=digits, executor=IN_PROCESS)
    there = run_degradation(SWEEP, tmp_path / "ray", dataset=digits,
                            executor=RayExecutor(threads_per_run=1))
    assert there.failed_runs == [] and len(there.runs) == RUNS
    assert "as Ray tasks" in there.executor and "1 torch thread" in there.executor
    # Same rows in the same order, every number equal (not close): final errors and losses,
    # and each step's loss along the way.
    assert [(r.model, r.seed) for r in there.runs] == [(r.model, r.seed) for r in here.runs]
    for key, row in _finals(here).items():
        for column in ("final_train_error", "final_train_error_eval", "final_test_error"):
            assert _finals(there)[key][column] == row[column], (key, column)
    for a, b in zip(here.runs, there.runs, strict=True):
        assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    # The driver wrote every checkpoint from the bytes the tasks returned.
    assert len(list((tmp_path / "ray" / "runs").glob("*.pt"))) == RUNS


class _CountingSubmits:
    """RayExecutor.submit, counted: how many runs were sent to Ray."""

    def __init__(self, monkeypatch) -> None:
        self.sent: list[str] = []
        original = RayExecutor.submit

        def submit(executor, task, run, data_ref):
            self.sent.append(run.label)
            return original(executor, task, run, data_ref)
        monkeypatch.setattr(RayExecutor, "submit", submit)


class _StopAfterRuns:
    """A progress bar that presses Ctrl-C once ``runs`` runs have finished."""

    def __init__(self, runs: int, steps: int) -> None:
        self.left, self.steps = runs * steps, steps

    def update(self, n: int = 1) -> None:
        self.left -= n
        if self.left <= 0:
            raise KeyboardInterrupt

    def set_description(self, desc: str) -> None:
        pass

    def reset(self, total: int | None = None) -> None:
        pass


def test_an_interrupted_ray_sweep_keeps_its_finished_runs_and_a_rerun_sends_the_rest(
        ray_cluster, monkeypatch, tmp_path):
    counted = _CountingSubmits(monkeypatch)
    cache = RunCache(tmp_path / "cache")
    config = DegradationConfig(depths=(8,), seeds=(0, 1), train=TINY)  # 4 runs, 2 per seed
    snapshots = []
    with pytest.raises(KeyboardInterrupt):
        run_degradation(config, tmp_path / "run", cache=cache, on_run_done=snapshots.append,
                        progress=_StopAfterRuns(1, TINY.steps),
                        executor=RayExecutor(threads_per_run=1))
    # Seed 0's two runs were sent; Ctrl-C came after the first finished, the other was
    # cancelled, and seed 1 was never sent.
    assert len(counted.sent) == 2
    kept = snapshots[-1]
    finished = [f"{run.model} seed {run.seed}" for run in kept.runs if run.status == "finished"]
    assert len(finished) >= 1 and len(kept.cached_runs) == len(finished)
    counted.sent.clear()
    rerun = run_degradation(config, tmp_path / "run", cache=cache,
                            executor=RayExecutor(threads_per_run=1))
    assert sorted(rerun.reused) == sorted(finished)
    assert len(counted.sent) == 4 - len(finished)
    assert not set(counted.sent) & set(finished)
    assert {run.status for run in rerun.runs} == {"finished"} and len(rerun.runs) == 4


def test_a_failing_task_is_retried_once_then_named_and_the_others_kept(ray_cluster,
                                                                       monkeypatch, tmp_path):
    attempts = tmp_path / "attempts"
    attempts.mkdir()
    real_task = executors.train_task

    def unlucky_for_plain8(source, data, recipe, seed, threads, resume_from):
        # A closure, so Ray ships it by value to the workers (which share this filesystem).
        if source.text == "plain8":
            import uuid

            (attempts / uuid.uuid4().hex).touch()
            raise RuntimeError("out of memory on this worker")
        return real_task(source, data, recipe, seed, threads, resume_from)

    monkeypatch.setattr(executors, "train_task", unlucky_for_plain8)
    config = DegradationConfig(depths=(8,), seeds=(0,), train=TINY)
    result = run_degradation(config, tmp_path / "run", executor=RayExecutor(threads_per_run=1))
    assert len(list(attempts.iterdir())) == 2  # the first try and one retry
    assert result.failed_runs == ["plain8 seed 0: RuntimeError: out of memory on this worker"]
    assert [(run.model, run.status) for run in result.runs] == [("resnet8", "finished")]


def test_degradation_cli_with_the_ray_executor_records_it(ray_cluster, invoke, tmp_path):
    out = tmp_path / "run"
    result = invoke("degradation", "--seeds", "0", "--depths", "8", "--steps", "4",
                    "--warmup-steps", "1", "--batch-size", "16", "--no-why",
                    "--executor", "ray", "--out", str(out), "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert {row["status"] for row in json.loads(result.stdout)} == {"finished"}
    environment = {row["key"]: row["value"] for row in
                   json.loads((out / "data" / "environment.json").read_text())}
    assert environment["executor"].startswith("as Ray tasks at the default address")
    assert "as Ray tasks" in (out / "degradation.html").read_text()


def test_joining_ray_keeps_the_sigterm_handler_that_keeps_finished_runs(ray_cluster):
    """ray.init sets a SIGTERM handler that exits at once; the CLI's raises Terminated, which
    keeps the finished runs and exits 143. Runs last: it restarts the module's Ray."""
    import signal

    ray_cluster.shutdown()

    def ours(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, ours)
    try:
        RayExecutor(workers=2).connect()
        assert signal.getsignal(signal.SIGTERM) is ours
    finally:
        signal.signal(signal.SIGTERM, previous)
        ray_cluster.shutdown()
    ray_cluster.init(num_cpus=2, include_dashboard=False, log_to_driver=False)


# --- the flags, checked before anything runs (no ray needed) ---------------------------------

def test_zero_workers_is_refused(invoke, tmp_path):
    result = invoke("degradation", "--workers", "0", "--out", str(tmp_path))
    assert result.exit_code == 2 and "'--workers': 0 is not in the range x>=1" in result.stderr


@pytest.mark.parametrize("fraction,shown", [("0", "0.0"), ("1.5", "1.5")])
def test_a_gpu_fraction_outside_zero_to_one_is_refused(invoke, tmp_path, fraction, shown):
    result = invoke("degradation", "--gpus-per-run", fraction, "--out", str(tmp_path))
    assert result.exit_code == 2
    assert f"'--gpus-per-run': {shown} is not in the range 0<x<=1" in result.stderr


def test_address_without_ray_installed_is_refused(invoke, tmp_path, monkeypatch):
    monkeypatch.setattr(executors, "ray_available", lambda: False)
    result = invoke("degradation", "--address", "10.0.0.1:6379", "--out", str(tmp_path))
    assert result.exit_code == 2
    assert "--address 10.0.0.1:6379 needs the ray package" in result.stderr
    assert "pip install 'resnet-probe[ray]'" in result.stderr


def test_the_ray_executor_without_ray_installed_is_refused(invoke, tmp_path, monkeypatch):
    monkeypatch.setattr(executors, "ray_available", lambda: False)
    result = invoke("compare", "resnet8", "plain8", "--executor", "ray", "--out",
                    str(tmp_path))
    assert result.exit_code == 2 and "--executor ray needs the ray package" in result.stderr


def test_ray_flags_with_the_local_executor_are_refused(invoke, tmp_path):
    result = invoke("degradation", "--executor", "local", "--workers", "2", "--out",
                    str(tmp_path))
    assert result.exit_code == 2
    assert "--workers 2: these ask for Ray, but --executor local was given" in result.stderr


def test_a_gpu_fraction_for_cpu_runs_is_refused(invoke, tmp_path, monkeypatch):
    monkeypatch.setattr(executors, "ray_available", lambda: True)
    result = invoke("degradation", "--gpus-per-run", "0.25", "--device", "cpu", "--out",
                    str(tmp_path))
    assert result.exit_code == 2 and "--gpus-per-run 0.25 shares a GPU" in result.stderr


def test_workers_split_the_cores_into_threads(monkeypatch):
    monkeypatch.setattr(executors, "ray_available", lambda: True)
    monkeypatch.setattr(executors.os, "cpu_count", lambda: 8)
    # 8 cores, 2 workers: 4 threads each, one Ray CPU per run; on a cluster a run asks for
    # the CPUs it uses.
    local = RayExecutor(workers=2)
    assert (local.threads, local.cpus_per_run) == (4, 1)
    assert "2 local workers (8 cores); each run 4 torch threads" in local.describe()
    assert RayExecutor(workers=16).threads == 1  # never fewer than one
    cluster = RayExecutor(address="10.0.0.1:6379", threads_per_run=3, gpus_per_run=0.25)
    assert cluster.resources(TrainConfig(device="cuda:0")) == {"num_cpus": 3, "num_gpus": 0.25}
    assert cluster.resources(TrainConfig()) == {"num_cpus": 3, "num_gpus": 0}


def test_the_in_process_executor_trains_in_order_without_ray(tmp_path):
    result = run_degradation(DegradationConfig(depths=(8,), seeds=(0,), train=TINY),
                             tmp_path / "run")
    assert [run.model for run in result.runs] == ["plain8", "resnet8"]
    assert result.executor.startswith("in this process") and result.failed_runs == []
