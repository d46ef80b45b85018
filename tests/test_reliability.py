"""Nothing lost and nothing silently wrong: each case reproduces a reported failure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from resnet_probe.measure import memory
from resnet_probe.train.loop import TrainConfig, _divergence, train_run

TINY_DEGRADATION = ["degradation", "--seeds", "0", "--depths", "8", "--steps", "4",
                    "--warmup-steps", "1", "--batch-size", "16"]


@pytest.mark.parametrize("text,message", [
    ("resnet20[layers=99999999999999999999-1-1]", "ASCII digits"),
    ("resnet20[layers=1-1-1,layers=2-2-2]", "field 'layers' is given twice"),
    ("resnet20[layers=１-1-1]", "ASCII digits"),
    ("resnet20[layers=3000-1-1]", "at most 2048 blocks per stage"),
    ("resnet" + "9" * 5000, "characters long"),
    ("resnet20[widths=16-32-99999]", "at most 16,384 channels"),
])
def test_hostile_spec_texts_fail_fast_with_a_message(invoke, text, message):
    started = time.perf_counter()
    result = invoke("flops", text)
    assert result.exit_code == 2 and message in result.stderr
    assert "Traceback" not in result.output and time.perf_counter() - started < 10


def test_memory_estimate_by_hand():
    """Conv(1->2, 3x3) + ReLU at 8x8: per sample 64 input + 128 + 128 output elements."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU())
    estimate = memory.estimate_peak_bytes(model, (4, 1, 8, 8), training=True)
    assert estimate.activation_bytes_per_sample == (64 + 128 + 128) * 4
    assert estimate.parameter_bytes == (18 + 2) * 4 * 3  # weights, grads, momentum
    assert estimate.total_bytes == 240 + 4 * 1280
    assert estimate.largest_batch_within(240 + 10 * 1280) == 10


@pytest.mark.parametrize("args", [
    ("latency", "resnet8", "--batch-size", "100000"),
    ("show", "resnet8", "--input-size", "8000"),
    ("gradients", "resnet8", "--batch-size", "10000000"),
])
def test_memory_guard_refuses_before_allocating(invoke, args):
    result = invoke(*args)
    assert result.exit_code == 1
    assert "GiB" in result.stderr and "available on cpu" in result.stderr
    assert "would fit" in result.stderr or "smaller input size" in result.stderr


def test_memory_guard_names_a_batch_that_fits(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: (10 * 2**20, "test"))
    with pytest.raises(memory.MemoryGuardError, match=r"a batch size of at most \d+ would fit"):
        memory.check_fits(nn.Sequential(nn.Conv2d(3, 64, 3, padding=1)), (4096, 3, 32, 32),
                          torch.device("cpu"), training=False, what="test")


def test_update_baseline_merges_and_says_so(invoke, tmp_path):
    path = tmp_path / "b.json"
    first = invoke("flops", "--update-baseline", str(path), "resnet8", "plain8")
    assert "2 added, 0 replaced, 0 kept" in first.stdout
    second = invoke("flops", "--update-baseline", str(path), "resnet10", "resnet8")
    assert "1 added, 1 replaced, 1 kept" in second.stdout
    assert set(json.loads(path.read_text())["entries"]) == {"resnet8", "plain8", "resnet10"}
    fresh = invoke("flops", "--update-baseline", str(path), "--replace", "plain8")
    assert fresh.exit_code == 0
    assert set(json.loads(path.read_text())["entries"]) == {"plain8"}


def test_rtol_must_be_finite(invoke, tmp_path):
    path = tmp_path / "b.json"
    invoke("flops", "--update-baseline", str(path), "resnet8")
    result = invoke("flops", "--check", str(path), "--rtol", "nan")
    assert result.exit_code == 2 and "tolerance 'nan' is not a finite" in result.stderr


def test_write_errors_name_the_target(invoke, tmp_path):
    target = tmp_path / "read-only" / "b.json"
    target.parent.mkdir()
    target.parent.chmod(0o500)
    try:
        result = invoke("flops", "--update-baseline", str(target), "resnet8")
    finally:
        target.parent.chmod(0o700)
    if os.geteuid() == 0:  # root writes anywhere; use a path that cannot exist instead
        result = invoke("flops", "--update-baseline", "/proc/no-such-dir/b.json", "resnet8")
        assert "cannot write '/proc/no-such-dir/b.json'" in result.stderr
    else:
        assert f"cannot write {str(target)!r}" in result.stderr
    assert result.exit_code == 1 and ".tmp" not in result.stderr


def test_divergence_rule():
    assert _divergence(float("nan"), 2.3) == "non-finite loss"
    assert _divergence(1e24, 2.3).startswith("loss 1e+24 above 100x")
    assert _divergence(50.0, 2.3) is None  # a spike, not divergence


def test_a_huge_lr_is_recorded_as_diverged_with_its_step():
    from resnet_probe.data import load_dataset

    config = TrainConfig(steps=40, batch_size=32, lr=1e4, warmup_steps=1, eval_every=40,
                         grad_norm_every=40, checkpoint_every=40)
    run = train_run("plain8", load_dataset("digits"), config)
    assert run.status == "diverged" and 1 <= run.diverged_at < 40  # stopped, not run out
    assert run.diverged_because == "non-finite loss" or \
        run.diverged_because.startswith("loss ") and "above" in run.diverged_because
    assert max(row["step"] for row in run.history) < run.diverged_at  # none after it


def test_a_warmup_that_swallows_the_schedule_is_refused(invoke, tmp_path):
    result = invoke("degradation", "--seeds", "0", "--depths", "8", "--steps", "40", "--out",
                    str(tmp_path))
    assert result.exit_code == 2 and "lr 0.1 would never be used" in result.stderr
    with pytest.raises(ValueError, match="reaches past the first lr milestone"):
        TrainConfig(steps=100, warmup_steps=60)


def test_resume_checks_its_arguments(invoke, tmp_path):
    out = tmp_path / "run"
    assert invoke(*TINY_DEGRADATION, "--out", str(out)).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["train"]["steps"] == 4 and len(manifest["hash"]) == 64
    changed = invoke(*TINY_DEGRADATION, "--lr", "0.05", "--out", str(out), "--resume")
    assert changed.exit_code == 2
    assert "train.lr: 0.1 in the run, 0.05 now" in changed.stderr
    longer = [a if a != "4" else "8" for a in TINY_DEGRADATION]
    assert "train.steps: 4 in the run, 8 now" in invoke(*longer, "--out", str(out),
                                                        "--resume").stderr
    forced = invoke(*longer, "--out", str(out), "--resume", "--force-new", "--format", "json")
    assert forced.exit_code == 0 and "starting over" in forced.stderr
    assert {row["steps_done"] for row in json.loads(forced.stdout)} == {8}
    same = invoke(*longer, "--out", str(out), "--resume")
    assert same.exit_code == 0


class _StopAfter:
    """A progress sink that presses Ctrl-C after ``steps`` updates."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def update(self, n: int = 1) -> None:
        self.steps -= n
        if self.steps == 0:
            raise KeyboardInterrupt

    def set_description(self, desc: str) -> None:
        pass


def test_samples_add_up_across_a_resume(tmp_path):
    from resnet_probe.data import load_dataset

    digits = load_dataset("digits")
    config = TrainConfig(steps=8, batch_size=16, warmup_steps=1, eval_every=8,
                         grad_norm_every=8, checkpoint_every=4)
    checkpoint = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        train_run("resnet8", digits, config, checkpoint=checkpoint, progress=_StopAfter(6))
    resumed = train_run("resnet8", digits, config, checkpoint=checkpoint, resume=True)
    assert resumed.status == "finished" and resumed.samples_per_rank == [8 * 16]


@pytest.mark.parametrize("size", [0, 1000, 5000])
def test_a_damaged_checkpoint_is_named(invoke, tmp_path, size):
    out = tmp_path / "run"
    assert invoke(*TINY_DEGRADATION, "--out", str(out)).exit_code == 0
    checkpoint = next((out / "runs").glob("*.pt"))
    checkpoint.write_bytes(checkpoint.read_bytes()[:size])
    # --fresh: a matching run cache entry would otherwise restore the finished run.
    result = invoke(*TINY_DEGRADATION, "--out", str(out), "--resume", "--fresh")
    assert result.exit_code == 2  # a damaged file given to a command is a bad input
    assert str(checkpoint) in result.stderr and "delete it" in result.stderr


def _degradation_dir(tmp_path: Path, final: object) -> Path:
    data = tmp_path / "deg" / "data"
    data.mkdir(parents=True)
    (tmp_path / "deg" / "runs").mkdir()
    for name in ("train_evals", "train_gaps", "train_grad_norms"):
        (data / f"{name}.json").write_text("[]")
    (data / "train_history.json").write_text(json.dumps(
        [{"model": "resnet8", "seed": 0, "step": 0, "train_error": 0.9}]))
    (data / "train_final.json").write_text(final if isinstance(final, str) else
                                           json.dumps(final))
    return tmp_path / "deg"


@pytest.mark.parametrize("final,message", [
    ('[{"model": "resnet8", "se', "is not a readable table"),
    ({"not": "rows"}, "is not a readable table"),
    ([{"not": "a degradation row"}], "the field 'model' is missing"),
    ([{"model": "resnet8", "depth": 8, "seed": 0, "shortcut": True, "final_train_error": 0.1,
       "status": "interrupted"}], "did not finish"),
])
def test_from_degradation_is_validated_before_measuring(tmp_path, final, message):
    """The plan (built before any section runs) loads and checks the earlier run."""
    from resnet_probe.jobs.compare import CompareOptions, Plan

    directory = _degradation_dir(tmp_path, final)
    with pytest.raises(ValueError, match=message) as error:
        Plan.build(["resnet8", "plain8"], CompareOptions(degradation_dir=directory))
    assert "train_final.json" in str(error.value) or str(directory) in str(error.value)


def test_an_interrupted_compare_keeps_finished_training_runs(tmp_path):
    from resnet_probe import report
    from resnet_probe.jobs.compare import CompareOptions, Plan, run_compare
    from resnet_probe.report.words import compare_notes

    train = TrainConfig(steps=6, batch_size=16, warmup_steps=1, eval_every=6,
                        grad_norm_every=6, checkpoint_every=3)
    options = CompareOptions(latency=None, gradients=None, train=train, input_size=32,
                             train_seeds=(0,), fresh=True, why=None)
    plan = Plan.build(["resnet8", "plain8"], options)
    # One update for counting, six for resnet8's run, then Ctrl-C two steps into plain8's.
    result = run_compare(plan, _StopAfter(1 + 6 + 2),
                         lambda snapshot: report.write(snapshot, tmp_path))
    assert result.interrupted
    finals = result.training.degradation.final.set_index("model")["status"].to_dict()
    assert finals == {"resnet8": "finished", "plain8": "interrupted"}
    assert "training (training: the runs recorded so far)" in compare_notes(result)[-1]
    html = report.compare_report_path(tmp_path, result.models).read_text()
    assert "No training was run" not in html and "Not every run finished" in html


def _two_run_compare(**fields):
    from resnet_probe.jobs.compare import CompareOptions, Plan

    train = TrainConfig(steps=4, batch_size=16, warmup_steps=1, eval_every=4,
                        grad_norm_every=4, checkpoint_every=4)
    return Plan.build(["resnet8", "plain8"], CompareOptions(
        latency=None, gradients=None, train=train, input_size=32, train_seeds=(0,),
        fresh=True, why=None, **fields))


def test_sigterm_while_compare_cleans_up_after_its_last_run_keeps_every_run(tmp_path,
                                                                            monkeypatch):
    """The temporary checkpoint folder is removed after the last run: a SIGTERM then (the
    moment the runs are all cached) kept none of them before."""
    import tempfile

    from resnet_probe.errors import Terminated
    from resnet_probe.interrupts import Interruption
    from resnet_probe.jobs.compare import run_compare
    from resnet_probe.jobs.compare import training as section

    class StoppedInCleanup(tempfile.TemporaryDirectory):
        def __exit__(self, *args):
            super().__exit__(*args)
            raise Terminated()

    monkeypatch.setattr(section.tempfile, "TemporaryDirectory", StoppedInCleanup)
    result = run_compare(_two_run_compare())
    assert result.interruption is Interruption.SIGTERM
    finals = result.training.degradation.final.set_index("model")["status"].to_dict()
    assert finals == {"resnet8": "finished", "plain8": "finished"}


def test_sigterm_as_the_last_run_is_stored_keeps_the_runs_before_it(tmp_path, monkeypatch):
    from resnet_probe.errors import Terminated
    from resnet_probe.jobs.compare import run_compare
    from resnet_probe.train.run_cache import RunCache

    stored = []
    original = RunCache.get_or_train

    def store_then_stop(self, content, train):
        found = original(self, content, train)
        stored.append(found)
        if len(stored) == 2:  # plain8's run is in the cache: SIGTERM now
            raise Terminated()
        return found

    monkeypatch.setattr(RunCache, "get_or_train", store_then_stop)
    result = run_compare(_two_run_compare())
    assert result.interrupted
    assert list(result.training.degradation.final["model"]) == ["resnet8"]


def test_sigterm_during_the_final_write_leaves_a_whole_final_page(tmp_path):
    """The signal waits for the page: it never stays "Training in progress"."""
    import os
    import signal

    from resnet_probe import report
    from resnet_probe.interrupts import Interruption
    from resnet_probe.jobs.compare import run_compare
    from resnet_probe.jobs.parts import InProgress

    def write(snapshot):
        if not isinstance(snapshot.training, InProgress):
            os.kill(os.getpid(), signal.SIGTERM)  # arrives mid-write
        report.write(snapshot, tmp_path)

    result = run_compare(_two_run_compare(), on_snapshot=write)
    assert result.interruption is Interruption.SIGTERM
    page = report.compare_report_path(tmp_path, result.models).read_text()
    assert "Training in progress" not in page and "Final errors" in page


def test_two_runs_cannot_share_a_folder(invoke, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from resnet_probe.train.run_folder import "
         "locked\nwith locked(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)",
         str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = invoke(*TINY_DEGRADATION, "--out", str(out))
        assert result.exit_code == 1
        assert f"in use by another resnet-probe run (process {holder.pid})" in result.stderr
    finally:
        holder.kill()
        holder.wait()
    assert invoke(*TINY_DEGRADATION, "--out", str(out)).exit_code == 0  # released on exit


def test_sigterm_is_handled_like_ctrl_c(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "resnet_probe", "degradation", "--seeds", "0", "--depths", "8",
         "--steps", "1000", "--warmup-steps", "1", "--batch-size", "16", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180  # generous: CI machines are shared
    while not any((out / "runs").glob("*.pt")) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]  # it died before training
        time.sleep(0.2)  # the first checkpoint (step 100) proves training is under way
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    assert "terminated (SIGTERM)" in stderr and "--resume" in stderr
    finals = json.loads((out / "data" / "train_final.json").read_text())
    assert finals and finals[0]["status"] == "interrupted" and finals[0]["steps_done"] >= 100
    assert (out / "degradation.html").exists()


def test_a_busy_machine_is_reported(monkeypatch):
    from resnet_probe.measure import latency
    from resnet_probe.measure.latency import machine

    monkeypatch.setattr(machine, "machine_load",
                        lambda: {"load_average_1min": 24.0, "cpu_mhz": None, "cores": 2})
    # where the platform gives no run queue, the load average is what says the machine is busy
    monkeypatch.setattr(latency, "others_running", lambda *args, **kwargs: None)
    result = latency.measure_latency(["resnet8"], latency.LatencyConfig(
        repeats=2, warmup=0, backward=False, threads=1))
    assert result.warnings and "load average 24.0" in result.warnings[0]
    assert result.environment["load_average_1min"] == 24.0
    assert machine.busy_warning({"load_average_1min": 1.5, "cores": 2}, threads=2) is None


def test_numerical_warnings_are_reported_in_our_words():
    import click
    import numpy as np
    from click.testing import CliRunner

    from resnet_probe.cli import user_errors
    from resnet_probe.cli.options import echo_result

    @click.command()
    @user_errors
    def empty_mean() -> None:
        echo_result(f"{np.mean(np.array([]))}")

    result = CliRunner().invoke(empty_mean, [])
    assert result.exit_code == 0 and result.stdout.strip() == "nan"
    assert 'note: a numerical library warned "Mean of empty slice"' in result.stderr
    assert "RuntimeWarning" not in result.output


def test_threads_beyond_the_cores_are_refused():
    """More threads than cores only time-share them (and far more crash libgomp): refused,
    with the range, where the config is made."""
    from resnet_probe.device import CPU_CORES
    from resnet_probe.errors import InvalidRequest
    from resnet_probe.measure import latency

    with pytest.raises(InvalidRequest, match=rf"threads must be an integer, at least 1 and at "
                                             rf"most {CPU_CORES}: threads={CPU_CORES + 1}"):
        latency.LatencyConfig(threads=CPU_CORES + 1)


def test_a_noisy_spread_is_flagged():
    from resnet_probe.measure.latency.machine import spread_warning as _spread_warning

    rows = [{"model": "m", "forward_ms": 10.0, "forward_ms_iqr": 6.0}]
    assert "varied by 60%" in _spread_warning("m", rows)
    assert _spread_warning("m", [{**rows[0], "forward_ms_iqr": 1.0}]) is None


def test_a_checkpoint_of_another_format_is_refused(tmp_path):
    from resnet_probe.train.loop import CorruptCheckpoint, load_checkpoint

    path = tmp_path / "old.pt"
    torch.save({"model": {}, "optimizer": {}, "step": 0, "result": None}, path)
    with pytest.raises(CorruptCheckpoint, match="has format None"):
        load_checkpoint(path)


def test_compare_leaves_no_checkpoints_and_valid_verdict_json(tmp_path):
    from resnet_probe import report
    from resnet_probe.jobs.compare import CompareOptions, Plan, run_compare

    train = TrainConfig(steps=4, batch_size=16, warmup_steps=1, eval_every=4,
                        grad_norm_every=4, checkpoint_every=2)
    # Depth 26 gets resnet20/plain20 siblings: one seed, so no interval can be given.
    plan = Plan.build(["cifar[layers=4-4-4]", "cifar[layers=4-4-4,shortcut=false]"],
                      CompareOptions(latency=None, gradients=None, train=train,
                                     input_size=32, train_seeds=(0,), why=None))
    result = run_compare(plan, on_snapshot=lambda snapshot: report.write(snapshot, tmp_path))
    page = report.compare_report_path(tmp_path, result.models)
    assert not list(tmp_path.rglob("*.pt"))
    text = (page.parent / f"{page.stem}-data" / "verdict.json"
            ).read_text()
    verdict = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert verdict["verdict"] == "inconclusive" and \
        verdict["primary_test"]["plain_gap"]["ci95_low"] is None
    from test_report import check_report_consistency  # all four nets: every comparison checked

    check_report_consistency(page.parent / f"{page.stem}-data", page)
