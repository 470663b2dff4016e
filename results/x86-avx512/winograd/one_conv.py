"""One 3x3 stride-1 convolution + bias + ReLU, batch 1, tuned as a direct convolution and as Winograd F(m x m, 3x3)
with the weight transformed ahead of time, each timed alone beside PyTorch (oneDNN), 2 threads each.

Usage: python3 one_conv.py CHANNELS SIZE TRIALS DBDIR [--tile M ...] [--no-direct] [--shipped-model MODEL]
(DBDIR: a scratch tuning database; TRIALS per kernel, counting those DBDIR already has)"""
import argparse, time, numpy as np, torch, tvm
import torch.nn.functional as F
from tvm import te, topi
from tvm.topi.nn.conv2d import _conv2d_winograd_nchw_impl
from tvm.topi.nn.winograd_util import _cook_toom_convolution, _interpolation_points
from lcnet_tvm.compiler.options import CompileOptions
from lcnet_tvm.schedules.builder import ForkingBuilder
from lcnet_tvm.schedules.database import TuningDatabase, kernel_module, read_database, workload_key
from lcnet_tvm.schedules.measure import tuning_runner
from lcnet_tvm.schedules.tune import KernelTask, tune_kernels
from tvm.s_tir.analysis import estimate_tir_flops
from tvm import relax

parser = argparse.ArgumentParser()
parser.add_argument("channels", type=int); parser.add_argument("size", type=int); parser.add_argument("trials", type=int)
parser.add_argument("db"); parser.add_argument("--tile", type=int, nargs="*", default=[2, 4])
parser.add_argument("--no-direct", action="store_true", help="leave the direct convolution out")
parser.add_argument("--shipped-model", help="also time this model's own kernel of the shape, with its shipped records")
args = parser.parse_args()
C, H = args.channels, args.size
torch.set_num_threads(2)
options = CompileOptions(target="x86", database=args.db)
dev = tvm.cpu()


def with_bias_and_relu(conv, weight_shape: tuple) -> tvm.tirx.PrimFunc:
    """The kernel ``relu(conv(data, weight) + bias)``, the form the model's own kernels have."""
    data = te.placeholder((1, C, H, H), name="data"); weight = te.placeholder(weight_shape, name="weight")
    bias = te.placeholder((1, C, 1, 1), name="bias")
    return te.create_prim_func([data, weight, bias, topi.nn.relu(topi.add(conv(data, weight), bias))])


def direct() -> tvm.tirx.PrimFunc:
    return with_bias_and_relu(lambda data, weight: topi.nn.conv2d_nchw(data, weight, 1, 1, 1), (C, C, 3, 3))


def winograd(m: int) -> tvm.tirx.PrimFunc:
    """F(m x m, 3x3), its weight transformed ahead of time ([m+2, m+2, in, out])."""
    return with_bias_and_relu(
        lambda data, packed: _conv2d_winograd_nchw_impl(data, packed, 1, 1, 1, "float32", m, pre_computed=True),
        (m + 2, m + 2, C, C),
    )


def pack(weight: np.ndarray, m: int) -> np.ndarray:
    _, _, G = _cook_toom_convolution(_interpolation_points(m + 1), m, 3)
    return np.einsum("ek,oikl,nl->enio", G, weight, G).astype("float32")


rng = np.random.default_rng(0)
x = rng.standard_normal((1, C, H, H)).astype("float32")
w = (rng.standard_normal((C, C, 3, 3)) / np.sqrt(9 * C)).astype("float32")
b = rng.standard_normal((1, C, 1, 1)).astype("float32")
expected = F.relu(F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b.reshape(C)), padding=1)).numpy()

kernels = ({} if args.no_direct else {"direct": (direct(), w)}) | {f"winograd{m}": (winograd(m), pack(w, m)) for m in args.tile}
modules = {name: kernel_module(f) for name, (f, _) in kernels.items()}
tasks = [KernelTask(name, mod, 1, estimate_tir_flops(mod), budget=args.trials) for name, mod in modules.items()]
database = TuningDatabase(args.db, options.target_config)
tune_kernels(tasks, options.tvm_target, options.target.device_type, database,
             tuning_runner(options.target, options.target_config), ForkingBuilder(link=options.target.library_compiler()),
             show_progress=False)


def timed(name: str, func_mod: tvm.IRModule, weight: np.ndarray, records) -> None:
    """Apply ``records`` to the one kernel of ``func_mod``, check it against PyTorch, time it alone."""
    with options.tvm_target, records.database:
        tuned = relax.transform.MetaScheduleApplyDatabase()(func_mod)
    (gv, func), = tuned.functions_items()
    scheduled = bool(func.attrs and func.attrs.get("tirx.is_scheduled"))
    lib = tvm.tirx.build(tvm.IRModule({"main": func.with_attr("global_symbol", "main")}), target=options.tvm_target)
    out = tvm.runtime.tensor(np.zeros_like(expected))
    inputs = [tvm.runtime.tensor(a) for a in (x, weight, b)]
    lib["main"](*inputs, out)
    error = np.abs(out.numpy() - expected).max() / np.abs(expected).max()
    ms = [1e3 * np.median(lib.time_evaluator("main", dev, number=50, repeat=5)(*inputs, out).results) for _ in range(3)]
    trials = records.trials[workload_key(func_mod)]
    print(f"C={C} H={H} {name} ({'tuned' if scheduled else 'UNTUNED'}, {trials} trials): "
          f"{' / '.join(f'{t:.4f}' for t in ms)} ms, max rel error {error:.1e}", flush=True)


records = read_database(args.db, options.target_config)
for task in tasks:
    timed(task.name, task.mod, kernels[task.name][1], records)
if args.shipped_model:
    # The model's own kernel of this shape (conv + bias + ReLU) with the records shipped for it.
    from lcnet_tvm.compiler.driver import lower_to_kernels
    from lcnet_tvm.evaluation.bench import BenchOptions
    from lcnet_tvm.model.checkpoint import resolve_model
    loaded = resolve_model(args.shipped_model)
    shipped = BenchOptions(target_name="x86").resolved(loaded.name).replace(gate_form="dense")
    model_kernels = lower_to_kernels(loaded.model, loaded.config.input_shape, shipped)
    wanted = [[1, C, H, H], [C, C, 3, 3], [1, C, 1, 1], [1, C, H, H]]
    name, func = next((gv.name_hint, f) for gv, f in model_kernels.functions_items() if isinstance(f, tvm.tirx.PrimFunc)
                      and [[int(d) for d in p.ty.shape] for p in f.params] == wanted)
    timed(f"shipped {args.shipped_model} {name}", kernel_module(func), w, read_database(shipped.database, shipped.target_config))
xt, wt, bt = map(torch.from_numpy, (x, w, b.reshape(C)))
for _ in range(3):
    with torch.no_grad():
        for _ in range(20): F.relu(F.conv2d(xt, wt, bt, padding=1))
        start = time.perf_counter()
        for _ in range(200): F.relu(F.conv2d(xt, wt, bt, padding=1))
    print(f"C={C} H={H} pytorch {torch.__version__}: {(time.perf_counter() - start) / 200 * 1e3:.4f} ms", flush=True)
