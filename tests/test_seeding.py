"""Seeding a kernel's search from the tuned schedule of a kernel of the same form (a bucket from its full kernel)."""

import itertools
import math

import numpy as np
import pytest
import tvm
from lcnet_tvm.schedules.builder import ForkingBuilder
from lcnet_tvm.schedules.database import TuningDatabase, kernel_module, workload_key
from lcnet_tvm.schedules.measure import tuning_runner
from lcnet_tvm.schedules.seeding import (
    kernel_form,
    refit_tile,
    refitted_schedule,
    seeds_for,
)
from lcnet_tvm.schedules import tune as tune_module
from lcnet_tvm.schedules.tune import KernelTask, _seed_kernel, tune_kernels
from lcnet_tvm.targets import get_target
from tvm import te
from tvm.s_tir import meta_schedule as ms

X86 = get_target("x86")


def test_refitted_tiles_multiply_to_the_extent_and_keep_the_inner_factors_that_divide_it():
    assert refit_tile(20, [8, 4]) == [5, 4]
    assert refit_tile(24, [2, 4, 1, 4]) == [2, 3, 1, 4]  # 4 divides 24, 4 does not divide the 6 left: 3
    assert refit_tile(7, [1, 16]) == [1, 7]
    for extent, factors in itertools.product(range(1, 65), ([1, 1], [2, 16], [4, 2, 8], [1, 3, 1, 8])):
        refitted = refit_tile(extent, factors)
        assert math.prod(refitted) == extent and len(refitted) == len(factors)
        assert all(new <= old for new, old in zip(refitted[1:], factors[1:]))


def matmul(rows: int) -> tvm.IRModule:
    """out = relu(a @ w.T) with ``rows`` rows of ``w``: a full kernel (32) and its buckets (fewer) are one form."""
    a = te.placeholder((16, 64), name="a")
    w = te.placeholder((rows, 64), name="w")
    k = te.reduce_axis((0, 64), name="k")
    product = te.compute((16, rows), lambda i, j: te.sum(a[i, k] * w[j, k], axis=k), name="product")
    relu = te.compute((16, rows), lambda i, j: te.max(product[i, j], 0.0), name="relu")
    return kernel_module(te.create_prim_func([a, w, relu]))


def test_a_bucket_and_its_full_kernel_have_one_form_and_other_kernels_another():
    full, bucket = kernel_form(matmul(32)), kernel_form(matmul(20))
    assert full.blocks == bucket.blocks and full.extents != bucket.extents
    assert full.distance(bucket) == pytest.approx(2 * math.log(32 / 20))  # the rows of both blocks
    a = te.placeholder((16, 64), name="a")
    doubled = te.compute((16, 64), lambda i, j: a[i, j] * 2.0, name="doubled")
    assert kernel_form(kernel_module(te.create_prim_func([a, doubled]))).blocks != full.blocks


def tuning_context(mod: tvm.IRModule) -> ms.TuneContext:
    return ms.TuneContext(mod=mod, target=X86.tvm_target(), space_generator="post-order-apply", task_name="t")


def tile_decisions(trace) -> list[list[int]]:
    return [[int(f) for f in decision] for inst, decision in trace.decisions.items() if inst.kind.name == "SamplePerfectTile"]


@pytest.fixture
def database_with_full_kernel(tmp_path) -> TuningDatabase:
    """A database holding one record of the full kernel: a schedule from MetaSchedule's design space."""
    database = TuningDatabase(tmp_path / "db", X86.config())
    full = matmul(32)
    (space,) = [s for s in tuning_context(full).generate_design_space() if tile_decisions(s.trace)][:1]
    record = ms.database.TuningRecord(
        space.trace, database.database.commit_workload(full), [1e-5], X86.tvm_target(),
        ms.arg_info.ArgInfo.from_prim_func(full["main"]),
    )
    database.database.commit_tuning_record(record)
    return database


def test_the_full_kernels_trace_replays_on_a_bucket_with_refitted_tiles_and_computes_the_same(database_with_full_kernel):
    bucket = matmul(20)
    (seed,) = seeds_for(bucket, database_with_full_kernel.database)
    schedule = refitted_schedule(bucket, seed.record.trace, tuning_context(bucket).space_generator.postprocs)
    # tiles of the rows of a, of w (32 in the full kernel, 20 in the bucket) and of the reduction, as sampled
    (rows, old_columns, reduction), new = tile_decisions(seed.record.trace), tile_decisions(schedule.trace)
    assert new == [rows, refit_tile(20, old_columns), reduction]
    library = tvm.tirx.build(schedule.mod, target=X86.tvm_target())
    rng = np.random.default_rng(0)
    a, w = rng.standard_normal((16, 64), dtype="float32"), rng.standard_normal((20, 64), dtype="float32")
    out = tvm.runtime.tensor(np.zeros((16, 20), "float32"))
    library["main"](tvm.runtime.tensor(a), tvm.runtime.tensor(w), out)
    np.testing.assert_allclose(out.numpy(), np.maximum(a @ w.T, 0), rtol=1e-5, atol=1e-5)


def test_a_seed_is_measured_and_recorded_as_the_buckets_trial_once(database_with_full_kernel):
    database, bucket = database_with_full_kernel, matmul(20)
    task = KernelTask("bucket", bucket, calls=1.0, flops=1.0, budget=3)
    runner = tuning_runner(X86, X86.config())

    def seed() -> list[list[float]]:
        return _seed_kernel(task, tuning_context(bucket), X86.device_type, database, runner, ForkingBuilder())

    (seconds,) = seed()
    assert all(0 < s < 1 for s in seconds)
    assert database.trials_by_workload()[workload_key(bucket)] == 1
    assert seed() == []  # a resumed tune does not measure the same schedule again
    task.budget = 0
    assert seeds_for(bucket, database.database) and _seed_kernel(
        task, tuning_context(bucket), X86.device_type, database, runner, ForkingBuilder()
    ) == []  # nothing left of its budget



def through_order_matmul(rows: int) -> tvm.IRModule:
    """:func:`matmul` reading ``rows`` rows of a 32-row ``w`` through ``order`` in place: a channel bucket's kernel once
    its gather is fused into it and inlined (passes/fuse_channel_gathers.py)."""
    a = te.placeholder((16, 64), name="a")
    w = te.placeholder((32, 64), name="w")
    order = te.placeholder((32,), "int64", name="order")
    k = te.reduce_axis((0, 64), name="k")
    product = te.compute((16, rows), lambda i, j: te.sum(a[i, k] * w[order[j], k], axis=k), name="product")
    relu = te.compute((16, rows), lambda i, j: te.max(product[i, j], 0.0), name="relu")
    return kernel_module(te.create_prim_func([a, w, order, relu]))


def test_a_kernel_reading_through_the_order_takes_the_trace_of_the_kernel_reading_a_copy(database_with_full_kernel):
    kernel = through_order_matmul(20)
    assert kernel_form(kernel) == kernel_form(matmul(20))
    (seed,) = seeds_for(kernel, database_with_full_kernel.database)
    schedule = refitted_schedule(kernel, seed.record.trace, tuning_context(kernel).space_generator.postprocs)
    assert tile_decisions(schedule.trace)[1] == refit_tile(20, tile_decisions(seed.record.trace)[1])
    library = tvm.tirx.build(schedule.mod, target=X86.tvm_target())
    rng = np.random.default_rng(0)
    a, w = rng.standard_normal((16, 64), dtype="float32"), rng.standard_normal((32, 64), dtype="float32")
    order = rng.permutation(32).astype("int64")
    out = tvm.runtime.tensor(np.zeros((16, 20), "float32"))
    library["main"](tvm.runtime.tensor(a), tvm.runtime.tensor(w), tvm.runtime.tensor(order), out)
    np.testing.assert_allclose(out.numpy(), np.maximum(a @ w[order[:20]].T, 0), rtol=1e-5, atol=1e-5)



def test_kernels_without_records_take_their_seeds_before_any_search(database_with_full_kernel, monkeypatch):
    """So a tune stopped in its first search (Ctrl-C, the time limit) has still given a new bucket its seed."""
    database = database_with_full_kernel
    full = KernelTask("full", matmul(32), calls=1.0, flops=1.0, budget=40)  # the largest budget: searched first
    bucket = KernelTask("bucket", matmul(20), calls=1.0, flops=1.0, budget=3)
    bucket_records_at_each_search = {}

    def search(tasks, **_options):
        (context,) = tasks
        bucket_records_at_each_search[context.task_name] = database.trials_by_workload().get(workload_key(bucket.mod), 0)

    monkeypatch.setattr(tune_module.ms, "tune_tasks", search)
    tune_kernels(
        [full, bucket], X86.tvm_target(), X86.device_type, database, tuning_runner(X86, X86.config()), ForkingBuilder(),
        show_progress=False,
    )
    assert bucket_records_at_each_search == {"full": 1, "bucket": 1}  # its seed, measured before the first search
