"""A checkpoint (argv[1]): eager logits with every batch norm folded into its conv (as the compiler folds
them), against plain eager and float64, on all held-out images. Does folding alone move the logits?"""
import copy
import sys

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from lcnet_tvm.model.checkpoint import dataset_for, load_checkpoint

loaded = load_checkpoint(sys.argv[1])
x = dataset_for(loaded).x_test
model = loaded.model.eval()
folded = copy.deepcopy(model)
for name, module in list(folded.named_modules()):
    for conv_name, bn_name in (("conv1", "bn1"), ("conv2", "bn2"), ("0", "1")):
        conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            setattr(module, conv_name, fuse_conv_bn_eval(conv, bn))
            setattr(module, bn_name, nn.Identity())
left = [n for n, m in folded.named_modules() if isinstance(m, nn.BatchNorm2d)]
with torch.no_grad():
    plain, fused = model(x).numpy(), folded(x).numpy()
    exact = copy.deepcopy(model).double()(x.double()).numpy()
print(f"batch norms left unfolded: {left}")
print(f"folded vs plain eager {np.abs(fused - plain).max():.3g}; plain vs float64 {np.abs(plain - exact).max():.3g}; "
      f"folded vs float64 {np.abs(fused - exact).max():.3g}")
