"""Gate discovery on the Relax graph, checked against hand-written IR and against the gates' own declarations."""

import logging

import pytest
from lcnet_tvm.passes.gate_regions import find_gate_regions
from tvm.script import ir as I
from tvm.script import relax as R

from lcnet_tvm.compiler.importer import import_model
from lcnet_tvm.model.flops import FlopsCounter
from lcnet_tvm.model.resnet import build_model

from ..architectures import BottleneckNet, VGGWithChannelGates


@I.ir_module
class LayerGatedBlock:
    @R.function
    def main(
        x: R.Tensor((1, 4, 8, 8), "float32"),
        w1: R.Tensor((4, 4, 3, 3), "float32"),
        w2: R.Tensor((4, 4, 3, 3), "float32"),
        gate_w: R.Tensor((4, 1), "float32"),
    ):
        with R.dataflow():
            pooled = R.mean(x, axis=[2, 3])
            gate_logits = R.matmul(pooled, gate_w)
            score = R.clip(gate_logits, 0, 1)
            score_2d = R.expand_dims(score, axis=[2])
            score_4d = R.expand_dims(score_2d, axis=[3])
            conv1 = R.nn.conv2d(x, w1, padding=[1, 1, 1, 1])
            relu1 = R.nn.relu(conv1)
            conv2 = R.nn.conv2d(relu1, w2, padding=[1, 1, 1, 1])
            gated = R.multiply(conv2, score_4d)
            out = R.add(x, gated)
            gv = (out, score)
            R.output(gv)
        return gv


@I.ir_module
class ScoreUsedTwice:
    @R.function
    def main(x: R.Tensor((1, 4, 8, 8), "float32"), gate_w: R.Tensor((4, 1), "float32")):
        with R.dataflow():
            score = R.clip(R.matmul(R.mean(x, axis=[2, 3]), gate_w), 0, 1)
            score_4d = R.reshape(score, (1, 1, 1, 1))
            first = R.multiply(x, score_4d)
            second = R.multiply(R.nn.relu(x), score_4d)
            out = R.add(first, second)
            gv = (out, score)
            R.output(gv)
        return gv


def test_a_layer_gate_controls_exactly_its_branch():
    (region,) = find_gate_regions(LayerGatedBlock["main"])
    assert region.kind == "layer" and not region.problem
    assert str(region.multiply.name) == "gated"
    # The gate network and the shortcut are needed either way; only the branch is skipped.
    assert {str(var.name) for var in region.region} == {"conv1", "relu1", "conv2"}
    assert region.dense_flops == 2 * 2 * (4 * 8 * 8) * (4 * 3 * 3)


def test_a_gate_pattern_it_does_not_understand_is_reported(caplog):
    with caplog.at_level(logging.WARNING):
        (region,) = find_gate_regions(ScoreUsedTwice["main"])
    assert region.problem == "its score multiplies 2 tensors (expected exactly one)"
    assert "gate 0 (layer) left in mask form" in caplog.text


@pytest.mark.parametrize("name", ["lcnet_resnet20_cifar", "lcnet_resnet18_imagenet", "user_bottleneck"])
def test_graph_regions_agree_with_the_gates_declarations(name):
    """The graph analysis and the declaration-based FLOPs accounting are independent; they must agree."""
    model = BottleneckNet() if name == "user_bottleneck" else build_model(name, input_size=32)
    imported = import_model(model, (1, 3, 32, 32))
    regions = find_gate_regions(imported.mod["main"])
    counter = FlopsCounter.from_model(model, (3, 32, 32))
    assert [r.kind for r in regions] == [g.kind for g in imported.gates]
    for index, region in enumerate(regions):
        assert not region.problem
        declared = sum(
            op.dense_flops
            for op in counter.ops
            if index in op.layer_gates or index in (op.output_gate, op.input_gate)
        )
        assert region.dense_flops == declared, imported.gates[index].name


def test_a_user_architecture_is_found_the_same_way():
    imported = import_model(VGGWithChannelGates(), (1, 3, 8, 8))
    gate_a, gate_b = find_gate_regions(imported.mod["main"])
    assert [str(v.name) for v in gate_b.producers + gate_b.consumers] and not gate_b.problem
    assert (len(gate_a.producers), len(gate_a.consumers)) == (1, 1)
    # gate_b's own network pools the channels gate_a selected: not a pattern a gather can serve yet.
    assert gate_a.problem == "the gated channels are also read by relax.mean, not only by convs"
