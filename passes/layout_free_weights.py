"""Kernels choose the layout of the weights they read: marked before tuning, repacked at compile time.

MetaSchedule's ``RewriteLayout`` lets a tuned schedule read a parameter listed
in the PrimFunc's ``layout_free_buffers`` in whatever layout its loops want
(for a convolution: output channels innermost, in vector-width blocks, so the
inner loop loads contiguous weights). The schedule then begins with a block
that repacks that parameter; ``SplitLayoutRewritePreproc`` moves the block into
a kernel of its own and ``FoldConstant`` runs it on the constant weight at
compile time, so the artifact stores the repacked weight and no inference
repacks anything. Measured on one 3x3 32->32 16x16 convolution with bias and
ReLU, 64 trials each, AVX-512: 96 us plain, 27 us with a layout-free weight.
"""

from __future__ import annotations

import logging

import tvm
from lcnet_tvm.schedules.database import SCHEDULED_ATTR
from tvm import relax, tirx
from tvm.s_tir import SBlock

from .rewrite_functions import contains, rewrite_functions, rewrite_kernels

#: The PrimFunc attribute MetaSchedule's RewriteLayout reads: indices of the parameters whose layout is free.
LAYOUT_FREE_ATTR = "layout_free_buffers"

#: The block attribute MetaSchedule's RewriteLayout gives the blocks that repack a layout-free parameter.
REPACKING_BLOCK_ATTR = "meta_schedule.layout_rewrite_preproc"

#: What SplitLayoutRewritePreproc names the kernel it splits a repacking into: ``<kernel>_weight_prepack``.
_REPACKING_SUFFIX = "_weight_prepack"

_CALL_TIR = tvm.ir.Op.get("relax.call_tir")

logger = logging.getLogger(__name__)


def _is_weight(argument: relax.Expr) -> bool:
    """A constant tensor (RewriteLayout cannot repack a scalar)."""
    return isinstance(argument, tvm.ir.expr.GenericConst) and len(argument.value.shape) > 0


def constant_arguments(mod: tvm.IRModule) -> dict[str, set[int]]:
    """Per kernel called from Relax: the argument positions that every one of its call sites passes a constant."""
    constant: dict[str, set[int]] = {}

    def visit(expr: relax.Expr) -> None:
        if isinstance(expr, relax.Call) and expr.op.same_as(_CALL_TIR):
            kernel, arguments = expr.args[0].name_hint, expr.args[1].fields
            here = {index for index, argument in enumerate(arguments) if _is_weight(argument)}
            constant[kernel] = constant[kernel] & here if kernel in constant else here

    for func in mod.functions.values():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func, visit)
    return constant


def without_layout_free_weights(func: tirx.PrimFunc) -> tirx.PrimFunc:
    """``func`` as it was before :class:`MarkLayoutFreeWeights` (the kernel that records tuned before it name)."""
    return func.without_attr(LAYOUT_FREE_ATTR) if func.attrs and LAYOUT_FREE_ATTR in func.attrs else func


@tvm.transform.module_pass(opt_level=0, name="MarkLayoutFreeWeights")
class MarkLayoutFreeWeights:
    """List in each kernel's ``layout_free_buffers`` the parameters every caller passes a constant (a weight).

    Expects: the kernels phase's module (constants bound, FuseTIR done), Relax
    functions calling PrimFunc kernels through ``call_tir``.
    Produces: the same module, each kernel with at least one such parameter
    carrying the attribute (the parameter indices, ascending), as TVM's
    ``AttachAttrLayoutFreeBuffers`` does but without renaming any kernel. A
    kernel that one caller passes a computed tensor at that position (a
    gathered weight) keeps its layout there.
    """

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        constant = constant_arguments(mod)

        def mark(gv: tvm.ir.GlobalVar, func: tirx.PrimFunc) -> tirx.PrimFunc:
            weights = sorted(constant.get(gv.name_hint, ()))
            return func.with_attr(LAYOUT_FREE_ATTR, weights) if weights else func

        return rewrite_functions(mod, tirx.PrimFunc, mark)


@tvm.transform.module_pass(opt_level=0, name="UnmarkUnscheduledKernels")
class UnmarkUnscheduledKernels:
    """Drop ``layout_free_buffers`` from kernels no record scheduled, so records tuned before marking apply.

    Expects: the module after ``MetaScheduleApplyDatabase`` (scheduled kernels
    carry ``tirx.is_scheduled``).
    Produces: the same module, unscheduled kernels as they were before
    :class:`MarkLayoutFreeWeights`; a second ``MetaScheduleApplyDatabase``
    then finds the records of databases tuned with plain weight layouts.
    """

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        return rewrite_kernels(
            mod, lambda func: func if func.attrs.get(SCHEDULED_ATTR, False) else without_layout_free_weights(func)
        )


def repacks_weights(func: tirx.PrimFunc) -> bool:
    """Whether a scheduled kernel begins by repacking a layout-free parameter (its tuned schedule chose a layout)."""
    return contains(func.body, SBlock, lambda block: REPACKING_BLOCK_ATTR in block.annotations)


@tvm.transform.module_pass(opt_level=0, name="RepackConstantWeights")
class RepackConstantWeights:
    """Repack the weights of tuned kernels that chose a layout once, at compile time.

    Expects: scheduled kernels; those whose record chose a weight layout
    begin with MetaSchedule's repacking blocks (``layout_rewrite_preproc``) on
    parameters every caller passes a constant.
    Produces: such a kernel as ``<name>_prepacked``, without the repacking,
    called with the repacked constants (TVM's ``SplitLayoutRewritePreproc``
    splits the repacking into ``<name>_weight_prepack``; ``FoldConstant`` runs
    it on the constants); the kernels nothing calls any more are dropped.
    Other kernels are left alone (``SplitLayoutRewritePreproc`` cannot read
    kernels written as one block, like the gate decisions, so it never sees them).
    """

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        others = {
            gv: func for gv, func in mod.functions_items() if isinstance(func, tirx.PrimFunc) and not repacks_weights(func)
        }
        if len(others) == sum(isinstance(func, tirx.PrimFunc) for func in mod.functions.values()):
            return mod
        repacking = tvm.IRModule({gv: func for gv, func in mod.functions_items() if gv not in others}, attrs=mod.attrs)
        # Until the other kernels are back, the Relax functions call kernels the module lacks: split it
        # outside the caller's pass context, whose instruments may check that modules are well-formed.
        with tvm.transform.PassContext():
            split = relax.transform.SplitLayoutRewritePreproc()(repacking)
        for gv, func in others.items():
            split[gv] = func
        repacked = relax.transform.DeadCodeElimination()(relax.transform.FoldConstant()(split))
        unfolded = sorted(gv.name_hint for gv in repacked.get_global_vars() if gv.name_hint.endswith(_REPACKING_SUFFIX))
        if unfolded:  # correct, but repacking on every inference
            logger.warning("the weight repacking of %s could not run at compile time; it runs per inference", unfolded)
        return repacked
