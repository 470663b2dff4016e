"""Profile tvm-mask and tvm-gated kernels in one process, taking turns (5 rounds of 200 inferences each).

Usage: [T=x86 DB=DIR] python3 profile_forms.py [- [mask,gated]]   (default: the shipped records)
"""
import json, sys, tempfile
from lcnet_tvm.model.checkpoint import resolve_model, dataset_for
from lcnet_tvm.evaluation.bench import BenchOptions
from lcnet_tvm.compiler.driver import compile_model
from lcnet_tvm.runtime.compiled_model import CompiledModel
from lcnet_tvm.runtime.instrument import profile_kernels
spec = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "-" else None
forms = sys.argv[2].split(",") if len(sys.argv) > 2 else ["mask", "gated"]
loaded = resolve_model(spec)
import os
opts = BenchOptions(target_name=os.environ.get("T"), database_dir=os.environ.get("DB")).resolved(loaded.name)
print("target", opts.target.name, "db", opts.database)
data = dataset_for(loaded).x_test
batches = [data[i:i+1].numpy() for i in range(40)]
models = {}
for form in forms:
    o = opts.replace(gate_form=form, timed=True)
    cm = compile_model(loaded.model, loaded.config.input_shape, o, name=loaded.name)
    path = tempfile.mkdtemp() + "/" + form
    cm.save(path)
    models[form] = CompiledModel.load(path)
    print(form, models[form].tuning.to_json() if hasattr(models[form].tuning, "to_json") else "")
res = {f: [] for f in forms}
for r in range(5):
    for f in forms:
        res[f].append(profile_kernels(models[f], batches, 200))
for f in forms:
    p = min(res[f], key=lambda p: p["plain_ms"])
    print(f"== {f}: plain {[round(x['plain_ms'],3) for x in res[f]]} timed {p['inference_ms']:.3f} outside {p['outside_kernels_ms']:.3f}")
    for c, v in p["categories"].items():
        print(f"   {c:60s} {v['ms']:.3f} ms {v['calls']:.1f}")
    for k in p["kernels"][:12]:
        print(f"     {k['name']:45s} {k['ms']:.3f} {k['calls']:.2f} {k['us_per_call']:.1f}us")
json.dump(res, open("profile_forms.json", "w"))
