"""LowerToHostProgram: structure (Before/Expected), what it leaves alone, numbers, and its workspace plan."""

import logging
import time

import numpy as np
import pytest
import tvm
from hypothesis import given
from hypothesis import strategies as st
from lcnet_tvm.passes.host_program import LowerToHostProgram, _plan, packed_results, unpacked
from tvm import relax
from tvm.script import ir as I
from tvm.script import relax as R
from tvm.script import tirx as T


@I.ir_module
class Before:
    @T.prim_func(private=True, s_tir=True)
    def double(a: T.Buffer((256,), "float32"), b: T.Buffer((256,), "float32")):
        for i in range(256):
            with T.sblock("double"):
                vi = T.axis.remap("S", [i])
                b[vi] = a[vi] * T.float32(2)

    @T.prim_func(private=True, s_tir=True)
    def positive(a: T.Buffer((256,), "float32"), keep: T.Buffer((), "bool")):
        with T.sblock("decide"):
            keep[()] = a[0] > T.float32(0)

    @R.function(private=True)
    def branch(a: R.Tensor((256,), "float32")) -> R.Tensor((256,), "float32"):
        cls = Before
        with R.dataflow():
            twice = R.call_tir(cls.double, (a,), out_ty=R.Tensor((256,), "float32"))
            four_times = R.call_tir(cls.double, (twice,), out_ty=R.Tensor((256,), "float32"))
            eight_times = R.call_tir(cls.double, (four_times,), out_ty=R.Tensor((256,), "float32"))
            R.output(eight_times)
        return eight_times

    @R.function
    def main(x: R.Tensor((256,), "float32")) -> R.Tuple(R.Tensor((256,), "float32"), R.Tensor((256,), "float32")):
        cls = Before
        with R.dataflow():
            y = R.call_tir(cls.double, (x,), out_ty=R.Tensor((256,), "float32"))
            keep = R.call_tir(cls.positive, (y,), out_ty=R.Tensor((), "bool"))
            R.output(y, keep)
        if keep:
            taken = cls.branch(y)
            z: R.Tensor((256,), "float32") = taken
        else:
            z: R.Tensor((256,), "float32") = y
        return (y, z)


@I.ir_module
class Expected:
    @T.prim_func(private=True, s_tir=True)
    def double(a: T.Buffer((256,), "float32"), b: T.Buffer((256,), "float32")):
        for i in range(256):
            with T.sblock("double"):
                vi = T.axis.remap("S", [i])
                b[vi] = a[vi] * T.float32(2)

    @T.prim_func(private=True, s_tir=True)
    def positive(a: T.Buffer((256,), "float32"), keep: T.Buffer((), "bool")):
        with T.sblock("decide"):
            keep[()] = a[0] > T.float32(0)

    @T.prim_func(private=True)
    def host_program(x: T.Buffer((256,), "float32"), results: T.Buffer((512,), "float32")):
        # intermediates live in one workspace: past the stack's limit, so the pool gives it 64-byte aligned
        workspace = T.alloc_buffer((2048,), "uint8")
        # main's results, one after the other (each 64-byte aligned) in the one tensor main returns
        result0_address: T.let = T.handle_add_byte_offset(results.data, 0)
        result0 = T.decl_buffer((256,), "float32", data=result0_address)
        result1_address: T.let = T.handle_add_byte_offset(results.data, 1024)
        result1 = T.decl_buffer((256,), "float32", data=result1_address)
        # y is returned: the kernel writes it where main returns it
        T.call_cpacked("double", x, result0)
        keep_address: T.let = T.handle_add_byte_offset(workspace.data, 0)
        keep = T.decl_buffer((), "bool", data=keep_address)
        T.call_cpacked("positive", result0, keep)
        if T.Cast("int32", keep[()]) != 0:
            # the branch function, inlined: twice takes keep's place (dead once read), four_times the
            # next place past twice (both live in its call), eight_times is written where z is returned
            twice_address: T.let = T.handle_add_byte_offset(workspace.data, 0)
            twice = T.decl_buffer((256,), "float32", data=twice_address)
            T.call_cpacked("double", result0, twice)
            four_times_address: T.let = T.handle_add_byte_offset(workspace.data, 1024)
            four_times = T.decl_buffer((256,), "float32", data=four_times_address)
            T.call_cpacked("double", twice, four_times)
            T.call_cpacked("double", four_times, result1)
        else:
            for i0 in T.vectorized(256):  # z is y here: a copy
                result1[i0] = result0[i0]

    @T.prim_func(private=True)
    def host_program_timed(
        x: T.Buffer((256,), "float32"),
        results: T.Buffer((512,), "float32"),
        clock: T.Buffer((6,), "int64"),
    ):
        # kernel k counts at clock[2k] and adds its nanoseconds at clock[2k + 1]; clock[4:6] is a timespec
        T.func_attr({"lcnet_tvm.timed_kernels": ["double", "positive"]})
        workspace = T.alloc_buffer((2048,), "uint8")
        result0_address: T.let = T.handle_add_byte_offset(results.data, 0)
        result0 = T.decl_buffer((256,), "float32", data=result0_address)
        result1_address: T.let = T.handle_add_byte_offset(results.data, 1024)
        result1 = T.decl_buffer((256,), "float32", data=result1_address)
        for i in range(4):
            clock[i] = T.int64(0)
        T.call_extern("int32", "clock_gettime", 1, T.address_of(clock[4]))
        started: T.let[T.int64] = clock[4] * T.int64(1000000000) + clock[5]
        T.call_cpacked("double", x, result0)
        T.call_extern("int32", "clock_gettime", 1, T.address_of(clock[4]))
        took: T.let[T.int64] = clock[4] * T.int64(1000000000) + clock[5] - started
        clock[0] = clock[0] + T.int64(1)
        clock[1] = clock[1] + took
        keep_address: T.let = T.handle_add_byte_offset(workspace.data, 0)
        keep = T.decl_buffer((), "bool", data=keep_address)
        T.call_extern("int32", "clock_gettime", 1, T.address_of(clock[4]))
        started_1: T.let[T.int64] = clock[4] * T.int64(1000000000) + clock[5]
        T.call_cpacked("positive", result0, keep)
        T.call_extern("int32", "clock_gettime", 1, T.address_of(clock[4]))
        took_1: T.let[T.int64] = clock[4] * T.int64(1000000000) + clock[5] - started_1
        clock[2] = clock[2] + T.int64(1)
        clock[3] = clock[3] + took_1
        if T.Cast("int32", keep[()]) != 0:
            twice_address: T.let = T.handle_add_byte_offset(workspace.data, 0)
            twice = T.decl_buffer((256,), "float32", data=twice_address)
            T.call_extern("int32", "clock_gettime", 1, T.address_of(clock[4]))
            started_2: T.let[T.int64] = clock[4] * T.int64(1000000000) + clock[5]
            T.call_cpacked("double", result0, twice)
            T.call_extern("int32", "clock_gettime", 1, T.address_of(clock[4]))
            took_2: T.let[T.int64] = clock[4] * T.int64(1000000000) + clock[5] - started_2
            clock[0] = clock[0] + T.int64(1)
            clock[1] = clock[1] + took_2
            four_times_address: T.let = T.handle_add_byte_offset(workspace.data, 1024)
            four_times = T.decl_buffer((256,), "float32", data=four_times_address)
            T.call_extern("int32", "clock_gettime", 1, T.address_of(clock[4]))
            started_3: T.let[T.int64] = clock[4] * T.int64(1000000000) + clock[5]
            T.call_cpacked("double", twice, four_times)
            T.call_extern("int32", "clock_gettime", 1, T.address_of(clock[4]))
            took_3: T.let[T.int64] = clock[4] * T.int64(1000000000) + clock[5] - started_3
            clock[0] = clock[0] + T.int64(1)
            clock[1] = clock[1] + took_3
            T.call_extern("int32", "clock_gettime", 1, T.address_of(clock[4]))
            started_4: T.let[T.int64] = clock[4] * T.int64(1000000000) + clock[5]
            T.call_cpacked("double", four_times, result1)
            T.call_extern("int32", "clock_gettime", 1, T.address_of(clock[4]))
            took_4: T.let[T.int64] = clock[4] * T.int64(1000000000) + clock[5] - started_4
            clock[0] = clock[0] + T.int64(1)
            clock[1] = clock[1] + took_4
        else:
            for i0 in T.vectorized(256):
                result1[i0] = result0[i0]

    @R.function
    def main(x: R.Tensor((256,), "float32")) -> R.Tensor((512,), "float32"):
        R.func_attr({"lcnet_tvm.packed_results": [[0, 256], [256, 256]]})
        cls = Expected
        results = R.call_tir(cls.host_program, (x,), out_ty=R.Tensor((512,), "float32"))
        return results

    @R.function
    def main_timed(x: R.Tensor((256,), "float32")) -> R.Tuple(R.Tensor((512,), "float32"), R.Tensor((6,), "int64")):
        R.func_attr({"lcnet_tvm.packed_results": [[0, 256], [256, 256]]})
        cls = Expected
        results = R.call_tir(
            cls.host_program_timed, (x,), out_ty=[R.Tensor((512,), "float32"), R.Tensor((6,), "int64")]
        )
        return (results[0], results[1])


def test_main_becomes_one_call_of_a_host_program_that_calls_the_kernels():
    tvm.ir.assert_structural_equal(LowerToHostProgram(timed=True)(Before), Expected)


def test_the_timed_twin_is_built_only_when_asked():
    names = {gv.name_hint for gv in LowerToHostProgram()(Before).get_global_vars()}
    assert names == {gv.name_hint for gv in Expected.get_global_vars()} - {"main_timed", "host_program_timed"}


@I.ir_module
class Symbolic:
    @R.function
    def main(x: R.Tensor((256,), "float32"), n: R.Prim("int64")) -> R.Tensor((256,), "float32"):
        return x


def test_a_main_the_host_program_cannot_express_is_left_to_the_vm_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="lcnet_tvm.passes.host_program"):
        assert LowerToHostProgram()(Symbolic).same_as(Symbolic)
    assert "main's parameter n is not a tensor" in caplog.text


@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["branch-taken", "branch-skipped"])
def test_the_host_program_computes_what_the_vm_did_and_its_twin_counts_and_times_each_kernel(sign):
    x = np.linspace(0.5, 1.5, 256, dtype="float32") * sign
    doubled = 2 * x
    expected = (doubled, 8 * doubled if sign > 0 else doubled)
    lowered = LowerToHostProgram(timed=True)(Before)
    vm = relax.VirtualMachine(relax.build(Before, "llvm"), tvm.cpu())
    for output, want in zip(vm["main"](tvm.runtime.tensor(x)), expected):
        np.testing.assert_array_equal(output.numpy(), want)
    vm = relax.VirtualMachine(relax.build(lowered, "llvm"), tvm.cpu())
    layout = packed_results(lowered)
    for output, want in zip(unpacked(vm["main"](tvm.runtime.tensor(x)).numpy(), layout), expected):
        np.testing.assert_array_equal(output, want)
    started = time.perf_counter_ns()
    results, clock = vm["main_timed"](tvm.runtime.tensor(x))
    took = time.perf_counter_ns() - started
    for output, want in zip(unpacked(results.numpy(), layout), expected):
        np.testing.assert_array_equal(output, want)
    counts, nanoseconds = clock.numpy()[:4:2], clock.numpy()[1:4:2]
    kernels = list(lowered["host_program_timed"].attrs["lcnet_tvm.timed_kernels"])
    assert dict(zip(kernels, counts.tolist())) == ({"double": 4, "positive": 1} if sign > 0 else {"double": 1, "positive": 1})
    # Each kernel's time was spent within the call: positive, and together no more than the call took.
    assert (nanoseconds > 0).all() and nanoseconds.sum() <= took


@given(
    st.lists(
        st.tuples(st.integers(0, 40), st.integers(0, 10), st.integers(1, 5000)), min_size=1, max_size=40
    )
)
def test_the_workspace_plan_never_overlaps_two_buffers_alive_at_once(buffers):
    """Each buffer as (first step, steps it stays alive, bytes): places are aligned, disjoint while both live."""
    live = {f"b{k}": [first, first + length] for k, (first, length, _) in enumerate(buffers)}
    sizes = {f"b{k}": size for k, (_, _, size) in enumerate(buffers)}
    places, total = _plan(sizes, live)
    assert all(place % 64 == 0 and place + sizes[name] <= total for name, place in places.items())
    for a in places:
        for b in places:
            alive_together = a < b and live[a][0] <= live[b][1] and live[b][0] <= live[a][1]
            if alive_together:
                assert places[a] + sizes[a] <= places[b] or places[b] + sizes[b] <= places[a], (a, b)
    assert total <= sum(-(-size // 64) * 64 for size in sizes.values())


@I.ir_module
class ReturnedTwice:
    @T.prim_func(private=True, s_tir=True)
    def double(a: T.Buffer((2, 3, 4, 8), "float32"), b: T.Buffer((2, 3, 4, 8), "float32")):
        for n, c, h, w in T.grid(2, 3, 4, 8):
            with T.sblock("double"):
                vn, vc, vh, vw = T.axis.remap("SSSS", [n, c, h, w])
                b[vn, vc, vh, vw] = a[vn, vc, vh, vw] * T.float32(2)

    @R.function
    def main(x: R.Tensor((2, 3, 4, 8), "float32")):
        cls = ReturnedTwice
        with R.dataflow():
            y = R.call_tir(cls.double, (x,), out_ty=R.Tensor((2, 3, 4, 8), "float32"))
            R.output(y)
        return (y, y)


def test_a_value_returned_twice_is_copied_whole_into_the_second_output():
    # The copy of a 4-D tensor (a 1-D one is in Expected above).
    x = np.arange(2 * 3 * 4 * 8, dtype="float32").reshape(2, 3, 4, 8)
    lowered = LowerToHostProgram()(ReturnedTwice)
    vm = relax.VirtualMachine(relax.build(lowered, "llvm"), tvm.cpu())
    first, second = unpacked(vm["main"](tvm.runtime.tensor(x)).numpy(), packed_results(lowered))
    np.testing.assert_array_equal(first, 2 * x)
    np.testing.assert_array_equal(second, 2 * x)


@I.ir_module
class ReturnsABool:
    @T.prim_func(private=True, s_tir=True)
    def positive(a: T.Buffer((256,), "float32"), keep: T.Buffer((), "bool")):
        with T.sblock("decide"):
            keep[()] = a[0] > T.float32(0)

    @R.function
    def main(x: R.Tensor((256,), "float32")):
        cls = ReturnsABool
        with R.dataflow():
            keep = R.call_tir(cls.positive, (x,), out_ty=R.Tensor((), "bool"))
            R.output(keep)
        return (x, keep)


def test_results_not_all_float32_are_returned_as_they_are():
    lowered = LowerToHostProgram()(ReturnsABool)
    assert packed_results(lowered) == []
    x = np.linspace(-1, 1, 256, dtype="float32")
    vm = relax.VirtualMachine(relax.build(lowered, "llvm"), tvm.cpu())
    same, keep = vm["main"](tvm.runtime.tensor(x))
    np.testing.assert_array_equal(same.numpy(), x)
    assert not keep.numpy()
