"""A channel bucket's gathers move into the kernels that read them: no copy of a weight per inference."""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.s_tir import Schedule

from .gate_kernels import CHANNEL_GATHER_AXIS, GATHER_BLOCK


@tvm.transform.module_pass(opt_level=0, name="FuseChannelGathers")
class FuseChannelGathers:
    """Each channel gather whose result one kernel alone reads becomes part of that kernel.

    Expects: the module right after ``FuseOps`` (before ``FuseTIR``), with the
    channel buckets of :class:`~.lower_channel_gates.LowerChannelGates`: in a
    bucket function, ``g = call_tir(gate3_channels4_gather0, (order, weight))``
    (a kernel carrying :data:`~.gate_kernels.CHANNEL_GATHER_AXIS`) and a kernel
    reading ``g``, either a grouped function ``fused_conv2d_add_relu(x, g, ...)``
    or ``call_tir(conv2d, (x, g))``. Produces one grouped function per such
    kernel, named after the function it is in (``fused_gate3_channels4_conv2d_add_relu``),
    that takes ``order`` and the full operands and runs the gathers before its
    own body; ``FuseTIR`` then makes one kernel of it, and
    :class:`InlineChannelGathers` makes its convolution read ``weight[order[o], ...]``
    (rows) or ``weight[o, order[c], ...]`` (columns) in place. A gather read more than once, or by
    anything but a kernel, stays a kernel of its own.
    """

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        gathers = {
            gvar for gvar, func in mod.functions.items()
            if isinstance(func, tvm.tirx.PrimFunc) and CHANNEL_GATHER_AXIS in (func.attrs or {})
        }
        if not gathers:
            return mod
        builder = relax.BlockBuilder(mod)
        for gvar, func in list(mod.functions.items()):
            if isinstance(func, relax.Function) and "Primitive" not in (func.attrs or {}):
                rewritten = _Rewriter(builder, gathers, gvar.name_hint).rewrite(func)
                if rewritten is not func:
                    builder.update_func(gvar, rewritten)
        mod = builder.get()
        # The grouped functions whose calls were replaced are called no more.
        called = {
            gvar for func in mod.functions.values() if isinstance(func, relax.Function)
            for gvar in relax.analysis.all_global_vars(func)
        }
        for gvar, func in list(mod.functions.items()):
            if isinstance(func, relax.Function) and "Primitive" in (func.attrs or {}) and gvar not in called:
                del mod[gvar]
        return relax.transform.Normalize()(mod)


class _Rewriter:
    """Rewrites the dataflow blocks of one (non-grouped) Relax function."""

    def __init__(self, builder: relax.BlockBuilder, gathers: set[tvm.ir.GlobalVar], name: str):
        self.builder = builder
        self.gathers = gathers
        #: the function's name (a bucket's: gate3_channels4), which its new kernels' names begin with
        self.name = name

    def rewrite(self, func: relax.Function) -> relax.Function:
        body = func.body
        if not isinstance(body, relax.SeqExpr):
            return func
        blocks = [self._block(block) if isinstance(block, relax.DataflowBlock) else block for block in body.blocks]
        if all(new is old for new, old in zip(blocks, body.blocks)):
            return func
        return relax.Function(func.params, relax.SeqExpr(blocks, body.body), func.ret_ty, func.is_pure, func.attrs)

    def _block(self, block: relax.DataflowBlock) -> relax.DataflowBlock:
        uses: dict[relax.Var, int] = {}  # how often each var is read (twice by one call counts twice)
        for binding in block.bindings:
            value = binding.value
            for var in _kernel_args(value) if self._is_kernel(value) else relax.analysis.free_vars(value):
                uses[var] = uses.get(var, 0) + 1
        # A DataflowVar is read only inside its block: these uses are all of them.
        gathered = {
            binding.var: binding.value for binding in block.bindings
            if self._is_gather(binding.value) and isinstance(binding.var, relax.DataflowVar) and uses.get(binding.var) == 1
        }
        moved, bindings = set(), []
        for binding in block.bindings:
            value = binding.value
            positions = [i for i, arg in enumerate(_kernel_args(value)) if arg in gathered] if self._is_kernel(value) else []
            if positions:
                args = _kernel_args(value)
                moved.update(args[i] for i in positions)
                value = self._fused_call(value, [gathered[args[i]] for i in positions], positions)
            bindings.append(relax.VarBinding(binding.var, value))
        if not moved:
            return block
        return relax.DataflowBlock([binding for binding in bindings if binding.var not in moved])

    def _is_gather(self, value: relax.Expr) -> bool:
        return _is_call_tir(value) and value.args[0] in self.gathers

    def _is_kernel(self, value: relax.Expr) -> bool:
        """A grouped function's call, or a call_tir of one kernel that is not a gather."""
        if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.GlobalVar):
            callee = self.builder.get()[value.op]
            return isinstance(callee, relax.Function) and "Primitive" in (callee.attrs or {})
        return _is_call_tir(value) and not self._is_gather(value)

    def _fused_call(self, kernel: relax.Call, gathers: list[relax.Call], positions: list[int]) -> relax.Call:
        """``kernel``'s call with ``gathers`` (its arguments at ``positions``) moved into a new grouped function."""
        group, name = self._group_of(kernel)
        args = _kernel_args(kernel)
        kept = [i for i in range(len(args)) if i not in positions]
        # Parameters: the gathers' inputs (order and the full operands), then the kernel's other arguments, each once.
        outer: list[relax.Expr] = []
        for arg in [*(arg for gather in gathers for arg in gather.args[1].fields), *(args[i] for i in kept)]:
            if not any(arg.same_as(seen) for seen in outer):
                outer.append(arg)
        params = [relax.Var(_name_of(arg, i), arg.ty) for i, arg in enumerate(outer)]

        def param_of(arg: relax.Expr) -> relax.Var:
            return next(param for seen, param in zip(outer, params) if seen.same_as(arg))

        replaced, gather_bindings = {}, []
        for position, gather in zip(positions, gathers):
            var = relax.DataflowVar(gather.args[0].name_hint, gather.ty)
            call = relax.op.call_tir(gather.args[0], [param_of(arg) for arg in gather.args[1].fields], gather.ty)
            gather_bindings.append(relax.VarBinding(var, call))
            replaced[group.params[position]] = var
        replaced.update({group.params[i]: param_of(args[i]) for i in kept})
        # The group's own body, its parameters bound to the gathers' results and the new parameters.
        bound = group.bind_params(replaced)
        (block,) = bound.body.blocks
        body = relax.SeqExpr([relax.DataflowBlock([*gather_bindings, *block.bindings])], bound.body.body)
        fused = relax.Function(params, body, group.ret_ty, group.is_pure).with_attr("Primitive", True)
        return relax.Call(self.builder.add_func(fused, f"fused_{self.name}_{name}"), outer)

    def _group_of(self, kernel: relax.Call) -> tuple[relax.Function, str]:
        """The grouped function ``kernel`` calls (a call_tir made into one) and the name to build on."""
        if not _is_call_tir(kernel):
            return self.builder.get()[kernel.op], kernel.op.name_hint.removeprefix("fused_")
        params = [relax.Var(_name_of(arg, i), arg.ty) for i, arg in enumerate(kernel.args[1].fields)]
        output = relax.Var("output", kernel.ty)
        call = relax.op.call_tir(kernel.args[0], params, kernel.ty)
        body = relax.SeqExpr([relax.DataflowBlock([relax.VarBinding(output, call)])], output)
        return relax.Function(params, body, kernel.ty, True), kernel.args[0].name_hint


def _is_call_tir(value: relax.Expr) -> bool:
    return isinstance(value, relax.Call) and value.op.same_as(tvm.ir.Op.get("relax.call_tir"))


def _kernel_args(call: relax.Call) -> list[relax.Expr]:
    return list(call.args[1].fields) if _is_call_tir(call) else list(call.args)


def _name_of(arg: relax.Expr, position: int) -> str:
    return arg.name if isinstance(arg, relax.Var) else f"operand{position}"


@tvm.transform.module_pass(opt_level=0, name="InlineChannelGathers")
class InlineChannelGathers:
    """Kernels read through the channel order where they read a gathered copy.

    Expects: the module right after ``FuseTIR``, whose kernels made by
    :class:`FuseChannelGathers` begin with gather blocks (named
    :data:`~.gate_kernels.GATHER_BLOCK`, ``gathered1``, ...) that copy the kept
    channels into a buffer of the kernel. Produces those kernels with the gather
    blocks inlined: ``w[order[o], c, kh, kw]`` read where ``gathered[o, c, kh, kw]``
    was. MetaSchedule would leave them as they are (it inlines only blocks whose
    reads are affine) and then fail to place the epilogue of a convolution whose
    bias and score are gathered; inlined, each kernel has the blocks of the
    convolution it replaces, so that convolution's tuned schedule seeds it.
    """

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        for gvar, func in list(mod.functions.items()):
            # A gather kernel of its own (its block is its output) stays as it is.
            if not isinstance(func, tvm.tirx.PrimFunc) or CHANNEL_GATHER_AXIS in (func.attrs or {}):
                continue
            schedule = Schedule(tvm.IRModule({"main": func}))
            gathers = [block for block in _blocks(schedule) if schedule.get(block).name_hint.startswith(GATHER_BLOCK)]
            if gathers:
                for block in gathers:
                    schedule.compute_inline(block)
                mod[gvar] = schedule.mod["main"]
        return mod


def _blocks(schedule: Schedule) -> list:
    """The blocks under the root block of ``schedule``'s ``main``."""
    try:
        root = schedule.get_sblock("root")
    except tvm.s_tir.schedule.ScheduleError:  # a kernel written without a root block (a gate's decision)
        return []
    return list(schedule.get_child_blocks(root))
