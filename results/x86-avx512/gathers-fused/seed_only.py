"""Give each kernel of MODEL's gated form that DB has no record of its seeds only (the refitted best schedules of
tuned kernels of its form; for a bucket convolution reading through the order: the plain bucket convolution's),
measured and committed as `lcnet-tvm tune` would commit them, and no search. Usage: python3 seed_only.py MODEL DB"""
import sys
import tvm
from tvm.s_tir import meta_schedule as ms
from lcnet_tvm.model.checkpoint import resolve_model
from lcnet_tvm.compiler.driver import lower_to_kernels
from lcnet_tvm.compiler.options import CompileOptions
from lcnet_tvm.schedules.builder import ForkingBuilder
from lcnet_tvm.schedules.database import TuningDatabase, kernel_module
from lcnet_tvm.schedules.measure import tuning_runner
from lcnet_tvm.schedules.tune import KernelTask, _seed_kernel

loaded = resolve_model(sys.argv[1] or None)
opts = CompileOptions("x86", database=sys.argv[2])
mod = lower_to_kernels(loaded.model, loaded.config.input_shape, opts)
database = TuningDatabase(opts.database, opts.target_config)
runner, builder = tuning_runner(opts.target, opts.target_config), ForkingBuilder()
target = opts.tvm_target
for gv, func in mod.functions.items():
    if not isinstance(func, tvm.tirx.PrimFunc):
        continue
    kernel = kernel_module(func)
    if database.database.query_tuning_record(kernel, target, "main") is not None:
        continue
    task = KernelTask(gv.name_hint, kernel, calls=1.0, flops=1.0, budget=2)
    context = ms.TuneContext(mod=kernel, target=target, space_generator="post-order-apply", task_name=gv.name_hint)
    seconds = _seed_kernel(task, context, opts.target.device_type, database, runner, builder)
    print(gv.name_hint, [f"{1e6 * sum(s) / len(s):.1f} us" for s in seconds], flush=True)
