"""A checkpoint (argv[1]): how far relative noise of size argv[2] moves the eager logits (first 300 held-out
images) when put on each gate's pooled input only, and when put on every conv's output instead. Which
rounding does the model magnify?"""
import sys

import numpy as np
import torch

from lcnet_tvm.model.checkpoint import dataset_for, load_checkpoint
from lcnet_tvm.model.gates import find_gates

torch.manual_seed(0)
loaded = load_checkpoint(sys.argv[1])
x = dataset_for(loaded).x_test[:300]
model = loaded.model.eval()
relative = float(sys.argv[2])


def noisy(tensor):
    return tensor * (1 + relative * torch.randn_like(tensor))


def moved(modules, hook):
    handles = [hook(module) for module in modules]
    with torch.no_grad():
        out = model(x).numpy()
    for handle in handles:
        handle.remove()
    return np.abs(out - plain).max()


with torch.no_grad():
    plain = model(x).numpy()
gate_fcs = [gate.fc for _, gate in find_gates(model)]
convs = [module for module in model.modules() if isinstance(module, torch.nn.Conv2d)]
print(f"noise {relative:g} on the gates' pooled inputs: logits move {moved(gate_fcs, lambda m: m.register_forward_pre_hook(lambda _m, i: (noisy(i[0]),))):.3g}")
print(f"noise {relative:g} on every conv's output: logits move {moved(convs, lambda m: m.register_forward_hook(lambda _m, _i, o: noisy(o))):.3g}")
