"""LaunchSerialBlocksOnOneThread: structure (Before/Expected), no-op, and the GPU build it enables."""

import shutil

import pytest
import tvm
from tvm.s_tir import dlight
from tvm.script import ir as I
from tvm.script import tirx as T

from lcnet_tvm.passes.launch_serial_blocks import LaunchSerialBlocksOnOneThread


@I.ir_module
class Before:
    @T.prim_func(private=True, s_tir=True)
    def running_max(a: T.Buffer((16,), "float32"), m: T.Buffer((), "float32")):
        with T.sblock("scan"):
            m[()] = T.float32(0.0)
            for i in range(16):
                m[()] = T.max(m[()], a[i])

    @T.prim_func(private=True, s_tir=True)
    def add_one(a: T.Buffer((16,), "float32"), b: T.Buffer((16,), "float32")):
        for i in range(16):
            with T.sblock("add"):
                vi = T.axis.spatial(16, i)
                b[vi] = a[vi] + T.float32(1.0)


@T.prim_func(private=True, s_tir=True)
def running_max_on_one_thread(a: T.Buffer((16,), "float32"), m: T.Buffer((), "float32")):
    with T.sblock("scan"):
        T.launch_thread("blockIdx.x", 1)
        T.launch_thread("threadIdx.x", 1)
        m[()] = T.float32(0.0)
        for i in range(16):
            m[()] = T.max(m[()], a[i])


# The loop nest is left as it was.
Expected = tvm.IRModule({"running_max": running_max_on_one_thread, "add_one": Before["add_one"]})


def test_serial_blocks_run_on_one_thread_loop_nests_are_left_to_the_schedules():
    tvm.ir.assert_structural_equal(LaunchSerialBlocksOnOneThread()(Before), Expected)


def test_a_module_without_serial_blocks_is_unchanged():
    without = tvm.IRModule({"add_one": Before["add_one"]})
    assert LaunchSerialBlocksOnOneThread()(without).same_as(without)


def test_launched_blocks_are_not_launched_again():
    assert LaunchSerialBlocksOnOneThread()(Expected).same_as(Expected)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="CUDA code generation needs nvcc")
def test_the_serial_kernel_becomes_a_gpu_kernel():
    def device_modules(mod: tvm.IRModule) -> list:
        target = tvm.target.Target({"kind": "cuda", "arch": "sm_80"})
        with target:
            scheduled = dlight.ApplyDefaultSchedule(dlight.gpu.Fallback())(mod)
        return list(tvm.compile(scheduled, target).mod.imports)

    mod = tvm.IRModule({"running_max": Before["running_max"].with_attr("global_symbol", "running_max")})
    # Left alone, it builds as host code that would read GPU memory from the CPU.
    assert device_modules(mod) == []
    (cuda,) = device_modules(LaunchSerialBlocksOnOneThread()(mod))
    assert 'extern "C" __global__ void running_max_kernel(' in cuda.inspect_source()
