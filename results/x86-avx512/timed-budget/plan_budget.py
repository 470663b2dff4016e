"""What a guided tune would give each kernel of the shipped checkpoint (calls, in-place ms, trials done, budget).

Usage: python3 plan_budget.py DB TRIALS
"""
import sys
from lcnet_tvm.model.checkpoint import resolve_model, dataset_for
from lcnet_tvm.compiler.options import CompileOptions
from lcnet_tvm.evaluation.calibrate import calibration_inputs
from lcnet_tvm.schedules.tune import guided_tasks, spread_budget
from lcnet_tvm.schedules.database import TuningDatabase, workload_key
loaded = resolve_model(None)
opts = CompileOptions("x86", database=sys.argv[1])
trials = int(sys.argv[2])
db = TuningDatabase(opts.database, opts.target_config)
done = db.trials_by_workload()
tasks = guided_tasks(loaded.model, loaded.config.input_shape, opts, calibration_inputs(dataset_for(loaded).x_test))
spread_budget(tasks, trials)
tot = sum(t.ms for t in tasks)
print("measured ms total", tot, "remaining", sum(max(0, t.budget - done.get(workload_key(t.mod), 0)) for t in tasks))
for t in sorted(tasks, key=lambda t: -t.ms)[:25]:
    d = done.get(workload_key(t.mod), 0)
    print(f"{t.name:45s} calls {t.calls:.2f} ms {t.ms:.4f} ({100*t.ms/tot:.1f}%) GF/s {t.calls*t.flops/ (t.ms*1e6) if t.ms else 0:.1f} done {d} budget {t.budget}")
for T in (1700, 1900, 2100, 2300, 2500):
    spread_budget(tasks, T)
    print(T, sum(max(0, t.budget - done.get(workload_key(t.mod), 0)) for t in tasks))
