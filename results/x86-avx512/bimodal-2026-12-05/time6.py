import mmap, os, sys, time, numpy as np, torch
shift = int(sys.argv[3])
pad = mmap.mmap(-1, shift) if shift else None
from lcnet_tvm.runtime.compiled_model import CompiledModel
artifact, inputs = sys.argv[1], torch.load(sys.argv[2]).numpy()
xs = [inputs[i:i+1] for i in range(len(inputs))]
m = CompiledModel.load(artifact)
for x in xs * 5: m.run(x)
ts = []
for k in range(600):
    x = xs[k % len(xs)]
    t = time.perf_counter(); m.run(x); ts.append(time.perf_counter() - t)
print(shift, f"{np.median(ts)*1e3:.3f}")
