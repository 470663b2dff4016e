"""Property-based: random gated architectures compile to code that equals eager PyTorch.

Architectures are drawn from the reusable gate modules: basic and bottleneck
blocks, widths from 1 up (not multiples of 8 included), strides 1 and 2,
projection shortcuts where shapes change, layer and channel gates on some
blocks and not others, compiled batches of 1..8, inputs that leave gates
input-dependent or drive every gate to skip or to keep. The default run
tries a fixed number of derandomized examples (hypothesis profile ``ci``);
``--hypothesis-profile=long`` tries many more, drawn at random.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from lcnet_tvm import CompileOptions, compile_model
from lcnet_tvm.model.gates import find_gates
from lcnet_tvm.model.resnet import GatedBasicBlock

from .architectures import GatedBottleneck
from .conftest import randomize
from .equivalence import check_against_eager

WIDTHS = st.sampled_from([1, 2, 3, 5, 6, 8, 11, 16])


@st.composite
def block_specs(draw):
    return {
        "kind": draw(st.sampled_from(["basic", "bottleneck"])),
        "width": draw(WIDTHS),
        "mid": draw(WIDTHS),
        "stride": draw(st.sampled_from([1, 1, 2])),
        "layer_gate": draw(st.booleans()),
        "channel_gate": draw(st.booleans()),
    }


@st.composite
def architectures(draw):
    return {
        "stem": draw(WIDTHS),
        "blocks": draw(st.lists(block_specs(), min_size=1, max_size=4)),
        "input_size": draw(st.sampled_from([4, 5, 8])),
        "classes": draw(st.integers(1, 7)),
        "batch": draw(st.integers(1, 8)),
        "buckets": draw(st.integers(1, 3)),
        # 0: decisions depend on the input; -30 / +30: every gate skips / keeps.
        "gate_bias": draw(st.sampled_from([0.0, 0.0, -30.0, 30.0])),
        "seed": draw(st.integers(0, 2**16)),
    }


class FuzzNet(nn.Module):
    def __init__(self, spec: dict):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, spec["stem"], 3, padding=1, bias=False), nn.BatchNorm2d(spec["stem"]), nn.ReLU())
        blocks, channels = [], spec["stem"]
        for block in spec["blocks"]:
            if block["kind"] == "basic":
                blocks.append(GatedBasicBlock(channels, block["width"], block["stride"], block["layer_gate"], block["channel_gate"]))
            else:
                blocks.append(
                    GatedBottleneck(channels, block["mid"], block["width"], block["stride"], block["layer_gate"], block["channel_gate"])
                )
            channels = block["width"]
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(channels, spec["classes"])

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))


@given(spec=architectures())
def test_random_gated_architectures_equal_eager(spec):
    torch.manual_seed(spec["seed"])
    shape = (3, spec["input_size"], spec["input_size"])
    calibration = torch.randn(64, *shape, generator=torch.Generator().manual_seed(spec["seed"]))
    model = randomize(FuzzNet(spec), calibration, seed=spec["seed"], gate_bias=spec["gate_bias"])
    compiled = compile_model(model, shape, CompileOptions(batch_size=spec["batch"], channel_buckets=spec["buckets"]), name="fuzz")
    # Several compiled batches, the last one padded.
    x = torch.randn(2 * spec["batch"] + 1, *shape, generator=torch.Generator().manual_seed(spec["seed"] + 1))
    result = check_against_eager(compiled, model, x, varying=False)
    if find_gates(model) and spec["gate_bias"]:
        kept = np.concatenate([d.reshape(len(x), -1) for d in result.decisions], axis=1)
        assert kept.all() if spec["gate_bias"] > 0 else not kept.any()
