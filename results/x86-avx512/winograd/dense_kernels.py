"""Each kernel of a model's dense form: calls per inference, MFLOPs, trials in the records, the time of the record a
compile applies (as measured while tuning), and GFLOP/s.

Usage: python3 dense_kernels.py MODEL [DB]   (default: the shipped records)"""
import sys
from lcnet_tvm.compiler.driver import lower_to_kernels
from lcnet_tvm.evaluation.bench import BenchOptions
from lcnet_tvm.model.checkpoint import resolve_model
from lcnet_tvm.schedules.database import read_database, workload_key
from lcnet_tvm.schedules.seeding import mean_seconds
from lcnet_tvm.schedules.tune import kernel_tasks

loaded = resolve_model(sys.argv[1])
options = BenchOptions(target_name="x86", database_dir=sys.argv[2] if len(sys.argv) > 2 else None).resolved(loaded.name).replace(gate_form="dense")
tasks = kernel_tasks(lower_to_kernels(loaded.model, loaded.config.input_shape, options), options.tvm_target)
records = read_database(options.database, options.target_config)
total = 0.0
print(f"{'kernel':45s} calls  MFLOPs  trials  best ms  GFLOP/s  ms/inference")
for task in sorted(tasks, key=lambda t: -t.flops * t.calls):
    applied = records.database.query_tuning_record(task.mod, options.tvm_target, task.name)
    seconds = mean_seconds(applied.run_secs) if applied is not None else float("inf")
    total += seconds * task.calls * 1e3
    print(f"{task.name:45s} {task.calls:5.0f} {task.flops / 1e6:7.1f} {records.trials[workload_key(task.mod)]:7d} "
          f"{seconds * 1e3:8.3f} {task.flops / seconds / 1e9:8.1f} {seconds * task.calls * 1e3:8.3f}")
print(f"sum of applied records x calls: {total:.3f} ms")
