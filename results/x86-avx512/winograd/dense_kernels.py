"""Each kernel of a model's dense form: calls per inference, MFLOPs, trials in the shipped records, the best
record's time as measured while tuning, and GFLOP/s.

Usage: python3 dense_kernels.py MODEL [DB]   (default: the shipped records)"""
import sys
import numpy as np, tvm
from tvm.s_tir import meta_schedule as ms
from lcnet_tvm.compiler.driver import lower_to_kernels
from lcnet_tvm.evaluation.bench import BenchOptions
from lcnet_tvm.model.checkpoint import resolve_model
from lcnet_tvm.schedules.database import TuningDatabase, workload_key
from lcnet_tvm.schedules.tune import kernel_tasks

loaded = resolve_model(sys.argv[1])
options = BenchOptions(target_name="x86", database_dir=sys.argv[2] if len(sys.argv) > 2 else None).resolved(loaded.name).replace(gate_form="dense")
tasks = kernel_tasks(lower_to_kernels(loaded.model, loaded.config.input_shape, options), options.tvm_target)
database = TuningDatabase(options.database, options.target_config).database
best: dict[int, tuple[float, int]] = {}
for record in database.get_all_tuning_records():
    key = workload_key(record.workload.mod)
    secs = [float(s) for s in record.run_secs or []]
    mean = float(np.mean(secs)) if secs and max(secs) < 1e9 else float("inf")
    previous, count = best.get(key, (float("inf"), 0))
    best[key] = (min(previous, mean), count + 1)
total = 0.0
print(f"{'kernel':45s} calls  MFLOPs  trials  best ms  GFLOP/s  ms/inference")
for task in sorted(tasks, key=lambda t: -t.flops * t.calls):
    seconds, trials = best.get(workload_key(task.mod), (float("inf"), 0))
    total += seconds * task.calls * 1e3
    print(f"{task.name:45s} {task.calls:5.0f} {task.flops / 1e6:7.1f} {trials:7d} {seconds * 1e3:8.3f} {task.flops / seconds / 1e9:8.1f} {seconds * task.calls * 1e3:8.3f}")
print(f"sum of best records x calls: {total:.3f} ms")
