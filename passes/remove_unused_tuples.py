"""Tuples nothing reads are not built: each costs the VM a call on every inference."""

from __future__ import annotations

import tvm
from tvm import relax

from .rewrite_functions import rebuilt, rewrite_functions, used_vars


def _without_unused_tuples(_gvar: tvm.ir.GlobalVar, func: relax.Function) -> relax.Function:
    blocks = [list(block.bindings) for block in func.body.blocks]
    removed = False
    while True:  # a tuple read only by an unused tuple goes in the next round
        used = used_vars([binding for bindings in blocks for binding in bindings], func.body.body)
        kept = [[b for b in bindings if not (isinstance(b.value, relax.Tuple) and b.var not in used)] for bindings in blocks]
        if sum(map(len, kept)) == sum(map(len, blocks)):
            return rebuilt(func, blocks) if removed else func
        blocks, removed = kept, True


@tvm.transform.module_pass(opt_level=0, name="RemoveUnusedTuples")
class RemoveUnusedTuples:
    """Remove the bindings of tuples that nothing reads.

    Expects: Relax after ``CallTIRRewrite`` and ``CanonicalizeBindings``, in
    plain (non-dataflow) binding blocks, where ``DeadCodeElimination`` leaves
    unused bindings alone. A kernel with several outputs leaves the tuple of
    its outputs; once ``CanonicalizeBindings`` has made its readers read the
    outputs directly, nothing reads the tuple::

        lv = (alloc0, alloc1)        =>   fused_decision(score, alloc0, alloc1)
        fused_decision(score, alloc0, alloc1)
    Produces: the same functions without such bindings (building a tuple has
    no effect but the tuple). Everything else is left as it was.
    """

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        return rewrite_functions(mod, relax.Function, _without_unused_tuples)
