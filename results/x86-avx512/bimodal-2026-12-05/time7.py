import os, sys, time, numpy as np, torch
if sys.argv[3] == "pin": os.sched_setaffinity(0, {0})
from lcnet_tvm.runtime.compiled_model import CompiledModel
artifact, inputs = sys.argv[1], torch.load(sys.argv[2]).numpy()
xs = [inputs[i:i+1] for i in range(len(inputs))]
m = CompiledModel.load(artifact)
for x in xs * 5: m.run(x)
meds = []
for rep in range(5):
    ts = []
    for k in range(300):
        x = xs[k % len(xs)]
        t = time.perf_counter(); m.run(x); ts.append(time.perf_counter() - t)
    meds.append(f"{np.median(ts)*1e3:.3f}")
print(sys.argv[3], " ".join(meds))
