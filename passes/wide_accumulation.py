"""Means and 2-D matmuls summed in float64: the legalizations ``LegalizeOps`` uses for ``relax.mean`` and ``relax.matmul``.

TVM's default legalizations sum in the input's dtype, one element after the
other. Over a gate's pooled input (32x32 positions in a CIFAR-sized model) that
rounds each channel's mean by a few millionths of its size, where PyTorch's
cascaded sum rounds it by about one float32 ulp. A gate then multiplies the
pooled means by the weights of its linear layer, which are large where training
normalised the gate's logits (the folded norm divides by a small spread), and
the large products cancel down to a logit near the threshold: every rounding
on the way is magnified, and a soft score carries it into every block after
the gate. On one checkpoint trained with normalised gates, the compiled logits
were 1.5e-2 from eager's; summing both in float64 brought them to the order of
eager's own float32 rounding. The kernels still read and write float32 (only
the accumulators are wide), each stays one tunable kernel, and both ops are
tiny next to the convolutions. Matmuls of other ranks keep TVM's legalization.
"""

from __future__ import annotations

import math

import tvm
from tvm import relax, te, tirx
from tvm.ir import Call

#: The dtype the sums of these kernels accumulate in.
ACCUMULATOR = "float64"


def legalize_mean(bb: relax.BlockBuilder, call: Call) -> relax.Expr:
    """``relax.mean(x, axis, keepdims)`` as one kernel that sums in :data:`ACCUMULATOR` (any float dtype in and out)."""
    data = call.args[0]
    rank = len(data.ty.shape)
    axes = range(rank) if call.attrs.axis is None else sorted(int(axis) % rank for axis in call.attrs.axis)
    return bb.call_te(_mean, data, tuple(axes), bool(call.attrs.keepdims), primfunc_name_hint="mean")


def legalize_matmul(bb: relax.BlockBuilder, call: Call) -> relax.Expr:
    """``relax.matmul(a, b)`` of two 2-D operands (a linear layer) as one kernel that sums in :data:`ACCUMULATOR`."""
    a, b = call.args
    if len(a.ty.shape) != 2 or len(b.ty.shape) != 2:
        return tvm.ir.Op.get("relax.matmul").get_attr("FLegalize")(bb, call)
    return bb.call_te(_matmul, a, b, str(call.ty.dtype), primfunc_name_hint="matmul")


#: What the pipeline hands ``LegalizeOps``.
WIDE_ACCUMULATION = {"relax.mean": legalize_mean, "relax.matmul": legalize_matmul}


def _mean(data: te.Tensor, axes: tuple[int, ...], keepdims: bool) -> te.Tensor:
    reduced = {axis: te.reduce_axis((0, data.shape[axis]), name=f"k{axis}") for axis in axes}
    kept = [axis for axis in range(len(data.shape)) if axis not in reduced]
    shape = [1 if axis in reduced else data.shape[axis] for axis in range(len(data.shape))] if keepdims else [
        data.shape[axis] for axis in kept
    ]

    def source_index(out_index: tuple) -> list:
        kept_index = out_index if not keepdims else [out_index[axis] for axis in kept]
        position = dict(zip(kept, kept_index))
        return [reduced[axis] if axis in reduced else position[axis] for axis in range(len(data.shape))]

    total = te.compute(
        shape,
        lambda *index: te.sum(data(*source_index(index)).astype(ACCUMULATOR), axis=list(reduced.values())),
        name="total",
    )
    count = tirx.Cast(ACCUMULATOR, math.prod((data.shape[axis] for axis in axes), start=tirx.const(1, "int64")))
    return te.compute(shape, lambda *index: (total(*index) / count).astype(data.dtype), name="mean")


def _matmul(a: te.Tensor, b: te.Tensor, dtype: str) -> te.Tensor:
    k = te.reduce_axis((0, a.shape[1]), name="k")
    total = te.compute(
        (a.shape[0], b.shape[1]),
        lambda i, j: te.sum(a[i, k].astype(ACCUMULATOR) * b[k, j].astype(ACCUMULATOR), axis=k),
        name="total",
    )
    return te.compute(total.shape, lambda i, j: total[i, j].astype(dtype), name="matmul")
