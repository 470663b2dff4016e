"""OpenVINO's own per-layer profile of a model's dense backbone (2 threads, latency mode, f32, as the bench runs it):
each convolution's time and the implementation OpenVINO chose for it.

Usage: python3 openvino_layers.py MODEL [CALLS]"""
import collections, sys, tempfile
from pathlib import Path
import numpy as np, torch
import openvino as ov, openvino.properties as props, openvino.properties.hint as hints
from lcnet_tvm.evaluation.peers import export_onnx
from lcnet_tvm.model.checkpoint import resolve_model
from lcnet_tvm.model.gates import without_gates

loaded = resolve_model(sys.argv[1])
calls = int(sys.argv[2]) if len(sys.argv) > 2 else 50
example = torch.zeros(1, *loaded.config.input_shape)
with tempfile.TemporaryDirectory() as tmp:
    path = export_onnx(without_gates(loaded.model), example, Path(tmp) / "dense.onnx")
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {
        hints.performance_mode: hints.PerformanceMode.LATENCY, hints.inference_precision: ov.Type.f32,
        props.inference_num_threads: 2, props.enable_profiling: True})
request = compiled.create_infer_request()
x = np.random.default_rng(0).standard_normal(example.shape).astype("float32")
for _ in range(10):
    request.infer({0: x})
totals, kinds = collections.defaultdict(float), {}
for _ in range(calls):
    request.infer({0: x})
    for info in request.profiling_info:
        totals[(info.node_name, info.node_type)] += info.real_time.total_seconds() * 1e3 / calls
        kinds[(info.node_name, info.node_type)] = info.exec_type
by_type = collections.defaultdict(float)
for (name, node_type), ms in totals.items():
    by_type[(node_type, kinds[(name, node_type)])] += ms
print(f"{loaded.name}: OpenVINO {ov.__version__}, mean of {calls} calls, per layer ms (sum {sum(totals.values()):.3f})")
for (node_type, exec_type), ms in sorted(by_type.items(), key=lambda kv: -kv[1]):
    print(f"  {node_type:20s} {exec_type:30s} {ms:8.3f}")
for (name, node_type), ms in sorted(totals.items(), key=lambda kv: -kv[1])[:25]:
    print(f"  {ms:7.3f} ms  {node_type:14s} {kinds[(name, node_type)]:28s} {name}")
