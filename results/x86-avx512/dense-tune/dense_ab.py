"""tvm-dense with two databases, alternating in one process (run() per inference), R20 and R56 (same kernels)."""
import os, sys, tempfile, numpy as np
from lcnet_tvm.model.checkpoint import resolve_model, dataset_for
from lcnet_tvm.evaluation.bench import BenchOptions
from lcnet_tvm.compiler.driver import compile_model
from lcnet_tvm.runtime.compiled_model import CompiledModel
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from alternate import alternate
dbs = {"shipped": None, "new": sys.argv[1]}
for spec in [None, "lcnet_resnet56_cifar"]:
    loaded = resolve_model(spec); data = dataset_for(loaded).x_test
    batches = [data[i:i+1].numpy() for i in range(16)]
    ms = {}
    for tag, db in dbs.items():
        o = BenchOptions(target_name="x86", database_dir=db).resolved(loaded.name).replace(gate_form="dense")
        cm = compile_model(loaded.model, loaded.config.input_shape, o, name=loaded.name)
        p = tempfile.mkdtemp() + "/d"; cm.save(p); ms[tag] = CompiledModel.load(p)
        print(tag, cm.metadata.kernels and sum(k.trials or 0 for k in cm.metadata.kernels), "trials")
    res = alternate(ms, batches, rounds=10, passes=4)
    med = {t: np.median(v) for t, v in res.items()}
    print(loaded.name, " ".join(f"{t} {v:.3f} ms" for t, v in med.items()), f"shipped/new {med['shipped']/med['new']:.3f}",
          "per-round", " ".join("%.2f" % (a / b) for a, b in zip(res["shipped"], res["new"])))
