"""Layer gates become conditional subgraphs: a skipped residual branch is not computed."""

from __future__ import annotations

import tvm
from tvm import relax

from .find_gates import find_gate_regions


@tvm.transform.module_pass(opt_level=0, name="LowerLayerGates")
class LowerLayerGates:
    """Move each understood layer gate's branch into its own function, called under a Relax ``if``.

    Expects: an LC-Net ``main`` whose gate scores are its outputs after the
    logits (as imported; weights may be bound). Produces: ``main`` without
    dataflow blocks (``relax.If`` cannot sit in one; run ``ConvertToDataflow``
    afterwards) and one private function per lowered gate::

        branch = conv2(relu(conv1(x)))           keep = R.max(score) > 0
        gated = branch * score[..., None, None] -> if keep: gated = gate0_branch(x, score4d)
                                                   else:    gated = zeros
    The branch is a function of its own so that it fuses like any dataflow
    graph and gets its own memory plan (the VM's planner shares storage across
    an ``if`` boundary and crashes when the other branch was taken).
    The taken branch applies the score as before, so outputs equal mask form
    exactly. With a batch of N the branch runs when any sample keeps it, and
    samples that skip it are multiplied by their score 0 (mask semantics inside
    the batch). A gate the analysis does not understand is left in mask form
    (:func:`~lcnet_tvm.passes.find_gates.find_gate_regions` warns which and why).
    """

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        func = relax.transform.ToNonDataflow()(mod)["main"]
        regions = [r for r in find_gate_regions(func) if r.kind == "layer" and not r.problem]
        if not regions:
            return mod
        moved = {var for region in regions for var in region.region}
        by_multiply = {region.multiply: region for region in regions}
        bindings = [binding for block in func.body.blocks for binding in block.bindings]
        builder = relax.BlockBuilder(mod)  # gives the branch functions typed GlobalVars
        body = []
        for binding in bindings:
            if binding.var in moved:
                continue  # moved into its gate's branch function
            region = by_multiply.get(binding.var)
            if region is None:
                body.append(binding)
                continue
            branch, inputs = _branch_function(region, binding, bindings)
            branch_var = builder.add_func(branch, f"gate{region.index}_branch")
            body.extend(_conditional(region, binding, relax.Call(branch_var, inputs)))
        mod = builder.get()
        mod["main"] = relax.Function(
            func.params, relax.SeqExpr([relax.BindingBlock(body)], func.body.body), func.ret_ty, func.is_pure,
            func.attrs,
        )
        return relax.transform.Normalize()(mod)


def _branch_function(region, multiply: relax.VarBinding, bindings) -> tuple[relax.Function, list[relax.Var]]:
    """The gated branch and its multiplication by the score, as a function of what it reads from outside."""
    members = set(region.region)
    inner = [binding for binding in bindings if binding.var in members] + [multiply]
    bound = {binding.var for binding in inner}
    inputs = []
    for binding in inner:
        for var in relax.analysis.free_vars(binding.value):
            if var not in bound and var not in inputs:
                inputs.append(var)
    body = relax.SeqExpr([relax.BindingBlock(inner)], multiply.var)
    function = relax.Function(inputs, body, multiply.var.ty, is_pure=True)
    # Fresh variables: those of ``main`` must stay bound exactly once.
    return relax.utils.copy_with_new_vars(function), inputs


def _conditional(region, multiply: relax.VarBinding, call_branch: relax.Call) -> list[relax.VarBinding]:
    """``max_score = max(score); keep = max_score > 0; gated = if keep: branch(...) else: zeros``."""
    dtype = region.score.ty.dtype
    name = f"gate{region.index}"
    max_score = relax.Var(f"{name}_max_score", relax.TensorType((), dtype))
    keep = relax.Var(f"{name}_keep", relax.TensorType((), "bool"))
    return [
        relax.VarBinding(max_score, relax.op.max(region.score)),
        relax.VarBinding(keep, relax.op.greater(max_score, relax.const(0.0, dtype))),
        relax.VarBinding(
            multiply.var,
            relax.If(
                keep,
                relax.SeqExpr([], call_branch),
                relax.SeqExpr([], relax.op.zeros(multiply.var.ty.shape, multiply.var.ty.dtype)),
            ),
        ),
    ]
