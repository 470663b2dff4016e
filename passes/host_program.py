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

import contextlib
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax
from tvm.ir.expr import Constant
from tvm.tirx.script import builder as T
from tvm.script.ir_builder.base import IRBuilder

logger = logging.getLogger(__name__)

#: The host program's name in the module; ``HOST_PROGRAM + TIMED`` is its timed twin, called by
#: ``main + TIMED``, which returns ``(main's result, clock)``: ``clock[2 * k]`` is how often kernel
#: ``k`` ran in the inference, ``clock[2 * k + 1]`` the nanoseconds it took, the kernels numbered as
#: the twin's :data:`TIMED_KERNELS` attribute lists them.
HOST_PROGRAM = "host_program"
TIMED = "_timed"
TIMED_KERNELS = "lcnet_tvm.timed_kernels"
#: Attribute of ``main`` (and its timed twin) when the host program writes all of ``main``'s results,
#: float32 tensors, into one: per result, in the order ``main`` returned them before, ``[offset, *shape]``
#: (the offset in elements, a multiple of :data:`_ALIGNMENT` bytes). One output instead of one per
#: result (a gated ResNet-20 has 37): the VM allocates one tensor per call, the caller converts one.
PACKED_RESULTS = "lcnet_tvm.packed_results"
#: ``clock_gettime``'s monotonic clock on Linux (x86-64 and aarch64): the clock ``time.perf_counter`` reads.
_CLOCK_MONOTONIC = 1

_CALL_TIR = tvm.ir.Op.get("relax.call_tir")
#: TVM's CPU codegen puts allocations of at most this many bytes on the stack (runtime::kMaxStackAlloca),
#: 16-byte aligned; the kernels assume 64, which the workspace pool gives.
_MAX_STACK_BYTES = 1024
#: Every intermediate starts at a multiple of this many bytes of the workspace.
_ALIGNMENT = 64


class UnsupportedProgram(Exception):
    """``main`` holds something a host program cannot express; it stays as the VM runs it."""


@tvm.transform.module_pass(opt_level=0, name="LowerToHostProgram")
class LowerToHostProgram:
    """Replace ``main`` by one call of a host program that runs everything ``main`` ran.

    Expects: ``main`` after the schedules phase: bindings of ``call_tir`` (the
    kernels, with static shapes), calls of private Relax functions (branch
    and bucket functions), ``if`` on a rank-0 bool tensor, tuples, constants.
    Produces: ``main(x) = call_tir(host_program, (x, *constants), out_ty=main's
    results)``, all of them in one tensor where they are all float32 (laid out
    as ``main``'s :data:`PACKED_RESULTS` attribute says; :func:`unpacked` reads
    them), the PrimFunc ``host_program`` (intermediates are places in one
    ``workspace`` buffer, planned here by their live ranges; a function call is
    inlined, with its results written where the caller keeps them; ``if`` reads
    the condition); with ``timed``, also ``main_timed`` / ``host_program_timed``
    that count and time each kernel's calls in the inference (see
    :data:`TIMED`; built on demand: LLVM takes about a quarter longer with
    the twin); and no other Relax functions. A ``main`` with anything else is
    left as it is, with a warning (the VM runs it as before).
    """

    def __init__(self, timed: bool = False):
        self.timed = timed

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        main = mod["main"]
        try:
            program = _HostProgram(mod)
            program.record(main)
        except UnsupportedProgram as problem:
            logger.warning("main stays in the Relax VM: %s", problem)
            return mod
        programs = {timed: program.build(timed) for timed in ((False, True) if self.timed else (False,))}
        # The branch and bucket functions are inlined: only the kernels stay.
        kernels = {gv: func for gv, func in mod.functions.items() if not isinstance(func, relax.Function)}
        builder = relax.BlockBuilder(tvm.IRModule(kernels, attrs=mod.attrs))  # gives the programs typed GlobalVars
        callers = {}
        for timed, function in programs.items():
            suffix = TIMED if timed else ""
            clock = program.clock_type if timed else None
            caller = _calling_main(
                main, builder.add_func(function, HOST_PROGRAM + suffix), list(program.constants), clock, program.packed
            )
            if suffix and main.attrs is not None and "global_symbol" in main.attrs:
                caller = caller.with_attr("global_symbol", "main" + suffix)
            callers["main" + suffix] = caller
        result = builder.get()
        for name, caller in callers.items():
            result[name] = caller
        return relax.transform.Normalize()(result)


def packed_results(mod: tvm.IRModule) -> list[list[int]]:
    """``main``'s :data:`PACKED_RESULTS` layout (empty: ``main`` returns its results as they are)."""
    main = mod["main"]
    if main.attrs is None or PACKED_RESULTS not in main.attrs:
        return []
    return [[int(extent) for extent in result] for result in main.attrs[PACKED_RESULTS]]


class _Unpacked(Sequence):
    def __init__(self, results: np.ndarray, layout: list[list[int]]):
        self.results = results
        self.layout = layout

    def __len__(self) -> int:
        return len(self.layout)

    def __getitem__(self, index: int) -> np.ndarray:
        offset, *shape = self.layout[index]
        return self.results[offset : offset + math.prod(shape)].reshape(shape)


def unpacked(results: np.ndarray, layout: list[list[int]]) -> Sequence[np.ndarray]:
    """The results in the one tensor a packed ``main`` returned, as ``main`` returned them before: views,
    each made when it is read (a caller that reads the logits only makes one, not one per gate)."""
    return _Unpacked(results, layout)


def has_host_program(mod: tvm.IRModule) -> bool:
    return any(gv.name_hint == HOST_PROGRAM for gv in mod.get_global_vars())


def timed_kernels(mod: tvm.IRModule) -> list[str]:
    """The kernels ``mod``'s timed twin counts and times, in the order of its clock (none: no timed twin)."""
    names = [gv.name_hint for gv in mod.get_global_vars()]
    return list(mod[HOST_PROGRAM + TIMED].attrs[TIMED_KERNELS]) if HOST_PROGRAM + TIMED in names else []


def _leaves(ty) -> list[relax.TensorType]:
    """The tensor types of a (possibly nested) tuple type, in order."""
    if isinstance(ty, relax.TupleType):
        return [leaf for field in ty.fields for leaf in _leaves(field)]
    if not isinstance(ty, relax.TensorType) or ty.shape is None:
        raise UnsupportedProgram(f"a value of type {ty} (only tensors of static shape and tuples of them)")
    return [ty]


def _calling_main(
    main: relax.Function,
    program: tvm.ir.GlobalVar,
    constants: list[Constant],
    clock: relax.TensorType | None,
    packed: list[list[int]] | None,
) -> relax.Function:
    """``main`` as one call of ``program``, its results regrouped as ``main`` returns them (``packed``: the
    one tensor holding them all, laid out as :data:`PACKED_RESULTS` says); given a ``clock`` (the timed
    twin's last output), ``(main's result, clock)``."""
    results_ty = main.ret_ty
    leaves = _leaves(main.ret_ty)
    if packed is not None:
        results_ty = relax.TensorType((_packed_elements(packed),), "float32")
        leaves = [results_ty]
    leaves += [clock] if clock is not None else []
    single = len(leaves) == 1  # call_tir returns a tensor, not a tuple of one
    results = relax.Var("results", leaves[0] if single else relax.TupleType(leaves))
    position = iter(range(len(leaves)))

    def regroup(ty):
        if isinstance(ty, relax.TupleType):
            return relax.Tuple([regroup(field) for field in ty.fields])
        return results if single else relax.TupleGetItem(results, next(position))

    params = [relax.Var(param.name, param.ty) for param in main.params]
    call = relax.op.call_tir(program, relax.Tuple([*params, *constants]), leaves[0] if single else leaves)
    ret_ty = results_ty if clock is None else relax.TupleType([results_ty, clock])
    returned = regroup(ret_ty)
    body = relax.SeqExpr([relax.BindingBlock([relax.VarBinding(results, call)])], returned)
    caller = relax.Function(params, body, ret_ty, is_pure=True, attrs=main.attrs)
    return caller if packed is None else caller.with_attr(PACKED_RESULTS, packed)


def _packed_elements(packed: list[list[int]]) -> int:
    """Elements of the tensor that holds results laid out as ``packed`` says."""
    offset, *shape = packed[-1]
    return offset + math.prod(shape)


def _shape(ty: relax.TensorType) -> tuple[int, ...]:
    return tuple(int(extent) for extent in ty.shape)


@dataclass
class _Declare:
    """An intermediate comes into scope (its place in the workspace is planned later)."""

    name: str


@dataclass
class _KernelCall:
    kernel: str
    arguments: list[str]


@dataclass
class _If:
    condition: str
    then: list = field(default_factory=list)
    otherwise: list = field(default_factory=list)


@dataclass
class _Copy:
    source: str
    destination: str


class _HostProgram:
    """The host program of one ``main``: recorded as steps, then built as a TIR PrimFunc.

    Recording inlines the functions ``main`` calls and routes results to where
    they end; every step that uses an intermediate extends its live range
    (both arms of an ``if`` count, which is safe). Building gives each
    intermediate its place in one workspace by those ranges, at the
    workspace's data plus a byte offset. The program plans this itself because
    TVM's buffer passes size an allocation by the element accesses they see,
    and a pointer handed to a kernel is not one: with a TIR buffer per
    intermediate, a float32 buffer of 1,025 elements came out as 1,025 bytes,
    and with ``address_of(workspace[k])`` pointers the workspace was compacted
    to ``k + 1`` bytes; either way the kernels wrote past it and corrupted the heap.
    """

    def __init__(self, mod: tvm.IRModule):
        self.mod = mod
        self.steps: list = []  # where the step being recorded goes: the program or an ``if`` arm
        self.program = self.steps
        self.step = 0  # steps recorded so far: the live ranges' clock
        self.types: dict[str, relax.TensorType] = {}  # buffer name -> its tensor type
        self.inputs: list[str] = []
        self.outputs: tuple[str, ...] = ()
        self.constants: dict[Constant, str] = {}
        self.live: dict[str, list[int]] = {}  # intermediate -> [first, last] step that uses it
        self.places: dict[str, int] = {}  # intermediate -> its byte offset in the workspace, once recorded
        self.kernels: dict[str, int] = {}  # kernel -> its number in the timed twin's clock
        self.workspace_bytes = 0

    def record(self, main: relax.Function) -> None:
        env = {}
        for param in main.params:
            (ty,) = _leaves(param.ty) if isinstance(param.ty, relax.TensorType) else (None,)
            if ty is None:
                raise UnsupportedProgram(f"main's parameter {param.name} is not a tensor")
            env[param] = self._name(param.name, ty)
            self.inputs.append(env[param])
        self.outputs = tuple(self._name(f"result{k}", ty) for k, ty in enumerate(_leaves(main.ret_ty)))
        self._body(main.body, env, _regrouped(self.outputs, main.ret_ty))
        self.places, self.workspace_bytes = _plan({name: _bytes(self.types[name]) for name in self.live}, self.live)

    @property
    def packed(self) -> list[list[int]] | None:
        """Where each of ``main``'s results goes in the one tensor that holds them (see :data:`PACKED_RESULTS`);
        ``None`` where they are not all float32."""
        if not self.outputs or any(str(self.types[name].dtype) != "float32" for name in self.outputs):
            return None
        layout, offset = [], 0
        for name in self.outputs:
            shape = list(_shape(self.types[name]))
            layout.append([offset, *shape])
            offset += _aligned(4 * math.prod(shape)) // 4
        return layout

    def build(self, timed: bool) -> tvm.tirx.PrimFunc:
        """The PrimFunc; ``timed``: its twin that also counts and times each kernel's calls (see :data:`TIMED`)."""
        with IRBuilder() as builder, T.prim_func(is_private=True):
            T.func_name(HOST_PROGRAM + (TIMED if timed else ""))
            packed = self.packed
            one_by_one = self.outputs if packed is None else ()
            buffers = {
                name: T.arg(name, T.Buffer(_shape(self.types[name]), str(self.types[name].dtype)))
                for name in (*self.inputs, *self.constants.values(), *one_by_one)
            }
            if packed is not None:
                data = T.arg("results", T.Buffer((_packed_elements(packed),), "float32")).data
            clock = T.arg("clock", T.Buffer(_shape(self.clock_type), "int64")) if timed else None
            if timed:
                T.func_attr({TIMED_KERNELS: list(self.kernels)})
            # Past the stack's limit, so that it comes from the (64-byte aligned) workspace pool.
            size = self.workspace_bytes
            workspace = T.alloc_buffer((max(size, _MAX_STACK_BYTES + 1),), "uint8") if size else None
            for name, (offset, *shape) in zip(self.outputs, packed or ()):
                buffers[name] = T.decl_buffer(shape, "float32", data=T.Bind(T.handle_add_byte_offset(data, 4 * offset)))
            _Builder(self.types, buffers, workspace, self.places, _Clock(clock, self.kernels) if timed else None).run(
                self.program
            )
        return builder.get()

    @property
    def clock_type(self) -> relax.TensorType:
        """The timed twin's clock: a count and nanoseconds per kernel, then ``clock_gettime``'s scratch."""
        return relax.TensorType((2 * len(self.kernels) + 2,), "int64")

    # -- names and buffers ------------------------------------------------------------------------

    def _name(self, hint: str, ty: relax.TensorType) -> str:
        base = re.sub(r"\W", "_", str(hint)) or "t"
        name, count = base, 0
        while name in self.types:
            count += 1
            name = f"{base}_{count}"
        self.types[name] = ty
        return name

    def _add(self, step) -> None:
        self.steps.append(step)
        self.step += 1

    def _allocated(self, ty, hint: str, given=None):
        """Buffers for a value of type ``ty``: ``given`` where it names one, a new intermediate elsewhere."""
        if isinstance(ty, relax.TupleType):
            given = given if given is not None else (None,) * len(ty.fields)
            return tuple(self._allocated(field, f"{hint}_{k}", given[k]) for k, field in enumerate(ty.fields))
        if given is not None:
            return given
        (tensor,) = _leaves(ty)
        name = self._name(hint, tensor)
        self.live[name] = [self.step] * 2  # from its declaration: it has a range even if nothing uses it
        self._add(_Declare(name))
        return name

    def _use(self, name: str) -> str:
        """``name``, used by the step about to be recorded (which extends an intermediate's live range)."""
        if name in self.live:
            self.live[name][1] = self.step
        return name

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
            branch = _If(self._use(condition))
            self._add(branch)
            self._arm(value.true_branch, env, outputs, branch.then)
            self._arm(value.false_branch, env, outputs, branch.otherwise)
            env[var] = outputs
        elif isinstance(value, (relax.Var, Constant, relax.Tuple, relax.TupleGetItem)):
            env[var] = self._value(value, env)
        else:
            raise UnsupportedProgram(f"{var.name} is bound to a {type(value).__name__}: {value}")

    def _arm(self, body: relax.Expr, env: dict, outputs, steps: list) -> None:
        outer, self.steps = self.steps, steps
        self._body(body, dict(env), outputs)
        self.steps = outer

    def _kernel_call(self, var: relax.Var, call: relax.Call, env: dict, destination):
        kernel, arguments = call.args[0], call.args[1]
        if len(call.args) > 2:
            raise UnsupportedProgram(f"kernel {kernel.name_hint} takes symbolic shape arguments")
        outputs = self._allocated(var.ty, var.name, destination)
        flat = [self._value(arg, env) for arg in arguments.fields]
        flat += list(outputs) if isinstance(outputs, tuple) else [outputs]
        self.kernels.setdefault(kernel.name_hint, len(self.kernels))
        self._add(_KernelCall(kernel.name_hint, [self._use(name) for name in flat]))
        return outputs

    def _copy(self, source, destination) -> None:
        """Copy what is not already where it must end (a parameter, a constant, a value used twice)."""
        if destination is None or source == destination:
            return
        if isinstance(destination, tuple):
            for each_source, each_destination in zip(source, destination):
                self._copy(each_source, each_destination)
            return
        self._add(_Copy(self._use(source), self._use(destination)))


class _Clock:
    """The timed twin's ``clock`` buffer: kernel ``k`` counts at ``2 * k`` and adds its nanoseconds at ``2 * k + 1``."""

    def __init__(self, buffer, kernels: dict[str, int]):
        self.buffer = buffer
        self.kernels = kernels
        self.scratch = 2 * len(kernels)  # a struct timespec: seconds, nanoseconds

    def reset(self) -> None:
        with T.grid(self.scratch) as index:
            T.buffer_store(self.buffer, T.int64(0), [index])

    def now(self):
        """Nanoseconds on the monotonic clock (read into the scratch, so that nothing is allocated for it)."""
        T.evaluate(T.call_extern("int32", "clock_gettime", _CLOCK_MONOTONIC, T.address_of(self.buffer[self.scratch])))
        return self.buffer[self.scratch] * T.int64(1_000_000_000) + self.buffer[self.scratch + 1]

    def add(self, kernel: str, nanoseconds) -> None:
        slot = 2 * self.kernels[kernel]
        T.buffer_store(self.buffer, self.buffer[slot] + T.int64(1), [slot])
        T.buffer_store(self.buffer, self.buffer[slot + 1] + nanoseconds, [slot + 1])


class _Builder:
    """Builds recorded steps into the PrimFunc under construction (TVM's IR builder)."""

    def __init__(self, types: dict, buffers: dict, workspace, places: dict[str, int], clock: _Clock | None):
        self.types = types
        self.buffers = dict(buffers)
        self.workspace = workspace
        self.places = places
        self.clock = clock
        self.builders = {_Declare: self.declare, _KernelCall: self.kernel_call, _If: self.branch, _Copy: self.copy}

    def run(self, program: list) -> None:
        if self.clock is not None:
            self.clock.reset()
        self.steps(program)

    def steps(self, steps: list) -> None:
        if not steps:
            T.evaluate(0)
        for step in steps:
            self.builders[type(step)](step)

    def declare(self, step: _Declare) -> None:
        ty = self.types[step.name]
        address = T.Bind(T.handle_add_byte_offset(self.workspace.data, self.places[step.name]))
        self.buffers[step.name] = T.decl_buffer(_shape(ty), str(ty.dtype), data=address)

    def kernel_call(self, step: _KernelCall) -> None:
        arguments = [self.buffers[name] for name in step.arguments]
        if self.clock is None:
            T.evaluate(T.call_cpacked(step.kernel, *arguments))
            return
        started = T.Bind(self.clock.now())
        T.evaluate(T.call_cpacked(step.kernel, *arguments))
        self.clock.add(step.kernel, T.Bind(self.clock.now() - started))

    def branch(self, step: _If) -> None:
        # As an int: a pass that negates the condition (an empty arm) fails on a bool stored as int8.
        with T.If(T.Cast("int32", self.buffers[step.condition][()]) != 0):
            with T.Then():
                self.steps(step.then)
            with T.Else():
                self.steps(step.otherwise)

    def copy(self, step: _Copy) -> None:
        source, destination = self.buffers[step.source], self.buffers[step.destination]
        shape = _shape(self.types[step.destination])
        if not shape:
            T.buffer_store(destination, source[()], [])
            return
        # Loops, the innermost vectorized (12 us -> 1.3 us for a 16x32x32 activation here); T.grid's
        # index is an Array, not a tuple, for more than one loop.
        with contextlib.ExitStack() as loops:
            index = [loops.enter_context(T.serial(extent)) for extent in shape[:-1]]
            index.append(loops.enter_context(T.vectorized(shape[-1])))
            T.buffer_store(destination, source[tuple(index)], index)


def _bytes(ty: relax.TensorType) -> int:
    """Bytes a tensor takes (a bool takes one)."""
    return math.prod(_shape(ty)) * max(tvm.DataType(str(ty.dtype)).bits // 8, 1)


def _aligned(size: int) -> int:
    """``size`` bytes rounded up to a multiple of :data:`_ALIGNMENT`."""
    return -(-size // _ALIGNMENT) * _ALIGNMENT


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
            offset = max(offset, _aligned(places[each] + sizes[each]))
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

