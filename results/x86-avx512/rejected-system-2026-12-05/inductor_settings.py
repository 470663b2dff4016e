"""torch.compile of the mask form (untrained LC-ResNet-56 at half its FLOPs) against float64 under Inductor settings given as
KEY=VALUE arguments (e.g. cpp.weight_prepack=False): the worst scaled logit error over the first 16 held-out images."""
import os, sys, torch
import torch._inductor.config as ic
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from half_flops_r56 import half_flops_r56, with_scores
from lcnet_tvm.evaluation.verify import scaled_error
print(sys.argv[1:], "freezing", ic.freezing, "prepack", ic.cpp.weight_prepack)
for kv in sys.argv[1:]:
    k, v = kv.split("="); obj = ic
    *path, last = k.split(".")
    for p in path: obj = getattr(obj, p)
    setattr(obj, last, eval(v))
model, data, _ = half_flops_r56()
double = with_scores(model, torch.float64)
compiled = torch.compile(with_scores(model))
worst = 0
with torch.inference_mode():
    for i in range(16):
        b = data[i:i+1]; d = double(b.double())[0]; c = compiled(b)[0]
        worst = max(worst, scaled_error(c.numpy(), d.numpy()))
print("compiled worst vs f64", f"{worst:.2e}")
