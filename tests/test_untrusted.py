"""Others' files are loaded as data only: a file whose unpickling would run code is refused,
named, and nothing in it runs (RUN folders, --resume, the run cache, --from-degradation,
--weights)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest
import torch

from resnet_probe.train.loop import CorruptCheckpoint, RunResult, load_checkpoint
from resnet_probe.untrusted import UnsafeFileError, UntrustedFileError, checked, load_tensors


class _Payload:
    """Unpickling this calls os.makedirs(marker): the proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def _hostile_checkpoint(path, marker, like=None):
    """A file shaped like a real checkpoint (``like``), with the payload tucked inside."""
    state = torch.load(like, weights_only=True) if like is not None else {"format": 3}
    state["record"] = {**state.get("record", {}), "note": _Payload(marker)}
    torch.save(state, path)


def test_load_tensors_refuses_code_and_names_the_global(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "weights.bin"
    torch.save([1, 2, _Payload(marker)], path)
    with pytest.raises(UnsafeFileError, match=r"weights\.bin.*refused.*os\.makedirs|posix"):
        load_tensors(path, "test file")
    assert not marker.exists()


def test_a_damaged_file_is_named_but_is_not_called_unsafe(tmp_path):
    path = tmp_path / "half.pt"
    path.write_bytes(b"PK\x03\x04 not a zip at all")
    with pytest.raises(UntrustedFileError, match="half.pt.*damaged") as caught:
        load_tensors(path, "test file")
    assert not isinstance(caught.value, UnsafeFileError)


def test_the_loop_refuses_a_hostile_checkpoint_and_an_old_pickled_format(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "run.pt"
    _hostile_checkpoint(path, marker)
    with pytest.raises(UnsafeFileError, match="run.pt"):
        load_checkpoint(path)
    assert not marker.exists()
    # Format 2 pickled the record as a class: refused the same way, never unpickled.
    old = tmp_path / "old.pt"
    torch.save({"format": 2, "model": {}, "step": 1,
                "result": RunResult("resnet8", 0, "finished")}, old)
    with pytest.raises(UnsafeFileError, match="RunResult"):
        load_checkpoint(old)


def test_a_records_fields_are_checked_by_type(tmp_path):
    path = tmp_path / "run.pt"
    record = RunResult("resnet8", 3, "finished").record()
    torch.save({"format": 3, "model": {}, "step": 5, "record": {**record, "seed": "three"}},
               path)
    with pytest.raises(CorruptCheckpoint, match="'seed' holds a string"):
        load_checkpoint(path)
    with pytest.raises(UntrustedFileError, match="where: the field 'n' holds a number"):
        checked({"n": float("inf")}, {"n": int}, "where")


def test_lesion_of_a_run_folder_with_a_hostile_checkpoint_refuses_it(tiny_degradation,
                                                                    tmp_path, invoke):
    folder = tmp_path / "shared-run"
    shutil.copytree(tiny_degradation, folder)
    victim = sorted((folder / "runs").glob("*.pt"))[1]
    marker = tmp_path / "ran"
    _hostile_checkpoint(victim, marker, like=victim)
    result = invoke("lesion", str(folder), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2  # a refused file is a bad input
    assert victim.name in result.output and "refused" in result.output
    assert "Traceback" not in result.output
    assert not marker.exists()


def test_resume_from_a_hostile_checkpoint_refuses_it(tmp_path, invoke):
    out = tmp_path / "run"
    arguments = ["degradation", "--depths", "8", "--seeds", "4", "--steps", "3",
                 "--warmup-steps", "1", "--batch-size", "8", "--no-why", "--fresh",
                 "--out", str(out)]
    assert invoke(*arguments).exit_code == 0
    checkpoint = sorted((out / "runs").glob("*.pt"))[0]
    state = torch.load(checkpoint, weights_only=True)
    state["record"]["status"] = "interrupted"  # so that --resume would load it
    torch.save(state, checkpoint)
    marker = tmp_path / "ran"
    _hostile_checkpoint(checkpoint, marker, like=checkpoint)
    result = invoke(*arguments, "--resume")
    assert result.exit_code == 2 and checkpoint.name in result.output
    assert "refused" in result.output and not marker.exists()


def test_a_hostile_run_cache_entry_is_named_removed_and_recomputed(tmp_path, monkeypatch,
                                                                   invoke):
    from resnet_probe.cache import CACHE_ENV

    cache = tmp_path / "shared-cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    arguments = ["degradation", "--depths", "8", "--seeds", "5", "--steps", "3",
                 "--warmup-steps", "1", "--batch-size", "8", "--no-why",
                 "--format", "json"]
    first = invoke(*arguments, "--out", str(tmp_path / "a"))
    assert first.exit_code == 0
    marker = tmp_path / "ran"
    for entry in (cache / "runs").iterdir():  # the attacker fixes up the recorded sha256 too
        run = entry / "run.pt"
        _hostile_checkpoint(run, marker, like=run)
        recorded = json.loads((entry / "entry.json").read_text())
        recorded["files"]["run.pt"] = hashlib.sha256(run.read_bytes()).hexdigest()
        (entry / "entry.json").write_text(json.dumps(recorded))
    second = invoke(*arguments, "--out", str(tmp_path / "b"))
    assert second.exit_code == 0, second.output
    assert not marker.exists()
    # recomputed from scratch, it ends where the first run ended
    assert [row["final_train_error"] for row in json.loads(second.stdout)] == \
        [row["final_train_error"] for row in json.loads(first.stdout)]
    report = (tmp_path / "b" / "degradation.html").read_text()
    assert "refused" in report and "recomputed" in report


def test_from_degradation_with_a_hostile_checkpoint_refuses_it(tiny_degradation, tmp_path,
                                                              invoke):
    folder = tmp_path / "their-run"
    shutil.copytree(tiny_degradation, folder)
    victim = sorted((folder / "runs").glob("*.pt"))[0]
    marker = tmp_path / "ran"
    _hostile_checkpoint(victim, marker, like=victim)
    result = invoke("compare", "resnet8", "plain8", "--from-degradation", str(folder),
                    "--no-latency", "--out", str(tmp_path / "out"))
    assert result.exit_code != 0 and victim.name in result.output
    assert "refused" in result.output and not marker.exists()


def test_weights_with_a_payload_are_refused(tmp_path, invoke):
    marker = tmp_path / "ran"
    path = tmp_path / "resnet8.pth"
    from resnet_probe.zoo import build_model

    torch.save({**build_model("resnet8").state_dict(), "extra": _Payload(marker)}, path)
    for command in (["show", "resnet8"], ["flops", "resnet8"], ["latency", "resnet8",
                                                                  "--repeats", "1"]):
        result = invoke(*command, "--weights", str(path))
        assert result.exit_code == 2, (command, result.output)
        assert "resnet8.pth" in result.output and "refused" in result.output
    assert not marker.exists()
