"""Logits and gate scores against float64 on the first 16 held-out images (untrained LC-ResNet-56, half its FLOPs): eager,
torch.compile of the mask form, and eager with the gates pooling by a float32 left-to-right sum. Usage: python3 scores.py"""
import os, sys, torch
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from half_flops_r56 import half_flops_r56, with_scores
from lcnet_tvm.model import gates as G
from lcnet_tvm.evaluation.verify import scaled_error
model, data, _ = half_flops_r56()
single, double = with_scores(model), with_scores(model, torch.float64)
compiled = torch.compile(with_scores(model))
orig = G._Gate.forward
def sequential_pool(self, x):
    n = x.shape[2] * x.shape[3]
    pooled = x.flatten(2).cumsum(2)[..., -1] / n  # float32 left-to-right sum
    return self.fc(pooled).clamp(0.0, 1.0)
with torch.inference_mode():
    for i in range(16):
        b = data[i:i+1]
        e = single(b); d = double(b.double()); c = compiled(b)
        G._Gate.forward = sequential_pool; s = single(b); G._Gate.forward = orig
        score = lambda r: max(float((x.double() - y).abs().max()) for x, y in zip(r[1:], d[1:]))
        logit = lambda r: scaled_error(r[0].numpy(), d[0].numpy())
        print(i, f"logits vs f64: eager {logit(e):.1e} compiled {logit(c):.1e} seq-pool {logit(s):.1e} | "
              f"scores vs f64: eager {score(e):.1e} compiled {score(c):.1e} seq-pool {score(s):.1e}")
