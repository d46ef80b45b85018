"""The caches: hits, misses, damaged entries of every kind, an unusable cache that never sinks
a run, stale partial entries, two writers of one key, --fresh, and compare's early report."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch
from conftest import page_of

from resnet_probe.cache import ENTRY, PARTIAL, Store, json_decoder, json_encoder
from resnet_probe.data import load_dataset
from resnet_probe.jobs.sweep import run_degradation
from resnet_probe.sources import resolve
from resnet_probe.train.degradation import DegradationConfig
from resnet_probe.train.fitted_data import fit_dataset_to
from resnet_probe.train.loop import RunStatus, TrainConfig, load_checkpoint
from resnet_probe.train.run_cache import RUN_FILE, RunCache

RECIPE = TrainConfig(steps=4, batch_size=16, warmup_steps=1, eval_every=2, grad_norm_every=2,
                     checkpoint_every=2)
MODELS = ("resnet8", "plain8")


@pytest.fixture(scope="module")
def digits():
    return fit_dataset_to(load_dataset("digits"), [resolve(m) for m in MODELS])


def train(tmp_path, digits, cache, seeds=(0,), recipe=RECIPE, folder="run"):
    config = DegradationConfig(models=MODELS, seeds=seeds, train=recipe)
    return run_degradation(config, tmp_path / folder, dataset=digits, cache=cache)


def histories(result):
    return [row for run in result.runs for row in run.history]


def test_second_run_reuses_every_finished_run_with_identical_results(tmp_path, digits):
    cache = RunCache(tmp_path / "cache")
    first = train(tmp_path, digits, cache, folder="a")
    assert first.reused == []
    assert cache.usage().entries == 2
    second = train(tmp_path, digits, RunCache(tmp_path / "cache"), folder="b")
    assert second.reused == ["resnet8 seed 0", "plain8 seed 0"]
    assert second.final_rows() == first.final_rows()
    assert histories(second) == histories(first)
    # The second run folder holds the weights too (the analyses of trained nets read them).
    assert sorted(p.name for p in (tmp_path / "b" / "runs").glob("*.pt")) == [
        "plain8-seed0.pt", "resnet8-seed0.pt"]


def test_finished_checkpoints_keep_half_precision_weights_and_no_optimizer(tmp_path, digits):
    train(tmp_path, digits, RunCache(tmp_path / "cache"))
    state = load_checkpoint(tmp_path / "run" / "runs" / "resnet8-seed0.pt")
    assert state["result"].status == RunStatus.FINISHED
    assert "optimizer" not in state
    parameters = {name for name, _ in resolve("resnet8").build(num_classes=10).named_parameters()}
    halves = [v for k, v in state["model"].items() if k in parameters]
    assert halves and all(v.dtype == torch.float16 for v in halves)
    # BN's running statistics stay at full precision
    assert state["model"]["bn1.running_var"].dtype == torch.float32


def test_an_ended_checkpoint_keeps_bn_statistics_beyond_half_precisions_range(tmp_path):
    """Precise BN's exact variance of a deep plain net's activations can exceed 65,504, where
    half precision holds inf: the analyses would refuse the run as not a trained net."""
    from torch import nn

    from resnet_probe.train.checkpoint import save_checkpoint
    from resnet_probe.train.run_result import RunResult

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    with torch.no_grad():
        model[1].running_var.fill_(1e6)
        model[0].weight[0, 0, 0, 0] = 1e5  # a parameter beyond half's range stays float32
    result = RunResult(model="net", seed=0, status=RunStatus.FINISHED)
    path = tmp_path / "net-seed0.pt"
    save_checkpoint(path, model, torch.optim.SGD(model.parameters(), lr=0.1), 4, result,
                    RECIPE, 64, None, {})
    weights = torch.load(path, weights_only=True)["model"]
    assert weights["1.running_var"].dtype == torch.float32
    assert torch.equal(weights["1.running_var"], torch.full((4,), 1e6))
    assert weights["0.weight"].dtype == torch.float32 and weights["0.weight"].max() == 1e5
    assert weights["1.weight"].dtype == torch.float16  # what fits is halved


def test_key_covers_seed_recipe_data_device_and_model(tmp_path, digits):
    from resnet_probe.cache import content_key

    cache = RunCache(tmp_path)
    resnet8, plain8 = resolve("resnet8"), resolve("plain8")

    def key(*args, **kwargs):
        return content_key(cache.content(*args, **kwargs))

    base = key(resnet8, digits, RECIPE, 0)
    others = [key(resnet8, digits, RECIPE, 1), key(plain8, digits, RECIPE, 0),
              key(resnet8, digits, TrainConfig(**{**RECIPE.__dict__, "lr": 0.05}), 0),
              key(resnet8, digits, TrainConfig(**{**RECIPE.__dict__, "device": "cuda"}), 0),
              key(resnet8, digits.resized(40), RECIPE, 0),
              key(resnet8, digits, RECIPE, 0, world_size=2)]
    assert len({base, *others}) == 7
    assert key(resnet8, digits, RECIPE, 0) == base  # deterministic


def _claim_perfect(path) -> None:
    """Edit a cached run's record so that every step reports training error 0."""
    state = torch.load(path, weights_only=True)
    for row in state["record"]["history"]:
        row["train_error"] = 0.0
    torch.save(state, path)


def _entry(cache: RunCache, name: str) -> os.PathLike:
    """The folder of ``name``'s entry (entry.json records the model's source)."""
    for folder in cache.path.iterdir():
        if folder.is_dir() and not folder.name.startswith("."):
            content = json.loads((folder / ENTRY).read_text())["content"]
            if content["model"]["shortcut"] == (name.startswith("resnet")):
                return folder
    raise AssertionError(f"no entry for {name}")


@pytest.mark.parametrize("damage, named", [
    (lambda e: (e / RUN_FILE).write_bytes(b"\x00" * 57), "sha256"),
    (lambda e: (e / ENTRY).unlink(), "partial"),
    (lambda e: (e / ENTRY).write_text("{\"format\": 2, "), "unreadable"),
    (lambda e: (e / ENTRY).write_text("[]"), "another format"),
    (lambda e: (e / ENTRY).write_text(json.dumps(
        {**json.loads((e / ENTRY).read_text()), "files": {RUN_FILE: "f" * 64}})), "sha256"),
    # "files": {} used to skip the sha256 check: an edited run.pt (every error 0) was reused
    (lambda e: (_claim_perfect(e / RUN_FILE), (e / ENTRY).write_text(json.dumps(
        {**json.loads((e / ENTRY).read_text()), "files": {}}))), "lists no files"),
    (lambda e: (e / "extra.pt").write_bytes(b"unlisted"), "extra.pt not listed"),
    (lambda e: (e / ENTRY).write_text("[" * 100_000 + "]" * 100_000), "nests too deeply"),
])
def test_a_damaged_run_entry_is_named_deleted_and_recomputed(tmp_path, digits, damage, named):
    cache = RunCache(tmp_path / "cache")
    first = train(tmp_path, digits, cache, folder="a")
    entry = _entry(cache, "resnet8")
    damage(entry)
    again = RunCache(tmp_path / "cache")
    second = train(tmp_path, digits, again, folder="b")
    assert second.reused == ["plain8 seed 0"]  # resnet8 was retrained, not trusted
    assert len(again.problems) == 1
    assert str(entry) in again.problems[0] and named in again.problems[0]
    assert second.final_rows()[0]["final_train_error"] == first.final_rows()[0][
        "final_train_error"]  # recomputed deterministically
    assert RunCache(tmp_path / "cache").usage().entries == 2  # and stored afresh


def test_an_entry_folder_replaced_by_a_file_is_named_and_replaced(tmp_path, digits):
    cache = RunCache(tmp_path / "cache")
    train(tmp_path, digits, cache, folder="a")
    entry = _entry(cache, "plain8")
    import shutil

    shutil.rmtree(entry)
    entry.write_text("not a folder")
    again = RunCache(tmp_path / "cache")
    train(tmp_path, digits, again, folder="b")
    assert any("not a folder" in p and str(entry) in p for p in again.problems)
    assert entry.is_dir()


def test_a_results_entry_missing_a_field_is_recomputed_not_a_crash(tmp_path):
    store = Store("results", tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"a": [1, 2, 3], "b": "text"}

    def decode(folder):
        value = json_decoder(folder)
        return {"a": list(value["a"]), "b": value["b"]}  # KeyError when a field went missing

    content = {"what": "a test result", "n": 11}
    first = store.get_or_compute(content, compute, json_encoder, decode)
    assert not first.reused and len(calls) == 1
    folder = store.path / first.key
    value = json.loads((folder / "value.json").read_text())
    del value["b"]
    (folder / "value.json").write_text(json.dumps(value))
    # The recorded sha256 no longer matches: named as damaged, recomputed.
    again = Store("results", tmp_path)
    second = again.get_or_compute(content, compute, json_encoder, decode)
    assert second.value == first.value and not second.reused and len(calls) == 2
    assert "sha256" in again.problems[0]
    # With the sha256 fixed up too, the decode itself fails: still damage, not a crash.
    entry = json.loads((folder / ENTRY).read_text())
    (folder / "value.json").write_text(json.dumps(value))
    import hashlib
    entry["files"]["value.json"] = hashlib.sha256((folder / "value.json").read_bytes()
                                                  ).hexdigest()
    (folder / ENTRY).write_text(json.dumps(entry))
    third = Store("results", tmp_path)
    assert third.get_or_compute(content, compute, json_encoder, decode).value == first.value
    assert "KeyError" in third.problems[0] and len(calls) == 3


def test_an_unusable_cache_warns_once_and_the_command_finishes(tmp_path, invoke,
                                                               monkeypatch):
    from resnet_probe.cache import CACHE_ENV

    root = tmp_path / "cache-is-a-file"
    root.write_text("someone's notes")
    monkeypatch.setenv(CACHE_ENV, str(root))
    out = tmp_path / "out"
    result = invoke("degradation", "--depths", "8", "--seeds", "6,7", "--steps", "3",
                    "--warmup-steps", "1", "--batch-size", "8", "--out", str(out),
                    "--format", "json")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(root) in warnings[0]
    assert "cache clear" in warnings[0] and CACHE_ENV in warnings[0]
    assert len(json.loads(result.stdout)) == 4 and (out / "degradation.html").exists()
    assert root.read_text() == "someone's notes"  # nothing was written over it


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_full_or_read_only_cache_never_sinks_the_run(tmp_path, digits, monkeypatch, code):
    import tempfile

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    with pytest.warns(UserWarning, match=os.strerror(code)):
        result = train(tmp_path, digits, RunCache(tmp_path / "cache"), seeds=(3,))
    assert [run.status for run in result.runs] == ["finished", "finished"]


def test_stale_partial_folders_are_swept_and_never_counted(tmp_path, digits):
    cache = RunCache(tmp_path / "cache")
    cache.path.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = cache.path / f"{PARTIAL}{dead}-abc"
    stale.mkdir()
    (stale / RUN_FILE).write_bytes(b"half")
    assert cache.usage().entries == 0  # a partial folder is not an entry
    train(tmp_path, digits, cache)
    assert not stale.exists() and cache.usage().entries == 2


def test_two_writers_of_one_key_both_succeed(tmp_path):
    first, second = Store("results", tmp_path), Store("results", tmp_path)
    content = {"what": "two writers", "seed": 5}
    key = first.get_or_compute(content, lambda: {"x": 1}, json_encoder, json_decoder).key
    # The second finished computing before it could see the first's entry.
    assert second.store(key, content, lambda folder: json_encoder({"x": 1}, folder))
    assert second.lookup(key, json_decoder) == {"x": 1} and not second.problems


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
    from resnet_probe.cache import CACHE_ENV, cache_root

    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "resnet-probe"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "resnet-probe"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert RunCache().path == tmp_path / "mine" / "runs"


def test_cache_info_and_clear_commands(invoke, tmp_path, digits, monkeypatch):
    from resnet_probe.cache import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    train(tmp_path, digits, RunCache())
    info = invoke("cache", "info")
    assert info.exit_code == 0
    assert "2 runs" in info.output and str(tmp_path / "cache" / "runs") in info.output
    cleared = invoke("cache", "clear", "--yes")
    assert cleared.exit_code == 0 and "freed 2 runs" in cleared.output
    assert RunCache().usage().entries == 0
    assert "0 runs, 0.0 MB" in invoke("cache", "info").output


def test_cache_clear_that_cannot_delete_names_the_cache_and_the_fix(invoke, tmp_path,
                                                                    monkeypatch):
    import shutil

    from resnet_probe.cache import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    (tmp_path / "cache" / "runs" / "k").mkdir(parents=True)

    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(shutil, "rmtree", read_only)
    result = invoke("cache", "clear", "--yes")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert str(tmp_path / "cache" / "runs") in result.output and "writable" in result.output


def _compare(models, out, **fields):
    from resnet_probe import compare

    return compare(models, out=out, **fields)


def test_compare_keeps_no_checkpoints_in_the_report_folder_and_reuses_runs(tiny_compare,
                                                                          tmp_path):
    result, out = tiny_compare
    assert not list(out.rglob("*.pt"))
    assert result.training.cache.reused == ()
    recipe = result.training.recipe
    again = _compare(["resnet8", "plain8", "resnet14"], tmp_path, latency=None,
                     gradients=None, train=recipe, input_size=32,
                     train_seeds=result.training.seeds, why=None)
    trained = result.training.degradation.final
    reused = list(again.training.cache.reused)
    assert [r for r in reused if not r.endswith(" (intervened)")] == [
        f"{r.model} seed {r.seed}" for r in trained.itertuples()]
    # the causal test's runs of the deepest pair are reused too, and named as such
    assert sorted(r for r in reused if r.endswith(" (intervened)")) == sorted(
        f"{m} seed {s} (intervened)" for m in ("plain8", "resnet8")
        for s in set(trained["seed"]))
    assert (again.training.degradation.final["final_train_error"].tolist()
            == trained["final_train_error"].tolist())
    html = (tmp_path / "compare-resnet8-vs-plain8-vs-resnet14.html").read_text()
    assert "Reused from the run cache" in html
    assert not list(tmp_path.rglob("*.pt"))


def test_early_report_is_written_before_training_with_a_progress_note(tmp_path):
    from resnet_probe import report
    from resnet_probe.jobs.compare import CompareOptions, Plan, run_compare

    seen = []
    path = tmp_path / "compare-resnet8-vs-plain8.html"

    def write(snapshot):
        report.write(snapshot, tmp_path)
        seen.append(path.read_text())

    options = CompareOptions(input_size=32, latency=None, gradients=None, train=RECIPE,
                             fresh=True, why=None, train_seeds=(0,))
    result = run_compare(Plan.build(["resnet8", "plain8"], options), on_snapshot=write)
    assert len(seen) == 2 and "Training in progress" in seen[0]  # on screen while it ran
    assert "Training in progress" not in path.read_text()  # rewritten after training
    assert not result.training.degradation.final.empty


def test_a_rerun_reuses_the_gradients_at_init_unless_fresh(tiny_compare, tmp_path):
    """Gradients at init depend only on the models, settings, data and versions: a rerun
    takes them from the cache of results, equal to the last."""
    from resnet_probe.measure.gradients import GradientConfig

    first, out = tiny_compare
    models = ["resnet8", "plain8", "resnet14"]
    same = dict(latency=None, train=None, input_size=32,
                gradients=GradientConfig(batch_size=4, seeds=(0, 1), shatter_points=16))
    again = _compare(models, tmp_path, **same)
    assert again.gradients.reused is True
    for table in ("models", "blocks", "stages", "layers", "shattering"):
        pd.testing.assert_frame_equal(getattr(again.gradients, table),
                                      getattr(first.gradients, table))
    assert "Reused from the cache of results" in page_of(again, tmp_path).read_text()

    fresh = _compare(models, tmp_path, fresh=True, **same)
    assert fresh.gradients.reused is False
    pd.testing.assert_frame_equal(fresh.gradients.blocks, first.gradients.blocks)
    other_seeds = _compare(models, tmp_path, **{
        **same, "gradients": GradientConfig(batch_size=4, seeds=(1,), shatter_points=16)})
    assert other_seeds.gradients.reused is False
    assert set(other_seeds.gradients.blocks["seed"]) == {1}


def test_gradients_measured_with_loaded_weights_are_kept_apart(tmp_path, monkeypatch):
    """Loaded weights change the gradients: their digest is part of the key, so a run
    without them never reads a weighted run's numbers (it once did)."""
    from resnet_probe.cache import CACHE_ENV
    from resnet_probe.jobs.compare import CompareOptions, Plan
    from resnet_probe.jobs.compare.gradients import gradients_part
    from resnet_probe.measure.gradients import GradientConfig
    from resnet_probe.progress import NO_PROGRESS
    from resnet_probe.zoo import build_model

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))  # an empty cache of results
    torch.manual_seed(0)
    model = build_model("resnet8", num_classes=10, in_channels=1)
    torch.nn.init.constant_(model.conv1.weight, 0.01)
    weights = tmp_path / "weights.pt"
    torch.save(model.state_dict(), weights)
    config = GradientConfig(batch_size=4, seeds=(0,), shatter_points=0)

    def measure(source):
        plan = Plan((source, resolve("plain8")), CompareOptions(gradients=config))
        part = gradients_part(plan, NO_PROGRESS)
        return part.models["grad_ratio_first_last"].iloc[0], part.reused

    weighted, reused = measure(resolve("resnet8", weights=weights))
    assert not reused
    plain, reused = measure(resolve("resnet8"))
    assert not reused and plain != weighted
    assert measure(resolve("resnet8", weights=weights)) == (weighted, True)
