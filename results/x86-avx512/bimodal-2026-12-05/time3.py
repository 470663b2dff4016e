import sys, time, numpy as np
from lcnet_tvm.runtime.compiled_model import CompiledModel
x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype("float32")
keep = []
out = []
for load in range(6):
    m = CompiledModel.load(sys.argv[1]); keep.append(m)
    for _ in range(200): m.run(x)
    ts = []
    for _ in range(1000):
        t = time.perf_counter(); m.run(x); ts.append(time.perf_counter() - t)
    out.append(f"{np.median(ts)*1e3:.3f}")
print(" ".join(out))
