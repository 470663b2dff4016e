"""Shared fixtures: models with input-dependent gates, the digits data, compiled artifacts."""

from __future__ import annotations

import gzip
import json

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, settings
from torch import nn

from lcnet_tvm.model.data import load_digits
from lcnet_tvm.model.gates import WithGateScores, find_gates
from lcnet_tvm.model.train import recalibrate_batch_norm
from lcnet_tvm.schedules import shipped
from lcnet_tvm.schedules.database import TARGET_FILE, target_identity
from lcnet_tvm.targets import get_target

# Registered here, before hypothesis's plugin reads ``--hypothesis-profile``: a profile registered in a
# test module is unknown when the option is read. "ci" is the default; the option overrides it.
settings.register_profile(
    "ci", max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), print_blob=True
)
settings.register_profile("long", max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), print_blob=True)
settings.load_profile("ci")

#: Session fixtures that take minutes (a tune measured over RPC): the tests using them share one xdist worker.
SHARED_SESSION_SETUP = ("tuned", "loopback_rpc")
#: Seconds a test behind the slow, arm or cuda marker may take before it is stopped with every thread's
#: stack (pytest-timeout); the default run's limit is ``timeout`` in pyproject.toml.
MARKED_RUN_TIMEOUT = 3600


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    """Keep each expensive fixture's tests in one pytest-xdist worker (``--dist loadgroup``), so it is set up once.

    Tests using a fixture of :data:`SHARED_SESSION_SETUP` form one group; tests using a module-scoped
    fixture (a compiled artifact) form their module's group; every other test goes to whichever worker is free.
    Tests behind a marker get the longer :data:`MARKED_RUN_TIMEOUT`, unless ``--timeout`` was given.
    """
    marked_timeout = config.getoption("timeout") is None
    for item in items:
        if marked_timeout and any(item.get_closest_marker(name) for name in ("slow", "arm", "cuda")):
            item.add_marker(pytest.mark.timeout(MARKED_RUN_TIMEOUT))
        fixtures = item._fixtureinfo.name2fixturedefs
        if any(name in fixtures for name in SHARED_SESSION_SETUP):
            item.add_marker(pytest.mark.xdist_group("loopback_rpc"))
        elif any(definitions[-1].scope == "module" for definitions in fixtures.values()):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


def randomize(model: nn.Module, calibration: torch.Tensor, seed: int = 0, gate_bias: float = 0.0) -> nn.Module:
    """Make an untrained model behave like a trained one: input-dependent gates, calibrated BN, sane logits.

    Gate weights are drawn at unit scale and gate biases set to ``gate_bias``:
    with 0, roughly half of all decisions keep and which ones depends on the
    input; with a large negative (positive) bias every gate skips (keeps). Batch-norm scales and
    shifts are random (folded constants are not identities), the last batch
    norm of each residual branch scales by 0.1..0.3 (trained deep ResNets keep
    their branches small; "zero-init residual" starts them there), and the
    running statistics are measured on ``calibration`` inputs drawn like the
    test's inputs. Without that, a deep random ResNet amplifies float32
    rounding far beyond what a trained one does, and eager PyTorch itself is
    more than 1e-4 away from a float64 run of the same model.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, gate in find_gates(model):
            gate.fc.weight.copy_(torch.randn(gate.fc.weight.shape, generator=generator) * gate.fc.in_features**-0.5)
            gate.fc.bias.fill_(gate_bias)
        for name, module in model.named_modules():
            if isinstance(module, nn.BatchNorm2d):
                channels = module.num_features
                low, high = (0.1, 0.3) if name.endswith("bn2") else (0.5, 1.0)
                module.weight.copy_(low + (high - low) * torch.rand(channels, generator=generator))
                module.bias.copy_(torch.randn(channels, generator=generator) * 0.1)
    recalibrate_batch_norm(model, calibration, batch_size=64)
    _scale_classifier(model.eval(), calibration)
    return model


def _scale_classifier(model: nn.Module, calibration: torch.Tensor, largest_logit: float = 10.0) -> None:
    """Scale the last Linear outside the gates so the largest |logit| on ``calibration`` is ``largest_logit``.

    Random heads on random features give logits in the hundreds, where float32
    keeps only about 1e-5 absolute precision, eager PyTorch included; trained
    classifiers give logits around 10.
    """
    gate_modules = {id(module) for _, gate in find_gates(model) for module in gate.modules()}
    heads = [m for m in model.modules() if isinstance(m, nn.Linear) and id(m) not in gate_modules]
    if not heads:
        return
    with torch.no_grad():
        logits = WithGateScores(model)(calibration)[0]
        factor = largest_logit / logits.abs().max().clamp(min=1e-6)
        heads[-1].weight.mul_(factor)
        heads[-1].bias.mul_(factor)


def inputs_for(digits, size: int, count: int, seed: int) -> torch.Tensor:
    """Random inputs at several scales, plus real digit images resized to the model's input."""
    generator = torch.Generator().manual_seed(seed)
    scales = torch.tensor([0.1, 1.0, 3.0]).repeat_interleave(-(-count // 3))[:count]
    random = torch.randn(count, 3, size, size, generator=generator) * scales[:, None, None, None]
    chosen = torch.randperm(len(digits.x_test), generator=generator)[:count]
    real = F.interpolate(digits.x_test[chosen], size=(size, size), mode="bilinear", align_corners=False)
    return torch.cat([random, real])


@pytest.fixture(scope="session")
def digits():
    return load_digits()


@pytest.fixture(scope="session")
def loopback_rpc(tmp_path_factory):
    """TVM's RPC tracker with two servers (this machine's Python) on loopback, and a standalone server."""
    import sys  # noqa: PLC0415

    from .rpc_devices import rpc_devices  # noqa: PLC0415

    with rpc_devices(tmp_path_factory.mktemp("rpc"), "x86-loopback", [sys.executable, sys.executable]) as devices:
        yield devices



@pytest.fixture(scope="session")
def tuned(tmp_path_factory, loopback_rpc):
    """A database tuned for the tiny model, candidates measured on two RPC servers: (model, directory, report).

    One tune shared by the tuning and bench tests. (Measuring on this machine is tested by the Ctrl-C test.)
    """
    from lcnet_tvm import CompileOptions, tune_model  # noqa: PLC0415

    from .tiny import BUCKETS, SHAPE, TUNING_BUDGET, tiny_model  # noqa: PLC0415 (tiny imports this module)

    model = tiny_model()
    directory = tmp_path_factory.mktemp("tuning") / "db"
    report = tune_model(
        model, SHAPE, CompileOptions(channel_buckets=BUCKETS, database=directory), TUNING_BUDGET, show_progress=False,
        remote=loopback_rpc.tracker,
    )
    return model, directory, report


@pytest.fixture
def shipped_tree(tmp_path, monkeypatch):
    """Replace the shipped records by empty databases: ``shipped_tree(architecture, *targets)`` makes them."""
    root = tmp_path / "shipped"
    monkeypatch.setattr(shipped, "SHIPPED_TUNING_DIR", root)
    monkeypatch.setenv("LCNET_TVM_CACHE", str(tmp_path / "cache"))

    def make(architecture: str, *targets: str) -> None:
        for name in targets:
            directory = root / name / architecture
            directory.mkdir(parents=True)
            (directory / TARGET_FILE).write_text(json.dumps(target_identity(get_target(name).config())))
            for file in shipped.COMPRESSED_FILES:
                gzip.open(directory / file, "wb").close()

    return make
