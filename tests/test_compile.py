"""Compiled (mask form) vs PyTorch eager, for every zoo model, on random and real inputs."""

import numpy as np
import pytest
import torch

from lcnet_tvm.compiler import compile_model
from lcnet_tvm.models import ZOO, build_model
from lcnet_tvm.verify import compare_with_eager

from .architectures import VGGWithChannelGates
from .conftest import inputs_for, randomize

# Small inputs keep the default run fast: ImageNet-style models at 64x64 (full size under -m slow).
INPUT_SIZE = {name: 32 if name.endswith("cifar") else 64 for name in ZOO}
SAMPLES = {name: 48 if name.endswith("cifar") else 12 for name in ZOO}


def assert_matches_eager(compiled, model, x):
    result, agreement = compare_with_eager(compiled, model, x)
    assert agreement.max_scaled_error <= 1e-4, agreement
    assert agreement.gate_agreement == 1.0, agreement
    kept = np.concatenate([d.reshape(len(x), -1) for d in result.decisions], axis=1)
    # The comparison means something only if gates really vary with the input.
    assert 0.1 < kept.mean() < 0.9
    assert len({row.tobytes() for row in kept}) >= min(10, len(x) // 2)
    return result


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_model_compiled_equals_eager(name, digits):
    torch.manual_seed(0)
    model = randomize(build_model(name, input_size=INPUT_SIZE[name]), inputs_for(digits, INPUT_SIZE[name], 32, seed=9))
    compiled = compile_model(model, name, model.config.input_shape, batch_size=4)
    assert compiled.metadata["gate_form"] == "mask"
    assert all(not kernel["tuned"] for kernel in compiled.metadata["kernels"])
    x = inputs_for(digits, INPUT_SIZE[name], SAMPLES[name], seed=2)
    result = assert_matches_eager(compiled, model, x[:-1])  # an odd count: the last chunk is padded
    assert np.all(result.executed_flops <= compiled.dense_flops * 1.01)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lcnet_resnet18_imagenet", "lcnet_resnet34_imagenet"])
def test_imagenet_models_at_full_resolution(name, digits):
    model = randomize(build_model(name), inputs_for(digits, 224, 8, seed=9))
    compiled = compile_model(model, name, model.config.input_shape)
    assert_matches_eager(compiled, model, inputs_for(digits, 224, 4, seed=4))


def test_a_user_architecture_compiles_without_our_resnet(digits):
    torch.manual_seed(0)
    model = randomize(VGGWithChannelGates(), inputs_for(digits, 8, 32, seed=9))
    compiled = compile_model(model, "user_vgg", (3, 8, 8), batch_size=2)
    x = inputs_for(digits, 8, 30, seed=5)
    assert_matches_eager(compiled, model, x)
