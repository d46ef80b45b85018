"""The prose of every report and console line, made once from typed results.

Jobs and measurements return numbers and typed outcomes; this package is the one place they
become sentences, so the HTML report, the console and ``verdict.json`` say the same thing. One
module per concept:

* ``verdict``: the degradation verdict (its rule, reasons, line, headline, note, record);
* ``twin``: the twin verdict, a model against its plain twin;
* ``causal``: the causal test of the early-layer freeze;
* ``findings``: the papers' claims on the trained nets;
* ``gradients``: the gradients at init;
* ``tutorials``: what the tutorials say, measured (claims a-g);
* ``notes``: compare's notes, an interruption, a training recipe;
* ``numbers``: counts, changes and intervals in words, and a seed estimate's record.

The names below are the ones the report, the CLI, the tests and the docs use.
"""

from __future__ import annotations

from resnet_probe.report.words.causal import (
    MECHANISM_NOT_RUN,
    causal_line,
    causal_record,
    mechanism_finding,
)
from resnet_probe.report.words.findings import (
    CLAIM_NAMES,
    FINDINGS_RULE,
    LANDSCAPE_METHOD,
    claim_finding,
    findings_in_words,
)
from resnet_probe.report.words.gradients import gradient_finding
from resnet_probe.report.words.notes import (
    compare_notes,
    failed_runs_text,
    interruption_name,
    recipe_text,
)
from resnet_probe.report.words.numbers import cost_change, readable_count
from resnet_probe.report.words.tutorials import (
    TUTORIAL_CLAIMS,
    bias_answer,
    bottleneck_answer,
    eval_bn_answer,
    identity_answer,
    overfitting_answer,
    shortcut_cost_answer,
    vanishing_answer,
)
from resnet_probe.report.words.twin import (
    TWIN_RULE,
    twin_headline,
    twin_note_text,
    twin_reasons_text,
    twin_verdict_line,
    twin_verdict_record,
)
from resnet_probe.report.words.verdict import (
    VERDICT_RULE,
    VERDICT_RULE_PARAGRAPH,
    reasons_text,
    residual_finding,
    stopped_early_text,
    verdict_headline,
    verdict_line,
    verdict_note_text,
    verdict_record,
)

__all__ = [
    "CLAIM_NAMES",
    "FINDINGS_RULE",
    "LANDSCAPE_METHOD",
    "MECHANISM_NOT_RUN",
    "TUTORIAL_CLAIMS",
    "TWIN_RULE",
    "VERDICT_RULE",
    "VERDICT_RULE_PARAGRAPH",
    "bias_answer",
    "bottleneck_answer",
    "causal_line",
    "causal_record",
    "claim_finding",
    "compare_notes",
    "cost_change",
    "eval_bn_answer",
    "failed_runs_text",
    "findings_in_words",
    "gradient_finding",
    "identity_answer",
    "interruption_name",
    "mechanism_finding",
    "overfitting_answer",
    "readable_count",
    "reasons_text",
    "recipe_text",
    "residual_finding",
    "shortcut_cost_answer",
    "stopped_early_text",
    "twin_headline",
    "twin_note_text",
    "twin_reasons_text",
    "twin_verdict_line",
    "twin_verdict_record",
    "vanishing_answer",
    "verdict_headline",
    "verdict_line",
    "verdict_note_text",
    "verdict_record",
]
