"""``lcnet-tvm bench``: compiled vs eager latency, measured side by side in one process.

Systems (interleaved rounds, one call each, so machine drift hits all alike):
``eager-mask`` (PyTorch, the LC-Net as written: every block and channel
computed, multiplied by the gate scores), ``tvm-gated-untuned`` (our gated
build, target default schedules) and ``tvm-gated`` (the same with the tuning
records of ``--db`` or the shipped ones). Inputs cycle through a fixed set of
held-out samples, the same one for every system in a round.

``largest_conv`` compares the model's largest convolution kernel on its own:
the tuned TVM kernel, the untuned one, and PyTorch's conv2d + bias + ReLU on
the same shapes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import tvm
from tvm.s_tir import meta_schedule as ms

from .calibrate import calibrate_gates
from .checkpoint import LoadedModel
from .compiler import compile_model, lower_to_kernels
from .demo import dataset_for
from .errors import LcnetError
from .flops import FlopsCounter
from .gate_forms import DEFAULT_CHANNEL_BUCKETS
from .gates import WithGateScores
from .importer import import_model
from .native_stderr import quiet_native_noise
from .schedules.builder import build_candidate
from .schedules.database import TuningDatabase, kernel_module
from .shipped_tuning import target_and_records
from .targets import get_target
from .timing import measure_interleaved

logger = logging.getLogger(__name__)

#: Distinct held-out inputs the timed systems cycle through.
BENCH_INPUTS = 16
#: Further held-out inputs the gate shift is calibrated on.
CALIBRATION_INPUTS = 64


def run_bench(
    loaded: LoadedModel,
    target_name: str | None,
    database_dir: str | None,
    iterations: int,
    flops_fraction: float | None = None,
    channel_buckets: int = DEFAULT_CHANNEL_BUCKETS,
) -> dict:
    """Eager vs TVM untuned vs TVM tuned (gated form), batch 1, plus the largest-conv comparison.

    ``flops_fraction``: first shift the gates (:mod:`~lcnet_tvm.calibrate`) to that operating point.
    """
    if iterations < 1:
        raise LcnetError(f"iterations must be at least 1, got {iterations}")
    model = loaded.model.eval()
    shape = loaded.config.input_shape
    data = dataset_for(loaded).x_test
    counter = FlopsCounter.from_model(model, shape)
    shift = None
    if flops_fraction is not None:
        shift = calibrate_gates(model, data[BENCH_INPUTS : BENCH_INPUTS + CALIBRATION_INPUTS], flops_fraction, counter)
    if database_dir is None:
        shipped_target, database_dir = target_and_records(loaded.name)
        target_name = target_name or shipped_target
    target_name = target_name or "x86"
    if database_dir is None:
        raise LcnetError(f"no tuning records for {loaded.name} on {target_name}: tune with `lcnet-tvm tune` and pass --db DIR")
    untuned = compile_model(model, loaded.name, shape, target_name, channel_buckets=channel_buckets)
    tuned = compile_model(model, loaded.name, shape, target_name, channel_buckets=channel_buckets, database_dir=database_dir)
    inputs = data[:BENCH_INPUTS].contiguous()
    result = tuned.run(inputs)
    wrapped = WithGateScores(model).eval()
    cursor = {"index": 0}

    def sample() -> torch.Tensor:
        return inputs[cursor["index"] % len(inputs)].unsqueeze(0)

    def eager():
        with torch.inference_mode():
            wrapped(sample())

    def next_round():
        cursor["index"] += 1

    systems = {
        "eager-mask": eager,
        "tvm-gated-untuned": lambda: untuned.run(sample().numpy()),
        "tvm-gated": lambda: tuned.run(sample().numpy()),
    }
    latency = measure_interleaved(systems, iterations, after_round=next_round)
    return {
        "model": loaded.name,
        "source": loaded.source,
        "input_shape": [1, *shape],
        "target": tuned.metadata["target"],
        "threads": {"torch": torch.get_num_threads(), "tvm": tuned.metadata["target"].get("num-cores", os.cpu_count())},
        "tuning_database": database_dir,
        "kernels": tuned.tuning["kernels"],
        "kernels_tuned": tuned.tuning["tuned"],
        "tuning_trials": tuned.tuning["trials"],
        "gate_shift": shift,
        "dense_gflops": counter.dense_flops / 1e9,
        "executed_gflops": float(result.executed_flops.mean()) / 1e9,
        "decided_gflops": float(result.decided_flops.mean()) / 1e9,
        "systems": latency,
        "largest_conv": largest_conv(model, shape, target_name, database_dir, channel_buckets, max(iterations, 20)),
    }


@dataclass
class ConvKernel:
    name: str
    func: tvm.tirx.PrimFunc
    data: tuple[int, ...]
    weight: tuple[int, ...]
    output: tuple[int, ...]

    @property
    def flops(self) -> int:
        n, out_channels, height, width = self.output
        _, in_channels, kernel_h, kernel_w = self.weight
        return 2 * n * out_channels * height * width * in_channels * kernel_h * kernel_w

    @property
    def stride(self) -> int:
        return self.data[2] // self.output[2]


def argument_info(func: tvm.tirx.PrimFunc) -> list[tuple[str, str, list[int]]]:
    """("TENSOR", dtype, shape) of each of a kernel's arguments, as MetaSchedule reads them."""
    return [tuple(info.as_json()) for info in ms.arg_info.ArgInfo.from_prim_func(func)]


def conv_kernels(kernels: tvm.IRModule) -> list[ConvKernel]:
    """Fused kernels that start with a 2-D convolution: (data, weight, ..., output) buffers."""
    found = []
    for gv, func in kernels.functions_items():
        if isinstance(func, tvm.tirx.PrimFunc) and gv.name_hint.startswith("fused_conv2d"):
            shapes = [tuple(shape) for _, _, shape in argument_info(func)]
            found.append(ConvKernel(gv.name_hint, func, shapes[0], shapes[1], shapes[-1]))
    return found


def largest_conv(
    model: torch.nn.Module,
    shape: tuple[int, int, int],
    target_name: str,
    database_dir: str,
    channel_buckets: int,
    repeats: int,
) -> dict:
    """The gated model's largest conv kernel: TVM tuned, TVM untuned and PyTorch, each timed alone.

    The TVM kernel is the fused one the model runs (conv + bias, and the ReLU / gate-score multiply
    fused after it); PyTorch runs conv2d + bias + ReLU on the same shapes.
    """
    spec = get_target(target_name)
    config = spec.config()
    target = spec.tvm_target(config)
    _, kernels = lower_to_kernels(import_model(model, (1, *shape)), spec, target, "lowered", channel_buckets)
    conv = max(conv_kernels(kernels), key=lambda kernel: kernel.flops)
    mod = kernel_module(conv.func)
    schedule = TuningDatabase(database_dir, config).database.query_schedule(mod, target, workload_name="main")
    if schedule is None:
        raise LcnetError(f"the largest conv kernel {conv.name} has no record in {database_dir}")
    device = spec.device()
    random = np.random.default_rng(0)
    arguments = [
        tvm.runtime.tensor(random.standard_normal(shape).astype(dtype), device) for _, dtype, shape in argument_info(conv.func)
    ]

    def tvm_ms(module: tvm.IRModule) -> float:
        with quiet_native_noise():
            library = build_candidate(module, target)
        timer = library.time_evaluator("main", device, number=10, repeat=repeats)
        return float(np.median(timer(*arguments).results)) * 1e3

    x = torch.randn(conv.data)
    weight = torch.randn(conv.weight)
    bias = torch.randn(conv.weight[0])
    padding = (conv.weight[2] - 1) // 2

    def torch_conv():
        with torch.inference_mode():
            F.relu(F.conv2d(x, weight, bias, stride=conv.stride, padding=padding))

    torch_times = measure_interleaved({"torch": torch_conv}, repeats * 10, warmup=5)["torch"]
    tuned_ms = tvm_ms(schedule.mod)
    return {
        "kernel": conv.name,
        "data": list(conv.data),
        "weight": list(conv.weight),
        "stride": conv.stride,
        "gflops": conv.flops / 1e9,
        "tvm_tuned_ms": tuned_ms,
        "tvm_untuned_ms": tvm_ms(mod),
        "torch_ms": torch_times["median_ms"],
        "torch_over_tvm_tuned": torch_times["median_ms"] / tuned_ms,
    }


def format_bench(report: dict) -> str:
    lines = [
        f"model      {report['model']} ({report['source']}), input {report['input_shape']}, target {report['target']}",
        f"tuning     {report['kernels_tuned']} of {report['kernels']} gated kernels tuned, "
        f"{report['tuning_trials']} trials ({report['tuning_database']})",
        f"FLOPs      dense {report['dense_gflops'] * 1e3:.1f} MFLOPs; gated build executes "
        f"{report['executed_gflops'] / report['dense_gflops']:.3f} of it, decisions call for "
        f"{report['decided_gflops'] / report['dense_gflops']:.3f} (mean over {BENCH_INPUTS} inputs; gate shift "
        f"{report['gate_shift'] if report['gate_shift'] is not None else 'none'})",
        f"latency    batch 1, median (p90) of {next(iter(report['systems'].values()))['iterations']} interleaved rounds:",
    ]
    eager = report["systems"]["eager-mask"]["median_ms"]
    for name, row in report["systems"].items():
        lines.append(f"  {name:18} {row['median_ms']:8.2f} ms ({row['p90_ms']:.2f})   eager/this {eager / row['median_ms']:.2f}x")
    conv = report["largest_conv"]
    lines.append(
        f"largest conv {conv['kernel']} (data {conv['data']}, weight {conv['weight']}, stride {conv['stride']}, "
        f"{conv['gflops'] * 1e3:.0f} MFLOPs): TVM tuned {conv['tvm_tuned_ms']:.3f} ms, untuned "
        f"{conv['tvm_untuned_ms']:.3f} ms, PyTorch conv2d+bias+ReLU {conv['torch_ms']:.3f} ms "
        f"(PyTorch/TVM tuned {conv['torch_over_tvm_tuned']:.2f}x)"
    )
    return "\n".join(lines)
