"""Shared fixtures: models with input-dependent gates, the digits data, compiled artifacts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lcnet_tvm.data import load_digits
from lcnet_tvm.gates import find_gates


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Make an untrained model behave like a trained one: input-dependent gates, non-trivial BN.

    Gate biases are zeroed and weights drawn wide, so roughly half of all
    decisions keep and which ones depends on the input. Batch-norm statistics
    are randomised so that folded constants are not identities.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, gate in find_gates(model):
            gate.fc.weight.copy_(torch.randn(gate.fc.weight.shape, generator=generator) * 2.0)
            gate.fc.bias.zero_()
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                channels = module.num_features
                module.running_mean.copy_(torch.randn(channels, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(channels, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(channels, generator=generator) * 0.5 + 0.5)
                module.bias.copy_(torch.randn(channels, generator=generator) * 0.1)
    return model.eval()


@pytest.fixture(scope="session")
def digits():
    return load_digits()
