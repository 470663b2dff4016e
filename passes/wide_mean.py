"""A float32 mean summed in float64: the legalization ``LegalizeOps`` uses for ``relax.mean``.

TVM's default legalization sums in the input's dtype, one element after the
other. Over a gate's pooled input (32x32 positions in a CIFAR-sized model) that
rounds each channel's mean by a few millionths of its size, where PyTorch's
cascaded sum rounds it by about one float32 ulp. A gate multiplies its pooled
input by the weights of its linear layer (batch-norm-folded, large where its
training normalised the logits), and a soft score carries the rounding into
every block after it: on one checkpoint trained with normalised gates, that
alone moved the compiled logits 1.5e-2 from eager's. Summed in float64, the
mean is exact to its final rounding to float32. The kernel still reads float32
and writes float32 (only the accumulator is wide), and it stays one tunable
reduction kernel.
"""

from __future__ import annotations

import math

from tvm import relax, te, tirx
from tvm.ir import Call

#: The dtype the sums of :func:`legalize_mean` accumulate in.
ACCUMULATOR = "float64"


def legalize_mean(bb: relax.BlockBuilder, call: Call) -> relax.Expr:
    """``relax.mean(x, axis, keepdims)`` as one kernel that sums in :data:`ACCUMULATOR` (any float dtype in and out)."""
    data = call.args[0]
    rank = len(data.ty.shape)
    axes = range(rank) if call.attrs.axis is None else sorted(int(axis) % rank for axis in call.attrs.axis)
    return bb.call_te(_mean, data, tuple(axes), bool(call.attrs.keepdims), primfunc_name_hint="mean")


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
