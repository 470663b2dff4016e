"""The dense model's largest convolution (most FLOPs), its tuned TVM kernel (shipped records, applied as a compile
applies them) timed alone against PyTorch (oneDNN) on the same shapes (conv + bias [+ ReLU]), 2 threads each.

Usage: python3 largest_conv.py MODEL [DB TARGET]  (default: the shipped records)"""
import sys, time, numpy as np, torch, tvm
import torch.nn.functional as F
from tvm import relax, tirx
from lcnet_tvm.model.checkpoint import resolve_model
from lcnet_tvm.model.gates import without_gates
from lcnet_tvm.evaluation.bench import BenchOptions
from lcnet_tvm.compiler.driver import lower_to_kernels
from lcnet_tvm.schedules.database import read_database
torch.set_num_threads(2)
loaded = resolve_model(sys.argv[1])
dense = without_gates(loaded.model).eval()
seen = []
def hook(module, inputs, output):
    seen.append((2 * output.numel() * module.weight[0].numel(), module, tuple(inputs[0].shape)))
hooks = [m.register_forward_hook(hook) for m in dense.modules() if isinstance(m, torch.nn.Conv2d)]
with torch.no_grad():
    dense(torch.zeros(1, *loaded.config.input_shape))
for h in hooks: h.remove()
flops, conv, in_shape = max(seen, key=lambda s: s[0])
db, target = (sys.argv[2], sys.argv[3]) if len(sys.argv) > 3 else (None, None)
opts = BenchOptions(target_name=target, database_dir=db).resolved(loaded.name).replace(gate_form="dense")
kernels = lower_to_kernels(loaded.model, loaded.config.input_shape, opts)
weight_shape = list(conv.weight.shape)
candidates = [(gv.name_hint, f) for gv, f in kernels.functions_items() if isinstance(f, tirx.PrimFunc) and "conv2d" in gv.name_hint
              and any([int(d) for d in p.ty.shape] == weight_shape for p in f.params)]
name, func = candidates[0]
records = read_database(opts.database, opts.target_config)
with opts.tvm_target, records.database:
    tuned = relax.transform.MetaScheduleApplyDatabase()(tvm.IRModule({name: func}))
scheduled = bool(tuned[name].attrs and tuned[name].attrs.get("tirx.is_scheduled"))
lib = tvm.tirx.build(tvm.IRModule({name: tuned[name].with_attr("global_symbol", name)}), target=opts.tvm_target)
rng = np.random.default_rng(0)
args = [tvm.runtime.tensor(rng.normal(size=[int(d) for d in p.ty.shape]).astype("float32")) for p in func.params]
tvm_ms = [1e3 * np.median(lib.time_evaluator(name, tvm.cpu(), number=20, repeat=5)(*args).results) for _ in range(3)]
x = torch.randn(in_shape); w = conv.weight.detach().clone(); b = torch.randn(weight_shape[0])
relu = "relu" in name
def torch_call():
    y = F.conv2d(x, w, b, conv.stride, conv.padding)
    return F.relu(y) if relu else y
torch_ms = []
with torch.no_grad():
    for _ in range(3):
        for _ in range(5): torch_call()
        t = time.perf_counter()
        for _ in range(100): torch_call()
        torch_ms.append(1e3 * (time.perf_counter() - t) / 100)
trials = records.trials
print(f"{loaded.name}: largest conv {weight_shape} stride {conv.stride} padding {conv.padding} on {list(in_shape)}, "
      f"{flops / 1e6:.1f} MFLOPs; TVM kernel {name} ({'tuned' if scheduled else 'UNTUNED'}, target {opts.target.name})")
print(f"  TVM alone (time_evaluator, 20 x 5, three times): {' / '.join(f'{t:.3f}' for t in tvm_ms)} ms; "
      f"PyTorch {torch.__version__} conv2d+bias{'+relu' if relu else ''} (100 calls, three times): {' / '.join(f'{t:.3f}' for t in torch_ms)} ms; "
      f"TVM/PyTorch {np.median(tvm_ms) / np.median(torch_ms):.2f}")
