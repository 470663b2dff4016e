"""torch.compile of the mask form against eager float32 and float64 on the bench's 16 batches (first 16 held-out images),
LC-ResNet-56 untrained, gates calibrated to half the FLOPs as `bench --flops-fraction 0.5` does: logit errors and gate
decision flips per image. Usage: python3 torch_compile_numerics.py"""
import copy, numpy as np, torch
from lcnet_tvm.model.checkpoint import resolve_model, dataset_for
from lcnet_tvm.model.flops import FlopsCounter
from lcnet_tvm.model.gates import WithGateScores
from lcnet_tvm.evaluation.calibrate import calibrate_gates, calibration_inputs
from lcnet_tvm.evaluation.verify import scaled_error
torch.set_num_threads(2)
loaded = resolve_model("lcnet_resnet56_cifar")
data = dataset_for(loaded).x_test
counter = FlopsCounter.from_model(loaded.model, loaded.config.input_shape)
model = copy.deepcopy(loaded.model).eval()
print("shift", calibrate_gates(model, calibration_inputs(data), 0.5, counter))
single = WithGateScores(model).eval(); double = WithGateScores(copy.deepcopy(model).double()).eval()
compiled = torch.compile(WithGateScores(copy.deepcopy(model)).eval())
batches = [data[i:i+1] for i in range(16)]
with torch.inference_mode():
    for i, b in enumerate(batches):
        e, *es = single(b); d, *ds = double(b.double()); c, *cs = compiled(b)
        flips_c = sum(int(((x > 0) != (y > 0)).sum()) for x, y in zip(cs, es))
        flips_d = sum(int(((x > 0) != (y.float() > 0)).sum()) for x, y in zip(ds, es))
        near = min(float(x.abs().min()) for x in es)
        print(i, f"compiled-eager {scaled_error(c.numpy(), e.numpy()):.2e} compiled-f64 {scaled_error(c.numpy(), d.numpy()):.2e} "
              f"eager-f64 {scaled_error(e.numpy(), d.numpy()):.2e} decision flips compiled {flips_c} f64 {flips_d} min|score| {near:.1e}")
