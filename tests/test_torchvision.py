"""Real torchvision models, in the second CI environment (torch 2.14.1 + torchvision 0.29.1).

torchvision does not import beside the main environment's CPU torch 2.13 wheel, so these tests
skip there; ``.ci/run`` runs them in their own environment with
RESNET_PROBE_REQUIRE_TORCHVISION=1, where a missing torchvision fails instead of skipping.
"""

from __future__ import annotations

import os

import pytest
import torch

from resnet_probe.zoo import build_model

pytestmark = pytest.mark.torchvision


@pytest.fixture(scope="module")
def torchvision():
    try:
        import torchvision
    except Exception as error:  # noqa: BLE001 - an ops-loading failure is not an ImportError
        if os.environ.get("RESNET_PROBE_REQUIRE_TORCHVISION") == "1":
            pytest.fail(f"torchvision is required here but does not import: {error}")
        pytest.skip(f"torchvision does not import here: {error}")
    return torchvision


@pytest.mark.parametrize("name", ["resnet50", "resnext50_32x4d", "resnext101_32x8d",
                                  "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2"])
def test_torchvision_weights_give_identical_logits(torchvision, name):
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)().eval()
    ours = build_model(name).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))
