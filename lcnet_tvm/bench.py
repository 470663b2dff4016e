"""``lcnet-tvm bench``: compiled vs eager latency, measured side by side in one process.

Systems (:mod:`lcnet_tvm.systems`) take turns within each round
(:func:`~lcnet_tvm.timing.measure_interleaved`), so machine drift hits all
alike; every round feeds all systems the same batch, cycling through
:data:`BENCH_BATCHES` batches of held-out samples:

* ``eager-dense``: the PyTorch backbone without gates;
* ``eager-mask``: the LC-Net in mask form, as research code runs it;
* ``eager-skip``: :class:`~lcnet_tvm.eager_skip.SkippingResNet`, real skipping and gathering;
* ``torch-compile``: ``torch.compile`` of the faster of those two (picked by a
  short pre-run); its graph breaks are reported;
* ``tvm-dense``, ``tvm-mask``, ``tvm-gated``: our compiled dense backbone, mask
  form and gated form, with the tuning records of ``--db`` (or the shipped ones).

All eager systems run under ``torch.inference_mode``. Warm-up runs every batch
once through every system (``torch.compile`` compiles for what it sees there).
An operating point is a gate threshold shift (:mod:`~lcnet_tvm.calibrate`);
several points sweep latency against executed FLOPs.
"""

from __future__ import annotations

import copy
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import tvm
from tqdm import tqdm

from .calibrate import CALIBRATION_INPUTS, calibrate_gates, calibration_inputs
from .checkpoint import LoadedModel
from .compiler import compile_model
from .demo import dataset_for
from .eager_skip import SkippingResNet
from .errors import LcnetError
from .files import write_atomically
from .flops import FlopsCounter
from .gate_forms import DEFAULT_CHANNEL_BUCKETS
from .gates import WithGateScores, without_gates
from .profiling import profile_calls
from .runtime import CompiledModel
from .shipped_tuning import target_and_records
from .systems import EAGER_SYSTEMS, SYSTEMS, TVM_FORMS
from .timing import measure_interleaved, timed_rounds

logger = logging.getLogger(__name__)

#: Distinct batches of held-out samples the timed systems cycle through.
BENCH_BATCHES = 16
#: Rounds of the pre-run that picks which eager LC-Net torch.compile gets.
PICK_ROUNDS = 8

@dataclass
class BenchOptions:
    target_name: str | None = None
    #: Tuning records; None: the shipped ones for the model's architecture.
    database_dir: str | None = None
    iterations: int = 100
    batch: int = 1
    #: Operating points as fractions of dense FLOPs; None: the model's own gates, unshifted.
    flops_fractions: Sequence[float | None] = (None,)
    channel_buckets: int = DEFAULT_CHANNEL_BUCKETS
    systems: Sequence[str] = SYSTEMS
    profile: bool = False
    show_progress: bool = True

    def validate(self) -> None:
        if self.iterations < 1:
            raise LcnetError(f"iterations must be at least 1, got {self.iterations}")
        if self.batch < 1:
            raise LcnetError(f"batch must be at least 1, got {self.batch}")
        unknown = [name for name in self.systems if name not in SYSTEMS]
        if unknown or not self.systems:
            raise LcnetError(f"unknown systems {unknown or '(none given)'}; choose from {', '.join(SYSTEMS)}")
        if self.profile and "tvm-gated" not in self.systems:
            raise LcnetError("--profile breaks down tvm-gated: include it in the systems")


def run_bench(loaded: LoadedModel, options: BenchOptions) -> dict:
    """Measure ``options.systems`` on ``loaded`` at each operating point; the report follows the JSON schema."""
    options.validate()
    target_name, database_dir = options.target_name, options.database_dir
    if database_dir is None:
        shipped_target, database_dir = target_and_records(loaded.name)
        target_name = target_name or shipped_target
    target_name = target_name or "x86"
    if database_dir is None and any(name in TVM_FORMS for name in options.systems):
        raise LcnetError(
            f"no tuning records for {loaded.name} run on this machine: tune with "
            f"`lcnet-tvm tune --model {loaded.name} --gates G --db DIR` for each TVM system's gate form "
            "and pass --db DIR (untuned TVM code is no baseline anyone would use)"
        )
    shape = loaded.config.input_shape
    data = dataset_for(loaded).x_test
    needed = BENCH_BATCHES * options.batch + CALIBRATION_INPUTS
    if len(data) < needed:
        raise LcnetError(f"the benchmark needs {needed} held-out samples, the data set has {len(data)}")
    batches = [data[i * options.batch : (i + 1) * options.batch].contiguous() for i in range(BENCH_BATCHES)]
    calibration = calibration_inputs(data)
    counter = FlopsCounter.from_model(loaded.model, shape)
    compiled_systems = [name for name in options.systems if name in TVM_FORMS]
    bench = _Bench(loaded, options, target_name, database_dir, batches, counter)
    try:
        points = [bench.measure_point(fraction, calibration) for fraction in options.flops_fractions]
    finally:
        bench.close()
    first = points[0]
    return {
        "model": loaded.name,
        "source": loaded.source,
        "target": target_name,
        "batch": options.batch,
        "input_shape": [options.batch, *shape],
        # What TVM's CPU pool of this thread, which ran the TVM systems, used (see lcnet_tvm/__init__.py).
        "threads": {"torch": torch.get_num_threads(), "tvm": tvm.runtime.num_threads() if compiled_systems else None},
        "tuning_database": database_dir,
        "tuning_trials": first["tuning_trials"],
        "dense_gflops": counter.dense_flops / 1e9,
        "flops_per": "sample",
        "systems": first["systems"],
        "speedup_vs_best_eager": first["speedup_vs_best_eager"],
        "realization_ratio": first["realization_ratio"],
        "points": points,
    }


class _Bench:
    """What stays the same across operating points: the dense systems, the batches, the progress bar."""

    def __init__(self, loaded, options, target_name, database_dir, batches, counter):
        self.loaded = loaded
        self.options = options
        self.target_name = target_name
        self.database_dir = database_dir
        self.batches = batches
        self.counter = counter
        self.dense_model = without_gates(loaded.model).eval()
        self.compiled_dense: CompiledModel | None = None
        rounds = BENCH_BATCHES + timed_rounds(options.iterations)
        self.bar = tqdm(
            total=len(options.flops_fractions) * rounds, unit="round", desc="bench", disable=not options.show_progress
        )
        self.cursor = 0

    def close(self) -> None:
        self.bar.close()

    def batch(self) -> torch.Tensor:
        return self.batches[self.cursor % BENCH_BATCHES]

    def next_round(self) -> None:
        self.cursor += 1
        self.bar.update()

    def step(self, what: str) -> None:
        self.bar.set_postfix_str(what)

    def compile(self, model: torch.nn.Module, system: str) -> CompiledModel:
        self.step(f"compiling {system}")
        return compile_model(
            model, self.loaded.name, self.loaded.config.input_shape, self.target_name, self.options.batch,
            gate_form=TVM_FORMS[system], channel_buckets=self.options.channel_buckets, database_dir=self.database_dir,
        )

    def measure_point(self, flops_fraction: float | None, calibration: torch.Tensor) -> dict:
        selected = self.options.systems
        model = copy.deepcopy(self.loaded.model).eval()
        shift = None
        if flops_fraction is not None:
            self.step(f"calibrating gates to {flops_fraction} of dense FLOPs")
            shift = calibrate_gates(model, calibration, flops_fraction, self.counter)
        runs: dict[str, Callable[[], object]] = {}
        flops: dict[str, float] = {}
        extra: dict[str, dict] = defaultdict(dict)
        dense = self.counter.dense_flops
        masked = dense + self.counter.gate_network_flops
        eager = {
            "eager-dense": (self.dense_model, dense),
            "eager-mask": (WithGateScores(model).eval(), masked),
            "eager-skip": (SkippingResNet(model, record=False), self._skip_flops(model)),
        }
        for name, (module, executed) in eager.items():
            if name in selected or "torch-compile" in selected and name != "eager-dense":
                runs[name] = self._eager_call(module)
                flops[name] = executed
        if "torch-compile" in selected:
            source = self._faster(runs, ("eager-mask", "eager-skip"))
            runs["torch-compile"], extra["torch-compile"] = self._torch_compile(eager[source][0])
            extra["torch-compile"]["compiled_from"] = source
            flops["torch-compile"] = flops[source]
            runs = {name: run for name, run in runs.items() if name in selected}
        compiled: dict[str, CompiledModel] = {}
        for name in TVM_FORMS:
            if name not in selected:
                continue
            if name == "tvm-dense":
                self.compiled_dense = self.compiled_dense or self.compile(model, name)
                compiled[name] = self.compiled_dense
            else:
                compiled[name] = self.compile(model, name)
            system = compiled[name]
            runs[name] = lambda system=system: system.run(self.batch().numpy())
            flops[name] = float(np.mean([system.run(b.numpy()).executed_flops.mean() for b in self.batches]))
            extra[name]["tuning"] = system.tuning
        self.step("measuring")
        ordered = {name: runs[name] for name in SYSTEMS if name in runs}
        with torch.inference_mode():
            latency = measure_interleaved(ordered, self.options.iterations, BENCH_BATCHES, self.next_round)
        systems = {
            name: {**latency[name], "executed_gflops": flops[name] / 1e9, **extra.get(name, {})} for name in ordered
        }
        point = {
            "flops_fraction": flops_fraction,
            "gate_shift": shift,
            "systems": systems,
            "tuning_trials": {name: compiled[name].tuning["trials"] for name in compiled},
            "speedup_vs_best_eager": _speedup(systems),
            "realization_ratio": _realization(systems, dense / 1e9),
        }
        if self.options.profile:
            self.step("profiling tvm-gated")
            batches = [batch.numpy() for batch in self.batches]
            point["profile"] = profile_calls(compiled["tvm-gated"], batches, self.options.iterations)
        return point

    def _eager_call(self, module: torch.nn.Module) -> Callable[[], object]:
        return lambda: module(self.batch())

    @torch.inference_mode()
    def _skip_flops(self, model: torch.nn.Module) -> float:
        """Mean per-sample FLOPs eager-skip executes: counted from what a recording instance ran."""
        recording = SkippingResNet(model)
        executed = []
        for batch in self.batches:
            recording(batch)
            executed.append(self.counter.executed_flops(recording.computed_keeps()))
        return float(torch.cat(executed).mean())

    def _faster(self, runs: dict[str, Callable[[], object]], names: tuple[str, ...]) -> str:
        self.step("picking the faster eager LC-Net for torch.compile")
        with torch.inference_mode():
            latency = measure_interleaved({name: runs[name] for name in names}, PICK_ROUNDS, warmup=2)
        return min(names, key=lambda name: latency[name]["median_ms"])

    def _torch_compile(self, module: torch.nn.Module) -> tuple[Callable[[], object], dict]:
        """``torch.compile`` of ``module`` and what Dynamo made of it (graphs, breaks and why)."""
        self.step("torch.compile: counting graph breaks")
        torch._dynamo.reset()
        with torch.inference_mode():
            explained = torch._dynamo.explain(module)(self.batches[0])
        torch._dynamo.reset()
        reasons = sorted({str(reason.reason).splitlines()[0] for reason in explained.break_reasons})
        self.step("torch.compile: compiling (first calls)")
        compiled = torch.compile(module)
        return self._eager_call(compiled), {
            "graphs": explained.graph_count,
            "graph_breaks": explained.graph_break_count,
            "break_reasons": reasons,
        }


def _speedup(systems: dict[str, dict]) -> float | None:
    """Best eager median / tvm-gated median."""
    eager = [systems[name]["median_ms"] for name in EAGER_SYSTEMS if name in systems]
    if "tvm-gated" not in systems or not eager:
        return None
    return min(eager) / systems["tvm-gated"]["median_ms"]


def _realization(systems: dict[str, dict], dense_gflops: float) -> float | None:
    """(tvm-dense latency / tvm-gated latency) / (dense FLOPs / tvm-gated executed FLOPs): 1.0 when saved FLOPs are saved time."""
    if "tvm-dense" not in systems or "tvm-gated" not in systems:
        return None
    gated = systems["tvm-gated"]
    time_saved = systems["tvm-dense"]["median_ms"] / gated["median_ms"]
    return time_saved / (dense_gflops / gated["executed_gflops"])


def format_bench(report: dict) -> str:
    threads = report["threads"]
    lines = [
        f"model   {report['model']} ({report['source']}), input {report['input_shape']}, target {report['target']}, "
        f"threads: torch {threads['torch']}, TVM {threads['tvm']}",
        f"dense   {report['dense_gflops'] * 1e3:.2f} MFLOPs per sample; tuning records {report['tuning_database']}",
    ]
    for point in report["points"]:
        lines.extend(_format_point(point, report["dense_gflops"]))
    return "\n".join(lines)


def _format_point(point: dict, dense_gflops: float) -> list[str]:
    shift = "none (the model's own gates)" if point["gate_shift"] is None else f"{point['gate_shift']:+.3f}"
    iterations = next(iter(point["systems"].values()))["iterations"]
    lines = [
        "",
        f"operating point: gate shift {shift}"
        + (f", calibrated to {point['flops_fraction']} of dense FLOPs" if point["flops_fraction"] else ""),
        f"  {'system':<14} {'median ms':>10} {'p90 ms':>8} {'p99 ms':>8} {'MFLOPs/sample':>14} {'of dense':>8}  "
        f"({iterations} timed calls each, systems taking turns)",
    ]
    for name, row in point["systems"].items():
        note = ""
        if "tuning" in row:
            tuning = row["tuning"]
            note = f"{tuning['tuned']}/{tuning['kernels']} kernels tuned, {tuning['trials']} trials"
        if "graph_breaks" in row:
            note = f"of {row['compiled_from']}: {row['graphs']} graphs, {row['graph_breaks']} graph breaks"
        lines.append(
            f"  {name:<14} {row['median_ms']:>10.3f} {row['p90_ms']:>8.3f} {row['p99_ms']:>8.3f} "
            f"{row['executed_gflops'] * 1e3:>14.2f} {row['executed_gflops'] / dense_gflops:>8.3f}  {note}"
        )
    if point["speedup_vs_best_eager"] is not None:
        eager = {name: row["median_ms"] for name, row in point["systems"].items() if name in EAGER_SYSTEMS}
        best = min(eager, key=eager.get)
        speedup = point["speedup_vs_best_eager"]
        verdict = f"{speedup:.2f}x faster" if speedup >= 1 else f"{1 / speedup:.2f}x slower"
        lines.append(f"  tvm-gated vs the best eager system ({best}): {verdict}")
    if point["realization_ratio"] is not None:
        lines.append(f"  realization ratio (saved time / saved FLOPs, tvm-gated vs tvm-dense): {point['realization_ratio']:.2f}")
    if "profile" in point:
        lines.extend(_format_profile(point["profile"]))
    return lines


def _format_profile(profile: dict) -> list[str]:
    lines = [
        f"  tvm-gated profile: {profile['plain_ms']:.3f} ms per inference through the VM alone, "
        f"{profile['vm_calls']:.0f} VM calls (Relax VM call instrument, {profile['rounds']} inferences; "
        f"estimates less its mean cost of {profile['instrument_overhead_us_per_call']:.1f} us per call)",
    ]
    lines += [
        f"    {category:<42} {row['ms']:8.3f} ms {row['calls']:8.1f} calls"
        for category, row in profile["categories"].items()
    ]
    lines.append("    slowest calls:")
    lines += [f"      {kernel['name']:<40} {kernel['ms']:8.3f} ms {kernel['calls']:8.1f} calls" for kernel in profile["kernels"][:8]]
    return lines


def plot_bench(report: dict, path: str) -> None:
    """Latency against executed FLOPs, one line per system over the operating points."""
    import matplotlib  # noqa: PLC0415 (only the --plot path needs it)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name in SYSTEMS:
        rows = [point["systems"][name] for point in report["points"] if name in point["systems"]]
        if rows:
            axes.plot(
                [row["executed_gflops"] * 1e3 for row in rows], [row["median_ms"] for row in rows],
                marker="o", linestyle="--" if name in EAGER_SYSTEMS else "-", label=name,
            )
    axes.set_xlabel("executed MFLOPs per sample")
    axes.set_ylabel(f"median latency per batch of {report['batch']} (ms)")
    trials = ", ".join(f"{name} {count}" for name, count in report["tuning_trials"].items())
    axes.set_title(f"{report['model']} on {report['target']}, batch {report['batch']}\ntuning trials: {trials}", fontsize=9)
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    write_atomically(path, lambda stream: figure.savefig(stream, format="png", dpi=120))
    plt.close(figure)
