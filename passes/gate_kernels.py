"""The kernels a lowered gate adds to the model's own: its decision, and a channel bucket's gathers.

A decision is one TensorIR kernel where Relax ops would take several (a channel
gate's decision was seven kernels and a comparison per bucket): every kernel a
gate adds costs a call and an allocation per inference, more than these tiny
computations themselves. A gather takes one tensor's kept channels; it does not
stay a kernel: :class:`~.fuse_channel_gathers.FuseChannelGathers` moves it into
the kernel that reads it.
"""

from __future__ import annotations

from collections.abc import Sequence

from tvm import relax, te, tirx
from tvm.script import tirx as T
from tvm.script.parser import parse


def layer_decision(score: relax.TensorType) -> tirx.PrimFunc:
    """``(score) -> (keep, largest)``: keep the branch iff some sample's score is positive; the largest score.

    ``largest`` is exactly 0 when the branch is skipped (scores are clipped at 0): the skipped arm
    broadcasts it into its zeros.
    """
    rows, _ = (int(extent) for extent in score.shape)
    dtype = str(score.dtype)
    return _parse(f'''
@T.prim_func(private=True, s_tir=True)
def layer_decision(score: T.Buffer(({rows}, 1), "{dtype}"), keep: T.Buffer((), "bool"), largest: T.Buffer((), "{dtype}")):
    T.func_attr({{"tirx.noalias": True}})
    with T.sblock("decide"):
        largest[()] = T.{dtype}(0)
        for i in range({rows}):
            largest[()] = T.max(largest[()], score[i, 0])
        keep[()] = largest[()] > T.{dtype}(0)
''')


def channel_decision(score: relax.TensorType, buckets: Sequence[int]) -> tirx.PrimFunc:
    """``(score) -> (order, computed, largest, at_most_0, at_most_b1, ...)`` for a channel gate.

    A channel is kept when some sample of the batch keeps it (score > 0).
    ``order`` lists the kept channels first, then the others, each group in
    channel order (a bucket of ``b`` channels computes ``order[:b]``);
    ``computed`` (float32, 1 = computed) flags the channels the chosen bucket
    computes: the smallest of ``0, *buckets`` that holds every kept channel.
    ``at_most_b`` says whether the kept channels fit in ``b`` (one flag per
    bucket but the last), ``largest`` is the largest score (0: nothing kept).
    """
    rows, width = (int(extent) for extent in score.shape)
    dtype = str(score.dtype)
    arms = [0, *buckets]
    flags = "".join(f', at_most_{size}: T.Buffer((), "bool")' for size in arms[:-1])
    set_flags = "".join(f"\n        at_most_{size}[()] = count[0] <= T.int64({size})" for size in arms[:-1])
    chosen = f"T.int64({arms[-1]})"
    for size in reversed(arms[:-1]):
        chosen = f"T.Select(count[0] <= T.int64({size}), T.int64({size}), {chosen})"
    return _parse(f'''
@T.prim_func(private=True, s_tir=True)
def channel_decision(score: T.Buffer(({rows}, {width}), "{dtype}"), order: T.Buffer(({width},), "int64"), computed: T.Buffer(({width},), "float32"), largest: T.Buffer((), "{dtype}"){flags}):
    T.func_attr({{"tirx.noalias": True}})
    kept = T.alloc_buffer(({width},), "bool")
    count = T.alloc_buffer((1,), "int64")
    rest = T.alloc_buffer((1,), "int64")
    with T.sblock("decide"):
        largest[()] = T.{dtype}(0)
        count[0] = T.int64(0)
        for j in range({width}):
            kept[j] = False
            for i in range({rows}):
                kept[j] = kept[j] or score[i, j] > T.{dtype}(0)
                largest[()] = T.max(largest[()], score[i, j])
            if kept[j]:
                count[0] = count[0] + T.int64(1)
        rest[0] = count[0]
        count[0] = T.int64(0)
        for j in range({width}):
            if kept[j]:
                order[count[0]] = T.int64(j)
                count[0] = count[0] + T.int64(1)
            else:
                order[rest[0]] = T.int64(j)
                rest[0] = rest[0] + T.int64(1)
        for j in range({width}):
            computed[j] = T.float32(0)
        for r in range({width}):
            if T.Cast("int64", r) < {chosen}:
                computed[order[r]] = T.float32(1){set_flags}
''')


#: PrimFunc attribute of a channel gather kernel: the axis it gathers (see :func:`channel_gather`).
CHANNEL_GATHER_AXIS = "lcnet.channel_gather_axis"
#: Name of a channel gather's block; in a kernel it was fused into, also ``gathered1``, ``gathered2``, ...
GATHER_BLOCK = "gathered"


def channel_gather(width: int, size: int, operand: relax.TensorType, axis: int) -> tirx.PrimFunc:
    """``(order, operand) -> gathered``: the ``size`` slices ``order[:size]`` of ``operand`` along ``axis``.

    The operand is a producer's weight (rows), a per-channel constant, the score or a consumer's
    weight (columns). The kernel carries :data:`CHANNEL_GATHER_AXIS`.
    """
    # Extents in int64, as in the kernels LegalizeOps makes: FuseTIR joins buffers only of the same type.
    order = te.placeholder((tirx.IntImm("int64", width),), "int64", name="order")
    shape = [tirx.IntImm("int64", int(extent)) for extent in operand.shape]
    source = te.placeholder(shape, str(operand.dtype), name="operand")
    gathered_shape = [*shape[:axis], tirx.IntImm("int64", size), *shape[axis + 1 :]]
    gathered = te.compute(
        gathered_shape, lambda *index: source[(*index[:axis], order[index[axis]], *index[axis + 1 :])], name=GATHER_BLOCK
    )
    # create_prim_func names every function "main": a kernel among many is private.
    kernel = te.create_prim_func([order, source, gathered]).without_attr("global_symbol")
    return kernel.with_attr("tirx.noalias", True).with_attr(CHANNEL_GATHER_AXIS, axis)


def _parse(source: str) -> tirx.PrimFunc:
    return parse(source, extra_vars={"T": T}, s_tir=True)
