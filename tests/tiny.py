"""A tiny gated model for tests that tune (few kernels), and a database tuned for it."""

import pytest
import torch

from lcnet_tvm.compiler import tune_model
from lcnet_tvm.models import LCResNet, zoo_config

from .conftest import randomize

SHAPE = (3, 8, 8)
BUCKETS = 2  # few buckets, few kernels: a quick tune


def tiny_model(width: int = 8) -> torch.nn.Module:
    """Stem, one gated block (layer and channel gate), head."""
    torch.manual_seed(0)
    config = zoo_config("lcnet_resnet20_cifar").replace(blocks_per_stage=(1,), widths=(width,), input_size=8)
    return randomize(LCResNet(config), torch.randn(64, *SHAPE, generator=torch.Generator().manual_seed(1)))


@pytest.fixture(scope="session")
def tuned(tmp_path_factory, loopback_rpc):
    """A database tuned for the tiny model, candidates measured on two RPC servers: (model, directory, report).

    (Measuring on this machine is tested by the Ctrl-C test.)
    """
    model = tiny_model()
    directory = tmp_path_factory.mktemp("tuning") / "db"
    budget = 40  # the tiny model has 31 kernels
    report = tune_model(
        model, SHAPE, "x86", budget, str(directory), channel_buckets=BUCKETS, show_progress=False,
        remote=loopback_rpc.tracker,
    )
    return model, directory, report
