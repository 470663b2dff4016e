"""Channel gates become channel-gather ops: skipped channels are neither computed nor read."""

from __future__ import annotations

import logging

import tvm
from tvm import relax

from lcnet_tvm.compiler.gate_forms import DEFAULT_CHANNEL_BUCKETS, channel_buckets

from .executed_work import add_skip_function, flat_bindings, rebuild_main, returned_fields, work_flag_position
from .gate_kernels import channel_decision, channel_gather
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

        decision = gate3_decision(score)     # one kernel (see gate_kernels.channel_decision):
        order, computed, largest, at_most_0, at_most_b1, ... = decision
        consumer = if at_most_0:     gate3_channels0(largest)                  # zeros
                   elif at_most_b1:  gate3_channels{b1}(x, score4d, order)
                   ...
                   else:             gate3_channels{C}(x, score4d, order)       # dense

    A channel is kept when any sample of the batch keeps it; ``order`` lists the
    kept channels first. ``gate3_channels{b}`` gathers the first ``b`` channels
    of ``order``, one kernel per tensor (``gate3_channels{b}_gather{i}``): rows
    of the producer's weight, the per-channel constants and the score, and
    columns of each consumer's weight (:class:`~.fuse_channel_gathers.FuseChannelGathers`
    later moves each into the kernel that reads it); the intermediate stays
    compact (b channels) and each consumer's output is dense. Every kernel has a static
    shape, so each bucket can be tuned. The padding channels (``b > count``)
    have score 0 for every sample, so the result is exactly the mask form's.
    ``computed`` (which channels the chosen bucket computes) is the gate's work flag.
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
        """Bindings that decide, pick a bucket and call its function; and the var holding the work flag."""
        dtype = self.region.score.ty.dtype
        name = f"gate{self.region.index}"
        arms = [0, *self.sizes]
        decide = self.builder.add_func(channel_decision(self.region.score.ty, self.sizes), f"{name}_decision")
        order_ty = relax.TensorType((self.width,), "int64")
        flag_ty = relax.TensorType((self.width,), "float32")
        decision_types = [order_ty, flag_ty, relax.TensorType((), dtype), *[relax.TensorType((), "bool")] * (len(arms) - 1)]
        decision = relax.Var(f"{name}_decision", relax.TupleType(decision_types))
        order = relax.Var(f"{name}_order", order_ty)
        flag = relax.Var(f"{name}_computed", flag_ty)
        largest_score = relax.Var(f"{name}_largest_score", decision_types[2])
        fits = [relax.Var(f"{name}_at_most_{size}", relax.TensorType((), "bool")) for size in arms[:-1]]
        result = [relax.VarBinding(decision, relax.op.call_tir(decide, [self.region.score], decision_types))]
        for position, var in enumerate([order, flag, largest_score, *fits]):
            result.append(relax.VarBinding(var, relax.TupleGetItem(decision, position)))
        # No channel kept by any sample: the consumers read only zeros, so they output zeros.
        outputs = [var.ty for var in self.region.consumers]
        calls = [relax.Call(add_skip_function(self.builder, f"{self.name}0", dtype, outputs), [largest_score])]
        calls += [relax.Call(self._bucket_function(size), [*self.inputs, order]) for size in self.sizes]
        chosen = calls[-1]
        for fit, call in reversed(list(zip(fits, calls[:-1]))):
            chosen = relax.If(fit, relax.SeqExpr([], call), relax.SeqExpr([], chosen))
        if len(outputs) == 1:  # one consumer: its tensor, no tuple to pack and unpack
            result.append(relax.VarBinding(self.region.consumers[0], chosen))
            return result, flag
        outcome = relax.Var(f"{name}_outcome", relax.TupleType(outputs))
        result.append(relax.VarBinding(outcome, chosen))
        for position, consumer in enumerate(self.region.consumers):
            result.append(relax.VarBinding(consumer, relax.TupleGetItem(outcome, position)))
        return result, flag

    def _bucket_function(self, size: int) -> relax.GlobalVar:
        """Compute ``size`` channels (the first ``size`` of ``order``); ``size == C`` is the dense mask form."""
        params = [relax.Var(var.name, var.ty) for var in self.inputs]
        order = relax.Var("order", relax.TensorType((self.width,), "int64"))
        renamed = dict(zip(self.inputs, params))
        producer, *per_channel = [*self.region.chain, self.region.multiply]
        # What the bucket reads by channel: the producer's weight rows, per-channel operands, the consumers' columns.
        gathered = [(self.values[producer].args[1], 0)]
        for var in per_channel:
            gathered += [(arg, axis) for arg in self.values[var].args if (axis := self._channel_axis(arg)) is not None]
        gathered += [(self.values[consumer].args[1], 1) for consumer in self.region.consumers]
        builder = relax.BlockBuilder()
        with builder.function("bucket", [*params, order], private=True):
            with builder.dataflow():
                emit = builder.emit
                if size < self.width:
                    # One kernel per operand: FuseChannelGathers moves each into the kernel that reads it.
                    for position, (arg, axis) in enumerate(gathered):
                        kernel = channel_gather(self.width, size, arg.ty, axis)
                        gather = self.builder.add_func(kernel, f"{self.name}{size}_gather{position}")
                        call = relax.op.call_tir(gather, [order, renamed.get(arg, arg)], _gathered_type(arg.ty, axis, size))
                        renamed[arg] = emit(call)
                call = self.values[producer]
                renamed[producer] = emit(relax.Call(call.op, [renamed.get(call.args[0], call.args[0]), renamed.get(call.args[1], call.args[1])], call.attrs))
                for var in per_channel:
                    call = self.values[var]
                    renamed[var] = emit(relax.Call(call.op, [renamed.get(arg, arg) for arg in call.args], call.attrs))
                fields = []
                for consumer in self.region.consumers:
                    call = self.values[consumer]
                    fields.append(relax.Call(call.op, [renamed[call.args[0]], renamed.get(call.args[1], call.args[1])], call.attrs))
                if len(fields) == 1:  # one consumer: its output is the function's result, no tuple
                    output = builder.emit_output(fields[0])
                else:
                    output = builder.emit_output(relax.Tuple([emit(field) for field in fields]))
            builder.emit_func_output(output)
        return self.builder.add_func(builder.get()["bucket"], f"{self.name}{size}")

    def _channel_axis(self, arg: relax.Expr) -> int | None:
        """The axis along which a per-channel op's operand holds the gate's channels, or ``None`` (the chain
        value itself, or an operand broadcast over channels)."""
        if arg in self.region.chain:
            return None
        shape = getattr(arg.ty, "shape", None)
        rank = len(shape) if shape is not None else 0
        # Broadcasting against NCHW, axis rank-3 of the operand lines up with C.
        if rank >= 3 and int(shape[rank - 3]) == self.width:
            return rank - 3
        return None


def _gathered_type(ty: relax.TensorType, axis: int, size: int) -> relax.TensorType:
    shape = [int(extent) for extent in ty.shape]
    shape[axis] = size
    return relax.TensorType(shape, ty.dtype)
