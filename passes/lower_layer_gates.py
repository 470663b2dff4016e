"""Layer gates become conditional subgraphs: a skipped residual branch is not computed."""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from .executed_work import add_skip_function, flat_bindings, rebuild_main, returned_fields, work_flag_position
from .gate_kernels import layer_decision
from .gate_regions import lowerable_regions


@tvm.transform.module_pass(opt_level=0, name="LowerLayerGates")
class LowerLayerGates:
    """Move each understood layer gate's branch into its own function, called under a Relax ``if``.

    Expects: ``main`` as made by :class:`~.executed_work.ExposeExecutedWork`
    (weights may be bound; channel gates may already be lowered). Produces:
    ``main`` without dataflow blocks (``relax.If`` cannot sit in one; run
    ``ConvertToDataflow`` afterwards) and one private function per lowered gate::

        branch = conv2(relu(conv1(x)))           keep, max_score = gate0_decision(score)   # one kernel
        gated = branch * score[..., None, None] -> if keep: (gated, ran, ...) = gate0_branch(x, score4d)
                                                   else:    (gated, ran, ...) = gate0_skipped(max_score)
    The branch function returns the gated tensor, the gate's work flag (1:
    the branch ran) and the work flags of gates inside the branch; the skip
    arm returns zeros for all of them, so the flags report what ran.
    The branch is a function of its own so that it fuses like any dataflow
    graph and gets its own memory plan (the VM's planner shares storage across
    an ``if`` boundary and crashes when the other branch was taken).
    The taken branch applies the score as before, so outputs equal mask form
    exactly. With a batch of N the branch runs when any sample keeps it, and
    samples that skip it are multiplied by their score 0 (mask semantics inside
    the batch). A gate the analysis does not understand is left in mask form
    (:func:`~lcnet_tvm.passes.gate_regions.find_gate_regions` warns which and why).
    """

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        func, regions = lowerable_regions(mod, "layer", "LowerLayerGates")
        if not regions:
            return mod
        moved = {var for region in regions for var in region.region}
        by_multiply = {region.multiply: region for region in regions}
        bindings = flat_bindings(func)
        outputs = returned_fields(func)
        used_outside = _used_outside(bindings, outputs, moved | set(by_multiply))
        builder = relax.BlockBuilder(mod)  # gives the branch functions typed GlobalVars
        body = []
        for binding in bindings:
            if binding.var in moved:
                continue  # moved into its gate's branch function
            region = by_multiply.get(binding.var)
            if region is None:
                body.append(binding)
                continue
            exported = [var for var in region.region if var in used_outside]
            branch, inputs = _branch_function(region, binding, bindings, exported)
            branch_var = builder.add_func(branch, f"gate{region.index}_branch")
            conditional, flag = _conditional(region, binding, relax.Call(branch_var, inputs), exported, builder)
            body.extend(conditional)
            outputs[work_flag_position(func, region.index)] = flag
        mod = builder.get()
        mod["main"] = rebuild_main(func, body, outputs, [region.index for region in regions])
        return relax.transform.Normalize()(mod)


def _used_outside(bindings, outputs, moved) -> set[relax.Var]:
    """Moved variables that ``main`` still reads after the move (work flags of gates inside a branch).

    ``moved`` includes the multiplications by the score, which move too.
    """
    used = set(relax.analysis.free_vars(relax.Tuple(outputs)))
    for binding in bindings:
        if binding.var not in moved:
            used.update(relax.analysis.free_vars(binding.value))
    return used & moved


_RAN = relax.const(np.ones((1,), "float32"))


def _branch_function(region, multiply: relax.VarBinding, bindings, exported) -> tuple[relax.Function, list[relax.Var]]:
    """The gated branch and its multiplication by the score, as a function of what it reads from outside.

    Returns ``(gated, ran flag, *exported)``.
    """
    members = set(region.region)
    inner = [binding for binding in bindings if binding.var in members] + [multiply]
    bound = {binding.var for binding in inner}
    inputs = []
    for binding in inner:
        for var in relax.analysis.free_vars(binding.value):
            if var not in bound and var not in inputs:
                inputs.append(var)
    result = relax.Tuple([multiply.var, _RAN, *exported])
    body = relax.SeqExpr([relax.BindingBlock(inner)], result)
    function = relax.Function(inputs, body, result.ty, is_pure=True)
    # Fresh variables: those of ``main`` must stay bound exactly once.
    return relax.utils.copy_with_new_vars(function), inputs


def _conditional(region, multiply: relax.VarBinding, call_branch: relax.Call, exported, builder):
    """``keep, max_score = decision(score); outcome = if keep: branch(...) else: skipped(max_score)``; then unpack it.

    Returns the bindings and the variable holding the gate's work flag.
    """
    dtype = region.score.ty.dtype
    name = f"gate{region.index}"
    decide = builder.add_func(layer_decision(region.score.ty), f"{name}_decision")
    decision_types = [relax.TensorType((), "bool"), relax.TensorType((), dtype)]
    decision = relax.Var(f"{name}_decision", relax.TupleType(decision_types))
    keep = relax.Var(f"{name}_keep", decision_types[0])
    max_score = relax.Var(f"{name}_max_score", decision_types[1])
    types = [var.ty for var in [multiply.var, _RAN, *exported]]
    skipped = relax.Call(add_skip_function(builder, f"{name}_skipped", dtype, types), [max_score])
    outcome_ty = relax.TupleType(types)
    outcome = relax.Var(f"{name}_outcome", outcome_ty)
    flag = relax.Var(f"{name}_computed", _RAN.ty)
    bindings = [
        relax.VarBinding(decision, relax.op.call_tir(decide, [region.score], decision_types)),
        relax.VarBinding(keep, relax.TupleGetItem(decision, 0)),
        relax.VarBinding(max_score, relax.TupleGetItem(decision, 1)),
        relax.VarBinding(outcome, relax.If(keep, relax.SeqExpr([], call_branch), relax.SeqExpr([], skipped))),
        relax.VarBinding(multiply.var, relax.TupleGetItem(outcome, 0)),
        relax.VarBinding(flag, relax.TupleGetItem(outcome, 1)),
    ]
    bindings += [relax.VarBinding(var, relax.TupleGetItem(outcome, 2 + k)) for k, var in enumerate(exported)]
    return bindings, flag
