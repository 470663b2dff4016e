import sys, time, numpy as np, torch
from lcnet_tvm.runtime.compiled_model import CompiledModel
artifact, inputs, calls = sys.argv[1], torch.load(sys.argv[2]).numpy(), int(sys.argv[3])
xs = [inputs[i:i+1] for i in range(len(inputs))]
keep, out = [], []
for load in range(4):
    m = CompiledModel.load(artifact); keep.append(m)
    for x in xs * 5: m.run(x)
    ts = []
    for k in range(calls):
        x = xs[k % len(xs)]
        t = time.perf_counter(); m.run(x); ts.append(time.perf_counter() - t)
    out.append(f"{np.median(ts)*1e3:.3f}")
print(" ".join(out))
