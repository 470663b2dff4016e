"""LC-Net backbones (CIFAR- and ImageNet-style ResNets with L-Net and C-Net gates) and the zoo."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lcnet_tvm.errors import ModelError
from lcnet_tvm.model.gates import ChannelGate, LayerGate


class GatedBasicBlock(nn.Module):
    """ResNet basic block with an optional layer gate and an optional channel gate.

    ``relu(shortcut(x) + layer_score * bn2(conv2(relu(bn1(conv1(x))) * channel_scores)))``.
    Both gates read the block input ``x``. The shortcut always runs (identity, or
    1x1 conv + BN when the shape changes), so a skipped block passes ``relu(shortcut(x))``.
    """

    def __init__(self, in_channels: int, channels: int, stride: int, layer_gate: bool, channel_gate: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )
        self.layer_gate = LayerGate(in_channels, gated=("conv1", "conv2")) if layer_gate else None
        self.channel_gate = (
            ChannelGate(in_channels, channels, producer="conv1", consumers=("conv2",)) if channel_gate else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        if self.channel_gate is not None:
            h = h * self.channel_gate(x)[:, :, None, None]
        h = self.bn2(self.conv2(h))
        if self.layer_gate is not None:
            h = h * self.layer_gate(x)[:, :, None, None]
        return F.relu(self.shortcut(x) + h)


@dataclass(frozen=True)
class ResNetConfig:
    """Architecture of an LC-Net ResNet; everything a checkpoint needs to rebuild it."""

    stem: str  # "cifar": 3x3 conv; "imagenet": 7x7/2 conv + 3x3/2 max-pool
    blocks_per_stage: tuple[int, ...]
    widths: tuple[int, ...]
    num_classes: int
    input_size: int
    in_channels: int = 3
    layer_gates: bool = True
    channel_gates: bool = True

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape of one sample, (C, H, W)."""
        return (self.in_channels, self.input_size, self.input_size)

    def replace(self, **changes) -> ResNetConfig:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ResNetConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ModelError(f"unknown model config keys {sorted(unknown)}; expected a subset of {sorted(fields)}")
        data = dict(data)
        for key in ("blocks_per_stage", "widths"):
            data[key] = tuple(data[key])
        return cls(**data)


class LCResNet(nn.Module):
    """A ResNet backbone with LC-Net gates on every residual block."""

    def __init__(self, config: ResNetConfig):
        super().__init__()
        if config.stem not in ("cifar", "imagenet"):
            raise ModelError(f"unknown stem {config.stem!r}; use 'cifar' or 'imagenet'")
        if len(config.blocks_per_stage) != len(config.widths):
            raise ModelError(
                f"blocks_per_stage {config.blocks_per_stage} and widths {config.widths} must have one entry per stage"
            )
        self.config = config
        first_width = config.widths[0]
        if config.stem == "cifar":
            self.stem = nn.Sequential(
                nn.Conv2d(config.in_channels, first_width, 3, 1, 1, bias=False),
                nn.BatchNorm2d(first_width),
                nn.ReLU(),
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(config.in_channels, first_width, 7, 2, 3, bias=False),
                nn.BatchNorm2d(first_width),
                nn.ReLU(),
                nn.MaxPool2d(3, 2, 1),
            )
        blocks = []
        in_channels = first_width
        for stage, (count, width) in enumerate(zip(config.blocks_per_stage, config.widths)):
            for index in range(count):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(
                    GatedBasicBlock(in_channels, width, stride, config.layer_gates, config.channel_gates)
                )
                in_channels = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(in_channels, config.num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.stem(x))
        return self.fc(h.mean(dim=(2, 3)))


def _cifar(depth: int) -> ResNetConfig:
    per_stage = (depth - 2) // 6
    return ResNetConfig("cifar", (per_stage,) * 3, (16, 32, 64), num_classes=10, input_size=32)


def _imagenet(blocks_per_stage: tuple[int, ...]) -> ResNetConfig:
    return ResNetConfig("imagenet", blocks_per_stage, (64, 128, 256, 512), num_classes=1000, input_size=224)


#: The model zoo: every command's ``--model`` accepts these names.
ZOO: dict[str, ResNetConfig] = {
    "lcnet_resnet20_cifar": _cifar(20),
    "lcnet_resnet56_cifar": _cifar(56),
    "lcnet_resnet110_cifar": _cifar(110),
    "lcnet_resnet18_imagenet": _imagenet((2, 2, 2, 2)),
    "lcnet_resnet34_imagenet": _imagenet((3, 4, 6, 3)),
}


def zoo_config(name: str) -> ResNetConfig:
    try:
        return ZOO[name]
    except KeyError:
        raise ModelError(
            f"unknown model {name!r}; use one of {', '.join(ZOO)} or a checkpoint path (.pt)"
        ) from None


def build_model(name: str, **overrides) -> LCResNet:
    """Build a zoo model with freshly initialised weights; ``overrides`` change its config."""
    return LCResNet(zoo_config(name).replace(**overrides))
