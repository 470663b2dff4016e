"""Rewriting a module's kernels one at a time, for the passes that work on each PrimFunc alone."""

from __future__ import annotations

from collections.abc import Callable

import tvm
from tvm import tirx


def rewrite_kernels(mod: tvm.IRModule, rewrite: Callable[[tirx.PrimFunc], tirx.PrimFunc]) -> tvm.IRModule:
    """``mod`` with each PrimFunc replaced by ``rewrite(func)``; ``mod`` itself when nothing changed."""
    changed = {}
    for gv, func in mod.functions_items():
        if isinstance(func, tirx.PrimFunc):
            rewritten = rewrite(func)
            if not rewritten.same_as(func):
                changed[gv] = rewritten
    if not changed:
        return mod
    mod = mod.clone()
    for gv, func in changed.items():
        mod.update_func(gv, func)
    return mod
