"""The strongest eager LC-Net we can write: real block skipping and channel gathering in PyTorch.

The mask form (:mod:`lcnet_tvm.model.resnet`) computes every block and channel and
multiplies by the gate scores. :class:`SkippingResNet` runs the same
:class:`~lcnet_tvm.model.resnet.LCResNet` (same weights, same outputs up to float
rounding) the way a careful PyTorch user would, to give the compiler a fair
opponent:

* batch norm folded into the conv weights once, at construction;
* a layer gate that skips a sample drops it from the block (``index_select`` on
  the batch, ``index_add`` of the branch back onto the shortcut); a block no
  sample keeps is not run at all;
* a channel gate computes only the channels some remaining sample keeps
  (``index_select`` of the weights of its producer's outputs and its consumer's
  inputs), scaled by the gate scores, so per sample it equals the mask form.

Data-dependent Python branches and ``nonzero`` make it hostile to graph
capture: ``torch.compile`` breaks the graph at each (see :mod:`lcnet_tvm.evaluation.bench`).
Each forward (unless ``record=False``) records, per gate, which blocks and channels it computed for each
sample (:attr:`SkippingResNet.computed`) so executed FLOPs are counted from what ran.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lcnet_tvm.errors import ModelError
from lcnet_tvm.model.gates import find_gates
from lcnet_tvm.model.resnet import GatedBasicBlock, LCResNet


def _folded(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of ``bn(conv(x))`` as one conv, with ``bn``'s running statistics."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    weight = conv.weight * scale[:, None, None, None]
    return weight.detach().contiguous(), (bn.bias - bn.running_mean * scale).detach().contiguous()


class _SkippingBlock(nn.Module):
    def __init__(self, block: GatedBasicBlock, computed: dict[nn.Module, torch.Tensor] | None):
        super().__init__()
        self.stride = block.conv1.stride
        self.weight1, self.bias1 = _folded(block.conv1, block.bn1)
        self.weight2, self.bias2 = _folded(block.conv2, block.bn2)
        self.shortcut = _folded(block.shortcut[0], block.shortcut[1]) if len(block.shortcut) else None
        self.layer_gate = block.layer_gate
        self.channel_gate = block.channel_gate
        self.computed = computed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.shortcut is None else F.conv2d(x, *self.shortcut, stride=self.stride)
        rows = None  # samples that run the branch; None: all of them
        layer_scores = None
        if self.layer_gate is not None:
            layer_scores = self.layer_gate(x)
            keep = layer_scores[:, 0] > 0
            self._record(self.layer_gate, keep[:, None])
            if not keep.any():
                if self.channel_gate is not None:
                    self._record(self.channel_gate, torch.zeros(len(x), self.weight1.shape[0], dtype=torch.bool))
                return F.relu(shortcut)
            if not keep.all():
                rows = keep.nonzero().squeeze(1)
                x = x.index_select(0, rows)
                layer_scores = layer_scores.index_select(0, rows)
        branch = self._branch(x, rows, len(shortcut), shortcut.shape[2:])
        if layer_scores is not None:
            branch = branch * layer_scores[:, :, None, None]
        out = shortcut + branch if rows is None else shortcut.index_add(0, rows, branch)
        return F.relu(out)

    def _record(self, gate: nn.Module, computed: torch.Tensor) -> None:
        if self.computed is not None:
            self.computed[gate] = computed

    def _branch(self, x: torch.Tensor, rows: torch.Tensor | None, batch: int, output_size: torch.Size) -> torch.Tensor:
        if self.channel_gate is None:
            h = F.relu(F.conv2d(x, self.weight1, self.bias1, self.stride, 1))
            return F.conv2d(h, self.weight2, self.bias2, 1, 1)
        scores = self.channel_gate(x)
        kept = (scores > 0).any(dim=0)
        if self.computed is not None:
            computed = torch.zeros(batch, len(kept), dtype=torch.bool)
            computed[rows if rows is not None else slice(None)] = kept
            self._record(self.channel_gate, computed)
        channels = kept.nonzero().squeeze(1)
        if len(channels) == 0:  # conv2 reads only zeros: its output is its bias
            return self.bias2[None, :, None, None].expand(len(x), -1, *output_size)
        h = F.relu(F.conv2d(x, self.weight1.index_select(0, channels), self.bias1.index_select(0, channels), self.stride, 1))
        h = h * scores.index_select(1, channels)[:, :, None, None]
        return F.conv2d(h, self.weight2.index_select(1, channels), self.bias2, 1, 1)


class SkippingResNet(nn.Module):
    """An :class:`~lcnet_tvm.model.resnet.LCResNet` in eval mode that skips what its gates skip."""

    def __init__(self, model: nn.Module, record: bool = True):
        super().__init__()
        if not isinstance(model, LCResNet):
            raise ModelError(
                f"the skipping eager runner knows LCResNet models only, got {type(model).__name__}; "
                "benchmark other architectures with the mask form"
            )
        model = model.eval()
        #: gate module -> (N, 1) or (N, C) bool: what the last forward computed per sample.
        #: ``record=False`` keeps no record (recording makes ``torch.compile`` recompile per block).
        self.computed: dict[nn.Module, torch.Tensor] | None = {} if record else None
        stem_conv, stem_bn, *rest = model.stem
        self.stem_weight, self.stem_bias = _folded(stem_conv, stem_bn)
        self.stem_conv = stem_conv
        self.stem_pool = [layer for layer in rest if isinstance(layer, nn.MaxPool2d)]
        self.blocks = nn.ModuleList(_SkippingBlock(block, self.computed) for block in model.blocks)
        self.fc = model.fc
        self.gates = [gate for _, gate in find_gates(model)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.stem_conv
        h = F.relu(F.conv2d(x, self.stem_weight, self.stem_bias, conv.stride, conv.padding))
        for pool in self.stem_pool:
            h = pool(h)
        for block in self.blocks:
            h = block(h)
        return self.fc(h.mean(dim=(2, 3)))

    def computed_keeps(self) -> list[torch.Tensor]:
        """Per gate (``find_gates`` order), what the last forward computed for each sample."""
        return [self.computed[gate] for gate in self.gates]
