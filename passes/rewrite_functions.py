"""Rewriting a module's functions one at a time, for the passes that work on each function alone."""

from __future__ import annotations

from collections.abc import Callable

import tvm
from tvm import relax, tirx


def rewrite_functions(mod: tvm.IRModule, kind: type, rewrite: Callable) -> tvm.IRModule:
    """``mod`` with each function of type ``kind`` replaced by ``rewrite(global_var, func)``; ``mod`` itself
    when nothing changed."""
    changed = {}
    for gv, func in mod.functions_items():
        if isinstance(func, kind):
            rewritten = rewrite(gv, func)
            if not rewritten.same_as(func):
                changed[gv] = rewritten
    if not changed:
        return mod
    mod = mod.clone()
    for gv, func in changed.items():
        mod.update_func(gv, func)
    return mod


def rewrite_kernels(mod: tvm.IRModule, rewrite: Callable[[tirx.PrimFunc], tirx.PrimFunc]) -> tvm.IRModule:
    """``mod`` with each PrimFunc replaced by ``rewrite(func)``; ``mod`` itself when nothing changed."""
    return rewrite_functions(mod, tirx.PrimFunc, lambda _gv, func: rewrite(func))


def used_vars(bindings: list[relax.Binding], result: relax.Expr) -> set[relax.Var]:
    """The variables that ``bindings`` and ``result`` read."""
    used = set(relax.analysis.free_vars(result))
    for binding in bindings:
        used.update(relax.analysis.free_vars(binding.value))
    return used


def rebuilt(func: relax.Function, blocks: list[list[relax.Binding]]) -> relax.Function:
    """``func`` with its body's blocks replaced by ``blocks`` (plain binding blocks), types inferred."""
    body = relax.SeqExpr([relax.BindingBlock(bindings) for bindings in blocks], func.body.body)
    rewritten = relax.Function(func.params, body, func.ret_ty, func.is_pure, func.attrs, func.span)
    return relax.BlockBuilder().normalize(rewritten)
