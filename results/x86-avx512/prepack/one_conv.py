"""A/B: one conv tuned with plain NCHW/OIHW weights vs layout-free weights (MetaSchedule's RewriteLayout)."""
import sys, tempfile, statistics
import tvm
from tvm import te, topi
from lcnet_tvm.schedules.tune import KernelTask, tune_kernels
from lcnet_tvm.schedules.builder import ForkingBuilder
from lcnet_tvm.schedules.measure import tuning_runner
from lcnet_tvm.schedules.database import TuningDatabase, kernel_module
from lcnet_tvm.targets import get_target

channels, size, trials = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
spec = get_target("x86-avx512")
config = spec.config()
def conv(layout_free):
    x = te.placeholder((1, channels, size, size), name="x")
    w = te.placeholder((channels, channels, 3, 3), name="w")
    b = te.placeholder((1, channels, 1, 1), name="b")
    y = topi.nn.conv2d_nchw(x, w, 1, 1, 1)
    out = te.compute(y.shape, lambda n, c, h, ww: te.max(y[n, c, h, ww] + b[0, c, 0, 0], 0.0), name="relu")
    f = te.create_prim_func([x, w, b, out])
    if layout_free:
        f = f.with_attr("layout_free_buffers", [1])
    return kernel_module(f)
for layout_free in (False, True):
    d = tempfile.mkdtemp()
    db = TuningDatabase(d, config, create=True)
    task = KernelTask(f"conv_lf{layout_free}", conv(layout_free), 1, 2 * channels * channels * 9 * size * size, budget=trials)
    tune_kernels([task], spec.tvm_target(config), db, tuning_runner(spec, config), ForkingBuilder(), show_progress=False)
    records = db.database.get_all_tuning_records()
    best = min(statistics.median([float(s) for s in r.run_secs]) for r in records if r.run_secs)
    print(f"layout_free={layout_free} {len(records)} records best {best*1e6:.1f} us  {task.flops/best/1e9:.1f} GFLOP/s", flush=True)
