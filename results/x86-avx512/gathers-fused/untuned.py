import sys
from lcnet_tvm.model.checkpoint import resolve_model
from lcnet_tvm.compiler.driver import lower_to_kernels
from lcnet_tvm.compiler.options import CompileOptions
from lcnet_tvm.schedules.database import kernel_module, read_database
import tvm
loaded = resolve_model(sys.argv[1] or None)
opts = CompileOptions("x86", database=sys.argv[2])
mod = lower_to_kernels(loaded.model, loaded.config.input_shape, opts)
db = read_database(opts.database, opts.target_config).database
missing = []
for gv, f in mod.functions.items():
    if isinstance(f, tvm.tirx.PrimFunc):
        if db.query_tuning_record(kernel_module(f), opts.tvm_target, "main") is None:
            missing.append(gv.name_hint)
print(len(missing), "untuned:", " ".join(sorted(missing)))
