"""Compiled (gated: lowered gates) vs PyTorch eager, end to end, on random and real inputs.

Over this file: every zoo model, two user architectures built only from the
gate modules, batch 1 and batch > 1 (with a padded last chunk), inputs that make
every gate skip and every gate keep: 1,259 inputs in all.
"""

import logging

import numpy as np
import pytest
import torch

from lcnet_tvm import CompileOptions, compile_model
from lcnet_tvm.model.flops import FlopsCounter
from lcnet_tvm.model.resnet import ZOO, LCResNet, build_model, zoo_config

from .architectures import BottleneckNet, VGGWithChannelGates
from .conftest import inputs_for, randomize
from .equivalence import check_against_eager

# Small inputs keep the default run fast: ImageNet-style models at 64x64 (full size under -m slow).
INPUT_SIZE = {name: 32 if name.endswith("cifar") else 64 for name in ZOO}
SAMPLES = {name: 80 if name.endswith("cifar") else 20 for name in ZOO}  # x2: random and real images


#: Deeper variants of a family another zoo model covers, left to -m slow (LC-ResNet-110: 75 s on 2 cores).
SLOW_ZOO = {"lcnet_resnet110_cifar"}


@pytest.mark.parametrize("name", [pytest.param(name, marks=[pytest.mark.slow] if name in SLOW_ZOO else []) for name in ZOO])
def test_zoo_model_gated_equals_eager(name, digits):
    torch.manual_seed(0)
    model = randomize(build_model(name, input_size=INPUT_SIZE[name]), inputs_for(digits, INPUT_SIZE[name], 32, seed=9))
    compiled = compile_model(model, model.config.input_shape, CompileOptions(batch_size=4), name=name)
    assert compiled.metadata.gate_form == "gated"
    assert all(gate.lowered for gate in compiled.metadata.gates)
    assert all(not kernel.tuned for kernel in compiled.metadata.kernels)
    x = inputs_for(digits, INPUT_SIZE[name], SAMPLES[name], seed=2)
    check_against_eager(compiled, model, x[:-1])  # an odd count: the last chunk is padded


@pytest.mark.parametrize(
    ("bias", "batch"),
    [(None, 1), (None, 3), (-100.0, 1), (100.0, 1)],  # batched padding is the input-dependent case's
    ids=["input-dependent-1", "input-dependent-3", "all-skip-1", "all-keep-1"],
)
def test_resnet20_every_gate_skipping_or_keeping(digits, batch, bias):
    torch.manual_seed(0)
    model = randomize(build_model("lcnet_resnet20_cifar"), inputs_for(digits, 32, 32, seed=9), 4, bias or 0.0)
    compiled = compile_model(model, (3, 32, 32), CompileOptions(batch_size=batch), name="lcnet_resnet20_cifar")
    result = check_against_eager(compiled, model, inputs_for(digits, 32, 24, seed=5), varying=bias is None)
    if bias is not None:
        kept = np.concatenate(result.decisions, axis=1)
        assert kept.all() if bias > 0 else not kept.any()
        gate_networks = FlopsCounter.from_json(compiled.metadata.flops).gate_network_flops
        fraction = (result.executed_flops - gate_networks) / compiled.dense_flops
        # All-skip: only the shortcuts, stem and head run (and the gate networks, always).
        assert np.allclose(fraction, 1.0) if bias > 0 else np.all(fraction < 0.1)


def test_executed_flops_equal_the_decisions_when_every_count_is_a_bucket(digits):
    """At batch 1 with one bucket per channel count, the compiled code runs exactly what the gates decide.

    As a host program (the default on CPUs): its workspace plan holds the most intermediates here (TVM's buffer passes once
    under-allocated them on this model, and the kernels corrupted the heap)."""
    torch.manual_seed(0)
    config = zoo_config("lcnet_resnet20_cifar").replace(widths=(8, 12, 16))
    model = randomize(LCResNet(config), inputs_for(digits, 32, 32, seed=9), seed=4)
    options = CompileOptions(channel_buckets=16)
    compiled = compile_model(model, (3, 32, 32), options, name="narrow_resnet20")
    result = check_against_eager(compiled, model, inputs_for(digits, 32, 24, seed=7))
    np.testing.assert_allclose(result.executed_flops, result.decided_flops, rtol=1e-6)
    assert result.executed_flops.min() < 0.6 * compiled.dense_flops


def test_mask_form_computes_everything(digits):
    torch.manual_seed(0)
    model = randomize(build_model("lcnet_resnet20_cifar"), inputs_for(digits, 32, 32, seed=9), seed=4)
    compiled = compile_model(model, (3, 32, 32), CompileOptions(batch_size=2, gate_form="mask"), name="lcnet_resnet20_cifar")
    assert not any(gate.lowered for gate in compiled.metadata.gates)
    result = check_against_eager(compiled, model, inputs_for(digits, 32, 24, seed=3))
    gate_networks = FlopsCounter.from_json(compiled.metadata.flops).gate_network_flops
    np.testing.assert_allclose(result.executed_flops, compiled.dense_flops + gate_networks)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lcnet_resnet18_imagenet", "lcnet_resnet34_imagenet"])
def test_imagenet_models_at_full_resolution(name, digits):
    model = randomize(build_model(name), inputs_for(digits, 224, 8, seed=9))
    compiled = compile_model(model, model.config.input_shape, name=name)
    check_against_eager(compiled, model, inputs_for(digits, 224, 4, seed=4))


@pytest.mark.parametrize("batch", [1, 2])
def test_a_user_vgg_with_channel_gates_only(digits, batch, caplog):
    torch.manual_seed(0)
    model = randomize(VGGWithChannelGates(), inputs_for(digits, 8, 32, seed=9))
    with caplog.at_level(logging.WARNING):
        compiled = compile_model(model, (3, 8, 8), CompileOptions(batch_size=batch), name="user_vgg")
    # gate_b's network reads gate_a's gated channels: gate_a must stay in mask form, and say why.
    assert [gate.lowered for gate in compiled.metadata.gates] == [False, True]
    assert "gate 0 (channel) left in mask form: the gated channels are also read by relax.mean" in caplog.text
    check_against_eager(compiled, model, inputs_for(digits, 8, 50, seed=5))


@pytest.mark.parametrize("batch", [1, 2])
def test_a_user_bottleneck_resnet(digits, batch):
    torch.manual_seed(0)
    model = randomize(BottleneckNet(), inputs_for(digits, 16, 32, seed=9), seed=2)
    compiled = compile_model(model, (3, 16, 16), CompileOptions(batch_size=batch), name="user_bottleneck")
    assert all(gate.lowered for gate in compiled.metadata.gates)
    result = check_against_eager(compiled, model, inputs_for(digits, 16, 30, seed=6))
    assert 0.0 < np.concatenate(result.decisions[::2], axis=1).mean() < 1.0  # layer gates vary
