"""The counting rules held against torch's FlopCounterMode, fvcore's FlopCountAnalysis and hand
counts, one fault class of issue 35 at a time: re-entrant forwards, backward of unused work,
fvcore's rule for norms without affine parameters, inputs used as given, parametrised
modules, a backward that cannot run, per-module attribution, and the operators that made a
net partial."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.utils.parametrizations
import torch.nn.utils.prune
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import resnet_probe as rp
from resnet_probe.measure.costs import count_module_costs


def _torch_flops(model: nn.Module, *args) -> tuple[int, int]:
    """(forward, backward) FLOPs as FlopCounterMode counts them, in eval mode."""
    model.eval()
    with FlopCounterMode(display=False) as forward_only:
        model(*args)
    with FlopCounterMode(display=False) as both:
        out = model(*args)
        if out.requires_grad:
            out.sum().backward()
    model.zero_grad(set_to_none=True)
    forward = forward_only.get_total_flops()
    return forward, both.get_total_flops() - forward


def _fvcore_total(model: nn.Module, *args) -> int:
    from fvcore.nn import FlopCountAnalysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(model.eval(), args if len(args) > 1 else args[0])
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return int(analysis.total())


# Counted by the shape pass (one float tensor) and by dispatch (the same tensor as a keyword).
def _both_paths(model: nn.Module, x: torch.Tensor):
    shape_pass = count_module_costs(model, x, "positional")
    dispatched = count_module_costs(model, {"x": x}, "keyword")
    assert dispatched.summary["count_method"] == "meta dispatch"
    return shape_pass, dispatched


# --- 1. a forward that calls itself ---------------------------------------------------


class _CallsItself(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(10, 1, bias=False)

    def forward(self, x: torch.Tensor, depth: int = 3) -> torch.Tensor:
        return self.linear(x) if depth == 0 else self(x, depth - 1)


class _HoldsOneThatCallsItself(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = _CallsItself()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


@pytest.mark.parametrize("model", [_CallsItself(), _HoldsOneThatCallsItself()],
                         ids=["model", "submodule"])
def test_a_forward_that_calls_itself_is_counted_once(model):
    x = torch.zeros(1, 10)
    # 10 inputs * 1 output = 10 MACs, whatever depth of self(...) reaches the linear
    assert _torch_flops(model, x)[0] == 2 * 10
    for result in _both_paths(model, x):
        assert result.summary["macs"] == 10
        rows = {row["module"]: row["macs"] for row in result.modules}
        assert rows["linear" if "linear" in rows else "inner.linear"] == 10
        assert sum(rows.values()) == 10 and min(rows.values()) >= 0


# --- 2. backward of work the output never uses ----------------------------------------


class _DeadBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(5, 5, bias=False)
        self.unused = nn.Linear(5, 5, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.unused(x)  # computed and dropped: autograd never runs its backward
        return self.used(x)


@pytest.mark.parametrize("wants_grad", [False, True], ids=["input", "input-with-grad"])
def test_backward_of_work_the_output_does_not_use_is_not_counted(wants_grad):
    model = _DeadBranch()
    x = torch.zeros(2, 5, requires_grad=wants_grad)
    # forward: 2 linears * 2 rows * 5 * 5 = 100 MACs = 200 FLOPs (both run)
    # backward: only `used`: its weight gradient 2 * 5 * 5 = 50 MACs, and its input's when
    # the input wants one (another 50): 100 or 200 FLOPs
    expected_backward = 2 * 50 * (2 if wants_grad else 1)
    assert _torch_flops(model, x) == (200, expected_backward)
    for result in _both_paths(model, x):
        assert result.summary["flops"] == 200
        assert result.summary["backward_flops"] == expected_backward
        rows = {row["module"]: row["backward_flops"] for row in result.modules}
        assert rows["unused"] == 0 and rows["used"] == expected_backward


# --- 3. fvcore's rule for norms without affine parameters -----------------------------


@pytest.mark.parametrize("norm", [
    nn.BatchNorm2d(4, affine=False),  # eval: fvcore 1 per element (2 with affine)
    nn.BatchNorm2d(4),
    nn.BatchNorm2d(4, track_running_stats=False),  # batch statistics: 5 per element
    nn.GroupNorm(2, 4, affine=False),  # 4 per element (5 with affine)
    nn.GroupNorm(2, 4),
    nn.LayerNorm([4, 5, 5], elementwise_affine=False),
    nn.InstanceNorm2d(4),
    nn.InstanceNorm2d(4, affine=True),
], ids=lambda norm: repr(norm).replace(" ", ""))
def test_fvcore_default_applies_fvcores_rule_to_every_norm(norm):
    model = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), norm)
    x = torch.zeros(1, 3, 5, 5)
    expected = _fvcore_total(model, x)
    # conv 3 * 4 * 5 * 5 = 300; the norm 4 * 5 * 5 = 100 elements at 1, 2, 4 or 5 each
    assert expected - 300 in (100, 200, 400, 500)
    assert count_module_costs(model, x, "norm").summary["macs_fvcore_default"] == expected


# --- 4. inputs used as given ------------------------------------------------------------


class _NeedsSortedLengths(nn.Module):
    """Refuses unsorted lengths, as pack_padded_sequence does."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3, bias=False)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if not bool((lengths[:-1] >= lengths[1:]).all()):
            raise ValueError(f"lengths must be sorted, got {lengths.tolist()}")
        return self.linear(x[:, : int(lengths[0])])


class _BranchesOnValues(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.small = nn.Linear(4, 1, bias=False)
        self.large = nn.Linear(4, 8, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.large(x) if bool(x.sum() > 0) else self.small(x)


def test_rp_flops_uses_integer_inputs_as_given():
    x, lengths = torch.randn(3, 5, 4), torch.tensor([5, 3, 2])
    given = (x.clone(), lengths.clone())
    # 3 sequences * 5 steps * 4 features * 3 outputs = 180 MACs
    assert rp.flops(_NeedsSortedLengths(), inputs=(x, lengths))["macs"].item() == 180
    assert rp.flops(_NeedsSortedLengths(), inputs={"x": x, "lengths": lengths}
                    )["macs"].item() == 180
    assert torch.equal(x, given[0]) and torch.equal(lengths, given[1])


def test_flop_analysis_uses_inputs_as_given():
    x, lengths = torch.randn(3, 5, 4), torch.tensor([5, 3, 2])
    assert rp.FlopAnalysis(_NeedsSortedLengths(), (x, lengths)).total() == 180


@pytest.mark.parametrize("sign, macs", [(1, 4 * 8), (-1, 4 * 1)])
def test_values_that_steer_the_forward_are_the_given_ones(sign, macs):
    x = sign * torch.ones(1, 4)
    # 4 features * 8 outputs when the sum is positive, 4 * 1 otherwise
    assert rp.flops(_BranchesOnValues(), inputs=x)["macs"].item() == macs
    assert rp.FlopAnalysis(_BranchesOnValues(), x).total() == macs


def test_given_inputs_and_another_batch_size_are_refused():
    from resnet_probe.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match="batch_size=4"):
        rp.flops(_BranchesOnValues(), inputs=torch.ones(1, 4), batch_size=4)


# --- 5. parametrised modules, counted without a copy ----------------------------------


def _conv_net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * 6 * 6, 2))


def _pruned() -> nn.Module:
    model = _conv_net()
    torch.nn.utils.prune.l1_unstructured(model[0], "weight", amount=0.5)
    return model


def _weight_norm() -> nn.Module:
    model = _conv_net()
    model[4] = torch.nn.utils.parametrizations.weight_norm(model[4])
    return model


def _old_weight_norm() -> nn.Module:
    model = _conv_net()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model[4] = torch.nn.utils.weight_norm(model[4])
    return model


@pytest.mark.parametrize("make", [_pruned, _weight_norm, _old_weight_norm],
                         ids=["prune", "parametrizations.weight_norm", "weight_norm"])
def test_parametrised_models_are_counted_and_left_as_they_were(make):
    model = make().train()
    x = torch.randn(2, 3, 8, 8)
    model(x).sum().backward()  # the user's own gradients, which counting must not drop
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    state = copy.deepcopy(model.state_dict())
    hooks = len(model[0]._forward_pre_hooks) + len(model[4]._forward_pre_hooks)

    analysis = rp.FlopAnalysis(model, torch.zeros(1, 3, 8, 8))
    # conv 3*3 * 3 * 4 * 6*6 = 3,888 + linear 144 * 2 = 288
    assert analysis.total() == 3_888 + 288 == _torch_flops(make(), torch.zeros(1, 3, 8, 8))[0] // 2
    assert rp.flops(model, input_size=8)["macs"].item() == 4_176

    assert model.training and all(m.training for m in model.modules())
    assert {name: p.grad for name, p in model.named_parameters()}.keys() == grads.keys()
    assert all(torch.equal(p.grad, grads[name]) for name, p in model.named_parameters())
    assert all(torch.equal(value, state[key]) for key, value in model.state_dict().items())
    assert len(model[0]._forward_pre_hooks) + len(model[4]._forward_pre_hooks) == hooks


# --- 6. a backward that cannot run ------------------------------------------------------


class _ChangesItsInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        x.mul_(2)  # the input the linear saved for its weight gradient
        return y


def test_a_forward_that_changes_its_input_in_place_keeps_its_forward_count():
    x = torch.ones(2, 4)
    for result in (count_module_costs(_ChangesItsInput(), x, "in place"),
                   rp.FlopAnalysis(_ChangesItsInput(), x).result):
        # 2 rows * 4 inputs * 3 outputs = 24 MACs
        assert result.summary["macs"] == 24 and result.summary["flops"] == 48
        assert result.summary["backward_flops"] is None
        assert all(row["backward_flops"] is None for row in result.modules)
        assert any("backward not counted" in note and "inplace operation" in note
                   for note in result.notes), result.notes
    assert torch.equal(x, torch.ones(2, 4))  # counted on stand-ins, not the user's tensor


# --- 7. per-module rows -----------------------------------------------------------------


class _ChildCalledOutside(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.seq = nn.Sequential(nn.Linear(10, 10, bias=False), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq[0](self.seq(x))


def test_module_rows_are_never_negative():
    model = _ChildCalledOutside()
    x = torch.zeros(1, 10)
    # 10 * 10 = 100 MACs per call of seq.0, called twice (inside seq, then on its own)
    assert _torch_flops(model, x)[0] == 2 * 200
    for result in _both_paths(model, x):
        rows = {row["module"]: row for row in result.modules}
        assert rows["seq.0"]["macs"] == 200
        assert all(row["macs"] >= 0 and row["macs_with_elementwise"] >= 0
                   and row["backward_flops"] >= 0 for row in result.modules)
        assert sum(row["macs"] for row in result.modules) == result.summary["macs"] == 200


# --- 8. operators that made a net partial -------------------------------------------------


class _UnpoolNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1, bias=False)
        self.prelu = nn.PReLU()
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.conv(x))
        pooled, indices = self.pool(x)
        first, second = self.unpool(pooled, indices).unsafe_split(2, 1)
        return first + second


def test_prelu_unsafe_split_and_max_unpool_have_formulas():
    model = _UnpoolNet()
    x = torch.zeros(1, 3, 4, 4)
    result = count_module_costs(model, x, "unpool")
    assert not result.summary["partial"] and result.uncounted == {}
    # conv 3 * 4 * 4*4 = 192 MACs (torch's count), the rest moves data or is elementwise
    assert result.summary["macs"] == 192 == _torch_flops(model, x)[0] // 2
    # (b): prelu 4*4*4 = 64 (one per output, as leaky ReLU); max-pool (2*2 - 1) * 4*2*2 = 48;
    # the add 2*4*4 = 32; the unpool scatters and the split views: 0
    assert result.summary["macs_with_elementwise"] == 192 + 64 + 48 + 32
    # fvcore counts none of them (its trace cannot follow max_unpool2d: the conv and PReLU)
    assert result.summary["macs_fvcore_default"] == 192
    assert _fvcore_total(nn.Sequential(model.conv, model.prelu), x) == 192
