"""LowerToHostProgram: structure (Before/Expected), what it leaves alone, numbers, and its workspace plan."""

import logging

import numpy as np
import pytest
import tvm
import tvm_ffi
from hypothesis import given
from hypothesis import strategies as st
from lcnet_tvm.passes.host_program import KERNEL_CALLED, LowerToHostProgram, _plan
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
    def host_program(x: T.Buffer((256,), "float32"), result0: T.Buffer((256,), "float32"), result1: T.Buffer((256,), "float32")):
        # intermediates live in one workspace: past the stack's limit, so the pool gives it 64-byte aligned
        workspace = T.alloc_buffer((2048,), "uint8")
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
            for i0 in T.grid(256):  # z is y here: a copy
                result1[i0] = result0[i0]

    @T.prim_func(private=True)
    def host_program_traced(x: T.Buffer((256,), "float32"), result0: T.Buffer((256,), "float32"), result1: T.Buffer((256,), "float32")):
        workspace = T.alloc_buffer((2048,), "uint8")
        T.call_packed("lcnet_tvm.kernel_called", "double", x, result0)
        T.call_cpacked("double", x, result0)
        keep_address: T.let = T.handle_add_byte_offset(workspace.data, 0)
        keep = T.decl_buffer((), "bool", data=keep_address)
        T.call_packed("lcnet_tvm.kernel_called", "positive", result0, keep)
        T.call_cpacked("positive", result0, keep)
        if T.Cast("int32", keep[()]) != 0:
            twice_address: T.let = T.handle_add_byte_offset(workspace.data, 0)
            twice = T.decl_buffer((256,), "float32", data=twice_address)
            T.call_packed("lcnet_tvm.kernel_called", "double", result0, twice)
            T.call_cpacked("double", result0, twice)
            four_times_address: T.let = T.handle_add_byte_offset(workspace.data, 1024)
            four_times = T.decl_buffer((256,), "float32", data=four_times_address)
            T.call_packed("lcnet_tvm.kernel_called", "double", twice, four_times)
            T.call_cpacked("double", twice, four_times)
            T.call_packed("lcnet_tvm.kernel_called", "double", four_times, result1)
            T.call_cpacked("double", four_times, result1)
        else:
            for i0 in T.grid(256):
                result1[i0] = result0[i0]

    @R.function
    def main(x: R.Tensor((256,), "float32")) -> R.Tuple(R.Tensor((256,), "float32"), R.Tensor((256,), "float32")):
        cls = Expected
        results = R.call_tir(
            cls.host_program, (x,), out_ty=[R.Tensor((256,), "float32"), R.Tensor((256,), "float32")]
        )
        return (results[0], results[1])

    @R.function
    def main_traced(x: R.Tensor((256,), "float32")) -> R.Tuple(R.Tensor((256,), "float32"), R.Tensor((256,), "float32")):
        cls = Expected
        results = R.call_tir(
            cls.host_program_traced, (x,), out_ty=[R.Tensor((256,), "float32"), R.Tensor((256,), "float32")]
        )
        return (results[0], results[1])


def test_main_becomes_one_call_of_a_host_program_that_calls_the_kernels():
    tvm.ir.assert_structural_equal(LowerToHostProgram()(Before), Expected)


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
def test_the_host_program_computes_what_the_vm_did_and_its_twin_reports_each_kernel_call(sign):
    x = np.linspace(0.5, 1.5, 256, dtype="float32") * sign
    doubled = 2 * x
    expected = (doubled, 8 * doubled if sign > 0 else doubled)
    called = []
    tvm_ffi.register_global_func(KERNEL_CALLED, lambda name, *_args: called.append(name), override=True)
    for mod in (Before, LowerToHostProgram()(Before)):
        vm = relax.VirtualMachine(relax.build(mod, "llvm"), tvm.cpu())
        for name in ("main", "main_traced") if "main_traced" in [gv.name_hint for gv in mod.get_global_vars()] else ("main",):
            for output, want in zip(vm[name](tvm.runtime.tensor(x)), expected):
                np.testing.assert_array_equal(output.numpy(), want)
    assert called == (["double", "positive", "double", "double", "double"] if sign > 0 else ["double", "positive"])


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
