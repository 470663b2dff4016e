import sys, copy, tempfile, numpy as np
from lcnet_tvm.model.checkpoint import resolve_model, dataset_for
from lcnet_tvm.evaluation.bench import BenchOptions
from lcnet_tvm.compiler.driver import compile_model
from lcnet_tvm.runtime.compiled_model import CompiledModel
from lcnet_tvm.runtime.instrument import profile_kernels
from lcnet_tvm.evaluation.calibrate import calibrate_gates, calibration_inputs
from lcnet_tvm.model.flops import FlopsCounter
mode, tag = sys.argv[1], sys.argv[2]
spec = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] != "-" else None
frac = float(sys.argv[4]) if len(sys.argv) > 4 else None
loaded = resolve_model(spec)
data = dataset_for(loaded).x_test
name = f"/tmp/s/ab/timed-{tag}-{spec}-{frac}"
if mode == "build":
    db = sys.argv[5] if len(sys.argv) > 5 else None
    model = copy.deepcopy(loaded.model).eval()
    if frac: calibrate_gates(model, calibration_inputs(data), frac, FlopsCounter.from_model(loaded.model, loaded.config.input_shape))
    opts = BenchOptions(target_name="x86", database_dir=db).resolved(loaded.name).replace(gate_form="gated", timed=True)
    compile_model(model, loaded.config.input_shape, opts, name=loaded.name).save(name)
else:
    tags = tag.split(",")
    ms = {t: CompiledModel.load(f"/tmp/s/ab/timed-{t}-{spec}-{frac}") for t in tags}
    batches = [data[i:i+1].numpy() for i in range(16)]
    res = {t: [] for t in tags}
    for r in range(5):
        for t in tags: res[t].append(profile_kernels(ms[t], batches, 100))
    for t in tags:
        p = sorted(res[t], key=lambda p: p["plain_ms"])[2]
        print(f"== {t}: plain {[round(x['plain_ms'],3) for x in res[t]]}")
        for c, v in p["categories"].items(): print(f"   {c:60s} {v['ms']:.3f} ms {v['calls']:.1f}")
        for k in p["kernels"][:22]: print(f"     {k['name']:50s} {k['ms']*1e3:7.1f} us {k['calls']:5.2f} {k['us_per_call']:.1f}us")
