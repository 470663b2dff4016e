"""How far weight-ulp twins (the model with each float32 weight one unit in the last place up or down, as the bench's
allowance measures) move eager's logits, per image, against torch.compile's distance from eager (untrained
LC-ResNet-56 at half its FLOPs, the first 16 held-out images). Usage: python3 sensitivity.py"""
import os, sys, torch
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from half_flops_r56 import half_flops_r56, with_scores
from lcnet_tvm.evaluation.verify import scaled_error, weight_ulp_twin
model, data, _ = half_flops_r56()
single = with_scores(model)
compiled = torch.compile(with_scores(model))
generator = torch.Generator().manual_seed(0)
twins = [with_scores(weight_ulp_twin(model, generator)) for _ in range(16)]
per_twin = [0.0] * len(twins)
worst_compiled = 0.0
with torch.inference_mode():
    for i in range(16):
        b = data[i:i+1]
        e = single(b)
        errors = []
        for k, twin in enumerate(twins):
            t = twin(b)
            same = all(torch.equal(s > 0, d > 0) for s, d in zip(t[1:], e[1:]))
            errors.append(scaled_error(t[0].numpy(), e[0].numpy()) if same else float("nan"))
            per_twin[k] = max(per_twin[k], errors[-1]) if same else per_twin[k]
        ce = scaled_error(compiled(b)[0].numpy(), e[0].numpy())
        worst_compiled = max(worst_compiled, ce)
        print(i, f"twins vs eager: max {max(errors):.1e} median {sorted(errors)[8]:.1e} | torch.compile vs eager {ce:.1e}")
print("each twin's worst image:", " ".join(f"{x:.1e}" for x in sorted(per_twin)))
print(f"torch.compile's worst image {worst_compiled:.2e}; twins worse than it: {sum(x > worst_compiled for x in per_twin)} of {len(per_twin)}")
