"""torch.compile of the mask form against eager float32 and float64 on the bench's 16 batches (first 16 held-out images),
LC-ResNet-56 untrained, gates calibrated to half the FLOPs as `bench --flops-fraction 0.5` does: logit errors and gate
decision flips per image. Usage: python3 torch_compile_numerics.py"""
import os, sys, torch
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from half_flops_r56 import half_flops_r56, with_scores
from lcnet_tvm.evaluation.verify import scaled_error
model, data, shift = half_flops_r56()
print("shift", shift)
single, double = with_scores(model), with_scores(model, torch.float64)
compiled = torch.compile(with_scores(model))
batches = [data[i:i+1] for i in range(16)]
with torch.inference_mode():
    for i, b in enumerate(batches):
        e, *es = single(b); d, *ds = double(b.double()); c, *cs = compiled(b)
        flips_c = sum(int(((x > 0) != (y > 0)).sum()) for x, y in zip(cs, es))
        flips_d = sum(int(((x > 0) != (y.float() > 0)).sum()) for x, y in zip(ds, es))
        near = min(float(x.abs().min()) for x in es)
        print(i, f"compiled-eager {scaled_error(c.numpy(), e.numpy()):.2e} compiled-f64 {scaled_error(c.numpy(), d.numpy()):.2e} "
              f"eager-f64 {scaled_error(e.numpy(), d.numpy()):.2e} decision flips compiled {flips_c} f64 {flips_d} min|score| {near:.1e}")
