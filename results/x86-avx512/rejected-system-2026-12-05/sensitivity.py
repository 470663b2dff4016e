"""How far 1-ulp float32 perturbations of the weights move eager's logits (untrained LC-ResNet-56, half its FLOPs),
per image, against torch.compile's distance from eager. Usage: python3 sensitivity.py"""
import copy, os, sys, torch
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from half_flops_r56 import half_flops_r56, with_scores
from lcnet_tvm.evaluation.verify import scaled_error
model, data, _ = half_flops_r56()
single = with_scores(model)
compiled = torch.compile(with_scores(model))
generator = torch.Generator().manual_seed(0)
def perturbed():
    twin = copy.deepcopy(single)
    with torch.no_grad():
        for p in twin.parameters():
            sign = torch.randint(0, 2, p.shape, generator=generator).float() * 2 - 1
            p.mul_(1 + sign * 2.0**-24)
    return twin
twins = [perturbed() for _ in range(8)]
worst_twin = worst_compiled = 0.0
with torch.inference_mode():
    for i in range(16):
        b = data[i:i+1]
        e = single(b)
        decisions = [s > 0 for s in e[1:]]
        twin_errors = []
        for twin in twins:
            t = twin(b)
            same = all(torch.equal(s > 0, d) for s, d in zip(t[1:], decisions))
            twin_errors.append(scaled_error(t[0].numpy(), e[0].numpy()) if same else float("nan"))
        c = compiled(b)
        ce = scaled_error(c[0].numpy(), e[0].numpy())
        worst_twin = max([worst_twin] + [x for x in twin_errors if x == x]); worst_compiled = max(worst_compiled, ce)
        print(i, "1-ulp weight twins vs eager: max", f"{max(twin_errors):.1e}", "median",
              f"{sorted(twin_errors)[4]:.1e}", "| torch.compile vs eager", f"{ce:.1e}")
print(f"worst: twins {worst_twin:.2e}, torch.compile {worst_compiled:.2e}")
