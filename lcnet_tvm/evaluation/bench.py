"""``lcnet-tvm bench``: compiled vs eager vs peer-runtime latency, measured side by side in one run.

Systems (:mod:`lcnet_tvm.evaluation.systems`):

* ``eager-dense``: the PyTorch backbone without gates;
* ``eager-mask``: the LC-Net in mask form, as research code runs it;
* ``eager-skip``: :class:`~lcnet_tvm.evaluation.eager_skip.SkippingResNet`, real skipping and gathering;
* ``torch-compile``: ``torch.compile`` of the mask form and of eager-skip, each in a
  worker of its own and warmed on every batch, the faster of the two compiled kept
  (picked by a short pre-run); its graph breaks are reported;
* ``tvm-dense``, ``tvm-mask``, ``tvm-gated``: our compiled dense backbone, mask
  form and gated form, with the tuning records of ``--db`` (or the shipped ones);
* ``ort-dense``, ``ort-mask``, ``openvino-dense``, ``openvino-mask``: ONNX exports
  of the dense backbone and of the mask form in ONNX Runtime and OpenVINO
  (:mod:`lcnet_tvm.evaluation.peers`), the strongest ways a user could run the model without us.

Every system runs in a worker process of its own (:mod:`lcnet_tvm.evaluation.isolation`), its
logits checked against eager on every benchmark batch before it is timed; the
processes take turns within each round (:func:`~lcnet_tvm.evaluation.timing.measure_interleaved`),
so machine drift hits all alike, and every round feeds all systems the same
batch, cycling through :data:`BENCH_BATCHES` batches of held-out samples. Eager
systems run under ``torch.inference_mode``. Warm-up runs every batch once through
every system (``torch.compile`` compiles for what it sees there). An operating
point is a gate threshold shift (:mod:`~lcnet_tvm.evaluation.calibrate`); several points
sweep latency against executed FLOPs.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tvm
from tqdm import tqdm

from lcnet_tvm.compiler.driver import compile_model
from lcnet_tvm.compiler.gate_forms import DEFAULT_CHANNEL_BUCKETS
from lcnet_tvm.compiler.options import CompileOptions
from lcnet_tvm.errors import LcnetError
from lcnet_tvm.evaluation.calibrate import CALIBRATION_INPUTS, calibrate_gates, calibration_inputs, check_flops_fraction
from lcnet_tvm.evaluation.eager_skip import SkippingResNet
from lcnet_tvm.evaluation.isolation import IsolatedSystem, Runner
from lcnet_tvm.evaluation.peers import PeerRunner, export_onnx, unavailable
from lcnet_tvm.evaluation.systems import (
    DENSE_PEERS,
    DENSE_SYSTEMS,
    EAGER_SYSTEMS,
    NON_TVM_SYSTEMS,
    PEER_FORMS,
    SYSTEMS,
    TVM_FORMS,
)
from lcnet_tvm.evaluation.timing import TIMED_CALLS, measure_interleaved, timed_rounds
from lcnet_tvm.evaluation.verify import EagerReference, eager_reference, scaled_error
from lcnet_tvm.model.checkpoint import LoadedModel, dataset_for
from lcnet_tvm.model.flops import FlopsCounter
from lcnet_tvm.model.gates import WithGateScores, without_gates
from lcnet_tvm.runtime.compiled_model import CompiledModel
from lcnet_tvm.runtime.instrument import profile_kernels
from lcnet_tvm.schedules.shipped import records_for, shipped_records
from lcnet_tvm.support.files import write_atomically
from lcnet_tvm.targets import DEFAULT_TARGET

logger = logging.getLogger(__name__)

#: Distinct batches of held-out samples the timed systems cycle through.
BENCH_BATCHES = 16
#: Timed rounds of the pre-run that picks which compiled LC-Net form is torch-compile.
PICK_ROUNDS = 8
#: The forms torch.compile is tried on: the mask form captures as one graph; eager-skip breaks at
#: each data-dependent branch and recompiles per kept-row count, so which is faster depends on the model.
COMPILE_CANDIDATES = ("eager-mask", "eager-skip")


@dataclass
class BenchOptions:
    #: Target name; None: the shipped records' target (or the default target where none run here).
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
    #: The TVM systems run ``main`` as a host program (CompileOptions.host_program; None: where the target can).
    host_program: bool | None = None
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
        for fraction in self.flops_fractions:  # before any point is measured, not after the first ones
            if fraction is not None:
                check_flops_fraction(fraction)
        self.compile_options(self.target_name or DEFAULT_TARGET, None)  # raises on a bad target or bucket count

    def compile_options(self, target: str, database: str | None) -> CompileOptions:
        """How the TVM systems are compiled (each with its own gate form)."""
        return CompileOptions(
            target, batch_size=self.batch, channel_buckets=self.channel_buckets, database=database,
            host_program=self.host_program,
        )

    def resolved(self, architecture: str) -> CompileOptions:
        """:meth:`compile_options` with the records of ``--db``, or else the shipped ones for ``architecture``."""
        target, database = self.target_name, self.database_dir
        if database is None and (shipped := records_for(architecture, target)) is not None:
            target, database = shipped[0], str(shipped[1])
        return self.compile_options(target or DEFAULT_TARGET, database)


def run_bench(loaded: LoadedModel, options: BenchOptions) -> dict:
    """Measure ``options.systems`` on ``loaded`` at each operating point; the report follows the JSON schema."""
    options.validate()
    compile_options = options.resolved(loaded.name)
    if compile_options.database is None and any(name in TVM_FORMS for name in options.systems):
        target = compile_options.target.name
        shipped = shipped_records(loaded.name)
        instead = f"the shipped ones are for --target {shipped[0]}: use that, or tune with" if shipped else "tune with"
        raise LcnetError(
            f"no tuning records for {loaded.name} on target {target} run on this machine; {instead} "
            f"`lcnet-tvm tune --model {loaded.name} --target {target} --gates G --db DIR` for each TVM system's "
            "gate form and pass --db DIR (untuned TVM code is no baseline anyone would use)"
        )
    left_out = _left_out_peers(options.systems, compile_options.target.device_type)
    if len(left_out) == len(options.systems):
        raise LcnetError(f"nothing left to measure: {'; '.join(f'{name}: {why}' for name, why in left_out.items())}")
    shape = loaded.config.input_shape
    data = dataset_for(loaded).x_test
    needed = BENCH_BATCHES * options.batch + CALIBRATION_INPUTS
    if len(data) < needed:
        raise LcnetError(f"the benchmark needs {needed} held-out samples, the data set has {len(data)}")
    batches = [data[i * options.batch : (i + 1) * options.batch].contiguous() for i in range(BENCH_BATCHES)]
    calibration = calibration_inputs(data)
    counter = FlopsCounter.from_model(loaded.model, shape)
    points, failed = [], []
    with _Bench(loaded, options, compile_options, batches, counter, left_out) as bench:
        for fraction in options.flops_fractions:
            try:
                points.append(bench.measure_point(fraction, calibration))
            except LcnetError as error:  # the other points still count
                logger.error("operating point %s failed: %s", _point_name(fraction), error)
                failed.append({"flops_fraction": fraction, "error": str(error)})
        runtimes = bench.runtimes
    if not points:
        raise LcnetError("; ".join(f"at {_point_name(point['flops_fraction'])}: {point['error']}" for point in failed))
    first = points[0]
    return {
        "model": loaded.name,
        "source": loaded.source,
        "target": compile_options.target.name,
        "batch": options.batch,
        "input_shape": [options.batch, *shape],
        # Threads each runtime's pool used, as the worker processes that ran them report it.
        "threads": {"torch": torch.get_num_threads(), **{runtime: info["threads"] for runtime, info in runtimes.items()}},
        "runtimes": runtimes,
        "left_out": left_out,
        "tuning_database": str(compile_options.database) if compile_options.database else None,
        "tuning_trials": first["tuning_trials"],
        "dense_gflops": counter.dense_flops / 1e9,
        "flops_per": "sample",
        "systems": first["systems"],
        "rejected": first["rejected"],
        **{key: first[key] for key in RATIOS},
        "points": points,
        #: Operating points that could not be measured, each with why; the command reports them as an error.
        "failed_points": failed,
    }


def _left_out_peers(systems: Sequence[str], device_type: str) -> dict[str, str]:
    """Peer systems whose runtime cannot run here, with why (each said once in the log)."""
    left_out = {}
    for runtime in dict.fromkeys(runtime for name, (runtime, _) in PEER_FORMS.items() if name in systems):
        reason = unavailable(runtime, device_type)
        if reason is not None:
            names = [name for name, (owner, _) in PEER_FORMS.items() if owner == runtime and name in systems]
            logger.warning("left out %s: %s", ", ".join(names), reason)
            left_out.update(dict.fromkeys(names, reason))
    return left_out


@dataclass(frozen=True)
class EagerRunner:
    """A PyTorch module run eagerly (or ``torch.compile``'d, compiling on its first calls) in a worker process."""

    module: torch.nn.Module
    threads: int
    compile: bool = False

    def build(self) -> tuple[Callable[[np.ndarray], np.ndarray], dict]:
        torch.set_num_threads(self.threads)
        module = torch.compile(self.module) if self.compile else self.module

        def run(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                output = module(torch.from_numpy(batch))
            return (output[0] if isinstance(output, tuple) else output).numpy()

        return run, {"threads": torch.get_num_threads(), "version": torch.__version__}


@dataclass(frozen=True)
class CompiledRunner:
    """One of our compiled artifacts, loaded in a worker process."""

    artifact: str

    def build(self) -> tuple[Callable[[np.ndarray], np.ndarray], dict]:
        compiled = CompiledModel.load(self.artifact)
        return (lambda batch: compiled.run(batch).logits), {"threads": tvm.runtime.num_threads(), "version": tvm.__version__}


def _runtime_of(system: str) -> str:
    """The runtime whose threads and version ``system``'s worker reports."""
    if system in PEER_FORMS:
        return PEER_FORMS[system][0]
    return "tvm" if system in TVM_FORMS else "torch"


class _Bench(contextlib.AbstractContextManager):
    """What stays the same across operating points: the dense systems and exports, the batches, the progress bar."""

    def __init__(self, loaded, options, compile_options, batches, counter, left_out):
        self.loaded = loaded
        self.options = options
        self.compile_options = compile_options
        self.device_type = compile_options.target.device_type
        self.batches = [batch.numpy() for batch in batches]
        self.counter = counter
        self.left_out = left_out
        self.threads = torch.get_num_threads()
        self.dense_model = without_gates(loaded.model).eval()
        self.dense_reference = eager_reference(self.dense_model, self.batches)
        self.dense_artifact: str | None = None
        self.dense_onnx: Path | None = None
        self.runtimes: dict[str, dict] = {}
        self.workdir = Path(tempfile.mkdtemp(prefix="lcnet-bench-"))
        rounds = BENCH_BATCHES + timed_rounds(options.iterations)
        self.bar = tqdm(
            total=len(options.flops_fractions) * rounds, unit="round", desc="bench", disable=not options.show_progress
        )
        self.cursor = 0

    def __exit__(self, *_exc) -> None:
        self.bar.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def next_batch(self) -> None:
        self.cursor += 1

    def next_round(self) -> None:
        self.next_batch()
        self.bar.update()

    def step(self, what: str) -> None:
        self.bar.set_postfix_str(what)

    def compiled_artifact(self, model: torch.nn.Module, system: str, directory: Path) -> str:
        """``system`` compiled and saved in ``directory``: the artifact's path.

        The bench runs the saved library only (loaded back, here and in the worker): running the in-memory
        build would have LLVM compile every kernel a second time, in its JIT (about 9 s for LC-ResNet-20).
        """
        self.step(f"compiling {system}")
        # --profile times tvm-gated's kernels in place, through the host program's timed twin.
        timed = self.options.profile and system == "tvm-gated"
        options = self.compile_options.replace(gate_form=TVM_FORMS[system], timed=timed)
        path = directory / system
        compile_model(model, self.loaded.config.input_shape, options, name=self.loaded.name).save(path)
        return str(path)

    def onnx(self, model: torch.nn.Module, form: str, directory: Path) -> Path:
        """An ONNX export of the dense backbone (made once) or of ``model`` in mask form."""
        example = torch.from_numpy(self.batches[0])
        if form == "dense":
            if self.dense_onnx is None:
                self.step("exporting the dense backbone to ONNX")
                self.dense_onnx = export_onnx(self.dense_model, example, self.workdir / "dense.onnx")
            return self.dense_onnx
        self.step("exporting the mask form to ONNX")
        return export_onnx(model, example, directory / "mask.onnx")

    def measure_point(self, flops_fraction: float | None, calibration: torch.Tensor) -> dict:
        selected = [name for name in self.options.systems if name not in self.left_out]
        model = copy.deepcopy(self.loaded.model).eval()
        shift = None
        if flops_fraction is not None:
            self.step(f"calibrating gates to {flops_fraction} of dense FLOPs")
            shift = calibrate_gates(model, calibration, flops_fraction, self.counter)
        directory = Path(tempfile.mkdtemp(prefix="point-", dir=self.workdir))
        runners: dict[str, Runner] = {}
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
            flops[name] = executed
            if name in selected:
                runners[name] = EagerRunner(module, self.threads)
        compiled: dict[str, CompiledModel] = {}
        for name in TVM_FORMS:
            if name not in selected:
                continue
            if name == "tvm-dense":
                self.dense_artifact = self.dense_artifact or self.compiled_artifact(model, name, self.workdir)
                artifact = self.dense_artifact
            else:
                artifact = self.compiled_artifact(model, name, directory)
            compiled[name] = system = CompiledModel.load(artifact)
            runners[name] = CompiledRunner(artifact)
            flops[name] = float(np.mean([system.run(batch).executed_flops.mean() for batch in self.batches]))
            extra[name]["tuning"] = system.tuning.to_json()
        for name, (runtime, form) in PEER_FORMS.items():
            if name in selected:
                path = self.onnx(model, form, directory)
                runners[name] = PeerRunner(runtime, str(path), self.threads, self.device_type)
                flops[name] = dense if form == "dense" else masked
        references = {"dense": self.dense_reference, "mask": eager_reference(model, self.batches)}
        with contextlib.ExitStack() as workers:
            self.step("starting a worker process per system")
            isolated = {name: self._isolated(workers, name, runner) for name, runner in runners.items()}
            if "torch-compile" in selected:
                source, isolated["torch-compile"] = self._fastest_compiled(workers, eager)
                extra["torch-compile"] = {**self._graph_breaks(eager[source][0]), "compiled_from": source}
                flops["torch-compile"] = flops[source]
            ordered, rejected = {}, {}
            for name in (name for name in SYSTEMS if name in selected):
                self.step(f"checking {name}'s logits against eager")
                system = isolated[name]
                form = "dense" if name in DENSE_SYSTEMS else "mask"
                try:
                    extra[name]["logits_max_scaled_error"] = check_logits(name, system.outputs(), references[form])
                except LcnetError as error:  # an error, not a result: the others are still timed
                    logger.error("%s", error)
                    rejected[name] = str(error)
                    system.close()
                    continue
                extra[name]["logits_tolerance"] = references[form].tolerance
                self.runtimes.setdefault(_runtime_of(name), system.ready())
                ordered[name] = system
            if not ordered:
                raise LcnetError("; ".join(rejected.values()))
            self.step("measuring")
            turns = {name: (lambda settle, timed, system=system: system.turn(self.cursor, settle, timed))
                     for name, system in ordered.items()}
            latency = measure_interleaved(turns, self.options.iterations, BENCH_BATCHES, self.next_round)
        systems = {
            name: {**latency[name], "executed_gflops": flops[name] / 1e9, **extra.get(name, {})} for name in ordered
        }
        point = {
            "flops_fraction": flops_fraction,
            "gate_shift": shift,
            "systems": systems,
            "tuning_trials": {name: compiled[name].tuning.trials for name in compiled},
            **_ratios(systems, dense / 1e9),
            #: Systems whose logits were not eager's, with why; not timed, and the command reports them as an error.
            "rejected": rejected,
        }
        if self.options.profile and "tvm-gated" in systems:
            self.step("profiling tvm-gated")
            point["profile"] = profile_kernels(compiled["tvm-gated"], self.batches, self.options.iterations)
        return point

    def _isolated(self, workers: contextlib.ExitStack, name: str, runner: Runner) -> IsolatedSystem:
        return workers.enter_context(contextlib.closing(IsolatedSystem(name, runner, self.batches)))

    @torch.inference_mode()
    def _skip_flops(self, model: torch.nn.Module) -> float:
        """Mean per-sample FLOPs eager-skip executes: counted from what a recording instance ran."""
        recording = SkippingResNet(model)
        executed = []
        for batch in self.batches:
            recording(torch.from_numpy(batch))
            executed.append(self.counter.executed_flops(recording.computed_keeps()))
        return float(torch.cat(executed).mean())

    def _fastest_compiled(
        self, workers: contextlib.ExitStack, eager: dict[str, tuple[torch.nn.Module, float]]
    ) -> tuple[str, IsolatedSystem]:
        """``torch.compile`` of each of :data:`COMPILE_CANDIDATES` in a worker, warmed on every batch (it
        compiles for what it sees) and timed in turns; the faster one's form and worker (the other closed)."""
        self.step("torch.compile: compiling the mask and skipping forms, keeping the faster")
        candidates = {
            name: self._isolated(workers, "torch-compile", EagerRunner(eager[name][0], self.threads, compile=True))
            for name in COMPILE_CANDIDATES
        }
        turns = {
            name: (lambda settle, timed, system=system: system.turn(self.cursor, settle, timed))
            for name, system in candidates.items()
        }
        latency = measure_interleaved(turns, PICK_ROUNDS * TIMED_CALLS, BENCH_BATCHES, self.next_batch)
        fastest = min(COMPILE_CANDIDATES, key=lambda name: latency[name]["median_ms"])
        for name, system in candidates.items():
            if name != fastest:
                system.close()
        return fastest, candidates[fastest]

    def _graph_breaks(self, module: torch.nn.Module) -> dict:
        """What Dynamo makes of ``module``: graphs, breaks and why."""
        self.step("torch.compile: counting graph breaks")
        torch._dynamo.reset()
        with torch.inference_mode():
            explained = torch._dynamo.explain(module)(torch.from_numpy(self.batches[0]))
        torch._dynamo.reset()
        reasons = sorted({str(reason.reason).splitlines()[0] for reason in explained.break_reasons})
        return {"graphs": explained.graph_count, "graph_breaks": explained.graph_break_count, "break_reasons": reasons}


def check_logits(name: str, outputs: list[np.ndarray], reference: EagerReference) -> float:
    """The largest scaled logit error of ``outputs`` against eager; a system that computes something else is an error."""
    error = max(scaled_error(output, logits) for output, logits in zip(outputs, reference.logits))
    if not error <= reference.tolerance:
        raise LcnetError(
            f"{name} computes something else than eager PyTorch: its logits differ by {error:.3g} "
            f"(scaled, max over {len(outputs)} batches; at most {reference.tolerance:.3g} expected, "
            f"eager's own float32 rounding being {reference.rounding:.3g}), so it is not timed"
        )
    return error


#: Ratios each operating point reports (see :func:`_ratios`).
RATIOS = (
    "speedup_vs_best_eager", "speedup_vs_best_peer", "realization_ratio", "peer_realization_ratio",
    "tvm_dense_vs_best_dense_peer",
)


def _fastest(systems: dict[str, dict], names: Sequence[str]) -> tuple[str, float] | None:
    """The fastest of ``names`` that was measured, and its median latency."""
    measured = [(name, systems[name]["median_ms"]) for name in names if name in systems]
    return min(measured, key=lambda pair: pair[1]) if measured else None


def _ratios(systems: dict[str, dict], dense_gflops: float) -> dict[str, float | None]:
    """``speedup_vs_*``: the fastest such system's latency / tvm-gated's (eager systems; every system
    without TVM, any form). ``realization_ratio``: (tvm-dense / tvm-gated latency) * (executed /
    dense FLOPs); ``peer_realization_ratio``: the same with the fastest dense peer in tvm-dense's
    place; both 1.0 when tvm-gated is exactly as much faster as it skips FLOPs.
    ``tvm_dense_vs_best_dense_peer``: the fastest dense peer's latency / tvm-dense's (kernel quality)."""
    gated = systems.get("tvm-gated")
    tvm_dense = systems.get("tvm-dense")
    best_eager = _fastest(systems, EAGER_SYSTEMS)
    best_other = _fastest(systems, NON_TVM_SYSTEMS)
    best_dense_peer = _fastest(systems, DENSE_PEERS)
    flops_kept = gated["executed_gflops"] / dense_gflops if gated else None
    return {
        "speedup_vs_best_eager": best_eager[1] / gated["median_ms"] if gated and best_eager else None,
        "speedup_vs_best_peer": best_other[1] / gated["median_ms"] if gated and best_other else None,
        "realization_ratio": tvm_dense["median_ms"] / gated["median_ms"] * flops_kept if gated and tvm_dense else None,
        "peer_realization_ratio": best_dense_peer[1] / gated["median_ms"] * flops_kept if gated and best_dense_peer else None,
        "tvm_dense_vs_best_dense_peer": best_dense_peer[1] / tvm_dense["median_ms"] if tvm_dense and best_dense_peer else None,
    }


def format_bench(report: dict) -> str:
    threads = ", ".join(f"{runtime} {count}" for runtime, count in report["threads"].items())
    lines = [
        f"model   {report['model']} ({report['source']}), input {report['input_shape']}, target {report['target']}, "
        f"threads: {threads}",
        f"dense   {report['dense_gflops'] * 1e3:.2f} MFLOPs per sample; tuning records {report['tuning_database']}",
    ]
    lines += [f"left out {name}: {reason}" for name, reason in report["left_out"].items()]
    for point in report["points"]:
        lines.extend(_format_point(point, report["dense_gflops"], report["runtimes"]))
    lines += [f"FAILED at {_point_name(point['flops_fraction'])}: {point['error']}" for point in report["failed_points"]]
    return "\n".join(lines)


def _point_name(fraction: float | None) -> str:
    return "the model's own gates" if fraction is None else f"{fraction} of dense FLOPs"


def _system_note(name: str, row: dict, runtimes: dict[str, dict]) -> str:
    if "tuning" in row:
        tuning = row["tuning"]
        return f"{tuning['tuned']}/{tuning['kernels']} kernels tuned, {tuning['trials']} trials"
    if "graph_breaks" in row:
        return f"of {row['compiled_from']}: {row['graphs']} graphs, {row['graph_breaks']} graph breaks"
    if name in PEER_FORMS:
        runtime = PEER_FORMS[name][0]
        return f"{runtime} {runtimes[runtime]['version']}, ONNX export"
    return ""


#: The summary lines under each operating point's table: ratio key -> what it compares, over which systems.
_RATIO_LINES = {
    "speedup_vs_best_eager": ("tvm-gated vs the best eager system", EAGER_SYSTEMS),
    "speedup_vs_best_peer": ("tvm-gated vs the fastest system without TVM", NON_TVM_SYSTEMS),
}


def _format_point(point: dict, dense_gflops: float, runtimes: dict[str, dict]) -> list[str]:
    shift = "none (the model's own gates)" if point["gate_shift"] is None else f"{point['gate_shift']:+.3f}"
    first = next(iter(point["systems"].values()))
    lines = [
        "",
        f"operating point: gate shift {shift}"
        + (f", calibrated to {point['flops_fraction']} of dense FLOPs" if point["flops_fraction"] else ""),
        f"  {'system':<14} {'median ms':>10} {'rounds q25-q75':>15} {'p90 ms':>8} {'p99 ms':>8} {'MFLOPs/sample':>14} "
        f"{'of dense':>8}  ({first['iterations']} timed calls each in {first['rounds']} rounds, each system in its "
        "own process, taking turns)",
    ]
    for name, row in point["systems"].items():
        spread = f"{row['round_median_q25_ms']:.3f}-{row['round_median_q75_ms']:.3f}"
        lines.append(
            f"  {name:<14} {row['median_ms']:>10.3f} {spread:>15} {row['p90_ms']:>8.3f} {row['p99_ms']:>8.3f} "
            f"{row['executed_gflops'] * 1e3:>14.2f} {row['executed_gflops'] / dense_gflops:>8.3f}  "
            f"{_system_note(name, row, runtimes)}"
        )
    lines += [f"  {name:<14} NOT TIMED: {why}" for name, why in point["rejected"].items()]
    for key, (what, over) in _RATIO_LINES.items():
        if point[key] is not None:
            best, _ = _fastest(point["systems"], over)
            speedup = point[key]
            verdict = f"{speedup:.2f}x faster" if speedup >= 1 else f"{1 / speedup:.2f}x slower"
            lines.append(f"  {what} ({best}): {verdict}")
    if point["realization_ratio"] is not None:
        lines.append(f"  realization ratio (saved time / saved FLOPs, tvm-gated vs tvm-dense): {point['realization_ratio']:.2f}")
    best_dense_peer = _fastest(point["systems"], DENSE_PEERS)
    if point["peer_realization_ratio"] is not None:
        lines.append(
            f"  peer realization ratio (tvm-gated vs the fastest dense peer, {best_dense_peer[0]}): "
            f"{point['peer_realization_ratio']:.2f}"
        )
    if point["tvm_dense_vs_best_dense_peer"] is not None:
        lines.append(f"  tvm-dense runs at {point['tvm_dense_vs_best_dense_peer']:.2f}x the speed of {best_dense_peer[0]}")
    if "profile" in point:
        lines.extend(_format_profile(point["profile"]))
    return lines


def _format_profile(profile: dict) -> list[str]:
    calls = ", ".join(f"{count:.0f} {kind}" for kind, count in profile["calls_outside_kernels"].items())
    lines = [
        f"  tvm-gated profile: {profile['inference_ms']:.3f} ms per inference ({profile['plain_ms']:.3f} ms "
        f"uninstrumented; {profile['rounds']} inferences), {profile['vm_calls']:.0f} VM calls; {profile['method']}; "
        f"outside kernels {profile['outside_kernels_ms']:.3f} ms ({profile['outside_kernels_fraction']:.0%}; {calls})",
    ]
    lines += [
        f"    {category:<66} {row['ms']:8.3f} ms {row['calls']:8.1f} calls"
        for category, row in profile["categories"].items()
    ]
    lines.append("    slowest kernels:")
    lines += [
        f"      {kernel['name']:<40} {kernel['ms']:8.3f} ms {kernel['calls']:8.1f} calls {kernel['us_per_call']:8.1f} us each"
        for kernel in profile["kernels"][:8]
    ]
    return lines


def _plot_style(system: str) -> dict:
    """Eager systems dashed, ours solid, peers dotted with a marker of their runtime's."""
    if system in PEER_FORMS:
        return {"linestyle": ":", "marker": "s" if PEER_FORMS[system][0] == "onnxruntime" else "D", "markersize": 7}
    return {"linestyle": "--" if system in EAGER_SYSTEMS else "-", "marker": "o"}


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
                label=name, **_plot_style(name),
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
