"""Compare parts built by hand, small enough to check by arithmetic: the report's renderers are
tested on these, with no pipeline run.

The run: resnet8 (baseline) against plain8, trained with their depth-14 siblings on seeds 0-2.
Final training errors (plain8, plain14, resnet8, resnet14) per seed:

    seed 0: 0.10 0.40 0.08 0.05      plain gap 0.30
    seed 1: 0.12 0.46 0.09 0.06      plain gap 0.34
    seed 2: 0.11 0.43 0.10 0.07      plain gap 0.32

so the plain gap is 0.32 ± t(0.975, 2) · 0.02 / √3 = 0.32 ± 0.0497: 95% CI +0.270 to +0.370.
"""

from __future__ import annotations

import math

import pandas as pd

from resnet_probe.analysis import WhyPart
from resnet_probe.analysis.claims import findings
from resnet_probe.analysis.measurements import WhyTables
from resnet_probe.jobs.compare.summary import summary_part
from resnet_probe.jobs.parts import (
    BottleneckPart,
    CompareResult,
    CostsPart,
    GradientsPart,
    LatencyEnvironment,
    LatencyPart,
    Skipped,
    TrainingPart,
)
from resnet_probe.stats import RULE
from resnet_probe.train.degradation import DegradationTables
from resnet_probe.train.verdict import judge

frame = pd.DataFrame
BASELINE, PLAIN = "resnet8", "plain8"
MODELS = (BASELINE, PLAIN)
PARAMS = {BASELINE: 78_042, PLAIN: 78_042, "resnet14": 10_064_936}
MACS = {BASELINE: 12_239_360, PLAIN: 12_239_360, "resnet14": 31_981_440}
# plain14 near chance (0.9), as under compare's recipe: the verdict's rule then holds even
# against a worse plain14 on some seeds (train.verdict).
FINAL_TRAIN = {"plain8": (0.10, 0.12, 0.11), "plain14": (0.80, 0.86, 0.83),
               "resnet8": (0.08, 0.09, 0.10), "resnet14": (0.05, 0.06, 0.07)}
FINAL_TEST = {"plain8": (0.11, 0.13, 0.12), "plain14": (0.81, 0.87, 0.84),
              "resnet8": (0.09, 0.10, 0.11), "resnet14": (0.06, 0.07, 0.08)}
DEPTH = {"plain8": 8, "plain14": 14, "resnet8": 8, "resnet14": 14}
SEEDS = (0, 1, 2)
# How much more a plain14 block's deletion raises its error, per seed: plain minus residual
# 0.30, 0.34, 0.32 (mean 0.32, sd 0.02; 95% CI +0.270 to +0.370).
PLAIN_EXTRA_RISE = {0: 0.30, 1: 0.34, 2: 0.32}
# The gradient ratio first/last block at init, per seed: plain8 grows toward the input.
GRAD_RATIOS = {BASELINE: (1.5, 1.7, 1.6), PLAIN: (17.0, 19.0, 18.0)}
FORWARD_MS = {BASELINE: 1.20, PLAIN: 1.18}
SIGMA_PARAGRAPH = "with μ = 0.9 it follows μ^t / Σ_{k<t} μ^k"


def costs_part(models: tuple[str, ...] = MODELS) -> CostsPart:
    summary = frame([{"model": m, "depth": DEPTH.get(m, 14), "params": PARAMS[m],
                      "trainable_params": PARAMS[m], "macs": MACS[m], "macs_v1": MACS[m],
                      "macs_fvcore_default": MACS[m] + 150_000,
                      "macs_with_elementwise": MACS[m] + 180_000, "flops": 2 * MACS[m],
                      "backward_flops": 4 * MACS[m], "partial": False,
                      "uncounted_operators": "", "count_notes": ""} for m in models])
    conventions = frame([{"model": m, "convention": label, "value": value, "unit": unit,
                          "reported_by": who, "giga": value / 1e9, "partial": False,
                          "uncounted_operators": ""}
                         for m in models
                         for label, value, unit, who in (
                             ("(a) conv+linear MACs, stride on 3x3 (v1.5)", MACS[m], "MACs",
                              "torchvision docs' GFLOPS"),
                             ("(c) FLOPs = 2 x (a)", 2 * MACS[m], "FLOPs",
                              "torch FlopCounterMode"))])
    stages = frame([{"model": m, "stage": s, "params": 1000, "macs": MACS[m] // 5}
                    for m in models for s in ("stem", "stage1", "stage2", "stage3", "head")])
    layers = frame([
        {"model": m, "module": module, "type": kind, "stage": stage, "block": block,
         "depth": depth, "role": role, "params": params, "trainable_params": params,
         "macs": macs, "flops": 2 * macs}
        for m in models
        for module, kind, stage, block, depth, role, params, macs in (
            ("conv1", "Conv2d", "stem", None, 1, "stem", 432, 442_368),
            ("bn1", "BatchNorm2d", "stem", None, 1, "stem", 32, 0),
            ("layer1.0.conv1", "Conv2d", "stage1", "layer1.0", 2, "main", 2304, 2_359_296),
            ("layer1.0.bn1", "BatchNorm2d", "stage1", "layer1.0", 2, "main", 32, 0),
            ("layer2.0.shortcut", "ZeroPadShortcut", "stage2", "layer2.0", 4,
             "shortcut" if m.startswith("resnet") else "main", 0, 0),
            ("fc", "Linear", "head", None, 8, "head", 650, 640))])
    operators = frame([{"model": m, "direction": "forward", "operator": op, "kind": kind,
                        "macs": macs, "flops": 2 * macs}
                       for m in models
                       for op, kind, macs in (("aten.convolution", "conv/linear", MACS[m]),
                                              ("aten.add", "elementwise",
                                               28_672 if m.startswith("resnet") else 0))
                       if macs])
    memory = frame([{"model": m, "module": "(model)", "param_bytes": 4 * PARAMS[m],
                     "buffer_bytes": 1_000, "grad_bytes": 4 * PARAMS[m],
                     "activation_bytes": 3_500_000, "optimizer_bytes": 4 * PARAMS[m],
                     "train_peak_bytes": 4_700_000} for m in models])
    architecture = frame([
        {"model": m, "preact": False, "stage": stage, "blocks": blocks, "block": block,
         "width": 16, "out_channels": 16 * scale, "output_size": size, "params": 1000,
         "groups": 1, "width_per_group": 64, "shortcut": m.startswith("resnet"),
         "zero_pad_blocks": int(stage == "stage2" and m.startswith("resnet")),
         "projection_blocks": 0, "pooled_projection_blocks": 0,
         "identity_blocks": 1 if stage == "stage1" and m.startswith("resnet") else 0}
        for m in models
        for stage, blocks, block, scale, size in (
            ("stem", 0, "cifar", 1, "32x32"), ("stage1", 1, "basic", 1, "32x32"),
            ("stage2", 1, "basic", 2, "16x16"), ("stage3", 1, "basic", 4, "8x8"),
            ("head", 0, "head", 1, "1x1"))])
    totals = frame([{"design": d, "template": t, "weights": w, "macs": macs,
                     "macs_vs_bottleneck": macs / 218_103_808}
                    for d, t, w, macs in (("basic d=64", "basic at d", 73_728, 231_211_008),
                                          ("bottleneck 4d=256", "bottleneck at 4d", 69_632,
                                           218_103_808),
                                          ("basic 4d=256", "basic at 4d", 1_179_648,
                                           3_699_376_128))])
    rows = frame([{"design": "bottleneck 4d=256", "template": "bottleneck at 4d",
                   "conv": "1x1 reduce", "kernel": 1, "in_channels": 256, "out_channels": 64,
                   "groups": 1, "size": 56, "weights": 16_384, "macs": 51_380_224,
                   "formula": "1·1·256·64·56·56"}])
    return CostsPart(summary=summary, layers=layers, stages=stages, operators=operators,
                     conventions=conventions, memory=memory, architecture=architecture,
                     bottleneck=BottleneckPart(rows, totals))


def latency_part() -> LatencyPart:
    models = frame([{"model": m, "forward_ms": FORWARD_MS[m],
                     "forward_ms_ci95_low": FORWARD_MS[m] - 0.05,
                     "forward_ms_ci95_high": FORWARD_MS[m] + 0.05, "backward_ms": 2.4,
                     "hooked_forward_ms": 1.5, "hook_overhead_ratio": 1.25,
                     "layer_sum_forward_ms": 1.1, "layer_sum_to_total": 0.92,
                     "images_per_s": 830.0, "noisy_layers": 0, "engine": "hooks"}
                    for m in MODELS])
    layers = frame([{"model": m, "module": module, "type": "Conv2d", "direction": direction,
                     "median_ms": 0.2, "iqr_ms": 0.02, "noisy": False, "flops": 884_736,
                     "arithmetic_intensity": 12.0, "achieved_gflops_per_s": 4.4,
                     "bound": "memory-bound", "stage": "stage1", "block": "layer1.0"}
                    for m in MODELS for module in ("conv1", "layer1.0.conv1")
                    for direction in ("forward", "backward")])
    stages = frame([{"model": m, "direction": "forward", "stage": "stage1",
                     "sum_of_median_ms": 0.4, "median_ms": 0.41, "ci95_low_ms": 0.39,
                     "ci95_high_ms": 0.43} for m in MODELS])
    sweep = frame([{"model": m, "batch_size": b, "images_per_s": 800.0 * b ** 0.5}
                   for m in MODELS for b in (1, 2)])
    differences = frame([{"model": PLAIN, "baseline": BASELINE, "metric": "forward_ms",
                          "baseline_value": FORWARD_MS[BASELINE], "value": FORWARD_MS[PLAIN],
                          "delta_pct": -1.7, "ci95_low_pct": -4.1, "ci95_high_pct": 0.9,
                          "measurable": False,
                          "change": "no measurable difference (95% CI -4.1% to +0.9%)",
                          "method": "bootstrap of medians, paired by round", "unit": "%"}])
    environment = LatencyEnvironment(
        device="cpu", device_name="test CPU", threads=2, torch_version="2.x", dtype="float32",
        channels_last=False, engine="hooks", peak_gflops=50.0, peak_gbytes_per_s=10.0,
        peak_source="measured", load_average_1min=None, cpu_mhz=None, cores=2)
    empty = frame([])
    return LatencyPart(models=models, layers=layers, stages=stages, samples=empty,
                       rounds=empty, sweep=sweep, differences=differences, failures=empty,
                       passes=empty, environment=environment)


def gradients_part() -> GradientsPart:
    models = frame([{"model": m, "depth": 8, "shortcut": m == BASELINE, "preact": False,
                     "grad_ratio_first_last": sum(GRAD_RATIOS[m]) / 3,
                     "grad_ratio_std": 0.1, "exp_rate_per_layer": 1.4, "exp_r2": 0.9,
                     "power_exponent": -1.0, "power_r2": 0.8, "r2_power_minus_exp": -0.1,
                     "max_within_stage_ratio": 1.0,
                     "gradient_trend": "grows toward the input"} for m in MODELS])
    blocks = frame([{"model": m, "seed": s, "block": f"layer{i}.0", "stage": f"stage{i}",
                     "depth": 2 * i, "act_grad_norm": 10.0 ** -i, "act_std": 1.0 + i,
                     "join_grad_norm": 10.0 ** -i, "variance_ratio": 0.5}
                    for m in MODELS for s in SEEDS for i in (1, 2, 3)])
    stages = frame([{"model": m, "seed": s, "stage": "stage1", "blocks": 2,
                     "within_stage_ratio": 1.25} for m in MODELS for s in SEEDS])
    seeds = frame([{"model": m, "seed": s, "grad_ratio_first_last": r}
                   for m in MODELS for s, r in zip(SEEDS, GRAD_RATIOS[m], strict=True)])
    empty = frame([])
    return GradientsPart(models=models, blocks=blocks, stages=stages, layers=empty,
                         seeds=seeds, shattering=empty, differences=empty,
                         input_description="a batch of 8 digits", setting="the trained net",
                         seed_list=SEEDS)


def finals() -> list[dict]:
    return [{"model": m, "depth": DEPTH[m], "shortcut": m.startswith("resnet"), "seed": s,
             "chance_error": 0.9, "final_train_error": FINAL_TRAIN[m][i],
             "final_test_error": FINAL_TEST[m][i], "train_error_auc": FINAL_TRAIN[m][i],
             "status": "finished", "steps_done": 8}
            for m in FINAL_TRAIN for i, s in enumerate(SEEDS)]


def degradation_tables() -> DegradationTables:
    rows = finals()
    history = frame([{"model": r["model"], "seed": r["seed"], "step": step,
                      "train_error": 0.9 - (0.9 - r["final_train_error"]) * step / 8}
                     for r in rows for step in range(9)])
    evals = frame([{"model": r["model"], "seed": r["seed"], "step": 8,
                    "train_error_eval": r["final_train_error"],
                    "test_error": r["final_test_error"]} for r in rows])
    dynamics = frame([{"model": m, "seed": s, "step": step, "depth": 1, "module": "conv1",
                       "grad_to_weight": 0.1, "effective_step": 0.01,
                       "update_to_weight": 0.9 / (step + 1), "momentum": 0.9}
                      for m in ("plain14", "resnet14") for s in SEEDS for step in (0, 1, 2)])
    joins = frame([{"model": m, "seed": s, "step": step, "grad_ratio_first_last": 10.0}
                   for m in ("plain14", "resnet14") for s in SEEDS for step in (0, 1, 2)])
    verdict = judge(rows, 0.9)
    estimates = frame([{"comparison": e.name, "seeds": e.seeds, "mean": e.estimate,
                        "ci95_low": e.low, "ci95_high": e.high, "in_words": e.text()}
                       for e in verdict.estimates])
    empty = frame([])
    return DegradationTables(history=history, evals=evals, final=frame(rows),
                             estimates=estimates, grad_norms=empty, runs=empty,
                             dynamics=dynamics, joins=joins, dynamics_summary=empty,
                             verdict=verdict)


def why_part() -> WhyPart:
    lesion_blocks = frame([{"model": m, "seed": s, "net_depth": 14, "shortcut": m[0] == "r",
                            "block": f"layer{i}.0", "downsampling": i > 1,
                            "error": 0.2 + 0.1 * i, "baseline_error": 0.1,
                            "relative_rise": 0.1 * i + (PLAIN_EXTRA_RISE[s] if m[0] == "p"
                                                        else 0.0),
                            "not_deletable_because": None}
                           for m in ("plain14", "resnet14") for s in SEEDS for i in (1, 2, 3)])
    paths = frame([{"model": "resnet14", "seed": s, "net_depth": 14, "path_length": k,
                    "gradient_magnitude": 10.0 ** -k, "fraction": math.comb(3, k) / 8,
                    "blocks": 3, "effective_length": 1.0}
                   for s in SEEDS[:1] for k in range(4)])  # one seed: "needs 2 seeds"
    tables = WhyTables.of({"lesion_blocks": lesion_blocks, "paths": paths})
    # the claims tested by the real rule on the hand-built tables (analysis.claims)
    return WhyPart(tables, findings(tables), data="Nets: this run's. Data: 32 digits.")


def training_part() -> TrainingPart:
    return TrainingPart(degradation=degradation_tables(), why=why_part(), dataset="digits",
                        recipe=None, seeds=SEEDS, source="built by hand")


def compare_result(models: tuple[str, ...] = MODELS, trained: bool = True) -> CompareResult:
    """The whole result; ``models`` may rename the models (every table follows)."""
    costs, latency, gradients = costs_part(), latency_part(), gradients_part()
    training = training_part() if trained else Skipped("no training was run (--no-train)")
    summary = summary_part(list(MODELS), costs, latency, gradients, training)
    assert summary.rule == RULE
    result = CompareResult(models=MODELS, costs=costs, latency=latency, gradients=gradients,
                           training=training, summary=summary)
    return renamed(result, dict(zip(MODELS, models, strict=True))) if models != MODELS \
        else result


def renamed(result: CompareResult, names: dict[str, str]) -> CompareResult:
    """Every table's model column (and the result's names) renamed."""
    import dataclasses

    def rename(value):
        if isinstance(value, pd.DataFrame):
            out = value.copy()
            for column in ("model", "baseline"):
                if column in out:
                    out[column] = out[column].replace(names)
            return out
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.replace(value, **{
                f.name: rename(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.init and isinstance(getattr(value, f.name), pd.DataFrame)
                or dataclasses.is_dataclass(getattr(value, f.name))})
        return value

    return dataclasses.replace(
        result, models=tuple(names.get(m, m) for m in result.models),
        costs=rename(result.costs), latency=rename(result.latency),
        gradients=rename(result.gradients), training=rename(result.training),
        summary=rename(result.summary))
