"""A tiny gated model for tests that tune: few kernels."""

import torch

from lcnet_tvm.model.resnet import LCResNet, zoo_config

from .conftest import randomize

SHAPE = (3, 8, 8)
BUCKETS = 2  # few buckets, few kernels: a quick tune
#: Trials of the tests' tunes: the tiny model has 19 kernels, one trial each and a few more.
TUNING_BUDGET = 24


def tiny_model(width: int = 8) -> torch.nn.Module:
    """Stem, one gated block (layer and channel gate), head."""
    torch.manual_seed(0)
    config = zoo_config("lcnet_resnet20_cifar").replace(blocks_per_stage=(1,), widths=(width,), input_size=8)
    return randomize(LCResNet(config), torch.randn(64, *SHAPE, generator=torch.Generator().manual_seed(1)))
