"""The "why" measured without artefacts: each analysis against a fact known by hand.

- the momentum-only curve of ||dW||/||W|| is mu^t / sum_{k<t} mu^k, and SGD follows it;
- shattering's lag-0 correlation is 1, and with BN fixed one grid point's gradient does not
  depend on the other points;
- effective paths: C(n, k) / 2^n, and equal magnitudes put the effective length at n/2;
- Lanczos against a dense Hessian (full and three-term recurrences);
- k_half and the relative rise by hand.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from resnet_probe.analysis.hessian import hessian_extremes, lanczos
from resnet_probe.analysis.lesion import k_half, relative_rise
from resnet_probe.analysis.paths import effective_length, path_fractions, path_gradients
from resnet_probe.train.dynamics import momentum_only_curve
from resnet_probe.zoo import build_model


def test_the_momentum_only_curve_is_the_formula_and_what_sgd_does():
    curve = momentum_only_curve(0.9, 20)
    # at the recorded steps 1, 2, 5, 10, 20, whatever the net does
    assert [round(curve[t], 4) for t in (1, 2, 5, 10, 20)] == \
        [0.9, 0.4263, 0.1442, 0.0535, 0.0138]
    # One huge gradient at step 0, nothing after: heavy-ball SGD from W = 0 moves exactly so.
    weight = torch.zeros(3, requires_grad=True)
    optimizer = torch.optim.SGD([weight], lr=0.1, momentum=0.9)
    ratios = []
    for step in range(6):
        weight.grad = torch.tensor([1e6, -2e6, 3e6]) if step == 0 else torch.zeros(3)
        before = weight.detach().clone()
        optimizer.step()
        if step:
            ratios.append(((weight - before).norm() / before.norm()).item())
    assert ratios == pytest.approx([curve[t] for t in range(1, 6)], rel=1e-5)


def test_shattering_with_bn_fixed_is_per_point():
    """Lag 0 is 1 by definition; and each point's gradient is its own: the same point
    gives the same gradient whichever other points share its forward."""
    from resnet_probe.measure.gradients import GradientConfig, grid_gradients, lag_correlation
    from resnet_probe.sources import resolve

    config = GradientConfig(batch_size=4, seeds=(0,), shatter_points=8,
                            shatter_projections=1)
    source = resolve("resnet8")
    full = list(grid_gradients(source, 0, config))
    block, _, _, grads = full[-1]
    assert lag_correlation(grads[0], 0) == pytest.approx(1.0)
    t = torch.linspace(0, 1, 8).view(-1, 1, 1, 1)
    # the same line as grid_gradients draws it, then only its first four points
    from resnet_probe.measure.gradients import make_batch, probe_setting

    setting = probe_setting(source, config)
    torch.manual_seed(0)
    model = setting.build(source)
    x, _, _ = make_batch(model, config, 0, source, setting.size, batch_size=2)
    line = (1 - t) * x[0:1] + t * x[1:2]
    half = dict((b, g) for b, _, _, g in grid_gradients(source, 0, config, points=line[:4]))
    assert torch.allclose(half[block][0], grads[0][:4], rtol=1e-4, atol=1e-7)


def test_paths_are_binomial_and_equal_magnitudes_give_half_the_blocks():
    fractions = path_fractions(6)
    assert [fractions[k] * 64 for k in range(7)] == [1, 6, 15, 20, 15, 6, 1]
    rows = [{"path_length": k, "fraction": f, "gradient_magnitude": 1.0}
            for k, f in fractions.items()]
    assert effective_length(rows) == pytest.approx(3.0)
    # all the gradient through the one path of no branch: the effective length is its bin
    only_short = [{**row, "gradient_magnitude": 1.0 if row["path_length"] == 0 else 0.0}
                  for row in rows]
    assert effective_length(only_short) == pytest.approx(0.0)


def test_path_gradients_of_a_zero_init_net_flow_only_through_the_shortcuts():
    """With every block's last BN at zero, branch paths carry no gradient: the magnitude of
    length 0 (all shortcuts) is the whole net's, longer paths give none."""
    torch.manual_seed(0)
    net = build_model("resnet8[num_classes=10,zero_init_residual=true]")
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    rows = {r["path_length"]: r for r in path_gradients(net, x, y, samples=1)}
    assert rows[0]["gradient_magnitude"] > 0
    assert all(rows[k]["gradient_magnitude"] == 0 for k in rows if k > 0)


def _dense_hessian(loss_of, parameters):
    flat = torch.cat([p.reshape(-1) for p in parameters])
    size = flat.numel()

    def loss_flat(vector):
        pieces, start = [], 0
        for p in parameters:
            pieces.append(vector[start:start + p.numel()].view_as(p))
            start += p.numel()
        return loss_of(pieces)
    return torch.autograd.functional.hessian(loss_flat, flat.detach()).reshape(size, size)


@pytest.mark.parametrize("full", [True, False])
def test_lanczos_finds_the_dense_hessians_extremes(full):
    torch.manual_seed(0)
    matrix = torch.randn(30, 30, dtype=torch.float64)
    symmetric = (matrix + matrix.T) / 2
    exact = torch.linalg.eigvalsh(symmetric)
    alphas, betas = lanczos(lambda v: (symmetric @ v.double()).float(), 30, 30, full=full)
    from scipy.linalg import eigh_tridiagonal

    values = eigh_tridiagonal(alphas, betas, eigvals_only=True)
    assert values[-1] == pytest.approx(exact[-1].item(), rel=1e-4)
    assert values[0] == pytest.approx(exact[0].item(), rel=1e-4)


def test_hessian_extremes_of_a_small_net_match_the_dense_hessian():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    parameters = list(net.parameters())
    size = sum(p.numel() for p in parameters)

    def loss_of(pieces):
        w1, b1, w2, b2 = pieces
        return nn.functional.cross_entropy(torch.tanh(x @ w1.T + b1) @ w2.T + b2, y)

    exact = torch.linalg.eigvalsh(_dense_hessian(loss_of, parameters).double())
    found = hessian_extremes(net, x, y, iterations=size)
    assert found["reorthogonalisation"] == "full"
    assert found["top_eigenvalue"] == pytest.approx(exact[-1].item(), rel=1e-3)
    assert found["min_eigenvalue"] == pytest.approx(exact[0].item(), rel=1e-3, abs=1e-5)


def test_k_half_and_the_relative_rise_by_hand():
    # A net at error 0.1 with chance 0.9 has 0.8 of room; an error of 0.5 used half of it.
    assert relative_rise(0.5, 0.1, 0.9) == pytest.approx(0.5)
    rows = [{"removed": 1, "relative_rise": 0.1}, {"removed": 2, "relative_rise": 0.3},
            {"removed": 4, "relative_rise": 0.7}]
    assert k_half(rows) == (pytest.approx(3.0), True)  # 0.5 is halfway from 0.3 to 0.7
    assert k_half(rows[:2]) == (2.0, False)  # never reached: the largest k, flagged
    assert math.isnan(k_half([])[0])


def test_the_k_curve_claim_reads_residual_minus_plain():
    """Residual nets that need more deleted blocks to reach halfway to chance (k_half 6, 7, 8
    against the plain nets' 1) support Veit et al.'s claim: residual − plain = +5, +6, +7."""
    import pandas as pd

    from resnet_probe.analysis import WhyTables, findings

    rows = [{"model": f"{kind}20", "net_depth": 20, "shortcut": kind == "resnet", "seed": seed,
             "removed": removed, "error": 0.01 + 0.1 * removed,
             "k_half": (4 + seed if kind == "resnet" else 0) + 1.0}
            for kind in ("plain", "resnet") for seed in (1, 2, 3) for removed in (0, 1, 2)]
    found = findings(WhyTables.of({"lesion_count": pd.DataFrame(rows)}))
    row = found[found["claim"] == "lesion_count"].iloc[0]
    assert row["mean"] == pytest.approx(6.0)
    assert row["outcome"] == "holds"
