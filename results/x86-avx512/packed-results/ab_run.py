"""CompiledModel.run of saved artifacts alternating in one process (12 rounds of 5 passes over 40 held-out digits).

Usage: [AB=DIR] python3 ab_run.py ARTIFACT ...   (artifacts under DIR, made by `lcnet-tvm compile -o DIR/NAME`)
"""
import os
import sys, numpy as np
from lcnet_tvm.runtime.compiled_model import CompiledModel
from lcnet_tvm.model.checkpoint import resolve_model, dataset_for
from lcnet_tvm.runtime.instrument import profile_kernels
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from alternate import alternate
loaded = resolve_model(None)
data = dataset_for(loaded).x_test
batches = [data[i:i+1].numpy() for i in range(40)]
names = sys.argv[1:]
models = {n: CompiledModel.load(f"{os.environ.get('AB', '/tmp/ab')}/{n}") for n in names}
import tvm
from tvm import relax
res = alternate(models, batches, rounds=12, passes=5)
for n in names:
    print(n, "run() median of round medians %.3f" % np.median(res[n]), " rounds", " ".join("%.3f" % x for x in res[n]))
for a in names[1:]:
    print(f"{names[0]}/{a}", "%.3f" % (np.median(res[names[0]]) / np.median(res[a])), "per-round", " ".join("%.2f" % (x/y) for x, y in zip(res[names[0]], res[a])))
