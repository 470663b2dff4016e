"""Channel gates become channel-gather ops: skipped channels are neither computed nor read."""

from __future__ import annotations

import logging

import numpy as np
import tvm
from tvm import relax

from lcnet_tvm.compiler.gate_forms import DEFAULT_CHANNEL_BUCKETS, channel_buckets

from .executed_work import add_skip_function, flat_bindings, rebuild_main, returned_fields, work_flag_position
from .gate_regions import GateRegion, lowerable_regions, op_name

logger = logging.getLogger(__name__)

#: Ops between the producer conv and the gate whose operands can be gathered by channel.
_GATHERABLE_OPS = {"relax.nn.relu", "relax.add", "relax.multiply", "relax.subtract", "relax.divide"}


@tvm.transform.module_pass(opt_level=0, name="LowerChannelGates")
class LowerChannelGates:
    """Compute only the channels a channel gate keeps, with one static-shape function per bucket.

    Expects: ``main`` as made by :class:`~.executed_work.ExposeExecutedWork`
    (weights bound, batch norm decomposed). Per understood channel gate
    (``producer conv -> per-channel ops -> * score -> consumer convs``) it
    produces, in ``main``::

        keep = max(score, axis=0) > 0            # union over the batch, (C,)
        order = argsort(where(keep, arange(C), C + arange(C)))   # kept first
        count = sum(keep)
        outs = if count == 0:        gate3_channels0()           # zeros
               elif count <= b1:     gate3_channels{b1}(x, score4d, order)
               ...
               else:                 gate3_channels{C}(x, score4d, order)  # dense

    ``gate3_channels{b}`` gathers the first ``b`` channels of ``order``: rows
    of the producer's weight, the per-channel constants and the score, and
    columns of each consumer's weight; the intermediate stays compact (b
    channels) and each consumer's output is dense. Every kernel has a static
    shape, so each bucket can be tuned. The padding channels (``b > count``)
    have score 0 for every sample, so the result is exactly the mask form's.
    Each function also returns which channels it computed: the gate's work flag.
    A gate whose pattern this pass does not handle stays in mask form, with a warning.
    """

    def __init__(self, buckets: int = DEFAULT_CHANNEL_BUCKETS):
        channel_buckets(1, buckets)  # validates
        self.buckets = buckets

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        func, regions = lowerable_regions(mod, "channel", "LowerChannelGates")
        if not regions:
            return mod
        builder = relax.BlockBuilder(mod)
        bindings = flat_bindings(func)
        values = {binding.var: binding.value for binding in bindings}
        outputs = returned_fields(func)
        lowered: dict[relax.Var, int] = {}  # var -> gate that took it
        for region in regions:
            members = [*region.chain, region.multiply, *region.consumers]
            problem = _lowering_problem(region, values, lowered)
            if problem:
                logger.warning("gate %d (channel) left in mask form: %s", region.index, problem)
                continue
            lowered.update(dict.fromkeys(members, region.index))
            dispatch, flag = _Dispatch(builder, region, values, self.buckets).bindings()
            first_consumer = min(index for index, b in enumerate(bindings) if b.var in region.consumers)
            bindings = (
                [b for b in bindings[:first_consumer] if b.var not in members]
                + dispatch
                + [b for b in bindings[first_consumer:] if b.var not in members]
            )
            outputs[work_flag_position(func, region.index)] = flag
        if not lowered:
            return mod
        mod = builder.get()
        mod["main"] = rebuild_main(func, bindings, outputs, sorted(set(lowered.values())))
        return relax.transform.Normalize()(mod)


def _lowering_problem(region: GateRegion, values: dict, lowered: dict) -> str:
    """Why this pass cannot lower an understood channel gate, or ``""``."""
    for var in region.chain[1:]:
        op = op_name(values[var]) or type(values[var]).__name__
        if op not in _GATHERABLE_OPS:
            return f"{var.name} ({op}) between the producer and the gate cannot be gathered by channel"
    for var in [*region.chain, *region.consumers]:
        if var in lowered:
            return f"{var.name} also belongs to channel gate {lowered[var]} (chained channel gates)"
    # Everything the moved ops read from outside must exist where the dispatch goes (the first consumer).
    order = list(values)
    first_consumer = min(order.index(var) for var in region.consumers)
    for var in [*region.chain, region.multiply, *region.consumers]:
        for used in relax.analysis.free_vars(values[var]):
            if used in values and order.index(used) > first_consumer:
                return f"{var.name} reads {used.name}, which is computed after the first consumer"
    return ""


class _Dispatch:
    """The bucket functions of one channel gate and the bindings in ``main`` that choose among them."""

    def __init__(self, builder: relax.BlockBuilder, region: GateRegion, values: dict, buckets: int):
        self.builder = builder
        self.region = region
        self.values = values
        self.width = int(region.score.ty.shape[-1])
        self.sizes = channel_buckets(self.width, buckets)
        moved = {*region.chain, region.multiply, *region.consumers}
        self.inputs = []  # what the moved ops read from main, in first-use order
        for var in [*region.chain, region.multiply, *region.consumers]:
            for used in relax.analysis.free_vars(values[var]):
                if used not in moved and used not in self.inputs:
                    self.inputs.append(used)
        self.name = f"gate{region.index}_channels"

    def bindings(self) -> tuple[list[relax.VarBinding], relax.Var]:
        """Bindings that pick a bucket and call its function; and the var holding the work flag."""
        dtype = self.region.score.ty.dtype
        name = f"gate{self.region.index}"
        channel_max = relax.Var(f"{name}_channel_max", relax.TensorType((self.width,), dtype))
        keep = relax.Var(f"{name}_keep", relax.TensorType((self.width,), "bool"))
        sort_key = relax.Var(f"{name}_sort_key", relax.TensorType((self.width,), "int64"))
        order = relax.Var(f"{name}_order", relax.TensorType((self.width,), "int64"))
        count = relax.Var(f"{name}_count", relax.TensorType((), "int64"))
        channels = np.arange(self.width, dtype="int64")
        result = [
            relax.VarBinding(channel_max, relax.op.max(self.region.score, axis=[0])),
            relax.VarBinding(keep, relax.op.greater(channel_max, relax.const(0.0, dtype))),
            # Kept channels first, each group in channel order: the first b entries are a bucket's channels.
            relax.VarBinding(sort_key, relax.op.where(keep, relax.const(channels, "int64"), relax.const(channels + self.width, "int64"))),
            relax.VarBinding(order, relax.op.argsort(sort_key, axis=0, dtype="int64")),
            relax.VarBinding(count, relax.op.sum(relax.op.astype(keep, "int64"))),
        ]
        largest_score = relax.Var(f"{name}_largest_score", relax.TensorType((), dtype))
        result.append(relax.VarBinding(largest_score, relax.op.max(channel_max)))
        # No channel kept by any sample: the consumers read only zeros, so they output zeros.
        skip_types = [*(var.ty for var in self.region.consumers), self._flag_ty]
        arms = [(0, relax.Call(add_skip_function(self.builder, f"{self.name}0", dtype, skip_types), [largest_score]))]
        for size in self.sizes:
            arms.append((size, relax.Call(self._bucket_function(size), [*self.inputs, order])))
        conditions = []
        for size, _ in arms[:-1]:
            condition = relax.Var(f"{name}_at_most_{size}", relax.TensorType((), "bool"))
            result.append(relax.VarBinding(condition, relax.op.less_equal(count, relax.const(size, "int64"))))
            conditions.append(condition)
        chosen = arms[-1][1]
        for condition, (_, call) in reversed(list(zip(conditions, arms[:-1]))):
            chosen = relax.If(condition, relax.SeqExpr([], call), relax.SeqExpr([], chosen))
        outcome = relax.Var(f"{name}_outcome", relax.TupleType([*(var.ty for var in self.region.consumers), self._flag_ty]))
        result.append(relax.VarBinding(outcome, chosen))
        for position, consumer in enumerate(self.region.consumers):
            result.append(relax.VarBinding(consumer, relax.TupleGetItem(outcome, position)))
        flag = relax.Var(f"{name}_computed", self._flag_ty)
        result.append(relax.VarBinding(flag, relax.TupleGetItem(outcome, len(self.region.consumers))))
        return result, flag

    @property
    def _flag_ty(self) -> relax.TensorType:
        return relax.TensorType((self.width,), "float32")

    def _bucket_function(self, size: int) -> relax.GlobalVar:
        """Compute ``size`` channels (the first ``size`` of ``order``); ``size == C`` is the dense mask form."""
        params = [relax.Var(var.name, var.ty) for var in self.inputs]
        order = relax.Var("order", relax.TensorType((self.width,), "int64"))
        builder = relax.BlockBuilder()
        with builder.function("bucket", [*params, order], private=True):
            with builder.dataflow():
                emit = builder.emit
                renamed = dict(zip(self.inputs, params))
                dense = size == self.width
                index = None if dense else emit(relax.op.strided_slice(order, axes=[0], begin=[0], end=[size]))

                def gather(expr: relax.Expr, axis: int) -> relax.Expr:
                    expr = renamed.get(expr, expr)
                    return expr if dense else emit(relax.op.take(expr, index, axis=axis))

                producer, *per_channel = [*self.region.chain, self.region.multiply]
                call = self.values[producer]
                renamed[producer] = emit(relax.Call(call.op, [renamed.get(call.args[0], call.args[0]), gather(call.args[1], 0)], call.attrs))
                for var in per_channel:
                    call = self.values[var]
                    args = [self._per_channel_operand(arg, renamed, gather) for arg in call.args]
                    renamed[var] = emit(relax.Call(call.op, args, call.attrs))
                fields = []
                for consumer in self.region.consumers:
                    call = self.values[consumer]
                    fields.append(emit(relax.Call(call.op, [renamed[call.args[0]], gather(call.args[1], 1)], call.attrs)))
                if dense:
                    fields.append(relax.const(np.ones((self.width,), "float32")))
                else:
                    zeros = relax.const(np.zeros((self.width,), "float32"))
                    ones = relax.const(np.ones((size,), "float32"))
                    fields.append(emit(relax.op.scatter_elements(zeros, index, ones, axis=0)))
                output = builder.emit_output(relax.Tuple(fields))
            builder.emit_func_output(output)
        return self.builder.add_func(builder.get()["bucket"], f"{self.name}{size}")

    def _per_channel_operand(self, arg: relax.Expr, renamed: dict, gather) -> relax.Expr:
        """An operand of a per-channel op: the compact chain value, or a parameter gathered by channel."""
        if arg in self.region.chain:
            return renamed[arg]  # the chain value, already compact
        shape = getattr(arg.ty, "shape", None)
        rank = len(shape) if shape is not None else 0
        # Broadcasting against NCHW, axis rank-3 of the operand lines up with C.
        if rank >= 3 and int(shape[rank - 3]) == self.width:
            return gather(arg, rank - 3)
        return renamed.get(arg, arg)
