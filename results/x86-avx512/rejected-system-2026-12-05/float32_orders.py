"""The untrained LC-ResNet-56 at half its FLOPs (as `bench --flops-fraction 0.5` calibrates it), first 16 held-out images one
by one: eager float32 (NCHW), eager with channels-last tensors (other oneDNN kernels, another summation order) and eager
with oneDNN disabled, each against float64 (scaled error). Usage: python3 float32_orders.py"""
import os, sys, torch
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from half_flops_r56 import half_flops_r56, with_scores
from lcnet_tvm.evaluation.verify import scaled_error
model, data, _ = half_flops_r56()
single, double = with_scores(model), with_scores(model, torch.float64)
cl = with_scores(model).to(memory_format=torch.channels_last)
with torch.inference_mode():
    for i in range(16):
        b = data[i:i+1]
        e = single(b)[0]; d = double(b.double())[0]; c = cl(b.contiguous(memory_format=torch.channels_last))[0]
        with torch.backends.mkldnn.flags(enabled=False):
            n = single(b)[0]
        print(i, f"eager {scaled_error(e.numpy(), d.numpy()):.1e} channels_last {scaled_error(c.numpy(), d.numpy()):.1e} "
              f"no-mkldnn {scaled_error(n.numpy(), d.numpy()):.1e} cl-vs-eager {scaled_error(c.numpy(), e.numpy()):.1e} nomkl-vs-eager {scaled_error(n.numpy(), e.numpy()):.1e}")
