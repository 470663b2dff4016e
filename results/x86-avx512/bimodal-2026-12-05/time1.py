import sys, time, numpy as np
from lcnet_tvm.runtime.compiled_model import CompiledModel
m = CompiledModel.load(sys.argv[1])
x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype("float32")
for _ in range(200): m.run(x)
ts = []
for _ in range(2000):
    t = time.perf_counter(); m.run(x); ts.append(time.perf_counter() - t)
print(f"{np.median(ts)*1e3:.3f}")
