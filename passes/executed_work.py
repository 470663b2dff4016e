"""Executed-work flags: outputs of the compiled graph that say which blocks and channels were computed."""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

#: Attribute of ``main``: how many gates it has (its outputs are logits, scores, then work flags).
NUM_GATES_ATTR = "lcnet_num_gates"
#: Attribute of ``main``: indices of the gates a lowering pass lowered (the rest run in mask form).
LOWERED_GATES_ATTR = "lcnet_lowered_gates"


def lowered_gates(func: relax.Function) -> list[int]:
    if func.attrs is None or LOWERED_GATES_ATTR not in func.attrs:
        return []
    return sorted(int(index) for index in func.attrs[LOWERED_GATES_ATTR])


def num_gates(func: relax.Function) -> int:
    """Gates of an LC-Net ``main``: recorded by :class:`ExposeExecutedWork`, else every output after the logits."""
    if func.attrs is not None and NUM_GATES_ATTR in func.attrs:
        return int(func.attrs[NUM_GATES_ATTR])
    return len(func.ret_ty.fields) - 1


def require_work_flags(func: relax.Function, pass_name: str) -> None:
    """Lowering passes replace work flags: ``main`` must have them."""
    if func.attrs is None or NUM_GATES_ATTR not in func.attrs:
        raise ValueError(f"{pass_name} expects main with work-flag outputs; run ExposeExecutedWork before it")


def flat_bindings(func: relax.Function) -> list[relax.Binding]:
    return [binding for block in func.body.blocks for binding in block.bindings]


def returned_fields(func: relax.Function) -> list[relax.Expr]:
    """The fields of the tuple ``main`` returns (written inline or bound to a variable)."""
    returned = func.body.body
    if isinstance(returned, relax.Tuple):
        return list(returned.fields)
    for binding in flat_bindings(func):
        if binding.var.same_as(returned) and isinstance(binding.value, relax.Tuple):
            return list(binding.value.fields)
    return [returned]


def rebuild_main(
    func: relax.Function, bindings: list[relax.Binding], outputs: list[relax.Expr], lowered: list[int] = ()
) -> relax.Function:
    """``main`` with a new, non-dataflow body that returns the tuple of ``outputs``.

    A variable that only held the old returned tuple is dropped; ``lowered``
    gate indices are added to the ``lcnet_lowered_gates`` attribute.
    """
    old_result = func.body.body
    bindings = [binding for binding in bindings if not binding.var.same_as(old_result)]
    result = relax.Tuple(outputs)
    body = relax.SeqExpr([relax.BindingBlock(bindings)], result)
    main = relax.Function(func.params, body, relax.TupleType([field.ty for field in outputs]), func.is_pure, func.attrs)
    if lowered:
        main = main.with_attr(LOWERED_GATES_ATTR, sorted({*lowered_gates(func), *lowered}))
    return main


def work_flag_position(func: relax.Function, gate_index: int) -> int:
    """Position of gate ``gate_index``'s work flag among ``main``'s outputs."""
    return 1 + num_gates(func) + gate_index


@tvm.transform.module_pass(opt_level=0, name="ExposeExecutedWork")
class ExposeExecutedWork:
    """Append one work flag per gate to ``main``'s outputs: which of the gate's units were computed.

    Expects: an imported LC-Net ``main`` returning ``(logits, *scores)``, a
    score ``(N, 1)`` per layer gate and ``(N, C)`` per channel gate.
    Produces: ``main`` (without dataflow blocks) returning
    ``(logits, *scores, *flags)``, with the attribute ``lcnet_num_gates``.
    Flag ``g`` is float32 ``(1,)`` (layer gate: the branch ran) or ``(C,)``
    (channel gate: which channels were computed), 1 = computed, for the whole
    batch. Here every flag is a constant 1, since in mask form everything is
    computed; the lowering passes replace a gate's flag by a value returned by
    the code that ran, so the runtime counts executed work from what ran.
    """

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        func = mod["main"]
        if func.attrs is not None and NUM_GATES_ATTR in func.attrs:
            return mod  # already exposed
        func = relax.transform.ToNonDataflow()(tvm.IRModule({"main": func}))["main"]
        logits, *scores = returned_fields(func)
        flags = [relax.const(np.ones((int(score.ty.shape[-1]),), "float32")) for score in scores]
        main = rebuild_main(func, flat_bindings(func), [logits, *scores, *flags])
        mod = tvm.IRModule(dict(mod.functions_items()), attrs=mod.attrs)
        mod["main"] = main.with_attr(NUM_GATES_ATTR, len(scores))
        return relax.transform.Normalize()(mod)


def add_skip_function(
    builder: relax.BlockBuilder, name: str, score_dtype: str, outputs: list[relax.TensorType]
) -> relax.GlobalVar:
    """Add ``name(largest_score) -> zeros shaped like outputs`` (a tuple; one tensor for one output): what a
    skipped unit returns.

    Callers pass the largest score of the gate, 0 exactly when everything is
    skipped, and the zeros are broadcast from it: a literal ``zeros`` would be
    constant-folded into a tensor stored in the library. It is a function,
    not inline code in the ``if`` arm, because the VM's memory planner shares
    storage across an ``if`` boundary and crashes when the other arm was taken.
    """
    inner = relax.BlockBuilder()
    score_dtype = str(score_dtype)
    largest_score = relax.Var("largest_score", relax.TensorType((), score_dtype))
    with inner.function("skipped", [largest_score], private=True):
        zero = {dtype: largest_score if dtype == score_dtype else relax.op.astype(largest_score, dtype) for dtype in {str(ty.dtype) for ty in outputs}}
        fields = [relax.op.broadcast_to(zero[str(ty.dtype)], ty.shape) for ty in outputs]
        inner.emit_func_output(inner.emit(fields[0] if len(fields) == 1 else relax.Tuple(fields)))
    return builder.add_func(inner.get()["skipped"], name)
