"""Compile a gated PyTorch model for a target: import it, run the one pipeline, build, record what was built."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass

import tvm
from torch import nn
from tvm import relax

from lcnet_tvm.model.flops import FlopsCounter
from lcnet_tvm.model.gates import without_gates
from lcnet_tvm.passes.executed_work import lowered_gates
from lcnet_tvm.passes.gate_regions import find_gate_regions
from lcnet_tvm.passes.host_program import has_host_program, packed_results, timed_kernels
from lcnet_tvm.passes.pipeline import PhaseOutputs, compile_pipeline
from lcnet_tvm.runtime.artifact import ArtifactMetadata, GateRecord, KernelRecord
from lcnet_tvm.runtime.compiled_model import CompiledModel
from lcnet_tvm.schedules.database import SCHEDULED_ATTR, BestRecords, kernel_module, read_database, workload_key
from lcnet_tvm.support.native_stderr import quiet_native_noise

from .gate_forms import channel_buckets
from .importer import ImportedModel, import_model
from .options import CompileOptions

logger = logging.getLogger(__name__)


def describe_gates(imported: ImportedModel) -> list[GateRecord]:
    """Each gate with what the graph analysis found it controls (not yet lowered)."""
    regions = find_gate_regions(imported.mod["main"])
    return [GateRecord(**gate.to_json(), **region.to_json()) for gate, region in zip(imported.gates, regions)]


def explain_model(model: nn.Module, input_shape: tuple[int, int, int]) -> list[GateRecord]:
    """Gate analysis only, without compiling (``lcnet-tvm compile --explain``)."""
    return describe_gates(import_model(model, (1, *input_shape)))


def model_for_form(model: nn.Module, gate_form: str) -> nn.Module:
    """What a gate form compiles: ``model``, or for the ``dense`` form its backbone without gates."""
    return without_gates(model) if gate_form == "dense" else model


def _import(model: nn.Module, input_shape: tuple[int, int, int], options: CompileOptions) -> ImportedModel:
    return import_model(model_for_form(model, options.gate_form), (options.batch_size, *input_shape))


def lower_to_kernels(model: nn.Module, input_shape: tuple[int, int, int], options: CompileOptions) -> tvm.IRModule:
    """The pipeline up to its kernels phase: every op legalized and fused into unscheduled kernels (tuning's tasks)."""
    imported = _import(model, input_shape, options)
    pipeline = compile_pipeline(imported.params, options, stop_after="kernels")
    with options.tvm_target, quiet_native_noise():
        return pipeline(imported.mod)


@dataclass
class Build:
    """A compiled model and the module as each phase of the pipeline left it."""

    compiled: CompiledModel
    phases: PhaseOutputs


def build(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    options: CompileOptions,
    name: str | None = None,
    source: str | None = None,
) -> Build:
    """:func:`compile_model`, also handing back the phases' modules (tuning takes its tasks from ``phases.kernels``)."""
    name = name or type(model).__name__
    database = read_database(options.database, options.target_config) if options.database else None
    started = time.perf_counter()
    imported = _import(model, input_shape, options)
    gates = describe_gates(imported)
    phases = PhaseOutputs()
    target = options.tvm_target
    pipeline = compile_pipeline(imported.params, options, outputs=phases)
    records = database.database if database is not None else contextlib.nullcontext()
    with target, records, quiet_native_noise():
        executable = relax.build(pipeline(imported.mod), target, relax_pipeline=None)
    lowered = set(lowered_gates(phases.graph["main"]))
    gates = [_as_compiled(gate, index in lowered, options.channel_buckets) for index, gate in enumerate(gates)]
    kernels = _kernel_records(phases, database)
    seconds = time.perf_counter() - started
    untuned = [kernel.name for kernel in kernels if not kernel.tuned]
    if database is not None and untuned:
        logger.warning(
            "%d of %d kernels have no tuning record in %s and run untuned: %s",
            len(untuned), len(kernels), options.database, ", ".join(untuned),
        )
    logger.info("compiled %s for %s in %.1f s (%d kernels)", name, options.target.name, seconds, len(kernels))
    metadata = ArtifactMetadata(
        model=name,
        input_shape=(options.batch_size, *input_shape),
        target_name=options.target.name,
        target=options.target_config,
        gate_form=options.gate_form,
        channel_buckets=options.channel_buckets,
        gates=gates,
        kernels=kernels,
        flops=FlopsCounter.from_model(model_for_form(model, options.gate_form), input_shape).to_json(),
        tuning_database=str(options.database) if options.database else None,
        compile_seconds=round(seconds, 2),
        source=source,
        host_program=has_host_program(phases.finalize),
        timed_kernels=timed_kernels(phases.finalize),
        packed_results=packed_results(phases.finalize),
    )
    return Build(CompiledModel(executable, metadata), phases)


def compile_model(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    options: CompileOptions | None = None,
    *,
    name: str | None = None,
    source: str | None = None,
) -> CompiledModel:
    """Import ``model``, run the compilation pipeline and build it as ``options`` say (default: :class:`CompileOptions`).

    ``input_shape`` is one sample's (C, H, W). Kernels without a record in
    ``options.database`` keep the target's default schedule, with a warning;
    the metadata says which kernels were tuned. ``name`` and ``source`` (where
    the model came from) are recorded in the artifact.
    """
    return build(model, input_shape, options or CompileOptions(), name, source).compiled


def _as_compiled(gate: GateRecord, lowered: bool, buckets: int) -> GateRecord:
    if not lowered:
        return gate
    sizes = tuple(channel_buckets(gate.channels, buckets)) if gate.kind == "channel" else None
    return dataclasses.replace(gate, lowered=True, buckets=sizes)


def _kernel_records(phases: PhaseOutputs, database: BestRecords | None) -> list[KernelRecord]:
    """Per kernel: tuned (a record of ``database`` was applied) and the trials measured for it."""
    kernels = phases.kernels
    names = sorted(gv.name_hint for gv, func in kernels.functions_items() if isinstance(func, tvm.tirx.PrimFunc))
    trials = database.trials if database is not None else {}
    records = []
    for name in names:
        tuned = bool(phases.tuned[name].attrs.get(SCHEDULED_ATTR, False))
        measured = trials.get(workload_key(kernel_module(kernels[name])), 0)
        records.append(KernelRecord(name, tuned, measured if tuned else 0))
    return records
