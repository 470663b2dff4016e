"""GPU kernels that are serial programs (the gate decisions) run on one GPU thread."""

from __future__ import annotations

from collections.abc import Callable

import tvm
import tvm_ffi
from tvm import tirx
from tvm.s_tir import SBlock, SBlockRealize

from .rewrite_functions import rewrite_kernels


def _contains(stmt: tirx.Stmt, node_type: type, where: Callable[[tirx.Stmt], bool] = lambda _node: True) -> bool:
    """Whether ``stmt`` holds a ``node_type`` node for which ``where`` holds."""
    found = False

    def visit(node):
        nonlocal found
        found |= where(node)

    tvm_ffi.structural_walk(stmt, [(node_type, visit)], order="post")
    return found


def _launches_threads(stmt: tirx.Stmt) -> bool:
    return _contains(stmt, tirx.AttrStmt, lambda node: node.attr_key == "thread_extent") or _contains(
        stmt, tirx.For, lambda node: node.kind == tirx.ForKind.THREAD_BINDING
    )


def _is_serial_program(block: SBlock) -> bool:
    """A leaf block without iterators whose body loops: a program, not a loop nest a schedule can bind.

    (The root block has no iterators either, but holds the kernel's other blocks.)
    """
    return not block.iter_vars and _contains(block.body, tirx.For) and not _contains(block.body, SBlockRealize)


def _one_thread(body: tirx.Stmt) -> tirx.Stmt:
    for tag in ("threadIdx.x", "blockIdx.x"):
        thread = tirx.IterVar(tvm.ir.Range(0, 1), tirx.Var(tag, "int32"), tirx.IterVar.ThreadIndex, tag)
        body = tirx.AttrStmt(thread, "thread_extent", 1, body)
    return body


def _launch_on_one_thread(block: SBlock) -> SBlock:
    if not _is_serial_program(block) or _launches_threads(block.body):
        return block
    return SBlock(
        block.iter_vars, block.reads, block.writes, block.name_hint, _one_thread(block.body),
        block.init, block.alloc_buffers, block.match_buffers, block.annotations,
    )


@tvm.transform.module_pass(opt_level=0, name="LaunchSerialBlocksOnOneThread")
class LaunchSerialBlocksOnOneThread:
    """Launch each serial-program block of a GPU kernel on one thread (one block of one thread).

    Expects: kernels before the GPU default schedules. A block without
    iterators that loops (``gate_kernels``' decisions: sequential by nature,
    a few hundred steps) has no loop a schedule could bind to GPU threads;
    DLight's fallback fails on it.
    Produces: such blocks with their body under ``blockIdx.x`` and
    ``threadIdx.x`` of extent 1, which the default schedules leave alone.
    Other kernels are unchanged.
    """

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        return rewrite_kernels(mod, lambda func: tvm_ffi.structural_map(func, [(SBlock, _launch_on_one_thread)]))
