"""Nothing a user was given can run code or touch a path outside the cache or --out (issue 33).

Model names read from files (a baseline, a checkpoint's record, a run folder's manifest, a
compare data folder's train_runs.json, --from-degradation) are data; a library's callable is
never a factory; cache keys read from files are sha256s; deletes and writes stay inside the
cache or --out, through no symlink; every field of what is read is checked; torch files are
bounded before they are inflated. Every payload below would leave a marker if it ran: each
test proves the marker is absent, and that a sentinel outside the cache and --out survives.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch

from resnet_probe.contained import OutsideError, cache_key, contained, remove_inside
from resnet_probe.errors import InvalidRequest
from resnet_probe.sources import SourceError, resolve
from resnet_probe.sources.recorded import MAX_RECORDED_CHARS, resolve_recorded
from resnet_probe.train.loop import CorruptCheckpoint, load_checkpoint
from resnet_probe.untrusted import (
    STATE_BYTES_SLACK,
    UnsafeFileError,
    UntrustedFileError,
    allowed_bytes,
    load_tensors,
)
from resnet_probe.zoo import build_model

pytest_plugins = ["pytester"]

HEX = "0123456789abcdef" * 4  # 64 lowercase hex characters: a well-formed key


def _payloads(marker: Path) -> dict[str, str]:
    """MODEL texts that would write ``marker`` if anything called them."""
    shell = f"__import__('os').system('touch {marker}')"  # no comma: one builder argument
    return {
        "os:system": f"os:system[command='touch {marker}']",
        "subprocess:run": f"subprocess:run[args='touch {marker}',shell=True]",
        "builtins:exec": f"builtins:exec[source=\"{shell}\"]",
        "builtins:eval": f"builtins:eval[source=\"{shell}\"]",
        # a module on the path that writes the marker when imported
        "importlib:import_module": "importlib:import_module[name='payload_module']",
        "plain:os:system": f"plain:os:system[command='touch {marker}']",
    }


@pytest.fixture
def marker(tmp_path, monkeypatch) -> Path:
    """The file any payload here would write; ``payload_module`` writes it on import."""
    path = tmp_path / "payload-ran"
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "payload_module.py").write_text(f"open({str(path)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(modules))
    return path


def _evil_file(folder: Path, marker: Path, name: str = "evil.py", on_import: bool = True
               ) -> Path:
    """A factory file that writes ``marker`` when called (and on import)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(f"""
        import torch
        {f"open({str(marker)!r}, 'w').close()" if on_import else ""}

        def build(num_classes=10):
            open({str(marker)!r}, "w").close()
            return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(),
                                       torch.nn.LazyLinear(num_classes))
    """))
    return path


def _baseline(path: Path, model: str, **entry) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": 2, "entries": {"x": {
        "model": model, "metrics": {"params": 1}, "groups": {}, **entry}}}))
    return path


# --- 1. model names read from files are data --------------------------------------------


@pytest.mark.parametrize("payload", list(_payloads(Path("m"))))
def test_a_baseline_entry_naming_a_library_callable_runs_nothing(invoke, tmp_path, marker,
                                                                 payload):
    path = _baseline(tmp_path / "ci" / "costs.json", _payloads(marker)[payload])
    for flags in ((), ("--trust-sources",)):  # not even with the trust flag
        result = invoke("flops", "--check", str(path), *flags)
        assert result.exit_code == 2, result.output
        assert "never imports a module" in result.stderr and "'model'" in result.stderr
        assert "costs.json" in result.stderr and "Traceback" not in result.output
    assert not marker.exists()


@pytest.mark.parametrize("form", ["../outside/evil.py", "{outside}/evil.py", "link.py",
                                  "linked_dir/evil.py", "evil.py/.", "sub/../evil.py",
                                  "sub/../../outside/evil.py"])
def test_a_baseline_file_source_outside_its_folder_never_runs(invoke, tmp_path, marker, form):
    """With --trust-sources, a FILE.py must still lie inside the baseline's folder: other
    traversal forms (absolute, ``..``, a symlink to a file or a folder outside, '.' parts)
    are refused before anything is imported."""
    outside = tmp_path / "outside"
    _evil_file(outside, marker)
    folder = tmp_path / "ci"
    folder.mkdir()
    (folder / "sub").mkdir()
    _evil_file(folder, marker.with_name("inside-ran"))  # for the "evil.py/." forms
    (folder / "link.py").symlink_to(outside / "evil.py")
    (folder / "linked_dir").symlink_to(outside, target_is_directory=True)
    path = _baseline(folder / "costs.json", form.format(outside=outside) + ":build")
    for flags in ((), ("--trust-sources",)):
        result = invoke("flops", "--check", str(path), *flags)
        assert result.exit_code == 2, result.output
        assert "could not be checked" in result.stderr and "costs.json" in result.stderr
    assert not marker.exists() and not marker.with_name("inside-ran").exists()


def test_trust_sources_runs_a_factory_file_inside_the_baseline_folder(invoke, tmp_path,
                                                                      marker):
    """The flag really works: the same entry is refused without it and checked with it (the
    factory's marker proves it ran); the API takes trust_sources too."""
    from resnet_probe.jobs.regression import check_baseline

    folder = tmp_path / "ci"
    _evil_file(folder / "nets", marker)
    path = folder / "costs.json"
    update = invoke("flops", "--update-baseline", str(path), f"{folder}/nets/evil.py:build",
                    "--input-size", "8")
    assert update.exit_code == 0, update.output
    assert json.loads(path.read_text())["entries"]
    marker.unlink()
    refused = invoke("flops", "--check", str(path))
    assert refused.exit_code == 2 and "--trust-sources" in refused.stderr
    assert "would run the code" in refused.stderr and not marker.exists()
    assert check_baseline(path).errors  # the API refuses it the same way
    assert not marker.exists()
    trusted = invoke("flops", "--check", str(path), "--trust-sources")
    assert trusted.exit_code == 0, trusted.output
    assert marker.exists()
    assert check_baseline(path, trust_sources=True).exit_code == 0


def test_update_refuses_to_pin_a_model_check_could_never_rebuild(invoke, tmp_path, marker):
    outside = _evil_file(tmp_path / "outside", marker)
    result = invoke("flops", "--update-baseline", str(tmp_path / "ci" / "costs.json"),
                    f"{outside}:build", "--input-size", "8")
    assert result.exit_code == 2 and "must lie inside" in result.stderr
    assert not (tmp_path / "ci" / "costs.json").exists()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    """A finished degradation folder (resnet8 and plain8, two seeds, three steps), made in
    seconds: no analyses."""
    from click.testing import CliRunner

    from resnet_probe.cli import cli

    out = tmp_path_factory.mktemp("small") / "degradation"
    result = CliRunner().invoke(cli, ["degradation", "--depths", "8", "--seeds", "0,1",
                                      "--steps", "3", "--warmup-steps", "1", "--batch-size",
                                      "16", "--no-why", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def run_copy(small_run, tmp_path) -> Path:
    folder = tmp_path / "their-run"
    shutil.copytree(small_run, folder)
    return folder


def _edit_checkpoint(path: Path, edit) -> None:
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, path)


@pytest.mark.parametrize("payload", ["os:system", "subprocess:run", "importlib:import_module"])
def test_a_checkpoint_record_naming_a_callable_never_runs(invoke, run_copy, tmp_path, marker,
                                                          payload):
    """Read alone, the record's model is refused as data; in a run folder, a record naming a
    model the manifest does not list is skipped and named (the other runs are analysed)."""
    from resnet_probe.analysis.trained import net_from_checkpoint
    from resnet_probe.data import load_dataset

    victim = sorted((run_copy / "runs").glob("*.pt"))[0]
    text = _payloads(marker)[payload]
    _edit_checkpoint(victim, lambda state: state["record"].update(model=text))
    for trust in (False, True):
        with pytest.raises(SourceError, match="field 'model'.*never imports a module"):
            net_from_checkpoint(victim, load_dataset("digits"), trust_sources=trust)
    result = invoke("lesion", str(run_copy), "--out", str(tmp_path / "out"), "--samples", "1",
                    "--trust-sources")
    assert result.exit_code == 0, result.output
    assert victim.name in result.stderr and "not one of this run's models" in result.stderr
    assert not marker.exists()


def test_a_checkpoint_record_naming_a_file_runs_only_when_trusted_and_inside(run_copy,
                                                                           tmp_path, marker):
    from resnet_probe.analysis.trained import net_from_checkpoint
    from resnet_probe.data import load_dataset

    outside = _evil_file(tmp_path / "outside", marker)
    victim = sorted((run_copy / "runs").glob("*.pt"))[0]
    _edit_checkpoint(victim, lambda state: state["record"].update(model=f"{outside}:build"))
    with pytest.raises(SourceError, match="would run the code.*--trust-sources"):
        net_from_checkpoint(victim, load_dataset("digits"))
    with pytest.raises(SourceError, match="must lie inside"):
        net_from_checkpoint(victim, load_dataset("digits"), trust_sources=True)
    assert not marker.exists()


def test_a_manifest_naming_a_callable_is_refused(invoke, run_copy, tmp_path, marker):
    manifest = json.loads((run_copy / "manifest.json").read_text())
    manifest["config"]["models"] = [_payloads(marker)["os:system"], "resnet8"]
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    result = invoke("responses", str(run_copy), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "manifest.json" in result.stderr
    assert "'models'" in result.stderr and not marker.exists()


def _tiny_why():
    from resnet_probe.analysis import AnalysisOptions

    return AnalysisOptions(limit=8, lesion_samples=1, landscape_points=3, landscape_limit=8,
                           landscape_directions=1, hessian_images=4, hessian_iterations=2,
                           path_images=2, path_samples=1)


TINY_WHY = _tiny_why()


def _data_folder(tmp_path: Path, rows) -> Path:
    folder = tmp_path / "compare-data"
    folder.mkdir(exist_ok=True)
    (folder / "train_runs.json").write_text(rows if isinstance(rows, str) else json.dumps(rows))
    return folder


def test_train_runs_naming_a_callable_is_refused(invoke, tmp_path, marker):
    folder = _data_folder(tmp_path, [{"model": _payloads(marker)["subprocess:run"], "seed": 0,
                                      "dataset": "digits", "cache_key": HEX}])
    result = invoke("lesion", str(folder), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "train_runs.json" in result.stderr
    assert "never imports a module" in result.stderr and not marker.exists()


def test_from_degradation_refuses_a_record_naming_a_callable(invoke, run_copy, tmp_path,
                                                             marker, monkeypatch):
    from resnet_probe.jobs.compare import CompareOptions, Plan
    from resnet_probe.jobs.compare.training import training_part
    from resnet_probe.progress import NO_PROGRESS

    victim = sorted((run_copy / "runs").glob("*.pt"))[0]
    _edit_checkpoint(victim, lambda state: state["record"].update(
        model=_payloads(marker)["builtins:exec"]))
    plan = Plan.build(["resnet8", "plain8"], CompareOptions(
        degradation_dir=run_copy, latency=None, gradients=None, trust_sources=True,
        why=TINY_WHY))
    part = training_part(plan, NO_PROGRESS)
    (skipped,) = part.why.not_analysed
    assert victim.name in skipped and "not one of this run's models" in skipped
    manifest = json.loads((run_copy / "manifest.json").read_text())
    manifest["config"]["models"] = [_payloads(marker)["os:system"], "resnet8"]
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    # The command line, to the training section only (costs and gradients take a minute).
    import resnet_probe.jobs.compare as compare_job

    seen = []

    def training_only(plan, *args, **kwargs):
        seen.append(plan.options.trust_sources)
        training_part(plan, NO_PROGRESS)

    monkeypatch.setattr(compare_job, "run_compare", training_only)
    result = invoke("compare", "resnet8", "plain8", "--from-degradation", str(run_copy),
                    "--trust-sources", "--no-latency", "--out", str(tmp_path / "out"))
    assert seen == [True] and result.exit_code == 2
    assert "manifest.json" in result.stderr and "never imports a module" in result.stderr
    assert not marker.exists()


def test_recorded_models_may_be_zoo_spec_and_plain_texts(tmp_path):
    for text in ("resnet8", "cifar[layers=1-1-1]", "plain:resnet8", "plain[reinit]:resnet8"):
        source = resolve_recorded(text, "test field", base_dir=tmp_path)
        assert source.text == text
    with pytest.raises(SourceError, match=f"more than the {MAX_RECORDED_CHARS:,}"):
        resolve_recorded("plain:" * 200 + "resnet8", "test field", base_dir=tmp_path)
    with pytest.raises(SourceError, match="test field: the model must be a MODEL text"):
        resolve_recorded(["resnet8"], "test field", base_dir=tmp_path)


def test_recorded_torchvision_and_timm_models_resolve(torchvision, timm, tmp_path):
    for text in ("torchvision:resnet18", "plain:torchvision:resnet18[num_classes=10]",
                 "timm:resnet18"):
        assert resolve_recorded(text, "test field", base_dir=tmp_path).text == text


# --- 2. a factory is a function its own file defines, and its arguments must bind ----------


@pytest.mark.parametrize("text,message", [
    ("os:system[command='touch {marker}']", "a built-in function"),
    ("builtins:exec[source='1']", "a built-in function"),
    ("builtins:eval[source='1']", "a built-in function"),
    ("posix:system[command='touch {marker}']", "a built-in function"),
])
def test_a_builtin_is_never_a_factory_even_on_the_command_line(invoke, marker, text, message):
    result = invoke("flops", text.format(marker=marker))
    assert result.exit_code == 2 and message in result.stderr and "not a factory" in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize("imported", ["from os import system as build",
                                      "from subprocess import run as build",
                                      "from torchvision.models import resnet18 as build",
                                      "build = print"])
def test_a_factory_must_be_defined_in_the_file_it_is_named_from(invoke, tmp_path, marker,
                                                                imported):
    path = tmp_path / "borrowed.py"
    path.write_text(f"{imported}\n")
    if "torchvision" in imported:
        pytest.importorskip("torchvision")
    result = invoke("flops", f"{path}:build[args='touch {marker}']")
    assert result.exit_code == 2 and "not a factory" in result.stderr
    assert not marker.exists()


def test_builder_arguments_must_bind_to_the_factory_before_it_is_called(invoke, tmp_path,
                                                                        marker):
    path = _evil_file(tmp_path / "nets", marker, on_import=False)
    result = invoke("flops", f"{path}:build[not_a_parameter=1]")
    assert result.exit_code == 2 and "do not fit build(num_classes=10)" in result.stderr
    assert "not_a_parameter" in result.stderr and not marker.exists()


def test_an_nn_module_subclass_defined_in_the_file_is_a_factory(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(textwrap.dedent("""
        import torch

        class Net(torch.nn.Module):
            def __init__(self, width=4, num_classes=10):
                super().__init__()
                self.conv = torch.nn.Conv2d(3, width, 3)
                self.head = torch.nn.Linear(width, num_classes)

            def forward(self, x):
                return self.head(self.conv(x).mean((2, 3)))
    """))
    model = resolve(f"{path}:Net[width=6]", input_size=16).build()
    assert model.conv.out_channels == 6
    with pytest.raises(SourceError, match="do not fit Net"):
        resolve(f"{path}:Net[depth=3]", input_size=16)


# --- 3. cache keys, containment, symlinks --------------------------------------------------


BAD_KEYS = ["", ".", "..", "/", "{sentinel}", "../../sentinel", HEX[:63], HEX + "0",
            HEX.upper(), HEX + "/..", HEX[:62] + "/.", 123, None]


@pytest.mark.parametrize("key", BAD_KEYS, ids=[repr(k)[:20] for k in BAD_KEYS])
def test_a_recorded_cache_key_that_is_not_a_sha256_is_refused(invoke, tmp_path, monkeypatch,
                                                              key):
    from resnet_probe.cache import CACHE_ENV

    cache = tmp_path / "cache"
    (cache / "runs" / HEX).mkdir(parents=True)
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "keep.txt").write_text("still here")
    monkeypatch.setenv(CACHE_ENV, str(cache))
    key = key.format(sentinel=sentinel) if isinstance(key, str) else key
    folder = _data_folder(tmp_path, [{"model": "resnet8", "seed": 0, "dataset": "digits",
                                      "cache_key": key}])
    result = invoke("lesion", str(folder), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert "cache_key" in result.stderr and "train_runs.json" in result.stderr
    assert (sentinel / "keep.txt").read_text() == "still here"
    assert (cache / "runs" / HEX).is_dir()  # the run cache itself survives


@pytest.mark.parametrize("key", ["", ".", "/", "../x", HEX.upper(), HEX + "/.."])
def test_the_run_cache_refuses_a_key_that_is_not_a_sha256(tmp_path, key):
    from resnet_probe.train.run_cache import RunCache

    with pytest.raises(OutsideError, match="64 lowercase hexadecimal"):
        RunCache(tmp_path / "cache").checkpoint(key)
    assert cache_key(HEX, "here") == HEX


def test_a_cache_entry_that_is_a_symlink_is_unlinked_never_followed(tmp_path):
    from resnet_probe.train.run_cache import RunCache

    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "run.pt").write_text("someone's file")
    (sentinel / "entry.json").write_text("{}")
    runs = tmp_path / "cache" / "runs"
    runs.mkdir(parents=True)
    (runs / HEX).symlink_to(sentinel, target_is_directory=True)
    cache = RunCache(tmp_path / "cache")
    assert cache.checkpoint(HEX) is None
    assert "symlink" in cache.problems[0]
    assert not (runs / HEX).exists() and (sentinel / "run.pt").read_text() == "someone's file"


def test_a_cache_whose_runs_folder_is_a_symlink_is_not_used(tmp_path):
    from resnet_probe.cache import CacheUnusableWarning
    from resnet_probe.train.run_cache import RunCache

    sentinel = tmp_path / "sentinel"
    (sentinel / HEX).mkdir(parents=True)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "runs").symlink_to(sentinel, target_is_directory=True)
    with pytest.warns(CacheUnusableWarning, match="symlink"):
        assert RunCache(tmp_path / "cache").checkpoint(HEX) is None
    assert (sentinel / HEX).is_dir()


def test_degradation_refuses_an_out_folder_whose_runs_link_elsewhere(invoke, tmp_path):
    """`degradation --out D` with D/runs a symlink used to delete the *.pt files there."""
    sentinel = tmp_path / "elsewhere"
    sentinel.mkdir()
    (sentinel / "precious.pt").write_text("not a checkpoint of ours")
    out = tmp_path / "D"
    out.mkdir()
    (out / "runs").symlink_to(sentinel, target_is_directory=True)
    result = invoke("degradation", "--depths", "8", "--seeds", "0", "--steps", "2",
                    "--warmup-steps", "1", "--batch-size", "8", "--no-why", "--out", str(out))
    assert result.exit_code == 2 and "symlink" in result.stderr
    assert [p.name for p in sentinel.iterdir()] == ["precious.pt"]
    assert (sentinel / "precious.pt").read_text() == "not a checkpoint of ours"


def test_a_lock_file_that_is_a_symlink_is_refused_and_its_target_kept(tmp_path):
    from resnet_probe.train.run_folder import LOCK, locked

    target = tmp_path / "someones-file"
    target.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK).symlink_to(target)
    with pytest.raises(OutsideError, match="symlink"), locked(out):
        pass
    assert target.read_text() == "keep me"


def test_a_data_folder_that_is_a_symlink_is_refused(tmp_path):
    from resnet_probe.results import save_table

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "data").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OutsideError, match="symlink"):
        save_table(pd.DataFrame({"a": [1]}), out / "data", "t")
    assert list(elsewhere.iterdir()) == []


def test_contained_accepts_inside_and_refuses_every_way_out(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to(tmp_path / "outside", target_is_directory=True)
    (root / "inner_link").symlink_to(root / "sub", target_is_directory=True)
    assert contained(root, "sub/x.pt") == (root / "sub" / "x.pt").resolve()
    assert contained(root, root / "sub") == (root / "sub").resolve()
    for way_out in ("../outside", tmp_path / "outside", "/", "sub/../../outside",
                    "link/x.pt", "inner_link/x.pt"):  # a link is refused even pointing inside
        with pytest.raises(OutsideError):
            contained(root, way_out)
    with pytest.raises(OutsideError, match="whole"):
        remove_inside(root, root)
    assert (root / "sub").is_dir() and (tmp_path / "outside").is_dir()


# --- 4. every field checked ---------------------------------------------------------------


def _entry_store(tmp_path):
    from resnet_probe.cache import Store, json_decoder, json_encoder

    store = Store("results", tmp_path / "cache")
    computed = []

    def compute():
        computed.append(1)
        return {"error": 0.875}

    first = store.get_or_compute({"what": "x"}, compute, json_encoder, json_decoder)
    return store, first.key, computed, compute, (json_encoder, json_decoder)


@pytest.mark.parametrize("damage,named", [
    ("no files", "lists no files"),
    ("an unlisted file", "not listed"),
    ("a listed subfolder", "not a plain file"),
])
def test_an_entry_json_that_does_not_list_every_file_is_damaged(tmp_path, damage, named):
    """`"files": {}` used to skip the sha256 check: an edited value was reused."""
    store, key, computed, compute, (encode, decode) = _entry_store(tmp_path)
    folder = store.path / key
    entry = json.loads((folder / "entry.json").read_text())
    (folder / "value.json").write_text(json.dumps({"error": 0.0}))  # the edit
    if damage == "no files":
        entry["files"] = {}
        (folder / "entry.json").write_text(json.dumps(entry))
    elif damage == "an unlisted file":
        entry["files"] = {}
        (folder / "extra.json").write_text("{}")
        (folder / "value.json").write_text(json.dumps({"error": 0.875}))
        entry["files"]["value.json"] = __import__("hashlib").sha256(
            (folder / "value.json").read_bytes()).hexdigest()
        (folder / "entry.json").write_text(json.dumps(entry))
    else:
        (folder / "sub").mkdir()
    again = store.get_or_compute({"what": "x"}, compute, encode, decode)
    assert again.value == {"error": 0.875} and not again.reused and len(computed) == 2
    assert named in store.problems[0] and "deleted and recomputed" in store.problems[0]


def _degradation_folder(tmp_path: Path, **config) -> Path:
    folder = tmp_path / "deg"
    (folder / "runs").mkdir(parents=True)
    (folder / "runs" / "x.pt").write_bytes(b"")
    base = {"family": "cifar", "depths": [8], "seeds": [0], "models": [], "preact": False,
            "dataset": "digits", "data_dir": None}
    (folder / "manifest.json").write_text(json.dumps({"format": 1, "config": {**base,
                                                                               **config}}))
    return folder


@pytest.mark.parametrize("rows,named", [
    ([{"model": "resnet8", "seed": "0", "dataset": "digits", "cache_key": HEX}], "'seed'"),
    ([{"model": 8, "seed": 0, "dataset": "digits", "cache_key": HEX}], "'model'"),
    ([{"model": "resnet8", "seed": 0, "dataset": "imagenet", "cache_key": HEX}],
     "'dataset'"),
    ([{"model": "resnet8", "seed": 0, "dataset": "digits"}], "'cache_key' is missing"),
    ([{"model": "resnet8", "seed": 0, "dataset": "digits", "cache_key": ["x"]}],
     "'cache_key'"),
    ({"model": "resnet8"}, "expected a JSON array"),
    ([], "expected a JSON array"),
    (["resnet8"], "expected an object"),
    ("[" * 100_000 + "]" * 100_000, "nests too deeply"),
    ("\x00\xff", "not valid JSON"),
])
def test_train_runs_fields_are_checked_by_name(invoke, tmp_path, rows, named):
    folder = _data_folder(tmp_path, rows)
    result = invoke("lesion", str(folder), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert named in result.stderr and "train_runs.json" in result.stderr
    assert "Traceback" not in result.output and "internal error" not in result.stderr


@pytest.mark.parametrize("config,named", [
    ({"depths": "8"}, "'depths'"),
    ({"depths": ["8"]}, "'depths'"),
    ({"seeds": None}, "'seeds'"),
    ({"models": "resnet8"}, "'models'"),
    ({"dataset": 3}, "'dataset'"),
    ({"preact": "yes"}, "'preact'"),
])
def test_manifest_fields_are_checked_by_name(invoke, tmp_path, config, named):
    folder = _degradation_folder(tmp_path, **config)
    result = invoke("responses", str(folder), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert named in result.stderr and "manifest.json" in result.stderr
    assert "internal error" not in result.stderr


def test_a_deeply_nested_manifest_is_named(invoke, tmp_path):
    folder = _degradation_folder(tmp_path)
    (folder / "manifest.json").write_text("{\"config\": " + "[" * 100_000 + "]" * 100_000 + "}")
    result = invoke("responses", str(folder), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "nests too deeply" in result.stderr


@pytest.mark.parametrize("versions,shown", [({"torch": 2}, "2"), ("2.13", "'2.13'"),
                                            ([], "[]"), ({"torch": None}, "None")])
def test_a_baselines_versions_must_be_strings(invoke, tmp_path, versions, shown):
    path = _baseline(tmp_path / "b.json", "resnet8", versions=versions)
    result = invoke("flops", "--check", str(path))
    assert result.exit_code == 2 and '"versions" must be an object' in result.stderr
    assert shown in result.stderr


def test_a_deeply_nested_baseline_is_named(invoke, tmp_path):
    path = tmp_path / "b.json"
    path.write_text("{\"entries\": " + "[" * 100_000 + "]" * 100_000 + "}")
    result = invoke("flops", "--check", str(path))
    assert result.exit_code == 2 and "nests too deeply" in result.stderr


@pytest.fixture(scope="module")
def finished(small_run) -> Path:
    return sorted((small_run / "runs").glob("resnet8-seed*.pt"))[0]


def _damaged_copy(finished: Path, tmp_path: Path, edit) -> Path:
    path = tmp_path / "runs" / finished.name
    path.parent.mkdir(exist_ok=True)
    shutil.copy(finished, path)
    _edit_checkpoint(path, edit)
    return path


def _first_conv(state):
    return next(k for k in state["model"] if k.endswith("conv1.weight"))


@pytest.mark.parametrize("edit,named", [
    (lambda s: s["model"][_first_conv(s)].view(-1)[:3].fill_(float("nan")), "3 NaN"),
    (lambda s: s["model"][_first_conv(s)].view(-1)[:1].fill_(float("inf")), "1 NaN or inf"),
    (lambda s: s["model"]["bn1.running_var"].fill_(-1.0), "bn1.running_var holds negative"),
    (lambda s: s["model"].__setitem__(_first_conv(s), s["model"][_first_conv(s)][:1]),
     "shapes differ"),
    (lambda s: s["model"].__setitem__(_first_conv(s), s["model"][_first_conv(s)].long()),
     "dtypes differ"),
    (lambda s: s["model"].pop("bn1.running_mean"), "missing bn1.running_mean"),
    (lambda s: s["model"].__setitem__("extra", torch.zeros(1)), "unexpected extra"),
    (lambda s: s["record"].__setitem__("model", "resnet14"), "does not fit resnet14"),
])
def test_a_checkpoints_tensors_are_checked_before_any_analysis(finished, tmp_path, edit,
                                                               named):
    """A NaN checkpoint used to be analysed (error 0.892, no note)."""
    from resnet_probe.analysis.trained import collect, net_from_checkpoint
    from resnet_probe.data import load_dataset

    path = _damaged_copy(finished, tmp_path, edit)
    dataset = load_dataset("digits")
    with pytest.raises(CorruptCheckpoint, match=named) as error:
        net_from_checkpoint(path, dataset)
    assert str(path) in str(error.value)
    runs = collect([path], dataset, "test")
    assert runs.nets == [] and str(path) in runs.skipped[0]


def test_lesion_names_a_nan_checkpoint_and_analyses_the_rest(invoke, run_copy, tmp_path):
    victim = sorted((run_copy / "runs").glob("*.pt"))[0]
    _edit_checkpoint(victim, lambda s: s["model"][_first_conv(s)].fill_(float("nan")))
    result = invoke("lesion", str(run_copy), "--out", str(tmp_path / "out"), "--samples", "1",
                    "--format", "json")
    assert result.exit_code == 0, result.output
    assert victim.name in result.stderr and "NaN" in result.stderr
    model, seed = victim.stem.rsplit("-seed", 1)
    rows = json.loads(result.stdout)
    assert rows and (model, int(seed)) not in {(row["model"], row["seed"]) for row in rows}


def _interrupted_checkpoint(tmp_path: Path) -> tuple[Path, object, object]:
    from resnet_probe.data import load_dataset
    from resnet_probe.train.fitted_data import fit_dataset_to
    from resnet_probe.train.loop import TrainConfig, train_run

    class StopAt:
        count = 0

        def update(self, n=1):
            self.count += n
            if self.count == 3:
                raise KeyboardInterrupt

        def set_description(self, text):
            pass

    config = TrainConfig(steps=6, batch_size=16, warmup_steps=1, eval_every=3,
                         grad_norm_every=3, checkpoint_every=2)
    digits = fit_dataset_to(load_dataset("digits"), [resolve("resnet8")])
    path = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        train_run("resnet8", digits, config, checkpoint=path, progress=StopAt())
    return path, digits, config


@pytest.mark.parametrize("edit,named", [
    (lambda s: s["optimizer"]["param_groups"][0].__setitem__("params", [0, 1]),
     "the optimizer holds parameters 0, 1"),
    (lambda s: s["optimizer"]["param_groups"][0].__setitem__("lr", "0.1"), "'lr'"),
    (lambda s: s["optimizer"]["state"][0].__setitem__("momentum_buffer", torch.zeros(2)),
     "momentum of parameter 0"),
    (lambda s: s["rng"].__setitem__("torch", torch.zeros(7, dtype=torch.uint8)),
     "torch RNG state"),
    (lambda s: s["rng"].__setitem__("cuda", [torch.zeros(3)]), "cuda RNG state"),
    (lambda s: s.__setitem__("samples_seen", "many"), "'samples_seen'"),
    (lambda s: s.__setitem__("bn_calls_per_step", {"bn1.num_batches_tracked": -1}),
     "bn_calls_per_step"),
])
def test_a_resumed_runs_optimizer_and_rng_state_are_checked(tmp_path, edit, named):
    from resnet_probe.train.loop import train_run

    path, digits, config = _interrupted_checkpoint(tmp_path)
    _edit_checkpoint(path, edit)
    with pytest.raises(CorruptCheckpoint, match=named) as error:
        train_run("resnet8", digits, config, checkpoint=path, resume=True)
    assert "run.pt" in str(error.value) and "resume" in str(error.value)


@pytest.mark.parametrize("content", [os.urandom(4096), b"", b"PK\x03\x04" + b"\x00" * 64])
def test_garbage_is_not_a_torch_file_and_not_an_attack(invoke, tmp_path, content):
    path = tmp_path / "model.pth"
    path.write_bytes(content)
    result = invoke("flops", "resnet8", "--weights", str(path))
    assert result.exit_code == 2 and "not a torch file" in result.stderr
    assert "refused" not in result.stderr and "would construct" not in result.stderr
    with pytest.raises(CorruptCheckpoint, match="not a torch file") as error:
        load_checkpoint(path)
    assert not isinstance(error.value, UnsafeFileError)


def test_weights_from_dev_zero_are_not_a_torch_file(invoke):
    result = invoke("show", "resnet8", "--weights", "/dev/zero")
    assert result.exit_code == 2 and "not a torch file" in result.stderr
    assert "not a regular file" in result.stderr and "would construct" not in result.stderr


def test_a_broken_pickle_is_damaged_and_a_real_global_request_is_unsafe(tmp_path):
    broken = tmp_path / "broken.pt"
    torch.save({"a": torch.zeros(2)}, broken)
    with zipfile.ZipFile(broken) as archive:
        entries = {i.filename: archive.read(i) for i in archive.infolist()}
    pickled = next(name for name in entries if name.endswith("data.pkl"))
    entries[pickled] = b"\x80\x02\xff\xff garbage"
    with zipfile.ZipFile(broken, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    with pytest.raises(UntrustedFileError, match="damaged") as error:
        load_tensors(broken, "test file")
    assert not isinstance(error.value, UnsafeFileError)
    hostile = tmp_path / "hostile.pt"
    torch.save({"a": os.system}, hostile)
    with pytest.raises(UnsafeFileError, match="system"):
        load_tensors(hostile, "test file")


# --- 5. size guards before anything is inflated --------------------------------------------


def _deflated_bomb(path: Path, state: dict, extra_bytes: int) -> None:
    """A torch file of ``state`` re-zipped with deflate, plus an entry of zeros that inflates
    to ``extra_bytes`` from a few kB."""
    torch.save(state, path)
    with zipfile.ZipFile(path) as archive:
        entries = [(i, archive.read(i)) for i in archive.infolist()]
    prefix = entries[0][0].filename.split("/")[0]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in entries:
            archive.writestr(info.filename, data)
        with archive.open(f"{prefix}/data/999", "w", force_zip64=True) as handle:
            block = bytes(1 << 20)
            for _ in range(extra_bytes >> 20):
                handle.write(block)


def test_a_deflated_weights_file_that_inflates_is_refused_unread(invoke, tmp_path):
    path = tmp_path / "bomb.pth"
    _deflated_bomb(path, build_model("resnet8").state_dict(), 64 << 20)
    assert path.stat().st_size < 1 << 20
    result = invoke("flops", "resnet8", "--weights", str(path))
    assert result.exit_code == 2 and "bomb.pth" in result.stderr
    assert "inflates from" in result.stderr and f"to {64 << 20:,} bytes" in result.stderr


def test_a_stored_weights_file_far_beyond_the_model_is_refused_unread(invoke, tmp_path):
    model = build_model("resnet8")
    limit = allowed_bytes(model.state_dict())
    assert limit == 4 * sum(t.numel() * t.element_size() for t in
                            model.state_dict().values()) + STATE_BYTES_SLACK
    path = tmp_path / "big.pth"
    torch.save({**model.state_dict(), "extra": torch.zeros(limit // 4 + 1)}, path)
    result = invoke("show", "resnet8", "--weights", str(path))
    assert result.exit_code == 2 and "big.pth" in result.stderr
    assert "far beyond" in result.stderr and f"{limit:,} bytes" in result.stderr


def test_a_checkpoint_inflating_beyond_its_runs_model_is_refused(finished, tmp_path):
    from resnet_probe.zoo import build_model as build

    path = tmp_path / "inflated.pt"
    state = torch.load(finished, weights_only=True)
    torch.save(state, path)
    _deflated_bomb(path, state, 64 << 20)
    with pytest.raises(CorruptCheckpoint, match="inflates from"):
        load_checkpoint(path)  # even the record alone is not read from such a file
    with pytest.raises(CorruptCheckpoint, match="inflates from|far beyond"):
        load_checkpoint(path, model=build("resnet8", in_channels=1, num_classes=10))


def test_baseline_bounds_on_size_entries_groups_and_values(invoke, tmp_path):
    from resnet_probe.jobs import regression

    limits = (regression.MAX_BASELINE_BYTES, regression.MAX_BASELINE_ENTRIES,
              regression.MAX_BASELINE_GROUPS, regression.MAX_BASELINE_VALUES)
    assert limits == (16 << 20, 5_000, 2_000, 500_000)
    big = tmp_path / "big.json"
    big.write_text("{\"entries\": {}}" + " " * (16 << 20))
    result = invoke("flops", "--check", str(big))
    assert result.exit_code == 2 and "above the 16,777,216" in result.stderr

    def entry(groups: int) -> dict:
        return {"model": "resnet8", "metrics": {"params": 1},
                "groups": {f"g{i}": {"params": 1} for i in range(groups)}}

    many = tmp_path / "many.json"
    many.write_text(json.dumps({"format": 2, "entries": {f"e{i}": entry(0)
                                                         for i in range(5_001)}}))
    result = invoke("flops", "--check", str(many))
    assert result.exit_code == 2 and "5,001 entries" in result.stderr
    wide = tmp_path / "wide.json"
    wide.write_text(json.dumps({"format": 2, "entries": {"e": entry(2_001)}}))
    result = invoke("flops", "--check", str(wide))
    assert result.exit_code == 2 and "2,001 groups" in result.stderr
    values = tmp_path / "values.json"  # 251 entries x (1 + 2,000) values > 500,000
    values.write_text(json.dumps({"format": 2, "entries": {f"e{i}": entry(2_000)
                                                           for i in range(251)}}))
    assert values.stat().st_size < 16 << 20
    result = invoke("flops", "--check", str(values))
    assert result.exit_code == 2 and "more than 500,000 values" in result.stderr


# --- the pytest plugin: the test's own model, never the baseline's text -----------------------


def test_the_pytest_plugin_never_resolves_a_baselines_model_text(pytester, marker):
    """The plugin gates the model the test itself builds (the user's own code); the baseline's
    "model" is a label. An entry whose text names os:system or a file outside still runs
    nothing, and the gate still compares the numbers."""
    pytester.makepyfile(test_gated=textwrap.dedent("""
        def test_zoo_net(costs):
            costs("resnet8")
    """))
    assert pytester.runpytest("-p", "no:cacheprovider", "--costs-update").ret == 0
    path = pytester.path / "costs-baseline.json"
    baseline = json.loads(path.read_text())
    (entry,) = baseline["entries"].values()
    entry["model"] = f"os:system[command='touch {marker}']"
    path.write_text(json.dumps(baseline))
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    entry["model"], entry["metrics"]["params"] = "../outside/evil.py:build", 1
    path.write_text(json.dumps(baseline))
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(failed=1)
    assert not marker.exists()


def test_invalid_request_is_the_base_of_every_refusal():
    """Every refusal here exits 2 through the CLI's one mapping."""
    for error in (OutsideError, UntrustedFileError, CorruptCheckpoint, SourceError):
        assert issubclass(error, InvalidRequest)
