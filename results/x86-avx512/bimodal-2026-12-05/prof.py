import copy, sys, json, mmap, torch, numpy as np
shift = int(sys.argv[2])
pad = mmap.mmap(-1, shift) if shift else None
from lcnet_tvm.compiler.driver import compile_model
from lcnet_tvm.compiler.options import CompileOptions
from lcnet_tvm.evaluation.calibrate import calibrate_gates, calibration_inputs
from lcnet_tvm.model.checkpoint import dataset_for, resolve_model
from lcnet_tvm.model.flops import FlopsCounter
from lcnet_tvm.schedules.shipped import target_and_records
from lcnet_tvm.runtime.compiled_model import CompiledModel
from lcnet_tvm.runtime.instrument import profile_kernels
name = "lcnet_resnet56_cifar"
if sys.argv[1] == "build":
    loaded = resolve_model(name); data = dataset_for(loaded).x_test
    model = copy.deepcopy(loaded.model).eval()
    calibrate_gates(model, calibration_inputs(data), 0.5, FlopsCounter.from_model(model, loaded.config.input_shape))
    target, records = target_and_records(name, "x86")
    options = CompileOptions().replace(target=target, database=records, gate_form="gated", timed=True)
    compile_model(model, loaded.config.input_shape, options, name=name).save("timed56")
else:
    m = CompiledModel.load("timed56")
    xs = torch.load("new/lcnet_resnet56_cifar_inputs.pt").numpy()
    p = profile_kernels(m, [xs[i:i+1] for i in range(8)], 50)
    json.dump(p, open(f"prof_{shift}.json", "w"))
    print(shift, p["plain_ms"], {k: round(v["ms"], 3) for k, v in p["categories"].items()})
