"""Build: python3 ab_r56.py build TAG [DB]  -> artifacts /tmp/s/ab/{TAG}-{form}-{frac} (R56 at 0.25/0.5/0.75 + dense; R20 shipped gated)
Run:   python3 ab_r56.py run TAG1 TAG2     -> each point's artifacts alternating in one process (run() per inference)."""
import os, sys, copy, numpy as np
from lcnet_tvm.model.checkpoint import resolve_model, dataset_for
from lcnet_tvm.evaluation.bench import BenchOptions
from lcnet_tvm.evaluation.calibrate import calibrate_gates, calibration_inputs
from lcnet_tvm.compiler.driver import compile_model
from lcnet_tvm.runtime.compiled_model import CompiledModel
from lcnet_tvm.model.flops import FlopsCounter
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from alternate import alternate
FRACS = [0.25, 0.5, 0.75]
mode = sys.argv[1]
def spec_points():
    r56 = resolve_model("lcnet_resnet56_cifar"); r20 = resolve_model(None)
    yield "r20", r20, None
    for f in FRACS: yield f"r56-{f}", r56, f
if mode == "build":
    tag = sys.argv[2]; db = sys.argv[3] if len(sys.argv) > 3 else None
    for name, loaded, frac in spec_points():
        opts = BenchOptions(target_name="x86", database_dir=db).resolved(loaded.name)
        model = copy.deepcopy(loaded.model).eval()
        if frac is not None:
            calibrate_gates(model, calibration_inputs(dataset_for(loaded).x_test), frac, FlopsCounter.from_model(loaded.model, loaded.config.input_shape))
        cm = compile_model(model, loaded.config.input_shape, opts.replace(gate_form="gated"), name=loaded.name)
        print(name, "tuned", sum(k.tuned for k in cm.metadata.kernels), "of", len(cm.metadata.kernels))
        cm.save(f"/tmp/s/ab/{tag}-{name}")
else:
    tags = sys.argv[2:]
    for name, loaded, frac in spec_points():
        data = dataset_for(loaded).x_test
        batches = [data[i:i+1].numpy() for i in range(16)]
        models = {t: CompiledModel.load(f"/tmp/s/ab/{t}-{name}") for t in tags}
        res = alternate(models, batches, rounds=10, passes=4)
        med = {t: np.median(v) for t, v in res.items()}
        print(name, " ".join(f"{t} {med[t]:.3f} ms" for t in tags), f" {tags[0]}/{tags[-1]} {med[tags[0]]/med[tags[-1]]:.3f}",
              " per-round", " ".join("%.2f" % (x / y) for x, y in zip(res[tags[0]], res[tags[-1]])))
