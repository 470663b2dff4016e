"""One producer conv (64 -> O channels, 3x3, 8x8, bias + relu) tuned alone for several O, same budget, no seeding."""
import sys, tempfile
import tvm
from tvm import relax
from tvm.script import relax as R
from lcnet_tvm.compiler.options import CompileOptions
from lcnet_tvm.schedules.tune import kernel_tasks, tune_kernels, spread_budget
from lcnet_tvm.schedules.database import TuningDatabase
from lcnet_tvm.schedules.measure import tuning_runner
from lcnet_tvm.schedules.builder import ForkingBuilder
from lcnet_tvm.schedules.seeding import mean_seconds

budget = int(sys.argv[1])
widths = [int(w) for w in sys.argv[2:]]
opts = CompileOptions(target='x86-avx2')
target = opts.tvm_target
for width in widths:
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 64, 8, 8), "float32"))
    w = relax.Var("w", relax.TensorType((width, 64, 3, 3), "float32"))
    b = relax.Var("b", relax.TensorType((1, width, 1, 1), "float32"))
    with bb.function("main", [x, w, b]):
        with bb.dataflow():
            y = bb.emit(relax.op.nn.conv2d(x, w, padding=1))
            y = bb.emit(relax.op.nn.relu(relax.op.add(y, b)))
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    mod = bb.get()
    mod = tvm.transform.Sequential([relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(), relax.transform.FuseOps(), relax.transform.FuseTIR()])(mod)
    tasks = [t for t in kernel_tasks(mod, target)]
    assert len(tasks) == 1, [t.name for t in tasks]
    tasks[0].budget = budget
    directory = tempfile.mkdtemp(prefix=f"w{width}-")
    database = TuningDatabase(directory, opts.target_config)
    runner = tuning_runner(opts.target, opts.target_config)
    builder = ForkingBuilder(link=opts.target.library_compiler(), timeout=60)
    tune_kernels(tasks, target, "cpu", database, runner, builder, show_progress=False, seed=False)
    records = database.database.get_all_tuning_records()
    best = min(mean_seconds(r.run_secs) for r in records if r.run_secs)
    flops = 2 * width * 64 * 9 * 64
    print(f"O={width:3d}: best {best*1e6:7.1f} us over {len(records)} records, {flops/best/1e9:5.1f} GFLOP/s", flush=True)
