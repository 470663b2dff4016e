import os, sys, time, glob, numpy as np
from lcnet_tvm.runtime.compiled_model import CompiledModel
m = CompiledModel.load(sys.argv[1])
x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype("float32")
for _ in range(200): m.run(x)
mode = sys.argv[2]
if mode == "pin0": os.sched_setaffinity(0, {0})
if mode == "pin1": os.sched_setaffinity(0, {1})
out = []
for rep in range(6):
    ts = []
    for _ in range(500):
        t = time.perf_counter(); m.run(x); ts.append(time.perf_counter() - t)
    out.append(f"{np.median(ts)*1e3:.3f}")
print(mode, " ".join(out))
