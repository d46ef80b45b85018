"""The run cache: hits, misses, damaged entries, --fresh, and compare's early report."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from resnet_probe.data import load_dataset
from resnet_probe.train.cache import ENTRY, RUN_FILE, RunCache
from resnet_probe.train.degradation import DegradationConfig, fit_dataset_to, run_degradation
from resnet_probe.train.loop import RunStatus, TrainConfig, load_checkpoint

RECIPE = TrainConfig(steps=4, batch_size=16, warmup_steps=1, eval_every=2, grad_norm_every=2,
                     checkpoint_every=2)
MODELS = ("resnet8", "plain8")


@pytest.fixture(scope="module")
def digits():
    return fit_dataset_to(load_dataset("digits"), list(MODELS))


def train(tmp_path, digits, cache, seeds=(0,), recipe=RECIPE, folder="run"):
    config = DegradationConfig(models=MODELS, seeds=seeds, train=recipe)
    return run_degradation(config, tmp_path / folder, dataset=digits, cache=cache)


def test_second_run_reuses_every_finished_run_with_identical_results(tmp_path, digits):
    cache = RunCache(tmp_path / "cache")
    first = train(tmp_path, digits, cache, folder="a")
    assert first.reused == []
    assert cache.usage().entries == 2
    second = train(tmp_path, digits, RunCache(tmp_path / "cache"), folder="b")
    assert second.reused == ["resnet8 seed 0", "plain8 seed 0"]
    assert second.final_rows() == first.final_rows()
    assert second.history_rows() == first.history_rows()
    # The second run folder holds the weights too (the analyses of trained nets read them).
    assert sorted(p.name for p in (tmp_path / "b" / "runs").glob("*.pt")) == [
        "plain8-seed0.pt", "resnet8-seed0.pt"]


def test_finished_checkpoints_keep_half_precision_weights_and_no_optimizer(tmp_path, digits):
    train(tmp_path, digits, RunCache(tmp_path / "cache"))
    state = load_checkpoint(tmp_path / "run" / "runs" / "resnet8-seed0.pt")
    assert state["result"].status == RunStatus.FINISHED
    assert "optimizer" not in state
    floats = [v for v in state["model"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)


def test_key_covers_seed_recipe_data_device_and_model(tmp_path, digits):
    cache = RunCache(tmp_path)
    base, _ = cache.key("resnet8", digits, RECIPE, 0)
    others = [cache.key("resnet8", digits, RECIPE, 1)[0],
              cache.key("plain8", digits, RECIPE, 0)[0],
              cache.key("resnet8", digits, TrainConfig(**{**RECIPE.__dict__, "lr": 0.05}), 0)[0],
              cache.key("resnet8", digits, TrainConfig(**{**RECIPE.__dict__,
                                                          "device": "cuda"}), 0)[0],
              cache.key("resnet8", digits.resized(40), RECIPE, 0)[0],
              cache.key("resnet8", digits, RECIPE, 0, world_size=2)[0]]
    assert len({base, *others}) == 7
    assert cache.key("resnet8", digits, RECIPE, 0)[0] == base  # deterministic


@pytest.mark.parametrize("damage, named", [
    (lambda entry: (entry / RUN_FILE).write_bytes(b"not a checkpoint"), "sha256"),
    (lambda entry: (entry / ENTRY).unlink(), "partial"),
    (lambda entry: (entry / ENTRY).write_text("{"), "unreadable"),
    (lambda entry: (entry / ENTRY).write_text(json.dumps(
        {**json.loads((entry / ENTRY).read_text()), "run_sha256": "0" * 64})), "sha256"),
])
def test_damaged_entry_is_named_deleted_and_recomputed(tmp_path, digits, damage, named):
    cache = RunCache(tmp_path / "cache")
    first = train(tmp_path, digits, cache, folder="a")
    key, _ = cache.key("resnet8", digits, RECIPE, 0)
    damage(cache.path / key)
    again = RunCache(tmp_path / "cache")
    second = train(tmp_path, digits, again, folder="b")
    assert second.reused == ["plain8 seed 0"]  # resnet8 was retrained, not trusted
    assert len(again.problems) == 1
    assert str(cache.path / key) in again.problems[0] and named in again.problems[0]
    assert second.final_rows()[0]["final_train_error"] == first.final_rows()[0][
        "final_train_error"]  # recomputed deterministically
    assert again.lookup(key) is not None  # and stored afresh


def test_fresh_ignores_the_cache_and_refills_it(tmp_path, digits):
    train(tmp_path, digits, RunCache(tmp_path / "cache"), folder="a")
    fresh = train(tmp_path, digits, RunCache(tmp_path / "cache", fresh=True), folder="b")
    assert fresh.reused == []
    assert RunCache(tmp_path / "cache").usage().entries == 2


def test_unfinished_runs_are_not_cached(tmp_path, digits, monkeypatch):
    from resnet_probe.train import loop

    calls = {"n": 0}
    real_step = torch.optim.SGD.step

    def interrupt_third_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(loop.torch.optim.SGD, "step", interrupt_third_step)
    cache = RunCache(tmp_path / "cache")
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path, digits, cache)
    assert cache.usage().entries == 0


def test_cache_location_follows_the_environment(tmp_path, monkeypatch):
    from resnet_probe.train.cache import CACHE_ENV, cache_root

    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "resnet-probe"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "resnet-probe"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert RunCache().path == tmp_path / "mine" / "runs"


def test_cache_info_and_clear_commands(invoke, tmp_path, digits, monkeypatch):
    from resnet_probe.train.cache import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    train(tmp_path, digits, RunCache())
    info = invoke("cache", "info")
    assert info.exit_code == 0
    assert "2 runs" in info.output and str(tmp_path / "cache" / "runs") in info.output
    cleared = invoke("cache", "clear", "--yes")
    assert cleared.exit_code == 0 and "freed 2 runs" in cleared.output
    assert RunCache().usage().entries == 0
    assert "0 runs, 0.0 MB" in invoke("cache", "info").output


def test_compare_keeps_no_checkpoints_in_the_report_folder_and_reuses_runs(tiny_compare,
                                                                          tmp_path):
    from resnet_probe import compare

    result, out = tiny_compare
    assert not list(out.rglob("*.pt"))
    assert result.section_environment("training")["cache"]["reused"] == []
    recipe = TrainConfig(**result.section_environment("training")["recipe"])
    out = tmp_path  # the fixture's folder is shared with other tests
    again = compare(["resnet8", "plain8", "resnet14"], out=out, latency=None, gradients=None,
                    train=recipe, input_size=32)
    reused = again.section_environment("training")["cache"]["reused"]
    trained = result.tables["train_final"]
    assert reused == [f"{r.model} seed {r.seed}" for r in trained.itertuples()]
    assert (again.tables["train_final"]["final_train_error"].tolist()
            == result.tables["train_final"]["final_train_error"].tolist())
    html = (out / "compare-resnet8-vs-plain8-vs-resnet14.html").read_text()
    assert "Reused from the run cache" in html
    assert not list(out.rglob("*.pt"))


def test_early_report_is_written_before_training_with_a_progress_note(tmp_path):
    from resnet_probe.comparison import CompareOptions, run_compare
    from resnet_probe.report import write_compare_report

    seen = []

    def early(partial):
        seen.append(partial)
        write_compare_report(partial, tmp_path)

    options = CompareOptions(input_size=32, latency=None, gradients=None, train=RECIPE,
                             fresh=True)
    result = run_compare(["resnet8", "plain8"], options, out_dir=tmp_path,
                         before_training=early)
    assert len(seen) == 1
    early_result = seen[0]
    assert early_result.section_environment("training") == {"in_progress": True}
    assert "train_final" not in early_result.tables
    assert "costs" in early_result.sections
    assert "train_final" in result.tables  # the final result has the training section
    path = tmp_path / "compare-resnet8-vs-plain8.html"
    assert "Training in progress" in path.read_text()  # on screen while training ran
    write_compare_report(result, tmp_path)
    assert "Training in progress" not in path.read_text()  # rewritten after training


def test_a_rerun_reuses_the_gradients_at_init_unless_fresh(tiny_compare, tmp_path):
    """Gradients at init and the first steps' dynamics depend only on the models, settings,
    data and versions: a rerun takes them from the cache of results, equal to the last."""
    from resnet_probe import compare
    from resnet_probe.measure.dynamics import DynamicsConfig
    from resnet_probe.measure.gradients import GradientConfig

    first, _ = tiny_compare
    models = ["resnet8", "plain8", "resnet14"]
    same = dict(latency=None, train=None, input_size=32,
                gradients=GradientConfig(batch_size=4, seeds=(0, 1), shatter_points=16),
                dynamics=DynamicsConfig(steps=(0, 1, 2, 5), batch_size=8))
    again = compare(models, out=tmp_path, **same)
    assert again.section_environment("gradients")["reused"] is True
    for table in ("gradient_models", "gradient_blocks", "gradient_stages", "gradient_layers",
                  "shattering", "dynamics_models", "dynamics_layers"):
        pd.testing.assert_frame_equal(again.tables[table], first.tables[table])
    assert "Reused from the cache of results" in again.report_path.read_text()

    fresh = compare(models, out=tmp_path, fresh=True, **same)
    assert fresh.section_environment("gradients")["reused"] is False
    pd.testing.assert_frame_equal(fresh.tables["gradient_blocks"], first.tables["gradient_blocks"])
    other_seeds = compare(models, out=tmp_path, **{
        **same, "gradients": GradientConfig(batch_size=4, seeds=(1,), shatter_points=16)})
    assert other_seeds.section_environment("gradients")["reused"] is False
    assert set(other_seeds.tables["gradient_blocks"]["seed"]) == {1}


def test_gradients_measured_with_loaded_weights_are_kept_apart(tmp_path, monkeypatch):
    """Loaded weights change the gradients: their digest is part of the key, so a run
    without them never reads a weighted run's numbers (it once did)."""
    from resnet_probe.comparison import CompareOptions, _measured_at_init, _Plan
    from resnet_probe.measure.gradients import GradientConfig
    from resnet_probe.sources import resolve
    from resnet_probe.train.cache import CACHE_ENV
    from resnet_probe.zoo import build_model

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))  # an empty cache of results
    torch.manual_seed(0)
    model = build_model("resnet8")
    torch.nn.init.constant_(model.conv1.weight, 0.01)
    weights = tmp_path / "weights.pt"
    torch.save(model.state_dict(), weights)
    config = GradientConfig(batch_size=4, seeds=(0,), shatter_points=0)

    def measure(source):
        plan = _Plan([source], CompareOptions(dynamics=None), None, tmp_path, None, None,
                     RunCache())
        gradients, _, reused = _measured_at_init(plan, config)
        return gradients.models[0]["grad_ratio_first_last"], reused

    weighted, reused = measure(resolve("resnet8", weights=weights))
    assert not reused
    plain, reused = measure(resolve("resnet8"))
    assert not reused and plain != weighted
    assert measure(resolve("resnet8", weights=weights)) == (weighted, True)
