"""User-defined architectures built only from the reusable gate modules (not from our ResNet)."""

import torch
from torch import nn

from lcnet_tvm import ChannelGate, LayerGate


class VGGWithChannelGates(nn.Module):
    """A user architecture: plain conv chain, each conv's output channels gated, read by the next conv."""

    def __init__(self):
        super().__init__()
        self.conv_a = nn.Conv2d(3, 8, 3, padding=1)
        self.conv_b = nn.Conv2d(8, 6, 3, padding=1)
        self.conv_c = nn.Conv2d(6, 4, 3, padding=1)
        self.gate_a = ChannelGate(3, 8, producer="conv_a", consumers=("conv_b",))
        self.gate_b = ChannelGate(8, 6, producer="conv_b", consumers=("conv_c",))

    def forward(self, x):
        h = torch.relu(self.conv_a(x)) * self.gate_a(x)[:, :, None, None]
        h = torch.relu(self.conv_b(h)) * self.gate_b(h)[:, :, None, None]
        return self.conv_c(h).mean(dim=(2, 3))


class GatedBottleneck(nn.Module):
    """A bottleneck residual block: layer gate over the whole branch, channel gate on the 3x3 conv."""

    def __init__(
        self, in_channels: int, mid: int, out_channels: int, stride: int, layer_gate: bool = True, channel_gate: bool = True
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride), nn.BatchNorm2d(out_channels))
        self.skip = LayerGate(in_channels, gated=("conv1", "conv2", "conv3")) if layer_gate else None
        self.select = ChannelGate(in_channels, mid, producer="conv2", consumers=("conv3",)) if channel_gate else None

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        h = torch.relu(self.bn2(self.conv2(h)))
        if self.select is not None:
            h = h * self.select(x)[:, :, None, None]
        h = self.bn3(self.conv3(h))
        if self.skip is not None:
            h = h * self.skip(x)[:, :, None, None]
        return torch.relu(h + self.shortcut(x))


class BottleneckNet(nn.Module):
    """A user's bottleneck ResNet built from the gate modules only (widths not multiples of 8 included)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1, bias=False), nn.BatchNorm2d(12), nn.ReLU())
        self.stages = nn.Sequential(
            GatedBottleneck(12, 6, 24, 1), GatedBottleneck(24, 6, 24, 1), GatedBottleneck(24, 10, 40, 2)
        )
        self.head = nn.Linear(40, num_classes)

    def forward(self, x):
        return self.head(self.stages(self.stem(x)).mean(dim=(2, 3)))
