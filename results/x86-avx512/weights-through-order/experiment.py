"""Would a bucket's convolutions be faster reading the full weight through the channel order (W[o, order[c]])
than reading a copy the bucket's gather kernel made? An experiment, not the compiler: for each channel bucket
named, its gather kernel and its convolutions are taken from the lowered model as the compiler makes them; each
convolution that reads a gathered weight gets a twin that reads the full weight through `order` instead (its
TVMScript edited: the weight parameter replaced, the load indexed through order, the block's read regions
re-derived), the convolution's tuned schedule (best record of the database) replayed on the twin, and both
timed alone (time_evaluator, 2 threads), as is the gather kernel.

Usage: python3 experiment.py MODEL DB TARGET BUCKET [BUCKET ...]   (DB, TARGET: - for the shipped records; BUCKET: a
bucket function, e.g. gate15_channels448)"""
import re, sys
import numpy as np
import tvm
from tvm import relax, tirx
from tvm.s_tir import Schedule
from tvm.script import tirx as T
from tvm.script.parser import parse
from lcnet_tvm.model.checkpoint import resolve_model
from lcnet_tvm.evaluation.bench import BenchOptions
from lcnet_tvm.compiler.driver import lower_to_kernels
from lcnet_tvm.schedules.database import kernel_module, read_database

model_name, db, target_name, *buckets = sys.argv[1:]
loaded = resolve_model(model_name)
opts = BenchOptions(target_name=None if target_name == "-" else target_name, database_dir=None if db == "-" else db).resolved(loaded.name)
mod = lower_to_kernels(loaded.model, loaded.config.input_shape, opts)
records = read_database(opts.database, opts.target_config).database
target = opts.tvm_target
rng = np.random.default_rng(0)


def copy_of(func):
    """A copy of func: a Schedule may rewrite the function it is given in place."""
    return parse(func.script(), extra_vars={"T": T}, s_tir=True)


def replayed(record, func):
    """A copy of func with ``record``'s trace applied."""
    sch = Schedule(kernel_module(copy_of(func)))
    record.trace.apply_to_schedule(sch, remove_postproc=False)
    return sch.mod["main"]


def tuned(func):
    """A copy of func with its best record's trace applied (None: no record)."""
    record = records.query_tuning_record(kernel_module(func), target, "main")
    return None if record is None else replayed(record, func)


def time_us(func, args):
    lib = tvm.tirx.build(tvm.IRModule({"kernel": func.with_attr("global_symbol", "kernel")}), target=target)
    evaluator = lib.time_evaluator("kernel", tvm.cpu(), number=20, repeat=5)
    return 1e6 * float(np.median([np.median(evaluator(*args).results) for _ in range(3)]))


def arguments(func, order_width=None):
    args = []
    for param in func.params:
        shape = [int(d) for d in param.ty.shape]
        if str(param.ty.dtype) == "int64":
            args.append(tvm.runtime.tensor(rng.permutation(order_width).astype("int64")))
        else:
            args.append(tvm.runtime.tensor(rng.normal(size=shape).astype(str(param.ty.dtype))))
    return args


def through_order(func, position, axis, width):
    """func with its parameter at ``position`` (a weight gathered on ``axis``) replaced by (order, the full weight)."""
    text = func.script()
    param = func.params[position]
    shape = [int(d) for d in param.ty.shape]
    signature = next(line for line in text.splitlines() if line.startswith("def main("))
    name = re.findall(r"(\w+): T\.Buffer", signature)[position]
    full = list(shape); full[axis] = width
    declaration = re.search(rf"{name}: T\.Buffer\(\((?:T\.int64\(\d+\),? ?)+\), \"float32\"\)", text).group(0)
    text = text.replace(declaration, f'order: T.Buffer((T.int64({width}),), "int64"), ' + declaration.replace(
        "(" + ", ".join(f"T.int64({d})" for d in shape) + ")", "(" + ", ".join(f"T.int64({d})" for d in full) + ")"))
    def index(match):
        parts = [p.strip() for p in match.group(1).split(",")]
        parts[axis] = f"order[{parts[axis]}]"
        return f"{name}[{', '.join(parts)}]"
    text = re.sub(rf"(?<![\w.]){name}\[([^\]]*)\]", index, text)
    # read regions re-derived by the parser from the body
    text = "\n".join(line for line in text.splitlines() if not re.match(r"\s*T\.(reads|writes)\(", line))
    return parse(text, extra_vars={"T": T}, s_tir=True)


for bucket in buckets:
    function = mod[bucket]
    calls = [b.value for block in function.body.blocks for b in block.bindings if isinstance(b.value, relax.Call) and b.value.op.name == "relax.call_tir"]
    gather_call = next(c for c in calls if c.args[0].name_hint.endswith("_gather"))
    gather = mod[gather_call.args[0]]
    fields = {}  # var of a gathered output -> (source operand, axis)
    for block in function.body.blocks:
        for b in block.bindings:
            if isinstance(b.value, relax.TupleGetItem):
                fields[b.var] = b.value.index
    width = int(gather_call.args[1].fields[0].ty.shape[0])
    gather_args = arguments(gather, width)
    scheduled = tuned(gather)
    line = [f"{bucket}: gather {gather_call.args[0].name_hint} {time_us(scheduled or gather, gather_args):.1f} us"
            f"{'' if scheduled else ' (UNTUNED)'}"]
    sources = list(gather_call.args[1].fields[1:])
    for call in calls:
        if call is gather_call:
            continue
        kernel_name = call.args[0].name_hint
        kernel = mod[call.args[0]]
        for position, arg in enumerate(call.args[1].fields):
            source = sources[fields[arg]] if arg in fields else None
            if source is not None and len(source.ty.shape) == 4 and int(source.ty.shape[0]) != 1:  # a weight
                axis = next(i for i, (a, b) in enumerate(zip(arg.ty.shape, source.ty.shape)) if int(a) != int(b))
                record = records.query_tuning_record(kernel_module(kernel), target, "main")
                if record is None:
                    line.append(f"{kernel_name}: no record")
                    continue
                plain = replayed(record, kernel)
                twin = through_order(kernel, position, axis, width)
                try:
                    twin_tuned = replayed(record, twin)
                except Exception as error:  # noqa: BLE001
                    line.append(f"{kernel_name}: its trace does not replay on the twin ({type(error).__name__}: {str(error)[:200]})")
                    continue
                plain_us = time_us(plain, arguments(kernel, width))
                twin_us = time_us(twin_tuned, arguments(twin, width))
                line.append(f"{kernel_name} (weight axis {axis}) plain {plain_us:.1f} us, through order {twin_us:.1f} us")
    print("; ".join(line), flush=True)
