"""User-defined architectures built only from the reusable gate modules (not from our ResNet)."""

import torch
from torch import nn

from lcnet_tvm.gates import ChannelGate


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
