"""The papers' claims on the trained nets in words (analysis.claims): each claim's name, the
rule every claim is tested by, the landscape's method, and each findings row as evidence."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import pandas as pd

from resnet_probe.analysis.claims import (
    LOW_LOSS,
    MATCHED_LOSS_FRACTION,
    MIN_GAMMA_DRIFT,
    Claim,
    Outcome,
    Role,
)
from resnet_probe.analysis.landscape import KESKAR_RADIUS
from resnet_probe.report.words.numbers import counted, known

CLAIM_NAMES = {
    Claim.LESION_BLOCKS: "one block deleted: relative error rise (plain − residual)",
    Claim.LESION_COUNT: "k blocks deleted: k_half (residual − plain)",
    Claim.PATHS: "paths: half the blocks − the effective path length (residual)",
    Claim.RESPONSES: "sorted response std: mean log10(plain / residual)",
    Claim.LANDSCAPE: "half-way radius r½ (residual − plain)",
    Claim.HESSIAN: "Hessian: |λmin/λmax| (plain − residual)",
}

FINDINGS_RULE = (
    "Each claim is tested at one depth, paired by seed, with a Student-t 95% interval over the "
    "seeds (resnet_probe.stats), on a per-seed value oriented so that the claim says 'above "
    "zero': it holds when the interval lies above zero, does not hold when it lies below, is "
    "'not measurable' when it contains zero, and needs 2 seeds with one. Before that, a depth "
    "is 'inconclusive' when a net it compares did not train: for lesions, its own test error "
    "is not below 3/4 of chance (it has no room to lose); for the landscape and the Hessian, "
    f"its training loss at the trained weights is not below {LOW_LOSS} (it is not at a "
    "minimum). The landscape and Hessian claims are 'confounded' when the plain and residual "
    "nets' losses at the trained weights differ by more than "
    f"{MATCHED_LOSS_FRACTION:g} × ln C (C classes): both measures change as a net goes deeper "
    "into a minimum, so nets at different losses differ for that reason alone. The responses "
    "claim is 'not testable at this budget' when a net's BN scales have barely moved: the "
    "median over its response layers of the mean |γ − 1| is below "
    f"{MIN_GAMMA_DRIFT:g} (a BN output with γ = 1 has unit variance whatever the net "
    "learned). The landscape and Hessian claims carry a no-degradation control: the same "
    "difference on the run's shallowest pair (the compared nets' siblings), trained the same "
    "way. A deeper depth that holds keeps 'holds' only when its excess over the control "
    "(deep minus control difference, paired by seed) has a 95% t interval above zero; else "
    "it is 'not beyond the control', and with no usable control (one depth, fewer than 2 "
    "seeds in common, or a control pair that is blocked or has one seed) 'no control'. "
    "Lesion: the mean relative rise, (error − own error) / (chance − own error), over the "
    "deletable non-downsampling blocks, plain minus residual. Lesion curve: k_half, the number "
    "of deleted blocks that takes a net halfway to chance, residual minus plain. Paths: half "
    "the number of blocks minus the effective path length of the residual net (the gradient "
    "comes from short paths). Responses: mean over rank positions of log10(plain std / "
    "residual std) in the sorted curves (He et al. Fig. 7: residual responses are smaller). "
    "Landscape: the half-way radius r½, the smallest step |α| along a filter-normalised "
    "direction at which the training loss reaches L0 + (ln C − L0)/2, on both sides of each "
    "direction, averaged over the directions and censored at the extent; residual minus plain "
    "(a flatter residual minimum). Hessian: |λmin/λmax|, plain minus residual.")


LANDSCAPE_METHOD = (
    "Li et al. 2018's filter-normalised random directions: the "
    "training loss probed along each direction out to where it reaches half-way from the "
    "trained loss L0 to a uniform guess's, ln C; that step, the half-way radius r½, is "
    "averaged over both sides of every direction and censored at the extent, so it stays "
    "bounded as L0 goes to 0. Keskar's sharpness is the largest rise within "
    f"|α| ≤ {KESKAR_RADIUS:g}, over 1 + L0.")


def claim_name(claim: str) -> str:
    """A claim id (analysis.claims.Claim) in words."""
    return CLAIM_NAMES[Claim(claim)]


def claim_finding(what: str, row: dict[Hashable, Any]) -> str:
    """One tested claim of the trained nets (a findings row, analysis.claims) in one line."""
    low, high, mean = row.get("ci95_low"), row.get("ci95_high"), row.get("mean")
    interval = (f"95% CI {low:+.3f} to {high:+.3f}, " if known(low) and known(high)
                else "no interval, ")
    said = f"mean {mean:+.3f}, " if known(mean) else ""
    return (f"{what} at depth {row['depth']}: {row['outcome']} ({said}{interval}"
            f"{counted(int(row['seeds']), 'seed')}).")


def _blocked_text(blocked: dict[str, Any]) -> str:
    measure, value, bar = blocked["measure"], blocked["value"], blocked["bar"]
    if measure.endswith("plain - residual"):
        return (f"seed {blocked['seed']} ({measure.replace(' plain - residual', '')} plain "
                f"minus residual {value:+.3f}, beyond ±{bar:.3f})")
    if measure == "gamma_drift":
        return (f"{blocked['model']} seed {blocked['seed']} (median mean |γ − 1| {value:.3f} "
                f"< {bar:g})")
    return f"{blocked['model']} seed {blocked['seed']} ({measure} {value:.3f})"


def finding_evidence(row: Any) -> str:
    """One findings row (analysis.claims.findings) in words: the mean, its interval, the
    per-seed values, what blocked it, and the control."""
    def number(value: float | None) -> str:
        return f"{value:+.3f}" if known(value) else "n/a"  # NaN reads back from JSON as null

    interval = (f"95% CI {number(row.ci95_low)} to {number(row.ci95_high)}, "
                if known(row.ci95_low) else "")
    values = list(row.per_seed)
    text = (f"mean {number(row.mean)}, {interval}seeds "
            f"{', '.join(number(v) for v in values)}")
    opposite = sum(known(v) and v < 0 for v in values)
    if opposite and row.outcome_at_depth != Outcome.HOLDS:
        text += f"; {opposite} of {len(values)} seeds on the opposite side to the claim"
    blocked = list(row.blocked) if isinstance(row.blocked, (list, tuple)) else []
    if blocked:
        why = {Outcome.INCONCLUSIVE.value: "did not train",
               Outcome.CONFOUNDED.value: "losses at the trained weights differ",
               Outcome.NOT_TESTABLE.value: "BN scales barely moved"}.get(
            row.outcome_at_depth, "blocked")
        text += f"; {why}: {'; '.join(_blocked_text(b) for b in blocked)}"
    if getattr(row, "role", None) == Role.CONTROL:
        text += "; this is the control pair of the deeper depths"
    control_depth = getattr(row, "control_depth", None)
    if known(control_depth):
        control_interval = (f", 95% CI {number(row.control_ci95_low)} to "
                            f"{number(row.control_ci95_high)}"
                            if known(row.control_ci95_low) else "")
        excess = (f"excess over it {number(row.excess_mean)} (95% CI "
                  f"{number(row.excess_ci95_low)} to {number(row.excess_ci95_high)})"
                  if known(row.excess_ci95_low) else
                  "no excess interval (fewer than 2 seeds in common)")
        text += (f"; control at depth {int(control_depth)} {number(row.control_mean)}"
                 f"{control_interval} ({row.control_outcome}); {excess}")
    return text


def findings_in_words(findings: pd.DataFrame) -> pd.DataFrame:
    """The findings table as the report shows it: the claim in words (``claim``; the id in
    ``claim_id``) and ``evidence``, a sentence per row."""
    if findings.empty:
        return findings
    return findings.assign(
        claim_id=findings["claim"], claim=[claim_name(c) for c in findings["claim"]],
        evidence=[finding_evidence(row) for row in findings.itertuples()])
