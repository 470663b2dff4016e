import pytest
import torch

from lcnet_tvm.model.flops import FlopsCounter
from lcnet_tvm.model.gates import find_gates
from lcnet_tvm.model.resnet import build_model

from .architectures import VGGWithChannelGates


def resnet20_dense_flops() -> int:
    """Independent count: 3x3 convs, 1x1 downsampling shortcuts and the classifier of ResNet-20 at 32x32."""
    def conv(cin, cout, k, hw):
        return 2 * cin * cout * k * k * hw * hw

    total = conv(3, 16, 3, 32)
    for cin, cout, hw in ((16, 16, 32), (16, 32, 16), (32, 64, 8)):
        total += conv(cin, cout, 3, hw) + conv(cout, cout, 3, hw)  # first block
        total += 2 * 2 * conv(cout, cout, 3, hw)  # two more blocks
        if cin != cout:
            total += conv(cin, cout, 1, hw)
    return total + 2 * 64 * 10


def keeps_for(model, batch, layer_value, channel_fraction):
    keeps = []
    for _, gate in find_gates(model):
        width = gate.fc.out_features
        keep = torch.zeros(batch, width, dtype=torch.bool)
        if gate.kind == "layer":
            keep[:] = layer_value
        else:
            keep[:, : round(width * channel_fraction)] = True
        keeps.append(keep)
    return keeps


def test_dense_flops_match_an_independent_count():
    model = build_model("lcnet_resnet20_cifar")
    counter = FlopsCounter.from_model(model, (3, 32, 32))
    assert counter.dense_flops == resnet20_dense_flops()
    # Gate networks: one Linear(C_in -> 1) and one Linear(C_in -> C_out) per block.
    assert counter.gate_network_flops == sum(2 * g.fc.in_features * g.fc.out_features for _, g in find_gates(model))


def test_executed_flops_follow_the_decisions():
    model = build_model("lcnet_resnet20_cifar")
    counter = FlopsCounter.from_model(model, (3, 32, 32))
    everything = counter.executed_flops(keeps_for(model, 2, True, 1.0))
    assert everything.tolist() == [counter.dense_flops + counter.gate_network_flops] * 2

    # All blocks skipped: stem, 1x1 shortcuts, classifier and the gate networks remain.
    skipped = counter.executed_flops(keeps_for(model, 1, False, 1.0))
    shortcuts = 2 * 16 * 32 * 16 * 16 + 2 * 32 * 64 * 8 * 8
    assert skipped.item() == 2 * 3 * 16 * 9 * 32 * 32 + shortcuts + 2 * 64 * 10 + counter.gate_network_flops

    # Half the channels of every channel gate: both convs of each block cost half.
    block_convs = resnet20_dense_flops() - (2 * 3 * 16 * 9 * 32 * 32 + shortcuts + 2 * 64 * 10)
    half = counter.executed_flops(keeps_for(model, 1, True, 0.5))
    assert half.item() == pytest.approx(everything[0].item() - block_convs / 2)


def test_a_user_architecture_is_counted_from_its_gate_declarations():
    model = VGGWithChannelGates()
    counter = FlopsCounter.from_model(model, (3, 4, 4))
    flops = {op.name: op.dense_flops for op in counter.ops}
    keep_a = torch.tensor([[True] * 4 + [False] * 4])  # half of conv_a's outputs
    keep_b = torch.tensor([[True] * 3 + [False] * 3])  # half of conv_b's outputs
    executed = counter.executed_flops([keep_a, keep_b]).item()
    expected = flops["conv_a"] / 2 + flops["conv_b"] / 4 + flops["conv_c"] / 2 + counter.gate_network_flops
    assert executed == pytest.approx(expected)


def test_a_wrong_declaration_names_the_gate():
    model = VGGWithChannelGates()
    model.gate_a.producer = "conv_missing"
    with pytest.raises(ValueError, match="gate 'gate_a' declares 'conv_missing'"):
        FlopsCounter.from_model(model, (3, 4, 4))


def test_counter_round_trips_through_json():
    model = VGGWithChannelGates()
    counter = FlopsCounter.from_model(model, (3, 4, 4))
    again = FlopsCounter.from_json(counter.to_json())
    keeps = [torch.rand(3, 8) > 0.5, torch.rand(3, 6) > 0.5]
    torch.testing.assert_close(again.executed_flops(keeps), counter.executed_flops(keeps))
