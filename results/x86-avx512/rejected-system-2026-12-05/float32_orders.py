"""The untrained LC-ResNet-56 at half its FLOPs (as `bench --flops-fraction 0.5` calibrates it), first 16 held-out images one
by one: eager float32 (NCHW), eager with channels-last tensors (other oneDNN kernels, another summation order) and eager
with oneDNN disabled, each against float64 (scaled error). Usage: python3 float32_orders.py"""
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
calibrate_gates(model, calibration_inputs(data), 0.5, counter)
single = WithGateScores(model).eval(); double = WithGateScores(copy.deepcopy(model).double()).eval()
cl = WithGateScores(copy.deepcopy(model).to(memory_format=torch.channels_last)).eval()
with torch.inference_mode():
    for i in range(16):
        b = data[i:i+1]
        e = single(b)[0]; d = double(b.double())[0]; c = cl(b.contiguous(memory_format=torch.channels_last))[0]
        with torch.backends.mkldnn.flags(enabled=False):
            n = single(b)[0]
        print(i, f"eager {scaled_error(e.numpy(), d.numpy()):.1e} channels_last {scaled_error(c.numpy(), d.numpy()):.1e} "
              f"no-mkldnn {scaled_error(n.numpy(), d.numpy()):.1e} cl-vs-eager {scaled_error(c.numpy(), e.numpy()):.1e} nomkl-vs-eager {scaled_error(n.numpy(), e.numpy()):.1e}")
