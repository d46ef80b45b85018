"""The README and the docs site say what the code does: the two commands up front, every example
run with its real output, every number generated or recorded, every cited test real."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import pydoc
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAIN_JOB = ("python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e . "
            "&& .venv/bin/resnet-probe compare resnet34 plain34")


def _load_generate():
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = _load_generate()


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", README.read_text())[:2]


def readme_examples() -> list[tuple[str, str]]:
    """Every fenced block of the README after the two commands."""
    return generate.fenced_blocks(README.read_text())[2:]


# --- the landing page ----------------------------------------------------------------------

def test_readme_is_at_most_10000_characters():
    assert len(README.read_text()) <= 10_000


def test_readme_opens_with_the_main_job_then_the_tests_within_40_lines():
    opening = "\n".join(README.read_text().splitlines()[:40])
    main_job, tests = readme_commands()
    assert main_job == MAIN_JOB  # the CPU wheel, never a CUDA download, on the embedded data
    assert f"```bash\n{main_job}\n```" in opening and f"```bash\n{tests}\n```" in opening
    assert "pytest" in tests and "torch==2.13.0" in tests


def test_ci_runs_the_readme_test_command_verbatim():
    _, tests = readme_commands()
    assert tests in (ROOT / ".ci" / "run").read_text()


def test_ci_builds_the_docs_strictly_after_the_main_tests():
    ci = (ROOT / ".ci" / "run").read_text()
    _, tests = readme_commands()
    install = ci.index(".venv/bin/pip install -q -e '.[docs]'")
    build = ci.index('.venv/bin/mkdocs build --strict --site-dir "$(mktemp -d)"')
    assert ci.index(tests) < install < build


@pytest.mark.parametrize("index", range(len(readme_examples())))
def test_every_readme_example_runs_and_shows_its_real_output(index):
    language, body = readme_examples()[index]
    if re.search(r"\b(torchvision|timm):", body):
        pytest.importorskip("torchvision")
        pytest.importorskip("timm")
    with generate.example_folder() as folder:
        assert generate.run_example(language, body, folder) == body


def test_the_example_runner_catches_a_wrong_output():
    with generate.example_folder() as folder:
        ran = generate.run_example("console", "$ resnet-probe flops resnet8 --format csv\nno",
                                   folder)
    assert ran.splitlines()[0] == "$ resnet-probe flops resnet8 --format csv"
    assert ran.splitlines()[1].startswith("model,") and "75290" in ran


def test_a_block_that_cannot_run_is_refused_by_name():
    with pytest.raises(ValueError, match="cannot run a 'yaml' block"):
        generate.run_example("yaml", "name: costs", Path("."))


def test_the_screenshot_named_by_the_readme_is_made_by_the_script():
    assert "docs/images/report-first-screen.png" in README.read_text()
    script = (DOCS / "screenshot.py").read_text()
    assert '"/usr/bin/chromium"' in script and '"width": 1280, "height": 800' in script
    assert "report-first-screen.png" in script


# --- generated numbers ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def expected():
    return generate.expected_snippets()


def test_generated_snippets_match_the_code(expected):
    stale = generate.differences(expected)
    assert not stale, f"run `python docs/generate.py` and commit the result: {stale}"


def test_every_included_snippet_is_generated(expected):
    names = {path.relative_to(generate.SNIPPETS).as_posix() for path in expected}
    for page in DOCS.glob("*.md"):
        for included in re.findall(r'^--8<-- "([^"]+)"', page.read_text(), re.M):
            assert included in names or (ROOT / included).exists(), (page.name, included)


def test_no_result_snippet_claims_a_number_without_its_results_file(expected):
    results = {p.stem: t for p, t in expected.items() if p.parent.name == "results"}
    for name, text in results.items():
        source = ("compare.json" if name.startswith(("compare", "tutorial", "latency-cpu"))
                  else f"benchmarks/{name.removeprefix('benchmark-')}.json"
                  if name.startswith("benchmark-") else f"{name}.json")
        if name != "gpu-status" and not (generate.RESULTS / source).exists():
            assert "Not yet measured" in text and not re.search(r"\d\.\d", text), name


def test_a_recorded_compare_run_renders_its_verdict_seeds_and_machine(tmp_path, monkeypatch):
    from resnet_probe.report.words import verdict_record
    from resnet_probe.train.verdict import judge

    finals = [{"model": f"{kind}{depth}", "depth": depth, "shortcut": kind == "resnet",
               "seed": seed, "final_train_error": error, "final_test_error": error + 0.05,
               "train_error_auc": error, "chance_error": 0.9, "status": "finished"}
              for seed in (8, 9, 10)
              for kind, depth, error in (("plain", 18, 0.01), ("plain", 34, 0.8 + seed / 100),
                                         ("resnet", 18, 0.01), ("resnet", 34, 0.012))]
    data = tmp_path / "compare-resnet34-vs-plain34-data"
    data.mkdir()
    (data / "verdict.json").write_text(json.dumps(verdict_record(judge(finals, 0.9, (0, 1)))))
    (data / "train_final.json").write_text(json.dumps(finals))
    (data / "environment.json").write_text(json.dumps(
        [{"key": "command_line", "value": "resnet-probe compare resnet34 plain34"}]))
    monkeypatch.setattr(generate, "RESULTS", tmp_path / "results")
    path = generate.record_run("compare", data)
    record = json.loads(path.read_text())
    assert record["machine"]["cores"] >= 1 and record["machine"]["torch"] == torch.__version__
    assert [s["seed"] for s in record["verdict"]["seeds"]] == [8, 9, 10]
    snippets = generate.compare_snippets()
    assert "**degradation observed** (seeds 8 (held-out), 9 (held-out), 10 (held-out))" in (
        snippets["compare-verdict"])
    assert "plain gap" in snippets["compare-verdict"] and "Measured on" in (
        snippets["compare-verdict"])
    # plain34's training error, mean over seeds 8-10: 0.8 + 0.09
    assert "| plain34 | 34 | 0.890 | 0.940 | 3 |" in snippets["tutorial-measured"]


def test_recording_a_folder_without_a_verdict_names_what_to_give(tmp_path):
    with pytest.raises(SystemExit, match="holds no verdict.json"):
        generate.record_run("compare", tmp_path)


def test_a_recorded_benchmark_keeps_its_conclusions_and_machine(tmp_path, monkeypatch):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "tiny.py").write_text(
        "import sys\nprint('rows')\nprint('==> ratio 1.03 (goal >= 0.95: met)', sys.argv[1:])\n")
    monkeypatch.setattr(generate, "ROOT", tmp_path)
    monkeypatch.setattr(generate, "RESULTS", tmp_path / "results")
    record = json.loads(generate.record_benchmark("tiny", ["--rounds", "2"]).read_text())
    assert record["command"] == "python benchmarks/tiny.py --rounds 2"
    assert record["conclusions"] == ["==> ratio 1.03 (goal >= 0.95: met) ['--rounds', '2']"]
    assert "rows" in record["output"] and record["machine"]["cpu"]
    assert "==> ratio 1.03" in generate.benchmark_snippet("tiny")


def test_a_gpu_result_is_claimed_only_from_a_gpu_results_file(tmp_path, monkeypatch):
    monkeypatch.setattr(generate, "RESULTS", tmp_path)
    assert "No GPU result is claimed" in generate.gpu_status_snippet()
    (tmp_path / "benchmarks").mkdir()
    record = {"benchmark": "gpu_latency", "command": "python benchmarks/gpu_latency.py",
              "recorded": "2030-01-01T00:00:00+00:00", "output": "==> 0 outside 10%",
              "conclusions": ["==> 0 configuration(s) outside 10%"],
              "machine": {"cpu": "x", "cores": 16, "gpu": None, "torch": "2.13.0"}}
    (tmp_path / "benchmarks" / "gpu_latency.json").write_text(json.dumps(record))
    assert "No GPU result is claimed" in generate.gpu_status_snippet()  # a CPU-only record
    record["machine"]["gpu"] = "NVIDIA H100"
    (tmp_path / "benchmarks" / "gpu_latency.json").write_text(json.dumps(record))
    status = generate.gpu_status_snippet()
    assert "GPU NVIDIA H100" in status and "==> 0 configuration(s) outside 10%" in status


def test_peers_render_whatever_rows_they_hold(tmp_path, monkeypatch):
    monkeypatch.setattr(generate, "RESULTS", tmp_path)
    assert "docs/results/peers.json" in generate.peers_snippet()
    (tmp_path / "peers.json").write_text(json.dumps(
        {"about": "counts against peers", "rows": [{"model": "resnet50", "peer": "ptflops",
                                                    "ours": 4089184256, "theirs": 4111514624}]}))
    snippet = generate.peers_snippet()
    assert "| resnet50 | ptflops | 4,089,184,256 | 4,111,514,624 |" in snippet
    assert "counts against peers" in snippet


# --- references that must stay true --------------------------------------------------------

def _defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def test_every_test_the_docs_cite_exists():
    cited = set()
    for page in [README, *DOCS.glob("*.md"), *DOCS.glob("snippets/*/*.md")]:
        cited |= set(re.findall(r"(tests/test_\w+\.py)::(test_\w+)", page.read_text()))
    assert len(cited) > 40  # the reliability page alone cites more
    missing = [f"{file}::{name}" for file, name in sorted(cited)
               if not (ROOT / file).exists() or name not in _defined_tests(ROOT / file)]
    assert not missing


def test_every_export_is_on_the_api_page():
    import resnet_probe

    page = (DOCS / "api.md").read_text()
    missing = [name for name in resnet_probe.__all__
               if name != "__version__" and f"::: resnet_probe.{name}\n" not in page]
    assert not missing, f"add `::: resnet_probe.NAME` to docs/api.md for {missing}"


def test_help_shows_the_public_api():
    import resnet_probe

    text = pydoc.render_doc(resnet_probe, renderer=pydoc.plaintext)
    for name in ("build_model", "list_models", "compare", "flops", "latency", "gradients"):
        assert name in resnet_probe.__all__
        assert f"{name}(" in text


def test_every_page_is_in_the_site_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in DOCS.glob("*.md"):
        assert f": {page.name}" in nav, page.name


# --- the tutorial claims the docs answer with a test -------------------------------------

def test_a_conv_bias_before_bn_folds_into_the_bn_shift():
    """(f): a conv bias b before BN is absorbed: in train mode the batch mean removes it, and
    in eval mode BN with running mean mu - b gives the same output without it."""
    torch.manual_seed(0)
    with_bias = nn.Conv2d(3, 8, 3, padding=1, bias=True)
    without = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    without.weight.data.copy_(with_bias.weight.data)
    bn_a, bn_b = nn.BatchNorm2d(8), nn.BatchNorm2d(8)
    x = torch.randn(4, 3, 10, 10)
    torch.testing.assert_close(bn_a(with_bias(x)), bn_b(without(x)))  # train mode
    for bn in (bn_a, bn_b):
        bn.eval()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-1.0, 1.0)
    bn_b.running_var.copy_(bn_a.running_var)
    bn_b.weight.data.copy_(bn_a.weight.data)
    bn_b.bias.data.copy_(bn_a.bias.data)
    bn_b.running_mean.copy_(bn_a.running_mean - with_bias.bias.data)
    torch.testing.assert_close(bn_a(with_bias(x)), bn_b(without(x)))


def test_eval_outputs_are_deterministic_and_batch_independent():
    """(g): in eval mode BN uses its running statistics, so an image's output does not depend
    on its batch-mates, and the same input gives the same output on every call."""
    from resnet_probe import build_model

    torch.manual_seed(0)
    model = build_model("resnet8").eval()
    batch = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        together = model(batch)
        alone = torch.cat([model(image[None]) for image in batch])
        again = model(batch)
    torch.testing.assert_close(alone, together)
    assert torch.equal(together, again)


# --- the screenshot script -----------------------------------------------------------------

def test_the_screenshot_script_names_a_missing_report(tmp_path):
    done = subprocess.run([sys.executable, str(DOCS / "screenshot.py"), str(tmp_path / "x.html")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "no report at" in done.stderr


@pytest.mark.browser
def test_the_screenshot_is_the_first_screen_at_1280_by_800(tmp_path):
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI must install Chromium at {chromium}")
        pytest.skip(f"no Chromium at {chromium}")
    report = tmp_path / "report.html"
    report.write_text("<html><body style='height:3000px'><h1>verdict</h1></body></html>")
    spec = importlib.util.spec_from_file_location("docs_screenshot", DOCS / "screenshot.py")
    screenshot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(screenshot)
    png = screenshot.screenshot(report, tmp_path / "shot.png").read_bytes()
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and (width, height) == (1280, 800)
