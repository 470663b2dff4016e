"""The skipping eager runner equals the mask form, and records exactly what it computed."""

import pytest
import torch

from lcnet_tvm.errors import ModelError
from lcnet_tvm.evaluation.eager_skip import SkippingResNet
from lcnet_tvm.model.flops import FlopsCounter
from lcnet_tvm.model.gates import LayerGate, WithGateScores, find_gates
from lcnet_tvm.model.resnet import LCResNet, zoo_config

from .architectures import VGGWithChannelGates
from .conftest import randomize

CONFIGS = {
    "cifar": zoo_config("lcnet_resnet20_cifar").replace(widths=(6, 12, 12), input_size=16),
    "imagenet": zoo_config("lcnet_resnet18_imagenet").replace(widths=(8, 8, 16, 16), input_size=32, num_classes=10),
}


def gated_model(config, gate_bias: float = 0.0, layer_bias: float | None = None) -> LCResNet:
    torch.manual_seed(0)
    model = randomize(LCResNet(config), torch.randn(64, *config.input_shape), gate_bias=gate_bias)
    if layer_bias is not None:
        with torch.no_grad():
            for _, gate in find_gates(model):
                if isinstance(gate, LayerGate):
                    gate.fc.bias.fill_(layer_bias)
    return model


@pytest.mark.parametrize("stem", CONFIGS)
@pytest.mark.parametrize(
    ("gate_bias", "layer_bias"),
    [(0.0, None), (5.0, None), (-5.0, None), (-5.0, 5.0)],
    ids=["input-dependent", "all-keep", "all-skip", "blocks-kept-no-channels"],
)
@pytest.mark.parametrize("batch", [1, 5])
def test_skipping_equals_the_mask_form(stem, gate_bias, layer_bias, batch):
    config = CONFIGS[stem]
    model = gated_model(config, gate_bias, layer_bias)
    skipping = SkippingResNet(model)
    counter = FlopsCounter.from_model(model, config.input_shape)
    generator = torch.Generator().manual_seed(3)
    with torch.inference_mode():
        for _ in range(6):
            x = torch.randn(batch, *config.input_shape, generator=generator)
            logits, *scores = WithGateScores(model)(x)
            assert (skipping(x) - logits).abs().max() <= 1e-4
            computed = skipping.computed_keeps()
            decided = counter.executed_flops([score > 0 for score in scores])
            executed = counter.executed_flops(computed)
            if batch == 1:  # one sample: it computes exactly what the decisions call for
                assert torch.allclose(executed, decided)
            else:  # kept channels are shared by the samples that run the block
                assert (executed >= decided - 1e-3).all()


def test_the_recorded_work_follows_the_gates():
    model = gated_model(CONFIGS["cifar"], gate_bias=-5.0)
    skipping = SkippingResNet(model)
    with torch.inference_mode():
        skipping(torch.randn(2, *CONFIGS["cifar"].input_shape))
    assert not any(keep.any() for keep in skipping.computed_keeps())


def test_only_lcresnets_are_understood():
    with pytest.raises(ModelError, match="knows LCResNet models only, got VGGWithChannelGates"):
        SkippingResNet(VGGWithChannelGates())
