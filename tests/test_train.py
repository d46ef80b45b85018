"""The training loop and the degradation experiment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from resnet_probe.data import load_dataset
from resnet_probe.jobs.sweep import run_degradation
from resnet_probe.train import loop
from resnet_probe.train.degradation import DegradationConfig, twin_names
from resnet_probe.train.loop import (
    NothingToResume,
    TrainConfig,
    augment_batch,
    load_checkpoint,
    train_run,
)

TINY = TrainConfig(steps=12, batch_size=32, lr=0.05, warmup_steps=2, eval_every=6,
                   grad_norm_every=4, checkpoint_every=4)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_loss_decreases_on_a_tiny_problem(digits):
    result = train_run("resnet8", digits, TrainConfig(steps=40, batch_size=64, lr=0.05,
                                                      warmup_steps=5, eval_every=20))
    losses = [row["train_loss"] for row in result.history]
    # From chance (ln 10 = 2.30) to well below it.
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5 < 0.7 * 2.5
    assert result.status == "finished" and len(result.history) == 40
    assert result.evals[-1]["step"] == 40


def test_same_seed_same_run_other_seed_differs(digits):
    first = train_run("resnet8", digits, TINY, seed=3)
    second = train_run("resnet8", digits, TINY, seed=3)
    other = train_run("resnet8", digits, TINY, seed=4)
    assert [r["train_loss"] for r in first.history] == [r["train_loss"] for r in second.history]
    assert [r["train_loss"] for r in first.history] != [r["train_loss"] for r in other.history]


class StopAt:
    """A progress object that presses Ctrl-C after `step` updates."""

    def __init__(self, step):
        self.step, self.count = step, 0

    def update(self, n=1):
        self.count += n
        if self.count == self.step:
            raise KeyboardInterrupt

    def set_description(self, desc):
        pass


def test_resume_ends_where_an_uninterrupted_run_ends(digits, tmp_path):
    straight = train_run("resnet8", digits, TINY, seed=1, checkpoint=tmp_path / "straight.pt")
    checkpoint = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        train_run("resnet8", digits, TINY, seed=1, checkpoint=checkpoint, progress=StopAt(7))
    saved = torch.load(checkpoint, weights_only=True)  # tensors and plain data only
    assert saved["record"]["status"] == "interrupted" and saved["step"] == 7
    saved = load_checkpoint(checkpoint)
    assert len(saved["result"].history) == 7  # every step recorded so far was kept
    resumed = train_run("resnet8", digits, TINY, seed=1, checkpoint=checkpoint, resume=True)
    assert resumed.status == "finished"
    assert [r["train_loss"] for r in resumed.history] == \
        [r["train_loss"] for r in straight.history]
    assert resumed.evals == straight.evals
    # every weight and buffer (BN running statistics, num_batches_tracked) bit-identical
    ended = torch.load(checkpoint, weights_only=True)["model"]
    expected = torch.load(tmp_path / "straight.pt", weights_only=True)["model"]
    assert ended.keys() == expected.keys()
    assert all(torch.equal(ended[key], expected[key]) for key in expected)


def test_resume_without_checkpoint(digits, tmp_path):
    with pytest.raises(NothingToResume, match="nothing to resume"):
        train_run("resnet8", digits, TINY, checkpoint=tmp_path / "missing.pt", resume=True)
    with pytest.raises(NothingToResume, match="no checkpoints"):
        run_degradation(DegradationConfig(models=("resnet8",), train=TINY), tmp_path,
                        resume=True, dataset=digits)


def test_nan_run_is_recorded_as_diverged_and_others_continue(digits, tmp_path, monkeypatch):
    real_build = loop.build_for_dataset

    def poisoned(source, dataset):
        model = real_build(source, dataset)
        if getattr(source, "text", source) == "plain8":
            with torch.no_grad():
                model.fc.weight.fill_(float("nan"))
        return model

    monkeypatch.setattr(loop, "build_for_dataset", poisoned)
    result = run_degradation(DegradationConfig(models=("plain8", "resnet8"), seeds=(0,),
                                               train=TINY), tmp_path, dataset=digits)
    finals = {row["model"]: row for row in result.final_rows()}
    assert finals["plain8"]["status"] == "diverged" and finals["plain8"]["diverged_at"] == 0
    assert finals["resnet8"]["status"] == "finished" and finals["resnet8"]["steps_done"] == 12


def test_interrupted_sweep_keeps_finished_and_partial_runs(digits, tmp_path):
    saved = []
    with pytest.raises(KeyboardInterrupt):
        run_degradation(DegradationConfig(models=("resnet8", "plain8"), seeds=(0,), train=TINY),
                        tmp_path,
                        progress=StopAt(12 + 5), on_run_done=lambda r: saved.append(
                            [(run.model, run.status, len(run.history)) for run in r.runs]),
                        dataset=digits)
    assert saved[-1] == [("resnet8", "finished", 12), ("plain8", "interrupted", 5)]
    resumed = run_degradation(DegradationConfig(models=("resnet8", "plain8"), seeds=(0,),
                                                train=TINY), tmp_path, resume=True,
                              dataset=digits)
    assert [(r.model, r.status, len(r.history)) for r in resumed.runs] == [
        ("resnet8", "finished", 12), ("plain8", "finished", 12)]


def test_grad_norms_logged_during_training(digits):
    result = train_run("resnet8", digits, TINY)
    steps = sorted({row["step"] for row in result.grad_norms})
    assert steps == [0, 4, 8, 11]
    assert all(row["grad_norm"] > 0 for row in result.grad_norms)


def test_augmentation_pads_crops_flips():
    x = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8)
    out = augment_batch(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert not torch.equal(out, x)
    same = augment_batch(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, same)


def test_lr_schedule():
    config = TrainConfig(steps=100, lr=0.1, warmup_steps=10, warmup_lr=0.01)
    assert [config.lr_at(s) for s in (0, 9, 10, 49, 50, 74, 75, 99)] == pytest.approx(
        [0.01, 0.01, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_depth_validation():
    assert twin_names("cifar", 20) == ("plain20", "resnet20")
    assert twin_names("cifar", 26) == ("cifar[layers=4-4-4,shortcut=false]", "cifar[layers=4-4-4]")
    with pytest.raises(ValueError, match="6n\\+2.*depth=21"):
        twin_names("cifar", 21)
    with pytest.raises(ValueError, match="depth=20"):
        twin_names("imagenet", 20)
    with pytest.raises(ValueError, match="steps=0"):
        TrainConfig(steps=0)


@pytest.mark.slow
def test_short_default_run_shows_plain_degradation(digits, tmp_path):
    # The CI-sized version of the default experiment: only the plain pair, half the budget.
    # Robust at this budget: plain56 trains slower than plain20 (measured gap ~0.2-0.5).
    config = DegradationConfig(models=("plain20", "plain56"), seeds=(0,),
                               train=TrainConfig(steps=150))
    finals = {r["model"]: r for r in run_degradation(config, tmp_path, dataset=digits)
              .final_rows()}
    assert finals["plain56"]["final_train_error"] > finals["plain20"]["final_train_error"] + 0.05


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "resnet_probe", "degradation", "--depths", "8",
               "--seeds", "0", "--steps", "4", "--warmup-steps", "1", "--batch-size", "16",
               "--out", str(out),
               "--format", "json",
               "--device", "cpu"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(done.stdout)
    assert {r["model"] for r in rows} == {"plain8", "resnet8"}
    for row in rows:
        assert row["processes"] == 2
        assert row["samples_per_rank"] == "32,32"  # 4 steps x 8 images on each rank
        assert row["status"] == "finished"
    finals = json.loads((out / "data" / "train_final.json").read_text())
    assert len(finals) == 2 and (out / "degradation.html").stat().st_size > 1000
    history = json.loads((out / "data" / "train_history.json").read_text())
    assert len(history) == 8


@pytest.mark.parametrize("args, message", [
    (["--dataset", "imagenet"], "'imagenet' is not one of 'digits'"),
    (["--depths", "21"], "depth=21"),
    (["--family", "imagenet", "--depths", "20"], "depth=20"),
    (["--steps", "0"], "--steps"),
    (["--resume"], "nothing to resume"),
    (["--depths", "x"], "comma-separated integers"),
])
def test_cli_bad_inputs(invoke, tmp_path, args, message):
    result = invoke("degradation", "--out", str(tmp_path / "out"), *args)
    assert result.exit_code == 2  # each is a request that cannot be carried out as asked
    assert message in result.stderr and "Traceback" not in result.output


def test_cli_corrupt_dataset_names_the_file(invoke, tmp_path):
    data_dir = tmp_path / "fm"
    data_dir.mkdir()
    (data_dir / "train-images-idx3-ubyte.gz").write_bytes(b"not the real file")
    result = invoke("degradation", "--dataset", "fashion-mnist", "--data-dir", str(data_dir),
                    "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert "checksum mismatch" in result.stderr and "train-images-idx3-ubyte.gz" in result.stderr


def test_cli_unwritable_out(invoke, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke("degradation", "--out", str(blocker))
    assert result.exit_code == 1 and "exists and is a file" in result.stderr
    result = invoke("degradation", "--out", "/proc/resnet-probe-out")
    assert result.exit_code == 1 and "not writable" in result.stderr


def test_cli_json_rows(invoke, tmp_path):
    result = invoke("degradation", "--depths", "8", "--steps", "3", "--warmup-steps", "1",
                    "--batch-size", "16",
                    "--out", str(tmp_path), "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {"model", "depth", "shortcut", "final_train_error", "final_test_error"} <= set(rows[0])
    assert (Path(tmp_path) / "degradation.html").exists()
