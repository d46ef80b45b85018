"""What the tutorials say, measured: the seven claims (a-g) the compare report checks, and
each one's answer in words from the numbers report/tutorials.py takes out of the parts (or,
for a claim a number cannot show, the test that checks it)."""

from __future__ import annotations

from resnet_probe.report.tutorials import (
    BottleneckSaving,
    ErrorsByDepth,
    GradientRatio,
    ShortcutCost,
)
from resnet_probe.report.words.gradients import Direction, gradient_direction
from resnet_probe.report.words.numbers import counted, ratio_interval, readable_count

TUTORIAL_CLAIMS = (
    ("a", "Degradation is overfitting."),
    ("b", "Vanishing gradients are the root cause."),
    ("c", "dy/dx = dF/dx + I: the identity carries the gradient."),
    ("d", "An identity shortcut adds no parameters and negligible FLOPs."),
    ("e", "Bottleneck blocks are cheaper."),
    ("f", "bias=False before BN loses nothing."),
    ("g", "BN uses running statistics at eval."),
)
ZERO_INIT_TEST = ("tests/test_gradients.py::"
                  "test_zero_init_residual_net_passes_gradients_unchanged_through_every_join")
BIAS_TEST = "tests/test_docs.py::test_a_conv_bias_before_bn_folds_into_the_bn_shift"
EVAL_BN_TEST = "tests/test_docs.py::test_eval_outputs_are_deterministic_and_batch_independent"


def overfitting_answer(errors: list[ErrorsByDepth]) -> str | None:
    """Claim (a), from report.tutorials.errors_by_depth: training vs test error by depth."""
    if not errors:
        return None

    def arrow(values: tuple[float, ...]) -> str:
        return " → ".join(f"{v:.3f}" for v in values)

    parts = []
    for kind in errors:
        name = "residual" if kind.shortcut else "plain"
        depths = " → ".join(str(d) for d in kind.depths)
        parts.append(f"{name} nets, depth {depths}: training error {arrow(kind.train)}, test "
                     f"error {arrow(kind.test)}")
    plain = next((k for k in errors if not k.shortcut and len(k.depths) > 1), None)
    if plain is None:
        lead = "One depth per kind in this run, so nothing to compare by depth"
    elif plain.train[-1] > plain.train[0]:
        lead = ("No: the plain nets' training error itself rises with depth, and the test "
                "error follows it; overfitting would show a low training error under a high "
                "test error")
    else:
        lead = "In this run the plain nets' training error does not rise with depth"
    return f"{lead} ({'; '.join(parts)})."


def vanishing_answer(ratios: list[GradientRatio]) -> str | None:
    """Claim (b), from report.tutorials.gradient_ratios: the first/last ratio at init."""
    plain = [r for r in ratios if not r.shortcut]
    if not plain:
        return None
    deep = plain[-1]
    lead = {Direction.GROWS: "Not with BN: the gradient grows toward the input",
            Direction.SHRINKS: "Here it does shrink toward the input",
            Direction.UNSETTLED: "Not settled here",
            }[gradient_direction(deep.low, deep.high, deep.ratio)]
    return (f"{lead}. At init, {deep.model}'s gradient at the first block over the last "
            f"block's is {ratio_interval(deep.ratio, deep.low, deep.high, deep.seeds)}.")


def identity_answer(within: dict[str, float]) -> str | None:
    """Claim (c), from report.tutorials.within_stage_ratios."""
    if not within:
        return None
    each = "; ".join(f"{model} ×{ratio:.3g}" for model, ratio in within.items())
    return (f"Across identity blocks (within a stage) the join gradient changes from the "
            f"stage's first block to its last by {each}: each block adds its branch's term to "
            f"the identity's. With a zero-initialised branch the ratio is exactly 1 "
            f"({ZERO_INIT_TEST}).")


def shortcut_cost_answer(costs: list[ShortcutCost]) -> str | None:
    """Claim (d), from report.tutorials.shortcut_costs."""
    if not costs:
        return None
    parts = []
    for cost in costs:
        twin = (f" {cost.params_over_twin:+,} parameters against its plain twin {cost.twin};"
                if cost.twin is not None else "")
        projections = (f" {counted(cost.projections, 'projection shortcut')} hold "
                       f"{cost.projection_params:,} parameters;" if cost.projections else
                       " no projection shortcut;")
        share = cost.add_elements / cost.macs if cost.macs else float("nan")
        parts.append(f"{cost.model}:{twin}{projections} "
                     f"{counted(cost.identity_blocks, 'identity block')}; its residual adds "
                     f"are {readable_count(cost.add_elements)} additions, {share:.2%} of its "
                     f"conv and linear MACs")
    return "; ".join(parts) + "."


def bottleneck_answer(saving: BottleneckSaving | None) -> str | None:
    """Claim (e), from report.tutorials.bottleneck_saving."""
    if saving is None:
        return None
    return (f"A bottleneck block at 4d channels has {saving.bottleneck_weights:,} weights and "
            f"{readable_count(saving.bottleneck_macs)} MACs, about a basic block at d "
            f"({readable_count(saving.basic_macs)}); a basic block at 4d costs "
            f"{readable_count(saving.wide_macs)}, {saving.wide_over_bottleneck:.1f}× the "
            f"bottleneck.")


def bias_answer(biases: dict[str, tuple[int, int]]) -> str:
    """Claim (f), from report.tutorials.bn_biases, and the test that checks the function."""
    each = "; ".join(f"{model}: {count:,} ({count / params:.2%} of its {params:,} parameters)"
                     for model, (count, params) in biases.items() if params)
    saved = f"A bias on each conv before a BN would add {each}. " if each else ""
    return (f"{saved}The BN's shift absorbs such a bias: folding it in gives the same function "
            f"({BIAS_TEST}).")


def eval_bn_answer() -> str:
    """Claim (g): a test, not a number of the run."""
    return (f"An image's eval-mode output is the same alone and among others, and on every "
            f"call ({EVAL_BN_TEST}).")
