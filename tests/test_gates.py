import pytest
import torch
from torch import nn

from lcnet_tvm.model.gates import ChannelGate, LayerGate, WithGateScores, decisions, find_gates, record_gate_scores


def test_score_is_clamped_logits_and_zero_means_skip():
    gate = LayerGate(4, gated=("branch",)).eval()
    with torch.no_grad():
        gate.fc.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
        gate.fc.bias.zero_()
    x = torch.zeros(3, 4, 2, 2)
    x[0, 0] = -0.5  # logit -0.5: skip
    x[1, 0] = 0.25  # logit 0.25: keep, scale 0.25
    x[2, 0] = 3.0  # logit 3: keep, scale 1
    scores = gate(x)
    assert scores.shape == (3, 1)
    torch.testing.assert_close(scores[:, 0], torch.tensor([0.0, 0.25, 1.0]))
    assert decisions(scores)[:, 0].tolist() == [False, True, True]


def test_training_forward_equals_inference_and_closed_gates_get_gradient():
    torch.manual_seed(0)
    gate = ChannelGate(8, 6, producer="conv1", consumers=("conv2",))
    with torch.no_grad():
        gate.fc.weight.normal_(std=2.0)
        gate.fc.bias.zero_()
    x = torch.randn(5, 8, 3, 3)
    train_scores = gate.train()(x)
    torch.testing.assert_close(train_scores, gate.eval()(x))
    assert (train_scores == 0).any(), "the test needs some closed channels"
    train_scores = gate.train()(x)
    train_scores.sum().backward()
    # Every logit below 1 (closed ones included) passes gradient straight through.
    assert gate.fc.bias.grad.abs().min() > 0


class TwoBlockNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.gate_b = LayerGate(3, gated=("conv2",))
        self.gate_a = ChannelGate(3, 4, producer="conv1", consumers=("conv2",))

    def forward(self, x):
        h = self.conv1(x) * self.gate_a(x)[:, :, None, None]
        return (self.conv2(h) * self.gate_b(x)[:, :, None, None]).mean(dim=(2, 3))


def test_gate_outputs_follow_module_order_not_call_order():
    model = TwoBlockNet().eval()
    assert [name for name, _ in find_gates(model)] == ["gate_b", "gate_a"]
    logits, first, second = WithGateScores(model)(torch.randn(2, 3, 5, 5))
    assert logits.shape == (2, 4) and first.shape == (2, 1) and second.shape == (2, 4)


def test_a_gate_that_runs_twice_is_rejected():
    gate = LayerGate(3, gated=())
    with pytest.raises(RuntimeError, match="ran 2 times"):
        with record_gate_scores(gate):
            gate(torch.randn(1, 3, 2, 2))
            gate(torch.randn(1, 3, 2, 2))


def test_bad_gate_sizes_are_rejected():
    with pytest.raises(ValueError, match="in_channels=0"):
        LayerGate(0, gated=())
