"""Inference batch norm after a conv folds into the conv's weights, computed once in numpy."""

from __future__ import annotations

from collections import Counter

import numpy as np
import tvm
from tvm import relax

from .executed_work import flat_bindings
from .gate_regions import op_name


@tvm.transform.module_pass(opt_level=0, name="FoldBatchNorm")
class FoldBatchNorm:
    """``batch_norm(conv2d(x, W), gamma, beta, mean, var)[0]`` -> ``conv2d(x, W * s) + (beta - mean * s)``.

    ``s = gamma / sqrt(var + eps)``, computed in float64 and stored as float32.
    Expects: ``main`` with bound (constant) weights. Produces: ``main``
    without dataflow blocks, where each batch norm that reads only a plain
    NCHW/OIHW conv with constant weights (and is read only through item 0) is
    gone. Other batch norms are left for ``DecomposeOpsForInference``.
    Folding here rather than with ``FoldConstant`` keeps compile times short
    (``FoldConstant`` builds and runs a kernel per folded op), and leaves one
    per-channel constant (the bias) for a channel gather to pick from.
    """

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        func = relax.transform.ToNonDataflow()(tvm.IRModule({"main": mod["main"]}))["main"]
        bindings = flat_bindings(func)
        values = {binding.var: binding.value for binding in bindings}
        uses = Counter(var for binding in bindings for var in relax.analysis.free_vars(binding.value))
        uses.update(relax.analysis.free_vars(func.body.body))
        folded: dict[relax.Var, list[relax.VarBinding]] = {}  # batch norm item 0 -> its replacement
        dropped: set[relax.Var] = set()
        for binding in bindings:
            item = binding.value
            if not (isinstance(item, relax.TupleGetItem) and item.index == 0):
                continue
            norm = item.tuple_value
            conv = getattr(values.get(norm), "args", [None])[0]
            if _foldable(values, uses, norm, conv):
                folded[binding.var] = _fold(binding.var, conv, values[conv], values[norm])
                dropped |= {norm, conv}
        if not folded:
            return mod
        body = []
        for binding in bindings:
            if binding.var in dropped:
                continue
            body.extend(folded.get(binding.var, [binding]))
        mod = tvm.IRModule(dict(mod.functions_items()), attrs=mod.attrs)
        mod["main"] = relax.Function(
            func.params, relax.SeqExpr([relax.BindingBlock(body)], func.body.body), func.ret_ty, func.is_pure, func.attrs
        )
        return relax.transform.Normalize()(mod)


def _foldable(values: dict, uses: Counter, norm, conv) -> bool:
    norm_call, conv_call = values.get(norm), values.get(conv)
    if op_name(norm_call) != "relax.nn.batch_norm" or op_name(conv_call) != "relax.nn.conv2d":
        return False
    attrs = conv_call.attrs
    return (
        uses[norm] == 1
        and uses[conv] == 1
        and int(norm_call.attrs.axis) == 1
        and all(isinstance(arg, tvm.ir.expr.Constant) for arg in [conv_call.args[1], *norm_call.args[1:]])
        and (attrs.data_layout, attrs.kernel_layout, attrs.out_layout) == ("NCHW", "OIHW", "NCHW")
    )


def _fold(result: relax.Var, conv: relax.Var, conv_call: relax.Call, norm_call: relax.Call) -> list[relax.VarBinding]:
    weight = conv_call.args[1].value.numpy().astype(np.float64)
    gamma, beta, mean, variance = (arg.value.numpy().astype(np.float64) for arg in norm_call.args[1:])
    scale = gamma / np.sqrt(variance + float(norm_call.attrs.epsilon))
    dtype = str(conv.ty.dtype)
    folded_weight = relax.const((weight * scale[:, None, None, None]).astype(dtype))
    bias = relax.const((beta - mean * scale).astype(dtype).reshape(1, -1, 1, 1))
    scaled = relax.Var(conv.name, conv.ty)
    return [
        relax.VarBinding(scaled, relax.Call(conv_call.op, [conv_call.args[0], folded_weight], conv_call.attrs)),
        relax.VarBinding(result, relax.op.add(scaled, bias)),
    ]
