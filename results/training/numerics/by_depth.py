"""A checkpoint (argv[1]): compiled (mask form) against eager, on the pooled features after the first k
blocks, for each k in argv[2:] (first 300 held-out images). Where does the difference start to grow?"""
import sys

import numpy as np
import torch
from torch import nn

from lcnet_tvm import CompileOptions, compile_model
from lcnet_tvm.model.checkpoint import dataset_for, load_checkpoint


class FirstBlocks(nn.Module):
    def __init__(self, model, count):
        super().__init__()
        self.stem, self.blocks = model.stem, model.blocks[:count]

    def forward(self, x):
        return self.blocks(self.stem(x)).mean(dim=(2, 3))


loaded = load_checkpoint(sys.argv[1])
x = dataset_for(loaded).x_test[:300]
for count in map(int, sys.argv[2:]):
    model = FirstBlocks(loaded.model.eval(), count).eval()
    with torch.no_grad():
        eager = model(x).numpy()
    compiled = compile_model(model, (3, 32, 32), CompileOptions(gate_form="mask"), name=f"first{count}").run(x.numpy())
    print(f"first {count} blocks: max |compiled - eager| {np.abs(compiled.logits - eager).max():.3g} "
          f"(features up to {np.abs(eager).max():.3g})", flush=True)
