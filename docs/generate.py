"""The documentation's numbers, made by the code rather than typed in.

Two kinds of snippet live in ``docs/snippets/`` and are included by the pages
(``--8<-- "facts/NAME.md"``):

* ``facts/``: deterministic facts, made by running the code now: the output of
  ``resnet-probe flops resnet50``, ResNet-50 in every convention, the residual family, the
  recipes, the tutorial claims that need no training. ``tests/test_docs.py`` regenerates them
  and fails when the committed ones differ, so they cannot drift from the code.
* ``results/``: measured numbers, rendered from the results files in ``docs/results/``, each
  written by ``record`` after a run, with its machine, command and seeds. Where no results file
  exists yet, the snippet says "not yet measured" and claims nothing.

The README's examples are refreshed from the same runner: every ``console`` block's commands
and every ``pycon`` block's statements are run again and their shown output replaced.

    python docs/generate.py                  # write every snippet, refresh the README's outputs
    python docs/generate.py --check          # exit 1 when a committed snippet differs
    python docs/generate.py record compare reports/compare-resnet34-vs-plain34-data
    python docs/generate.py record degradation reports/degradation/data
    python docs/generate.py record benchmark compare_walltime [-- ARGS...]
"""

from __future__ import annotations

import argparse
import code
import contextlib
import datetime as dt
import io
import json
import math
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SNIPPETS = DOCS / "snippets"
RESULTS = DOCS / "results"
EXAMPLES = DOCS / "examples"  # files the README's and docs' examples work on (mynet.py)
README = ROOT / "README.md"

# The benchmarks the performance page shows, in its order; each is recorded by
# `record benchmark NAME` into docs/results/benchmarks/NAME.json.
BENCHMARKS = ("compare_walltime", "flops_census", "foreign_counting", "latency_overhead",
              "latency_engines", "train_throughput", "gpu_latency")
GPU_BENCHMARKS = ("gpu_latency",)
# Lines of a benchmark's output that state its conclusion (the scripts print them this way).
CONCLUSION = re.compile(r"^(==>|goal)")
# tqdm's progress bar ends in its timer, "[00:01<00:02, 3.10it/s]": transient on a terminal,
# different on every run, so examples drop it (and the next output may follow on its line).
PROGRESS = re.compile(r"^.*?\[\d+:\d\d(<[^,\]]*)?, [^\]]*(it/s|s/it)\]")
PROMPT = "$ "
COMMAND_TIMEOUT_S = 60


# --- running examples --------------------------------------------------------------------

@contextlib.contextmanager
def example_folder() -> Iterator[Path]:
    """A scratch folder holding a copy of docs/examples/: examples may change files there."""
    with tempfile.TemporaryDirectory(prefix="resnet-probe-docs-") as name:
        folder = Path(name)
        for path in EXAMPLES.iterdir():
            if path.is_file():
                shutil.copy(path, folder / path.name)
        yield folder


def _visible(output: str) -> str:
    """What a terminal shows once the command ends: each line's last carriage-return segment,
    progress bars dropped."""
    lines = []
    for line in output.splitlines():
        lines.append(PROGRESS.sub("", line.rsplit("\r", 1)[-1]).rstrip())
    return "\n".join(lines).strip("\n")


def run_command(command: str, folder: Path) -> str:
    """One shell command's visible output. ``resnet-probe`` runs in-process (a fresh Python
    per command would cost seconds of imports each); anything else runs under bash."""
    words = shlex.split(command, comments=True)
    if words and words[0] == "resnet-probe":
        from click.testing import CliRunner

        from resnet_probe.cli import cli

        with contextlib.chdir(folder):
            result = CliRunner().invoke(cli, words[1:], prog_name="resnet-probe")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise RuntimeError(f"{command!r} raised {result.exception!r}") from result.exception
        return _visible(result.output)
    done = subprocess.run(["bash", "-c", command], cwd=folder, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT_S)
    return _visible(done.stdout + done.stderr)


def console_commands(block: str) -> list[tuple[str, list[str]]]:
    """A console block as (command, shown output lines) pairs; a command may continue over
    lines ending in a backslash."""
    pairs: list[tuple[str, list[str]]] = []
    lines = block.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.startswith(PROMPT):
            raise ValueError(f"a console block must open with '{PROMPT}': {line!r}")
        command = line[len(PROMPT):]
        while command.endswith("\\") and index + 1 < len(lines):
            index += 1
            command = command[:-1] + " " + lines[index].strip()
        index += 1
        shown = []
        while index < len(lines) and not lines[index].startswith(PROMPT):
            shown.append(lines[index])
            index += 1
        pairs.append((command, shown))
    return pairs


def run_console(block: str, folder: Path) -> str:
    """The block with every command's real output. A shown output ending in a line "..." is
    an excerpt: the real output is cut to as many lines, and the "..." kept."""
    lines = []
    for command, shown in console_commands(block):
        lines.extend(_prompt_lines(block, command))
        real = run_command(command, folder).splitlines()
        if shown and shown[-1] == "...":
            real = [*real[:len(shown) - 1], "..."]
        lines.extend(real)
    return "\n".join(lines)


def _prompt_lines(block: str, command: str) -> list[str]:
    """The command's lines exactly as the block writes them (continuations kept)."""
    lines = block.splitlines()
    for index, line in enumerate(lines):
        if not line.startswith(PROMPT):
            continue
        joined, end = line[len(PROMPT):], index
        while joined.endswith("\\") and end + 1 < len(lines):
            end += 1
            joined = joined[:-1] + " " + lines[end].strip()
        if joined == command:
            return lines[index:end + 1]
    raise ValueError(f"command not in block: {command!r}")


def run_pycon(block: str) -> str:
    """A ``>>>`` session run again statement by statement, as the interactive interpreter
    runs it: the block with each statement's real output."""
    statements: list[list[str]] = []
    for line in block.splitlines():
        if line.startswith(">>> "):
            statements.append([line[4:]])
        elif line.startswith("... ") or line == "...":
            statements[-1].append(line[4:])
    namespace: dict[str, Any] = {"__name__": "__example__"}
    out = []
    for statement in statements:
        source = "\n".join(statement)
        compiled = code.compile_command(source + ("\n" if len(statement) > 1 else ""),
                                        "<example>", "single")
        if compiled is None:
            raise ValueError(f"incomplete statement in example: {source!r}")
        captured = io.StringIO()
        with contextlib.redirect_stdout(captured):
            exec(compiled, namespace)  # noqa: S102 - the documentation's own examples
        out.append(">>> " + statement[0])
        out.extend("... " + line if line else "..." for line in statement[1:])
        out.extend(line.rstrip() for line in captured.getvalue().rstrip("\n").splitlines())
    return "\n".join(out)


FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)


def fenced_blocks(markdown: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order."""
    return [(m.group(1), m.group(2).rstrip("\n")) for m in FENCE.finditer(markdown)]


def run_example(language: str, body: str, folder: Path) -> str:
    """An example with its real output, or a ValueError for a block that cannot be run."""
    if language == "console":
        return run_console(body, folder)
    if language == "pycon":
        return run_pycon(body)
    if language == "python":
        with contextlib.chdir(folder), contextlib.redirect_stdout(io.StringIO()):
            exec(compile(body, "<example>", "exec"), {"__name__": "__example__"})  # noqa: S102
        return body
    raise ValueError(f"cannot run a {language or 'plain'!r} block; write examples as console, "
                     f"pycon or python")


def refresh_examples(markdown: str, skip: int = 0) -> str:
    """The markdown with every fenced example after the first ``skip`` blocks run again and
    its output replaced."""
    pieces, last = [], 0
    with example_folder() as folder:
        for index, match in enumerate(FENCE.finditer(markdown)):
            if index < skip:
                continue
            body = match.group(2).rstrip("\n")
            pieces += [markdown[last:match.start(2)],
                       run_example(match.group(1), body, folder) + "\n"]
            last = match.end(2)
    return "".join(pieces) + markdown[last:]


# --- deterministic facts -------------------------------------------------------------------

def console_fact(*commands: str) -> str:
    """A console block of ``commands`` with their real output."""
    with example_folder() as folder:
        block = "\n".join(PROMPT + c for c in commands)
        return f"```console\n{run_console(block, folder)}\n```\n"


def _table(header: list[str], rows: list[list[Any]], align: str | None = None) -> str:
    align = align or "l" * len(header)
    marks = {"l": "---", "r": "---:"}
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# A baseline, a passing check, a change to the model, and the check that fails on it; run on
# docs/examples/mynet.py (a copy: the sed edits the copy).
COST_GATE = (
    "resnet-probe flops --update-baseline costs.json mynet.py:build --input-size 32 "
    "--metrics params,macs",
    "resnet-probe flops --check costs.json --trust-sources",
    "sed -i 's/width: int = 32/width: int = 48/' mynet.py",
    "resnet-probe flops --check costs.json --trust-sources --rtol macs=0.5% --format markdown",
)


def conventions_fact() -> str:
    from resnet_probe import FlopAnalysis
    from resnet_probe.results import CONVENTIONS

    counts = FlopAnalysis("resnet50").summary()
    rows = [[f"`{m.column}`", m.label, f"**{counts[m.column] / m.scale:.3f} G** {m.unit}",
             m.reported_by] for m in CONVENTIONS]
    return ("ResNet-50 at 224x224, batch 1, counted by `resnet-probe flops resnet50`:\n\n"
            + _table(["column", "what is counted", "ResNet-50", "who reports it"], rows,
                     "llrl"))


def published_fact() -> str:
    """Our counts beside the published ones (tests/data/published_numbers.json)."""
    from resnet_probe.measure.costs import count_costs

    published = json.loads((ROOT / "tests" / "data" / "published_numbers.json").read_text())
    imagenet, cifar = published["imagenet_224"], published["cifar10_32"]
    rows = []
    for name, gmacs in imagenet["gmacs_v1_5_stride_on_3x3"].items():
        ours = count_costs(name).summary
        rows.append([name, f"{ours['params']:,}", f"{imagenet['params'][name]:,}",
                     f"{ours['macs'] / 1e9:.3f}", f"{gmacs:.3f}",
                     f"{ours['macs_v1'] / 1e9:.3f}",
                     f"{imagenet['paper_table1_gflops_as_printed'][name]}",
                     f"{ours['macs_fvcore_default']:,}",
                     f"{imagenet['fvcore_total_v1_5_incl_batchnorm_eval'][name]:,}"])
    imagenet_table = _table(
        ["model", "params", "torchvision", "MACs (G)", "torchvision (G)", "v1 MACs (G)",
         "paper Table 1", "`macs_fvcore_default`", "fvcore total"], rows, "lrrrrrrrr")
    rows = []
    for name, params in cifar["params_option_A"].items():
        ours = count_costs(name).summary
        mmacs = cifar["mmacs_option_A"].get(name)
        rows.append([name, f"{ours['params']:,}", f"{params:,}", f"{ours['macs'] / 1e6:.2f}",
                     "" if mmacs is None else f"{mmacs:.2f}"])
    cifar_table = _table(["model", "params", "published", "MACs (M)", "published (M)"], rows,
                         "lrrrr")
    return (f"ImageNet-style nets at 224x224:\n\n{imagenet_table}\n"
            f"CIFAR-style nets at 32x32, option A shortcuts:\n\n{cifar_table}")


def family_fact() -> str:
    import resnet_probe as rp
    from resnet_probe.zoo import get_spec, plain_twin_name

    names = [n for n in rp.list_models() if get_spec(n).shortcut and "plain" not in n]
    counted = rp.flops(names).set_index("model")
    rows = []
    for name in names:
        spec, row = get_spec(name), counted.loc[name]
        rows.append([f"`{name}`", f"`{plain_twin_name(name)}`", spec.design.value, spec.block.value,
                     spec.depth, f"{int(row['params']):,}", f"{row['macs'] / 1e9:.3f}"])
    return _table(["name", "plain twin", "design", "block", "depth", "params", "MACs (G)"],
                  rows, "llllrrr")


def recipes_fact() -> str:
    from resnet_probe.train import degradation
    from resnet_probe.train.recipes import (
        COMPARE_SEEDS,
        COMPARE_TRAIN,
        COMPARE_TUNING_SEEDS,
        DEGRADATION_SEEDS,
        DEGRADATION_TUNING_SEEDS,
        degradation_recipe,
    )

    recipe = degradation_recipe()
    rows = []
    fields: tuple[tuple[str, Callable[[Any], str]], ...] = (
        ("steps", lambda r: f"{r.steps}"), ("batch", lambda r: f"{r.batch_size}"),
        ("optimiser", lambda r: f"SGD, momentum {r.momentum:g}, weight decay "
                                f"{r.weight_decay:g}"),
        ("learning rate", lambda r: f"{r.lr:g}"),
        ("warm-up", lambda r: f"{r.warmup_steps} steps at lr {r.warmup_lr:g}"),
        ("lr divided by 10 at", lambda r: ", ".join(f"{m:.0%}" for m in r.milestones)
         + " of the budget"),
        ("augmentation", lambda r: "pad 4, random crop, flip" if r.augment else "none"))
    for label, show in fields:
        rows.append([label, show(COMPARE_TRAIN), show(recipe)])
    seeds = lambda s: ", ".join(map(str, s))  # noqa: E731
    rows += [["held-out seeds (the verdict)", seeds(COMPARE_SEEDS),
              seeds(DEGRADATION_SEEDS)],
             ["tuning seeds (recipe chosen on)", seeds(COMPARE_TUNING_SEEDS),
              seeds(DEGRADATION_TUNING_SEEDS)],
             ["nets", "the compared nets and their shallower siblings",
              "plain and residual at depths "
              + " and ".join(map(str, degradation.DEFAULT_DEPTHS["cifar"]))]]
    return _table(["", "`compare`", "`degradation`"], rows)


def verdict_rule_fact() -> str:
    from resnet_probe.report.words import VERDICT_RULE
    from resnet_probe.train import verdict

    rule = VERDICT_RULE.replace("``", "`")
    return (f"The rule, {rule}\n\nIn the code: `MIN_SEEDS = {verdict.MIN_SEEDS}`, "
            f"`MIN_GAP = {verdict.MIN_GAP}`, `TRAINED_FRACTION = {verdict.TRAINED_FRACTION}` "
            f"(for ten classes a run trained when its final training error is below "
            f"{verdict.TRAINED_FRACTION * 0.9:.3f}).\n")


def findings_rule_fact() -> str:
    from resnet_probe.analysis import FINDINGS_RULE

    return f"> {FINDINGS_RULE}\n"


def tutorial_facts() -> str:
    """The tutorial claims (c)-(f) that need no training, each answered by a count."""
    from torch import nn

    from resnet_probe import FlopAnalysis, GradientAnalysis, build_model
    from resnet_probe.measure.block_cost import block_cost_rows, block_cost_totals

    zero_init = GradientAnalysis(["resnet20[zero_init_residual=true]"], batch_size=8,
                                 seeds=(0,)).by_model().iloc[0]["grad_ratio_first_last"]
    resnet34, plain34 = FlopAnalysis("resnet34"), FlopAnalysis("plain34")
    resnet56, plain56 = FlopAnalysis("resnet56"), FlopAnalysis("plain56")
    operators = resnet34.by_operator()
    adds = operators[(operators["direction"] == "forward")
                     & (operators["operator"] == "aten.add")]["macs"].sum()
    totals = {t["template"]: t for t in block_cost_totals(block_cost_rows())}
    basic, bottleneck = totals["basic at d"], totals["bottleneck at 4d"]
    wide = totals["basic at 4d"]
    model = build_model("resnet50")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    biases = sum(c.out_channels for c in convs if c.bias is None)
    modules = list(model.modules())
    feed_bn = sum(isinstance(after, nn.BatchNorm2d) and after.num_features == before.out_channels
                  for before, after in zip(modules, modules[1:], strict=False)
                  if isinstance(before, nn.Conv2d) and before.bias is None)
    resnet50_params = sum(p.numel() for p in model.parameters())
    params = resnet34.total("params") - plain34.total("params")
    projections = [m for name, m in build_model("resnet34").named_modules()
                   if name.endswith("downsample")]
    projection_params = sum(p.numel() for m in projections for p in m.parameters())
    return "\n".join([
        f"- **(c) dy/dx = dF/dx + I.** With every branch's last BN initialised to zero, each "
        f"block passes its input on through its shortcut alone at init, and the gradient "
        f"ratio between the first and the last block's join reads **{zero_init:.3f}** "
        f"(`resnet-probe gradients "
        f"'resnet20[zero_init_residual=true]' --seeds 0 --batch-size 8`).",
        f"- **(d) An identity shortcut adds no parameters and negligible FLOPs.** `resnet56` "
        f"and `plain56` (option A, zero-padded identity shortcuts) have "
        f"**{resnet56.total('params'):,}** and **{plain56.total('params'):,}** parameters: a "
        f"difference of {resnet56.total('params') - plain56.total('params')}. resnet34 has "
        f"{params:,} more parameters than plain34, and its {len(projections)} projections "
        f"(option B: a 1x1 conv and a BN where the shape changes) hold "
        f"{projection_params:,}. Its identity adds are {adds:,} additions at 224x224, "
        f"**{adds / resnet34.total('macs'):.3%}** of its {resnet34.total('macs') / 1e9:.3f} G "
        f"conv and linear MACs.",
        f"- **(e) Bottlenecks are cheaper.** At 56x56, a bottleneck block at 256 channels "
        f"(1x1 to 64, 3x3, 1x1 back to 256) has {bottleneck['weights']:,} weights and "
        f"{bottleneck['macs'] / 1e6:.1f} M MACs; a basic block at 64 channels "
        f"{basic['weights']:,} and {basic['macs'] / 1e6:.1f} M "
        f"({basic['macs_vs_bottleneck']:.3f}x); a basic block at 256 channels "
        f"{wide['weights']:,} and {wide['macs'] / 1e6:,.1f} M "
        f"({wide['macs_vs_bottleneck']:.2f}x). Four times the channels for about the same "
        f"cost (`resnet-probe bottleneck`).",
        f"- **(f) `bias=False` before BN loses nothing.** resnet50 has {len(convs)} convs; "
        f"{feed_bn} of them have no bias and feed a BN, whose shift absorbs one. Their "
        f"biases would add "
        f"{biases:,} parameters ({biases / resnet50_params:.2%} of its "
        f"{resnet50_params:,}). "
        f"`tests/test_docs.py::test_a_conv_bias_before_bn_folds_into_the_bn_shift` checks "
        f"that folding a bias into the BN gives the same function.",
        "- **(g) BN uses running statistics at eval.** "
        "`tests/test_docs.py::test_eval_outputs_are_deterministic_and_batch_independent` "
        "checks that an image's eval-mode output is the same alone and among others, and "
        "the same on every call.",
    ]) + "\n"


FACTS: dict[str, Callable[[], str]] = {
    "flops-resnet50": lambda: console_fact("resnet-probe flops resnet50"),
    "flops-variants": lambda: console_fact(
        "resnet-probe flops resnet50 'resnet50[stride_placement=1x1]' resnet34 plain34"),
    "flops-by-stage": lambda: console_fact("resnet-probe flops resnet34 --by stage"),
    "bottleneck": lambda: console_fact("resnet-probe bottleneck"),
    "show": lambda: console_fact("resnet-probe show resnet20 --depth 1"),
    "errors": lambda: console_fact("resnet-probe show resnet35",
                                   "resnet-probe show resnet34 --input-size 8"),
    "cost-gate": lambda: console_fact(*COST_GATE),
    "conventions": conventions_fact,
    "published": published_fact,
    "family": family_fact,
    "recipes": recipes_fact,
    "verdict-rule": verdict_rule_fact,
    "findings-rule": findings_rule_fact,
    "tutorial-claims": tutorial_facts,
}


# --- measured results ----------------------------------------------------------------------

def not_yet_measured(what: str, record: str) -> str:
    return (f'!!! warning "Not yet measured"\n    {what}: no results file holds it yet, so '
            f"this page claims no number here. After a run, `{record}` writes it.\n")


def load_result(relative: str) -> dict[str, Any] | None:
    path = RESULTS / relative
    return json.loads(path.read_text()) if path.exists() else None


def machine_line(record: dict[str, Any]) -> str:
    m = record.get("machine", {})
    parts = [m.get("cpu") or "unknown CPU", f"{m.get('cores', '?')} cores"]
    if m.get("memory_gb"):
        parts.append(f"{m['memory_gb']:.0f} GB memory")
    if m.get("gpu"):
        parts.append(f"GPU {m['gpu']}")
    parts.append(f"torch {m.get('torch', '?')}")
    commit = m.get("commit")
    return (f"*Measured on {', '.join(parts)}, {record.get('recorded', '?')[:10]}"
            + (f", resnet-probe at `{commit[:10]}`" if commit else "") + ".*")


def _number(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def generic_table(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return _table(columns, [[_number(row.get(c)).replace("|", "\\|") for c in columns]
                            for row in rows])


def compare_snippets() -> dict[str, str]:
    record = load_result("compare.json")
    how = "python docs/generate.py record compare reports/compare-resnet34-vs-plain34-data"
    if record is None:
        return {
            "compare-verdict": not_yet_measured("The main job's verdict on its held-out seeds",
                                                how),
            "compare-summary": not_yet_measured("The main job's summary table", how),
            "compare-why": not_yet_measured("The main job's findings on its trained nets", how),
            "tutorial-measured": not_yet_measured(
                "Claims (a) and (b), answered from the main job's run", how),
            "latency-cpu": not_yet_measured("The main job's latency on a CPU", how),
        }
    verdict = record.get("verdict", {})
    seeds = ", ".join(f"{s['seed']} ({s['role']})" for s in verdict.get("seeds", []))
    lines = [f"**{verdict.get('verdict', 'no verdict')}** (seeds {seeds or 'none'}).", ""]
    lines += [f"- {reason}" for reason in verdict.get("reasons", [])]
    estimates = [[key.replace("_", " "), value["in_words"]] for key, value in verdict.items()
                 if isinstance(value, dict) and "in_words" in value]
    if estimates:
        lines += ["", _table(["comparison", "final training error, paired by seed"],
                             estimates)]
    if verdict.get("residual_pair"):
        lines += [f"The residual pair: {verdict['residual_pair']}.", ""]
    lines += ["", f"`{record.get('command', 'resnet-probe compare')}`", "",
              machine_line(record)]
    summary = record.get("summary", [])
    why = record.get("why_findings", [])
    latency = [{k: row.get(k) for k in ("model", "baseline", "metric", "change")}
               for row in record.get("latency_differences", [])]
    return {
        "compare-verdict": "\n".join(lines) + "\n",
        "compare-summary": (summary_table(summary) + "\n" + machine_line(record) + "\n"
                            if summary else "The run recorded no summary table.\n"),
        "compare-why": (generic_table([{k: r.get(k) for k in ("claim", "depth", "seeds",
                                                              "outcome", "evidence")}
                                       for r in why]) + "\n" + machine_line(record) + "\n"
                        if why else "The run recorded no findings.\n"),
        "tutorial-measured": tutorial_measured(record),
        "latency-cpu": (generic_table(latency) + "\n" + machine_line(record) + "\n"
                        if latency else "The run recorded no latency differences.\n"),
    }


# The summary's columns as the docs show them: each measured value with its 95% interval.
SUMMARY_COLUMNS = (("params", "params"), ("macs", "MACs (a)"),
                   ("forward_ms", "forward ms (median)"),
                   ("grad_ratio_first_last", "gradient ratio first/last"),
                   ("final_train_error", "final training error"),
                   ("final_test_error", "final test error"))


def _with_interval(row: dict[str, Any], column: str) -> str:
    low, high = row.get(f"{column}_ci95_low"), row.get(f"{column}_ci95_high")
    value = _number(row.get(column))
    return value if low is None or high is None else (
        f"{value} ({_number(low)} to {_number(high)})")


def summary_table(rows: list[dict[str, Any]]) -> str:
    present = [(column, label) for column, label in SUMMARY_COLUMNS
               if any(column in row for row in rows)]
    return _table(["model", *(label for _, label in present)],
                  [[row.get("model", ""), *(_with_interval(row, c) for c, _ in present)]
                   for row in rows], "l" + "r" * len(present))


def tutorial_measured(record: dict[str, Any]) -> str:
    """Claims (a) and (b), from the main job's training and gradients at init."""
    finals = record.get("train_final", [])
    summary = {row["model"]: row for row in record.get("summary", [])}
    lines = []
    if finals:
        by_model: dict[str, list[dict[str, Any]]] = {}
        for row in finals:
            by_model.setdefault(row["model"], []).append(row)
        rows = [[model, runs[0].get("depth", ""), f"{_mean(runs, 'final_train_error'):.3f}",
                 f"{_mean(runs, 'final_test_error'):.3f}", len(runs)]
                for model, runs in by_model.items()]
        lines += ["**(a)** Final training and test errors, mean over the seeds:", "",
                  _table(["model", "depth", "training error", "test error", "seeds"], rows,
                         "lrrrr")]
    ratios = [[model, _number(row.get("grad_ratio_first_last")),
               f"{_number(row.get('grad_ratio_first_last_ci95_low'))} to "
               f"{_number(row.get('grad_ratio_first_last_ci95_high'))}",
               row.get("grad_ratio_first_last_seeds", "")]
              for model, row in summary.items() if "grad_ratio_first_last" in row]
    if ratios:
        lines += ["**(b)** The gradient norm at initialisation at the first block's join over "
                  "the same at the last block's, with its 95% interval:", "",
                  _table(["model", "first / last", "95% interval", "seeds"], ratios, "lrrr")]
    return "\n".join(lines) + "\n" + machine_line(record) + "\n"


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    return sum(row[key] for row in rows) / len(rows)


def degradation_snippets() -> dict[str, str]:
    record = load_result("degradation.json")
    if record is None:
        return {"degradation": not_yet_measured(
            "The default degradation run (digits, depths 20 and 56, its held-out seeds)",
            "python docs/generate.py record degradation reports/degradation/data")}
    verdict = record.get("verdict", {})
    seeds = ", ".join(f"{s['seed']} ({s['role']})" for s in verdict.get("seeds", []))
    finals = record.get("train_final", [])
    table = generic_table([{k: r.get(k) for k in ("model", "depth", "seed",
                                                  "final_train_error", "final_test_error",
                                                  "status")} for r in finals])
    estimates = [[key.replace("_", " "), value["in_words"]] for key, value in verdict.items()
                 if isinstance(value, dict) and "in_words" in value]
    return {"degradation": "\n".join([
        f"Verdict: **{verdict.get('verdict', 'none')}** (seeds {seeds}).", "",
        *[f"- {reason}" for reason in verdict.get("reasons", [])], "", table,
        _table(["comparison", "final training error, paired by seed"], estimates)
        if estimates else "", f"`{record.get('command', '')}`", "", machine_line(record)])
        + "\n"}


def benchmark_snippet(name: str) -> str:
    record = load_result(f"benchmarks/{name}.json")
    if record is None:
        return not_yet_measured(f"`benchmarks/{name}.py`",
                                f"python docs/generate.py record benchmark {name}")
    conclusions = record.get("conclusions") or ["(the script printed no conclusion line)"]
    output = record.get("output", "").rstrip("\n")
    indented = "\n".join("        " + line if line else "" for line in output.splitlines())
    return (f"`{record.get('command', name)}`\n\n{machine_line(record)}\n\n"
            f"```text\n" + "\n".join(conclusions) + "\n```\n\n"
            f'??? note "Full output"\n\n    ```text\n{indented}\n    ```\n')


def gpu_status_snippet() -> str:
    measured = [name for name in GPU_BENCHMARKS
                if (load_result(f"benchmarks/{name}.json") or {}).get("machine", {}).get("gpu")]
    if not measured:
        return ("**No GPU result is claimed.** No results file in `docs/results/` holds a run "
                "on a GPU, so no number on this site describes one. The GPU path is tested "
                "for what a CPU can test (a recorded CUDA trace is parsed and attributed); "
                "`bash benchmarks/gpu_check.sh OUT` runs the checks on a GPU, and `python "
                "docs/generate.py record benchmark gpu_latency` records the per-layer "
                "timing check.\n")
    return "\n".join(benchmark_snippet(name) for name in measured)


def peers_snippet() -> str:
    """docs/results/peers.json, whatever its rows hold, as a table."""
    record = load_result("peers.json")
    if record is None:
        return ('!!! warning "Not yet measured"\n    The differences from peer counters '
                "(fvcore, ptflops, calflops, torch's FlopCounterMode) will be rendered here "
                "from `docs/results/peers.json` once it is written. Until then this page "
                "claims no difference.\n")
    rows = record if isinstance(record, list) else record.get("rows") or record.get(
        "differences") or []
    notes = [] if isinstance(record, list) else [
        f"- **{key}**: {value}" for key, value in record.items()
        if key not in ("rows", "differences", "machine") and isinstance(value, (str, int, float))]
    body = generic_table(rows) if rows and isinstance(rows[0], dict) else (
        "```json\n" + json.dumps(record, indent=2) + "\n```\n")
    return "\n".join([*notes, "", body]) + (
        "\n" + machine_line(record) + "\n" if isinstance(record, dict) and "machine" in record
        else "")


def result_snippets() -> dict[str, str]:
    snippets = {**compare_snippets(), **degradation_snippets()}
    snippets.update({f"benchmark-{name}": benchmark_snippet(name) for name in BENCHMARKS})
    snippets["gpu-status"] = gpu_status_snippet()
    snippets["peers"] = peers_snippet()
    return snippets


def expected_snippets() -> dict[Path, str]:
    """Every snippet file as the code and the results files make it now."""
    files = {SNIPPETS / "facts" / f"{name}.md": make() for name, make in FACTS.items()}
    files.update({SNIPPETS / "results" / f"{name}.md": text
                  for name, text in result_snippets().items()})
    return files


def differences(expected: dict[Path, str]) -> list[str]:
    """Snippet files that differ from ``expected``, are missing, or are left over."""
    found = []
    for path, text in expected.items():
        if not path.exists() or path.read_text() != text:
            found.append(str(path.relative_to(ROOT)))
    for path in sorted(SNIPPETS.rglob("*.md")):
        if path not in expected:
            found.append(f"{path.relative_to(ROOT)} (no longer generated)")
    return found


def write_all() -> None:
    expected = expected_snippets()
    for path in SNIPPETS.rglob("*.md"):
        if path not in expected:
            path.unlink()
    for path, text in expected.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    README.write_text(refresh_examples(README.read_text(), skip=2))


# --- recording results ---------------------------------------------------------------------

def machine() -> dict[str, Any]:
    """The machine and software a result was measured with."""
    import torch

    import resnet_probe

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        total = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        memory_gb = int(total) / 1024 ** 2
    head = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True)
    commit = head.stdout.strip() if head.returncode == 0 else None
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=ROOT, capture_output=True, text=True).stdout.strip())
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "memory_gb": memory_gb,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "resnet_probe": resnet_probe.__version__,
            "commit": commit, "dirty": dirty}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _write_result(relative: str, record: dict[str, Any]) -> Path:
    path = RESULTS / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=1, allow_nan=False, default=str) + "\n")
    temporary.replace(path)
    return path


def _read_rows(data: Path, name: str) -> Any:
    path = data / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else []


def _clean(value: Any) -> Any:
    """NaN becomes None, so results files stay strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def record_run(kind: str, data: Path) -> Path:
    """A compare or degradation run's data folder -> docs/results/KIND.json: its verdict,
    tables the docs show, the run's own environment, and this machine."""
    if not (data / "verdict.json").exists():
        raise SystemExit(f"{data} holds no verdict.json: give the -data folder of a finished "
                         f"{kind} run (for compare: reports/compare-A-vs-B-data)")
    environment = {row["key"]: row["value"] for row in _read_rows(data, "environment")}
    record = {"kind": kind, "recorded": _now(), "machine": machine(),
              "command": environment.get("command_line"),
              "run_environment": environment,
              "verdict": json.loads((data / "verdict.json").read_text()),
              "summary": _read_rows(data, "summary"),
              "train_final": _read_rows(data, "train_final"),
              "why_findings": _read_rows(data, "why_findings"),
              "latency_differences": _read_rows(data, "latency_differences")}
    return _write_result(f"{kind}.json", _clean(record))


def record_benchmark(name: str, arguments: list[str]) -> Path:
    """Run benchmarks/NAME.py, show its output as it comes, and keep it with this machine."""
    script = ROOT / "benchmarks" / f"{name}.py"
    if not script.exists():
        known = ", ".join(p.stem for p in sorted((ROOT / "benchmarks").glob("*.py")))
        raise SystemExit(f"no benchmark named {name!r}; choose one of: {known}")
    command = [sys.executable, str(script.relative_to(ROOT)), *arguments]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        sys.stdout.write(line)
        lines.append(line)
    if process.wait() != 0:
        raise SystemExit(f"benchmarks/{name}.py exited {process.returncode}; nothing recorded")
    output = _visible("".join(lines))
    record = {"benchmark": name, "recorded": _now(), "machine": machine(),
              "command": " ".join(["python", f"benchmarks/{name}.py", *arguments]),
              "conclusions": [line for line in output.splitlines() if CONCLUSION.match(line)],
              "output": output}
    return _write_result(f"benchmarks/{name}.json", record)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when a committed snippet differs")
    sub = parser.add_subparsers(dest="action")
    record = sub.add_parser("record", help="keep a run's numbers as a results file")
    record.add_argument("kind", choices=["compare", "degradation", "benchmark"])
    record.add_argument("target", help="a run's data folder, or a benchmark's name")
    record.add_argument("arguments", nargs=argparse.REMAINDER,
                        help="for a benchmark: its own arguments, after --")
    args = parser.parse_args(argv)
    if args.action == "record":
        if args.kind == "benchmark":
            extra = args.arguments[1:] if args.arguments[:1] == ["--"] else args.arguments
            path = record_benchmark(args.target, extra)
        else:
            path = record_run(args.kind, Path(args.target))
        print(f"wrote {path.relative_to(ROOT)}; now run: python docs/generate.py")
        return 0
    if args.check:
        stale = differences(expected_snippets())
        for name in stale:
            print(f"differs: {name}", file=sys.stderr)
        return 1 if stale else 0
    write_all()
    print(f"wrote {len(FACTS)} facts, {len(result_snippets())} result snippets, README examples")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
