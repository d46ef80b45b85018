"""Guards at the edges (issue 33, part B): memory estimated before anything is built, thread
counts bounded by the cores, a user's code contained, resume advice only where a checkpoint
exists, and each internal error of the list a named one with exit 2."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
import torch
from torch import nn

from resnet_probe.measure import memory
from resnet_probe.sources import ModelSource

HUGE = "cifar[widths=16384-16384-16384]"  # 41 G parameters: 153 GiB in float32


@pytest.fixture
def little_memory(monkeypatch):
    """1 GiB available: the guards refuse without the test allocating anything."""
    monkeypatch.setattr(memory, "available_bytes", lambda device: (2**30, "test"))


@pytest.fixture
def no_real_build(monkeypatch):
    """Any build that is not on the meta device fails the test: the guard must come first."""
    real = ModelSource.build

    def meta_only(self, num_classes=None, in_channels=None, structure=True, device=None):
        assert device == "meta", f"{self.text} was built for real before the memory guard"
        return real(self, num_classes, in_channels, structure, device)

    monkeypatch.setattr(ModelSource, "build", meta_only)


# --- memory: the guard before any allocation -------------------------------------------------


def test_show_refuses_a_huge_spec_before_building_it(invoke, little_memory, no_real_build):
    result = invoke("show", HUGE)
    assert result.exit_code == 1, result.output
    assert f"showing {HUGE} needs about 154.6 GiB" in result.stderr
    assert "its parameters alone need 153.0 GiB, so no batch or input size fits" in result.stderr


def test_gradients_refuses_a_huge_spec_before_building_it(invoke, little_memory,
                                                          no_real_build):
    result = invoke("gradients", HUGE, "--seeds", "0")
    assert result.exit_code == 1, result.output
    assert f"the gradient probe of {HUGE} needs about" in result.stderr


def test_show_counts_the_batch_of_its_input_tensors(invoke, monkeypatch, no_real_build):
    """resnet8 at batch 200,000: the input alone is 200000*3*32*32*4 bytes = 2.3 GiB."""
    monkeypatch.setattr(memory, "available_bytes", lambda device: (8 * 2**30, "test"))
    result = invoke("show", "resnet8", "--input", "x=200000x3x32x32")
    assert result.exit_code == 1, result.output
    assert "(batch 200000, x=200000x3x32x32:float32)" in result.stderr
    assert "a batch size of at most" in result.stderr


def test_every_input_tensor_counts_at_its_own_dtype_and_batch():
    """x 4x3x8x8 float32 (3,072 bytes) and mask 4x8x8 bool (256 bytes) in, x * mask out
    (3,072 bytes): 6,400 bytes, 1,600 per sample of the batch of 4; no parameters."""
    from resnet_probe.sources import InputSpec

    class Masked(nn.Module):
        def forward(self, x, mask):
            return x * mask[:, None]

    inputs = InputSpec.parse(["x=4x3x8x8", "mask=4x8x8:bool"])
    estimate = memory.estimate_peak_bytes(Masked(), (1,), training=False, inputs=inputs)
    assert (estimate.batch_size, estimate.parameter_bytes) == (4, 0)
    assert estimate.activation_bytes_per_sample == 1600 and estimate.total_bytes == 6400


def test_latency_of_a_foreign_model_is_guarded_on_a_meta_build(tmp_path, little_memory):
    """The factory is called on the meta device only: the refusal comes before a real build."""
    from resnet_probe.measure.latency import LatencyConfig, measure_latency

    (tmp_path / "wide.py").write_text(
        "import torch\nfrom torch import nn\nDEVICES = []\n"
        "def build():\n"
        "    model = nn.Sequential(nn.Conv2d(3, 8192, 3), nn.Conv2d(8192, 8192, 3))\n"
        "    DEVICES.append(next(model.parameters()).device.type)\n"
        "    return model\n")
    result = measure_latency([f"{tmp_path}/wide.py:build"], LatencyConfig(
        repeats=1, warmup=0, backward=False, input_size=16))
    assert not result.models and "refused before allocating" in result.failures[0]["error"]
    module = next(m for name, m in sys.modules.items()
                  if name.startswith("resnet_probe_user_") and hasattr(m, "DEVICES")
                  and Path(m.__file__).resolve() == (tmp_path / "wide.py").resolve())
    assert module.DEVICES and set(module.DEVICES) == {"meta"}


def test_training_is_guarded_before_the_net_is_built(monkeypatch, little_memory):
    from resnet_probe.data import load_dataset
    from resnet_probe.train import loop

    def never(*args, **kwargs):
        raise AssertionError("the net was built before the memory guard")

    monkeypatch.setattr(loop, "build_for_dataset", never)
    with pytest.raises(memory.MemoryGuardError, match=re.escape(f"training {HUGE} needs")):
        loop.train_run(HUGE, load_dataset("digits"), loop.TrainConfig(steps=2, warmup_steps=0))


def test_a_meta_copy_of_a_built_model_copies_no_storage():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    copy = memory._meta_copy(model)
    assert all(t.is_meta for t in [*copy.parameters(), *copy.buffers()])
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    assert [p.shape for p in copy.parameters()] == [p.shape for p in model.parameters()]


# --- threads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("threads", ["100000", "20000", "0"])
def test_threads_outside_the_cores_exit_2_with_the_range(invoke, threads):
    from resnet_probe.device import CPU_CORES

    result = invoke("latency", "resnet8", "--threads", threads)
    assert result.exit_code == 2
    assert f"Invalid value for '--threads': {threads} is not in the range 1<=x<={CPU_CORES}" \
        in result.stderr


# --- a user's code, contained ------------------------------------------------------------------

MODEL = ("from torch import nn\n"
         "def model():\n"
         "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),\n"
         "                         nn.Linear(4, 2))\n")
WRITERS = {
    "os_write": "import os\n" + MODEL + "def build():\n    os.write(1, b'NOISE\\n')\n"
                "    return model()\n",
    "dunder_stdout": "import sys\n" + MODEL + "def build():\n"
                     "    sys.__stdout__.write('NOISE\\n')\n    return model()\n",
    "print": MODEL + "def build():\n    print('NOISE')\n    return model()\n",
}
ENDERS = {
    "os_exit": ("import os\ndef build():\n    os._exit(0)\n", "its code called os._exit(0)"),
    "os_exit_caught": ("import os\ndef build():\n    try:\n        os._exit(0)\n"
                       "    except BaseException:\n        pass\n",
                       "its code called os._exit(0)"),
    "sys_exit": ("import sys\ndef build():\n    sys.exit(0)\n", "its code called sys.exit(0)"),
    "generator_exit": ("def build():\n    raise GeneratorExit('bye')\n",
                       "its code raised GeneratorExit: bye while building the model"),
    "base_exception": ("class Stop(BaseException):\n    pass\n"
                       "def build():\n    raise Stop('here')\n",
                       "its code raised Stop: here while building the model"),
}


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real process: file descriptor 1 is the pipe the results go to."""
    return subprocess.run([sys.executable, "-m", "resnet_probe", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize("case", sorted(WRITERS))
def test_a_factory_writing_to_stdout_cannot_corrupt_json(tmp_path, case):
    (tmp_path / "m.py").write_text(WRITERS[case])
    result = _cli("flops", f"{tmp_path}/m.py:build", "--input-size", "16", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)  # nothing but our JSON on stdout
    assert rows[0]["params"] == 3 * 4 * 9 + 4 + 4 * 2 + 2
    assert "NOISE" in result.stderr and "NOISE" not in result.stdout


def test_a_forward_writing_to_stdout_outside_any_user_code_step_cannot_corrupt_json(tmp_path):
    """The gradient probe runs the net's forward and backward itself: while any command runs,
    descriptor 1 is stderr and only resnet-probe's results reach the real stdout."""
    (tmp_path / "noisy.py").write_text(
        "import os\n" + FLAT.replace("def build(", "def plain(") +
        "class Noisy(nn.Module):\n"
        "    def __init__(self, **kwargs):\n"
        "        super().__init__()\n"
        "        self.net = plain(**kwargs)\n"
        "    def forward(self, x):\n"
        "        os.write(1, b'NOISE\\n')\n"
        "        return self.net(x)\n"
        "def build(num_classes=10, in_channels=3):\n"
        "    return Noisy(num_classes=num_classes, in_channels=in_channels)\n")
    result = _cli("gradients", f"{tmp_path}/noisy.py:build", "--seeds", "0",
                  "--shatter-points", "0", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["model"].endswith("noisy.py:build")
    assert "NOISE" in result.stderr and "NOISE" not in result.stdout


# In this process only the cases that cannot end it when the guard fails: an os._exit that
# got through would end pytest itself, with status 0 (a subprocess runs those).
IN_PROCESS = sorted(set(ENDERS) - {"os_exit", "os_exit_caught"})


@pytest.mark.parametrize("case", ["os_exit", "os_exit_caught"])
def test_a_factory_calling_os_exit_fails_flops_in_a_real_process(tmp_path, case):
    code, message = ENDERS[case]
    (tmp_path / "m.py").write_text(code)
    result = _cli("flops", f"{tmp_path}/m.py:build", "--format", "json")
    assert result.returncode == 2 and result.stdout == ""
    assert f"{message} while building the model" in result.stderr


@pytest.mark.parametrize("case", IN_PROCESS)
def test_a_factory_that_ends_or_raises_is_a_named_error(invoke, tmp_path, case):
    code, message = ENDERS[case]
    (tmp_path / "m.py").write_text(code)
    result = invoke("flops", f"{tmp_path}/m.py:build", "--format", "json")
    assert result.exit_code == 2 and result.stdout == ""
    assert message in result.stderr and "Traceback" not in result.stderr


def _baseline_then(tmp_path: Path, code: str) -> Path:
    """A baseline whose entry is a good factory, then the factory replaced by ``code``."""
    (tmp_path / "m.py").write_text(MODEL + "def build():\n    return model()\n")
    path = tmp_path / "costs.json"
    update = _cli("flops", "--update-baseline", str(path), f"{tmp_path}/m.py:build",
                  "--input-size", "16")
    assert update.returncode == 0, update.stderr
    (tmp_path / "m.py").write_text(code)
    return path


def test_a_cost_gate_whose_factory_calls_os_exit_fails(tmp_path):
    """The CI case: before, the process ended with status 0 and no output, so the gate passed."""
    path = _baseline_then(tmp_path, ENDERS["os_exit"][0])
    result = _cli("flops", "--check", str(path), "--trust-sources")
    assert result.returncode != 0
    assert "its code called os._exit(0)" in result.stderr and "INCOMPLETE" in result.stderr


@pytest.mark.parametrize("case", IN_PROCESS)
def test_a_cost_gate_whose_factory_ends_or_raises_fails(invoke, tmp_path, case):
    code, message = ENDERS[case]
    path = _baseline_then(tmp_path, code)
    result = invoke("flops", "--check", str(path), "--trust-sources")
    assert result.exit_code != 0 and message in result.stderr


def test_user_code_restores_stdout_and_os_exit_after_an_error():
    from resnet_probe.errors import UserCodeError
    from resnet_probe.sources import user_code

    real_exit, stdout = os._exit, os.fstat(1)
    with pytest.raises(UserCodeError, match="GeneratorExit"), user_code("m", "building"):
        assert os._exit is not real_exit  # replaced while the code runs
        raise GeneratorExit()
    assert os._exit is real_exit
    assert (os.fstat(1).st_ino, os.fstat(1).st_dev) == (stdout.st_ino, stdout.st_dev)


def test_ctrl_c_in_user_code_still_interrupts():
    from resnet_probe.errors import Terminated
    from resnet_probe.sources import user_code

    for interruption in (KeyboardInterrupt, Terminated):
        with pytest.raises(interruption), user_code("m", "building"):
            raise interruption()


# --- interrupts: --resume advised only where a checkpoint exists -------------------------------


@pytest.fixture
def python_ctrl_c():
    """Ctrl-C as a fresh `resnet-probe` process meets it (Python's KeyboardInterrupt),
    whatever handler the test session holds."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_before_the_first_checkpoint_does_not_advise_resume(invoke, tmp_path,
                                                                   monkeypatch, python_ctrl_c):
    from resnet_probe.train import loop

    real = loop.build_for_dataset

    def interrupted_at_step_0(source, dataset):
        signal.raise_signal(signal.SIGINT)  # Ctrl-C while the first net is being built
        return real(source, dataset)

    monkeypatch.setattr(loop, "build_for_dataset", interrupted_at_step_0)
    out = tmp_path / "run"
    args = ["degradation", "--seeds", "0", "--depths", "8", "--steps", "4", "--warmup-steps",
            "1", "--batch-size", "16", "--fresh", "--no-why", "--out", str(out)]
    result = invoke(*args)
    assert result.exit_code == 130
    assert "interrupted before the first checkpoint: there is nothing to resume" in \
        result.stderr and "--resume to continue" not in result.stderr
    monkeypatch.setattr(loop, "build_for_dataset", real)
    resumed = invoke(*args, "--resume")  # what the advice would have led to
    assert resumed.exit_code == 2 and "nothing to resume" in resumed.stderr


# --- the named errors of the list ---------------------------------------------------------------


def test_a_batch_larger_than_the_training_set_is_refused(invoke, tmp_path):
    result = invoke("degradation", "--batch-size", "5000", "--depths", "8", "--seeds", "0",
                    "--out", str(tmp_path))
    assert result.exit_code == 2
    assert ("batch size 5000 is larger than the 1,500 training images of digits; give a "
            "batch size of at most 1500") in result.stderr


@pytest.mark.parametrize("epochs", ["nan", "1e308", "inf", "1e300"])
def test_epochs_must_be_a_finite_countable_budget(invoke, tmp_path, epochs):
    result = invoke("degradation", "--epochs", epochs, "--depths", "8", "--seeds", "0",
                    "--out", str(tmp_path))
    assert result.exit_code == 2 and "internal error" not in result.stderr
    assert "epochs must be a finite number above 0 and at most" in result.stderr
    assert f"epochs={float(epochs)!r}" in result.stderr


def test_cache_clear_without_an_answer_says_to_pass_yes(invoke_with_input):
    result = invoke_with_input("", "cache", "clear")
    assert result.exit_code == 2 and "internal error" not in result.stderr
    assert "the confirmation could not be read" in result.stderr and "--yes" in result.stderr


@pytest.fixture
def invoke_with_input(runner):
    from resnet_probe.cli import cli

    def run(text: str, *args: str):
        return runner.invoke(cli, list(args), input=text, catch_exceptions=False)
    return run


@pytest.mark.parametrize("args", [("report", "--out"), ("flops", "resnet8", "--update-baseline"),
                                  ("lesion", "--out")])
def test_a_file_name_too_long_is_named_before_any_work(invoke, tmp_path, args):
    long = tmp_path / ("a" * 300)
    result = invoke(*args, str(long))
    assert result.exit_code == 2 and "Errno" not in result.stderr
    assert "the name 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'... (300 characters) is 300 " \
           "bytes long; a file or folder name may be at most 255 bytes here" in result.stderr


def test_a_long_model_label_makes_a_short_distinct_checkpoint_name():
    from resnet_probe.train.run_folder import SAFE_NAME_BYTES, safe_name

    one = safe_name("/x/" + "a" * 400 + ".py:build")
    other = safe_name("/x/" + "a" * 399 + "b.py:build")
    assert len(one.encode()) <= SAFE_NAME_BYTES and one != other
    assert safe_name("resnet20") == "resnet20" and safe_name("plain:resnet8") == "plain_resnet8"


FLAT = ("from torch import nn\n"
        "def build(num_classes=10, in_channels=3):\n"
        "    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.BatchNorm2d(8),\n"
        "                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),\n"
        "                         nn.Linear(8, num_classes))\n")


@pytest.mark.parametrize("by", ["model", "stage", "block", "layer"])
def test_gradients_of_a_net_without_residual_blocks(invoke, tmp_path, by):
    (tmp_path / "flat.py").write_text(FLAT)
    result = invoke("gradients", f"{tmp_path}/flat.py:build", "--seeds", "0", "--by", by,
                    "--format", "json")
    assert result.exit_code == 0, result.output
    assert "no residual blocks were found, so its per-block measurements" in result.stderr
    rows = json.loads(result.stdout or "[]")
    if by == "model":
        assert rows[0]["grad_ratio_first_last"] is None
    elif by == "layer":
        assert len(rows) == 2  # the conv and the linear layer
    else:
        assert rows == []


@pytest.fixture
def resnet8_weights(tmp_path) -> Path:
    from resnet_probe.zoo import build_model

    path = tmp_path / "resnet8.pt"
    torch.save(build_model("resnet8").state_dict(), path)
    return path


def test_gradients_says_why_the_models_own_weights_do_not_fit(invoke, resnet8_weights):
    result = invoke("gradients", "resnet8", "--weights", str(resnet8_weights), "--seeds", "0")
    assert result.exit_code == 2
    assert ("the probe builds resnet8 for the data it feeds (1 input channel, 10 classes), "
            "not as the weights were trained: give --in-channels and --num-classes to match "
            "them (the model's own: --in-channels 3 --num-classes 10)") in result.stderr


def test_in_channels_makes_the_models_own_weights_fit_the_probe(invoke, resnet8_weights):
    result = invoke("gradients", "resnet8", "--weights", str(resnet8_weights), "--seeds", "0",
                    "--in-channels", "3", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["model"] == "resnet8[in_channels=3]"


def test_num_classes_and_in_channels_fit_weights_trained_for_others(invoke, tmp_path):
    from resnet_probe.zoo import build_model

    path = tmp_path / "digits7.pt"
    torch.save(build_model("resnet8", in_channels=1, num_classes=7).state_dict(), path)
    refused = invoke("flops", "resnet8", "--weights", str(path))
    assert refused.exit_code == 2 and "--num-classes and --in-channels" in refused.stderr
    fits = invoke("flops", "resnet8", "--weights", str(path), "--num-classes", "7",
                  "--in-channels", "1", "--format", "json")
    assert fits.exit_code == 0, fits.output
    # 7 classes of 64 features: 64*7 + 7 head parameters, where resnet8 has 64*10 + 10
    assert json.loads(fits.stdout)[0]["params"] == \
        sum(p.numel() for p in build_model("resnet8", in_channels=1).parameters()) - 3 * 65


def test_compares_train_steps_names_its_own_option(invoke, tmp_path):
    from resnet_probe.jobs.compare import COMPARE_TRAIN

    result = invoke("compare", "resnet8", "plain8", "--train-steps", "5", "--out",
                    str(tmp_path))
    assert result.exit_code == 2
    assert f"Invalid value for '--train-steps': 5 is not in the range " \
           f"x>={COMPARE_TRAIN.fewest_steps()}" in result.stderr
    assert "warm-up steps" not in result.stderr  # compare has no --warmup-steps


def test_fewest_steps_is_the_smallest_budget_a_recipe_accepts():
    from dataclasses import replace

    from resnet_probe.errors import InvalidRequest
    from resnet_probe.jobs.compare import COMPARE_TRAIN

    fewest = COMPARE_TRAIN.fewest_steps()
    assert fewest == 14  # warm-up 10 steps over by the milestone at 75%: ceil(10 / 0.75)
    replace(COMPARE_TRAIN, steps=fewest)
    with pytest.raises(InvalidRequest):
        replace(COMPARE_TRAIN, steps=fewest - 1)


@pytest.mark.parametrize("error, words", [
    (urllib.error.URLError(OSError(-2, "Name or service not known")),
     "this machine seems to be offline, or the server cannot be reached (Name or service not "
     "known)"),
    (urllib.error.HTTPError("http://x.invalid/a.gz", 404, "Not Found", None, None),
     "the server answered HTTP 404 Not Found"),
])
def test_a_failed_download_says_why_and_that_digits_works_offline(tmp_path, monkeypatch,
                                                                   error, words):
    from resnet_probe.data import download

    def fail(url, timeout):
        raise error

    monkeypatch.setattr(download.urllib.request, "urlopen", fail)
    with pytest.raises(download.DownloadError) as raised:
        download.fetch(download.RemoteFile("a.gz", "http://x.invalid/a.gz", "0" * 32), tmp_path)
    message = str(raised.value)
    assert "the dataset file a.gz could not be downloaded from http://x.invalid/a.gz" in message
    assert words in message and "urlopen error" not in message
    assert "use the digits dataset (--dataset digits), which ships with the package and works " \
           "offline" in message
    assert list(tmp_path.iterdir()) == []


def test_show_with_inputs_describes_them(invoke):
    result = invoke("show", "resnet8", "--input", "x=2x3x32x32")
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert first.endswith("depth 8, inputs x=2x3x32x32:float32") and "None" not in first
