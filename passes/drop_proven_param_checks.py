"""Internal functions skip the run-time checks of parameters whose every caller provably passes the declared shape."""

from __future__ import annotations

import tvm
import tvm_ffi
from tvm import relax
from tvm.relax.expr_functor import PyExprVisitor, visitor

from .rewrite_functions import rebuilt, rewrite_functions, used_vars

_CHECK_TENSOR_INFO = "vm.builtin.check_tensor_info"
_MATCH_SHAPE = "vm.builtin.match_shape"
#: ``vm.builtin.match_shape``'s code for "this dimension must equal this constant" (MatchShapeCode::kAssertEqualToImm).
_ASSERT_EQUAL_TO_IMM = 0
_NULL_VALUE = tvm.ir.Op.get("relax.null_value")


def _builtin(value: relax.Expr) -> str | None:
    """The name of the VM builtin ``value`` calls, if it calls one."""
    if isinstance(value, relax.Call) and isinstance(value.op, relax.ExternFunc):
        return value.op.global_symbol
    return None


def _only_asserts_constants(match_shape: relax.Call) -> bool:
    """``match_shape(value, heap, ndim, code0, v0, code1, v1, ..., error_context)`` that stores nothing."""
    codes = match_shape.args[3:-1:2]
    return all(int(code) == _ASSERT_EQUAL_TO_IMM for code in codes)


@visitor
class _CallSites(PyExprVisitor):
    """Every call of a module function: per callee, the argument lists; and the callees used other than as callees."""

    def __init__(self):
        self.arguments: dict[tvm.ir.GlobalVar, list[list[relax.Expr]]] = {}
        self.escaped: set[tvm.ir.GlobalVar] = set()

    def visit_call_(self, call: relax.Call) -> None:
        if isinstance(call.op, tvm.ir.GlobalVar):
            self.arguments.setdefault(call.op, []).append(list(call.args))
        else:
            self.visit_expr(call.op)
        for argument in call.args:
            self.visit_expr(argument)

    def visit_global_var_(self, gvar: tvm.ir.GlobalVar) -> None:
        self.escaped.add(gvar)


def _proven_params(func: relax.Function, calls: list[list[relax.Expr]]) -> set[relax.Var]:
    """The parameters of ``func`` for which every call passes an argument of exactly the parameter's static type."""
    proven = set()
    for index, param in enumerate(func.params):
        if all(tvm_ffi.structural_equal(arguments[index].ty, param.ty) for arguments in calls):
            proven.add(param)
    return proven


def _is_null_value(binding: relax.Binding) -> bool:
    return isinstance(binding.value, relax.Call) and binding.value.op == _NULL_VALUE


def _without_checks(func: relax.Function, proven: set[relax.Var]) -> relax.Function:
    def redundant(binding: relax.Binding) -> bool:
        name = _builtin(binding.value)
        if name == _CHECK_TENSOR_INFO:
            return binding.value.args[0] in proven
        if name == _MATCH_SHAPE:
            return binding.value.args[0] in proven and _only_asserts_constants(binding.value)
        return False

    blocks = [[binding for binding in block.bindings if not redundant(binding)] for block in func.body.blocks]
    if all(len(new) == len(old.bindings) for new, old in zip(blocks, func.body.blocks)):
        return func
    # The shape heap (a null value) VMShapeLower made for the checks goes too when nothing else reads it.
    used = used_vars([binding for bindings in blocks for binding in bindings], func.body.body)
    return rebuilt(func, [[b for b in bindings if not (_is_null_value(b) and b.var not in used)] for bindings in blocks])


@tvm.transform.module_pass(opt_level=0, name="DropProvenParamChecks")
class DropProvenParamChecks:
    """Remove the parameter checks of internal functions that the compiler has already proven.

    Expects: Relax after ``VMShapeLower`` and before ``AttachGlobalSymbol``:
    entry functions carry a global symbol, internal ones (branch and bucket
    functions) do not yet; each function starts by checking its parameters
    (``vm.builtin.check_tensor_info``: rank and dtype; ``vm.builtin.match_shape``:
    each dimension). Produces: in each internal function that is only ever called
    (never passed as a value), the checks of every parameter whose argument has
    exactly the parameter's static type at every call are removed, when they only
    compare with constants (a check that binds a symbolic dimension stays)::

        @R.function(private=True)
        def gate0_branch(x: R.Tensor((1, 8, 8, 8), "float32")):
            R.call_packed("vm.builtin.check_tensor_info", x, 4, "float32", "...")
            R.call_packed("vm.builtin.match_shape", x, shape_heap, 4, 0, 1, 0, 8, 0, 8, 0, 8, "...")
            ...
      =>
        @R.function(private=True)
        def gate0_branch(x: R.Tensor((1, 8, 8, 8), "float32")):
            ...

    The callers are the module's own functions, whose entry checked the user's
    input, and every argument's static shape is exact: the checks cannot fail, and
    each cost a VM call on every call of a branch function.
    """

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        sites = _CallSites()
        for func in mod.functions.values():
            if isinstance(func, relax.Function):
                sites.visit_expr(func)

        def rewrite(gvar: tvm.ir.GlobalVar, func: relax.Function) -> relax.Function:
            internal = func.attrs is None or "global_symbol" not in func.attrs
            if not internal or gvar in sites.escaped or gvar not in sites.arguments:
                return func
            return _without_checks(func, _proven_params(func, sites.arguments[gvar]))

        return rewrite_functions(mod, relax.Function, rewrite)
