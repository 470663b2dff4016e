"""torch.compile of the mask form (untrained LC-ResNet-56 at half its FLOPs) against float64 under Inductor settings given as
KEY=VALUE arguments (e.g. cpp.weight_prepack=False): the worst scaled logit error over the first 16 held-out images."""
import copy, sys, numpy as np, torch
import torch._inductor.config as ic
from lcnet_tvm.model.checkpoint import resolve_model, dataset_for
from lcnet_tvm.model.flops import FlopsCounter
from lcnet_tvm.model.gates import WithGateScores
from lcnet_tvm.evaluation.calibrate import calibrate_gates, calibration_inputs
from lcnet_tvm.evaluation.verify import scaled_error
torch.set_num_threads(2)
print(sys.argv[1:], "freezing", ic.freezing, "prepack", ic.cpp.weight_prepack)
for kv in sys.argv[1:]:
    k, v = kv.split("="); obj = ic
    *path, last = k.split(".")
    for p in path: obj = getattr(obj, p)
    setattr(obj, last, eval(v))
loaded = resolve_model("lcnet_resnet56_cifar")
data = dataset_for(loaded).x_test
counter = FlopsCounter.from_model(loaded.model, loaded.config.input_shape)
model = copy.deepcopy(loaded.model).eval()
calibrate_gates(model, calibration_inputs(data), 0.5, counter)
double = WithGateScores(copy.deepcopy(model).double()).eval()
compiled = torch.compile(WithGateScores(copy.deepcopy(model)).eval())
worst = 0
with torch.inference_mode():
    for i in range(16):
        b = data[i:i+1]; d = double(b.double())[0]; c = compiled(b)[0]
        worst = max(worst, scaled_error(c.numpy(), d.numpy()))
print("compiled worst vs f64", f"{worst:.2e}")
