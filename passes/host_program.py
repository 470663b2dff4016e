"""``main`` runs as one host program: a TIR function that calls every kernel directly.

Through the Relax VM, every kernel call of a gated network comes with about
six VM calls (allocating and freeing its outputs' storage and tensors, branch
conditions, branch function calls, tuples). Each costs a few hundred
nanoseconds, which at CIFAR sizes is as much as the kernels compute. A host
program calls a kernel as a C function (no lookup, no allocation: its
intermediates live in one workspace it plans itself) and branches on a decision
by reading it; the VM makes one call per inference.
"""

from __future__ import annotations

import logging
import math
import re

import tvm
from tvm import relax
from tvm.ir.expr import Constant
from tvm.script import tirx as T
from tvm.script.parser import parse

logger = logging.getLogger(__name__)

#: The host program's name in the module; ``HOST_PROGRAM + TRACED`` is its traced twin, called by
#: ``main + TRACED``, which reports each kernel call to :data:`KERNEL_CALLED` before making it.
HOST_PROGRAM = "host_program"
TRACED = "_traced"
#: Global function the traced host program calls with ``(kernel name, *its arguments)`` before each kernel.
KERNEL_CALLED = "lcnet_tvm.kernel_called"

_CALL_TIR = tvm.ir.Op.get("relax.call_tir")
#: TVM's CPU codegen puts allocations of at most this many bytes on the stack (runtime::kMaxStackAlloca),
#: 16-byte aligned; the kernels assume 64, which the workspace pool gives.
_MAX_STACK_BYTES = 1024
#: Every intermediate starts at a multiple of this many bytes of the workspace.
_ALIGNMENT = 64
_WORKSPACE = "workspace"
#: Stands in for an intermediate's place in the workspace until the workspace is planned: ``⟨use:name⟩``.
_PLACEHOLDER = re.compile(r"⟨(\w+):(\w+)⟩")


class UnsupportedProgram(Exception):
    """``main`` holds something a host program cannot express; it stays as the VM runs it."""


@tvm.transform.module_pass(opt_level=0, name="LowerToHostProgram")
class LowerToHostProgram:
    """Replace ``main`` by one call of a host program that runs everything ``main`` ran.

    Expects: ``main`` after the schedules phase: bindings of ``call_tir`` (the
    kernels, with static shapes), calls of private Relax functions (branch
    and bucket functions), ``if`` on a rank-0 bool tensor, tuples, constants.
    Produces: ``main(x) = call_tir(host_program, (x, *constants), out_ty=main's
    results)``, the PrimFunc ``host_program`` (intermediates are places in one
    ``workspace`` buffer, planned here by their live ranges; a function call is
    inlined, with its results written where the caller keeps them; ``if`` reads
    the condition), ``main_traced`` / ``host_program_traced``
    that report each kernel call to :data:`KERNEL_CALLED` (for counting and
    profiling), and no other Relax functions. A ``main`` with anything else is
    left as it is, with a warning (the VM runs it as before).
    """

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        main = mod["main"]
        try:
            programs = {traced: _HostProgram(mod, traced).lower(main) for traced in (False, True)}
        except UnsupportedProgram as problem:
            logger.warning("main stays in the Relax VM: %s", problem)
            return mod
        # The branch and bucket functions are inlined: only the kernels stay.
        kernels = {gv: func for gv, func in mod.functions.items() if not isinstance(func, relax.Function)}
        builder = relax.BlockBuilder(tvm.IRModule(kernels, attrs=mod.attrs))  # gives the programs typed GlobalVars
        callers = {}
        for traced, (program, constants) in programs.items():
            suffix = TRACED if traced else ""
            caller = _calling_main(main, builder.add_func(program, HOST_PROGRAM + suffix), constants)
            if suffix and main.attrs is not None and "global_symbol" in main.attrs:
                caller = caller.with_attr("global_symbol", "main" + suffix)
            callers["main" + suffix] = caller
        result = builder.get()
        for name, caller in callers.items():
            result[name] = caller
        return relax.transform.Normalize()(result)


def _leaves(ty) -> list[relax.TensorType]:
    """The tensor types of a (possibly nested) tuple type, in order."""
    if isinstance(ty, relax.TupleType):
        return [leaf for field in ty.fields for leaf in _leaves(field)]
    if not isinstance(ty, relax.TensorType) or ty.shape is None:
        raise UnsupportedProgram(f"a value of type {ty} (only tensors of static shape and tuples of them)")
    return [ty]


def _calling_main(main: relax.Function, program: tvm.ir.GlobalVar, constants: list[Constant]) -> relax.Function:
    """``main`` as one call of ``program``, its results regrouped as ``main`` returns them."""
    leaves = _leaves(main.ret_ty)
    single = len(leaves) == 1  # call_tir returns a tensor, not a tuple of one
    results = relax.Var("results", leaves[0] if single else relax.TupleType(leaves))
    position = iter(range(len(leaves)))

    def regroup(ty):
        if isinstance(ty, relax.TupleType):
            return relax.Tuple([regroup(field) for field in ty.fields])
        return results if single else relax.TupleGetItem(results, next(position))

    params = [relax.Var(param.name, param.ty) for param in main.params]
    call = relax.op.call_tir(program, relax.Tuple([*params, *constants]), leaves[0] if single else leaves)
    body = relax.SeqExpr([relax.BindingBlock([relax.VarBinding(results, call)])], regroup(main.ret_ty))
    return relax.Function(params, body, main.ret_ty, is_pure=True, attrs=main.attrs)


def _shape(ty: relax.TensorType) -> tuple[int, ...]:
    return tuple(int(extent) for extent in ty.shape)


class _HostProgram:
    """Writes the host program of one ``main`` as TVMScript and parses it.

    Intermediates are written as placeholders (``⟨use:name⟩``) while the body is
    written; then each gets its place in the workspace by its live range (from
    the first to the last line that uses it; both arms of an ``if`` count, which
    is safe), and the placeholders become pointers: the workspace's data plus a
    byte offset. The program plans this itself because TVM's buffer passes size
    an allocation by the element accesses they see, and a pointer handed to a
    kernel is not one: with a TIR buffer per intermediate, a float32 buffer of
    1,025 elements came out as 1,025 bytes, and with ``address_of(workspace[k])``
    pointers the workspace was compacted to ``k + 1`` bytes; either way the
    kernels wrote past it and corrupted the heap.
    """

    def __init__(self, mod: tvm.IRModule, traced: bool):
        self.mod = mod
        self.traced = traced
        self.lines: list[str] = []
        self.depth = 1
        self.types: dict[str, relax.TensorType] = {}  # buffer name -> its tensor type
        self.constants: dict[Constant, str] = {}
        self.live: dict[str, list[int]] = {}  # intermediate -> [first, last] line that uses it

    def lower(self, main: relax.Function) -> tuple[tvm.tirx.PrimFunc, list[Constant]]:
        env = {}
        inputs = []
        for param in main.params:
            (ty,) = _leaves(param.ty) if isinstance(param.ty, relax.TensorType) else (None,)
            if ty is None:
                raise UnsupportedProgram(f"main's parameter {param.name} is not a tensor")
            env[param] = self._name(param.name, ty)
            inputs.append(env[param])
        outputs = tuple(self._name(f"result{k}", ty) for k, ty in enumerate(_leaves(main.ret_ty)))
        self._body(main.body, env, _regrouped(outputs, main.ret_ty))
        places, size = _plan({name: _bytes(self.types[name]) for name in self.live}, self.live)
        body = [_PLACEHOLDER.sub(lambda use: self._placed(use[1], use[2], places), line) for line in self.lines]
        if size:  # past the stack's limit, so that it comes from the (64-byte aligned) workspace pool
            body.insert(0, f"    {_WORKSPACE} = T.alloc_buffer(({max(size, _MAX_STACK_BYTES + 1)},), 'uint8')")
        constants = list(self.constants)
        params = [*inputs, *self.constants.values(), *outputs]
        signature = ", ".join(f"{name}: {_buffer(self.types[name])}" for name in params)
        source = "\n".join([f"@T.prim_func(private=True)\ndef {HOST_PROGRAM}({signature}):", *(body or ["    T.evaluate(0)"])])
        return parse(source, extra_vars={"T": T}), constants

    # -- names and buffers ------------------------------------------------------------------------

    def _name(self, hint: str, ty: relax.TensorType) -> str:
        base = re.sub(r"\W", "_", str(hint)) or "t"
        name, count = base, 0
        while name in self.types or name in ("T", HOST_PROGRAM, _WORKSPACE):
            count += 1
            name = f"{base}_{count}"
        self.types[name] = ty
        return name

    def _emit(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    def _allocated(self, ty, hint: str, given=None):
        """Buffers for a value of type ``ty``: ``given`` where it names one, a new intermediate elsewhere."""
        if isinstance(ty, relax.TupleType):
            given = given if given is not None else (None,) * len(ty.fields)
            return tuple(self._allocated(field, f"{hint}_{k}", given[k]) for k, field in enumerate(ty.fields))
        if given is not None:
            return given
        (tensor,) = _leaves(ty)
        name = self._name(hint, tensor)
        self.live[name] = []
        return name

    def _use(self, name: str, use: str) -> str:
        """``name`` as the line about to be written uses it: itself for a parameter, a placeholder for an intermediate."""
        if name not in self.live:
            return name
        self.live[name][1:] = [len(self.lines)] if self.live[name] else [len(self.lines)] * 2
        return f"⟨{use}:{name}⟩"

    def _placed(self, use: str, name: str, places: dict[str, int]) -> str:
        """What a placeholder stands for, once ``name`` has its place in the workspace."""
        ty, offset = self.types[name], places[name]
        shape = _shape(ty)
        if use == "argument":  # a DLTensor of the intermediate's type, shape and address
            dims = ", ".join(map(str, shape))
            address = f"T.handle_add_byte_offset({_WORKSPACE}.data, {offset})"
            return f"T.tvm_stack_make_array({address}, T.tvm_stack_make_shape({dims}), 0, {len(shape)}, T.{ty.dtype}(0), 0)"
        if use == "flag":
            return f'T.Cast("int32", {_WORKSPACE}[{offset}]) != 0'
        # "view": the element offset of a view of the workspace in the intermediate's storage type.
        return str(offset // _bytes_per_element(_storage_dtype(ty)))

    def _constant(self, constant: Constant) -> str:
        if constant not in self.constants:
            self.constants[constant] = self._name(f"constant{len(self.constants)}", constant.ty)
        return self.constants[constant]

    def _value(self, expr: relax.Expr, env: dict):
        """The buffer name (or tuple of them) holding ``expr``."""
        if isinstance(expr, relax.Var):
            return env[expr]
        if isinstance(expr, Constant):
            return self._constant(expr)
        if isinstance(expr, relax.Tuple):
            return tuple(self._value(field, env) for field in expr.fields)
        if isinstance(expr, relax.TupleGetItem):
            return self._value(expr.tuple_value, env)[expr.index]
        raise UnsupportedProgram(f"{type(expr).__name__} {expr}")

    # -- bodies and bindings ----------------------------------------------------------------------

    def _body(self, body: relax.Expr, env: dict, destination):
        """Lower a function or ``if`` arm body; its result ends in ``destination`` (where not ``None``)."""
        if not isinstance(body, relax.SeqExpr):
            raise UnsupportedProgram(f"a body that is a {type(body).__name__}")
        bindings = [binding for block in body.blocks for binding in block.bindings]
        values = {binding.var: binding.value for binding in bindings}
        targets: dict[relax.Var, object] = {}
        _route(body.body, destination, values, targets)
        for binding in bindings:
            self._binding(binding, env, targets.get(binding.var))
        result = self._value(body.body, env)
        self._copy(result, destination)
        return _merged(destination, result)

    def _binding(self, binding, env: dict, destination) -> None:
        var, value = binding.var, binding.value
        if not isinstance(binding, relax.VarBinding):
            raise UnsupportedProgram(f"binding {var.name} is a {type(binding).__name__}")
        if isinstance(value, relax.Call) and value.op.same_as(_CALL_TIR):
            env[var] = self._kernel_call(var, value, env, destination)
        elif isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.GlobalVar):
            callee = self.mod[value.op]
            if not isinstance(callee, relax.Function):
                raise UnsupportedProgram(f"{var.name} calls {value.op.name_hint}, which is not a Relax function")
            inner = {param: self._value(arg, env) for param, arg in zip(callee.params, value.args)}
            env[var] = self._body(callee.body, inner, destination)
        elif isinstance(value, relax.If):
            outputs = self._allocated(var.ty, var.name, destination)
            condition = self._value(value.cond, env)
            if _shape(self.types[condition]) != () or str(self.types[condition].dtype) != "bool":
                raise UnsupportedProgram(f"the condition of {var.name} is not a rank-0 bool tensor")
            # As an int: a pass that negates the condition (an empty arm) fails on a bool stored as int8.
            flag = self._use(condition, "flag")
            self._emit(f"if {flag}:" if flag != condition else f'if T.Cast("int32", {condition}[()]) != 0:')
            self._arm(value.true_branch, env, outputs)
            self._emit("else:")
            self._arm(value.false_branch, env, outputs)
            env[var] = outputs
        elif isinstance(value, (relax.Var, Constant, relax.Tuple, relax.TupleGetItem)):
            env[var] = self._value(value, env)
        else:
            raise UnsupportedProgram(f"{var.name} is bound to a {type(value).__name__}: {value}")

    def _arm(self, body: relax.Expr, env: dict, outputs) -> None:
        self.depth += 1
        start = len(self.lines)
        self._body(body, dict(env), outputs)
        if len(self.lines) == start:
            self._emit("T.evaluate(0)")
        self.depth -= 1

    def _kernel_call(self, var: relax.Var, call: relax.Call, env: dict, destination):
        kernel, arguments = call.args[0], call.args[1]
        if len(call.args) > 2:
            raise UnsupportedProgram(f"kernel {kernel.name_hint} takes symbolic shape arguments")
        outputs = self._allocated(var.ty, var.name, destination)
        flat = [self._value(arg, env) for arg in arguments.fields]
        flat += list(outputs) if isinstance(outputs, tuple) else [outputs]
        if self.traced:
            self._emit(f"T.call_packed({KERNEL_CALLED!r}, {kernel.name_hint!r}, {self._arguments(flat)})")
        self._emit(f"T.call_cpacked({kernel.name_hint!r}, {self._arguments(flat)})")
        return outputs

    def _arguments(self, names: list[str]) -> str:
        return ", ".join(self._use(name, "argument") for name in names)

    def _copy(self, source, destination) -> None:
        """Copy what is not already where it must end (a parameter, a constant, a value used twice)."""
        if destination is None or source == destination:
            return
        if isinstance(destination, tuple):
            for each_source, each_destination in zip(source, destination):
                self._copy(each_source, each_destination)
            return
        views = [self._view(source), self._view(destination)]
        shape = _shape(self.types[destination])
        index = ", ".join(f"i{axis}" for axis in range(len(shape))) or "()"
        if shape:
            self._emit(f"for {index} in T.grid({', '.join(map(str, shape))}):")
            self.depth += 1
        self._emit(f"{views[1]}[{index}] = {views[0]}[{index}]")
        self.depth -= 1 if shape else 0
        for name in (source, destination):  # live until the copy is done
            self._use(name, "view")

    def _view(self, name: str) -> str:
        """A buffer to read and write ``name`` in its storage type (a bool as int8, its bytes)."""
        ty = self.types[name]
        dtype = _storage_dtype(ty)
        if name not in self.live and dtype == str(ty.dtype):
            return name
        view = self._name(f"{name}_view", ty)
        data, offset = (f"{_WORKSPACE}.data", self._use(name, "view")) if name in self.live else (f"{name}.data", "0")
        self._emit(f"{view} = T.decl_buffer({_shape(ty)}, {dtype!r}, data={data}, elem_offset={offset})")
        return view


def _storage_dtype(ty: relax.TensorType) -> str:
    """The type a tensor's elements are stored as: a bool is a byte."""
    return "int8" if str(ty.dtype) == "bool" else str(ty.dtype)


def _bytes_per_element(dtype: str) -> int:
    return max(tvm.DataType(dtype).bits // 8, 1)


def _bytes(ty: relax.TensorType) -> int:
    return math.prod(_shape(ty)) * _bytes_per_element(str(ty.dtype))


def _plan(sizes: dict[str, int], live: dict[str, list[int]]) -> tuple[dict[str, int], int]:
    """Byte offsets for buffers of ``sizes`` such that no two live at once overlap; and the bytes it needs.

    First fit in the order buffers come alive: each goes at the lowest
    aligned offset that no buffer still alive covers.
    """
    places: dict[str, int] = {}
    alive: list[str] = []
    size = 0
    for name in sorted(sizes, key=lambda each: live[each][0]):
        first = live[name][0]
        alive = sorted((each for each in alive if live[each][1] >= first), key=places.__getitem__)
        offset = 0
        for each in alive:
            if offset + sizes[name] <= places[each]:
                break
            offset = max(offset, -(-(places[each] + sizes[each]) // _ALIGNMENT) * _ALIGNMENT)
        places[name] = offset
        alive.append(name)
        size = max(size, offset + sizes[name])
    return places, size


def _route(expr: relax.Expr, destination, values: dict, targets: dict) -> None:
    """Send ``destination`` to the bindings that compute ``expr``, so that they write there directly.

    What is not computed in this body (a parameter, a constant) or is routed
    already (one value returned twice) keeps no target and is copied instead.
    """
    if destination is None:
        return
    if isinstance(expr, relax.Tuple):
        for field, each in zip(expr.fields, destination):
            _route(field, each, values, targets)
    elif isinstance(expr, relax.TupleGetItem) and isinstance(expr.tuple_value, relax.Var):
        tuple_var = expr.tuple_value
        if tuple_var not in values or not isinstance(tuple_var.ty, relax.TupleType):
            return
        current = list(targets.get(tuple_var) or (None,) * len(tuple_var.ty.fields))
        if current[expr.index] is None:
            current[expr.index] = destination
            _route_value(tuple_var, tuple(current), values, targets)
    elif isinstance(expr, relax.Var) and expr in values and expr not in targets:
        _route_value(expr, destination, values, targets)


def _route_value(var: relax.Var, destination, values: dict, targets: dict) -> None:
    value = values[var]
    if isinstance(value, (relax.Var, relax.Tuple, relax.TupleGetItem)):
        _route(value, destination, values, targets)
    elif isinstance(value, (relax.Call, relax.If)):
        targets[var] = destination


def _merged(destination, value):
    """``destination`` with what it leaves open (``None``) taken from ``value``."""
    if destination is None:
        return value
    if isinstance(destination, tuple):
        return tuple(_merged(each, part) for each, part in zip(destination, value))
    return destination


def _regrouped(flat: tuple[str, ...], ty):
    """Buffer names in the nesting of type ``ty``."""
    position = iter(flat)

    def regroup(each):
        if isinstance(each, relax.TupleType):
            return tuple(regroup(field) for field in each.fields)
        return next(position)

    return regroup(ty)


def _buffer(ty: relax.TensorType) -> str:
    return f"T.Buffer({_shape(ty)}, {str(ty.dtype)!r})"
