"""Compile a gated PyTorch model into a :class:`~lcnet_tvm.runtime.CompiledModel` for a target."""

from __future__ import annotations

import contextlib
import logging
import time

import torch
import tvm
from torch import nn
from tvm import relax

from lcnet_tvm.gate_forms import DEFAULT_CHANNEL_BUCKETS, DEFAULT_GATE_FORM, GATE_FORMS
from lcnet_tvm.gate_forms import channel_buckets as gate_buckets
from lcnet_tvm.passes.executed_work import lowered_gates
from lcnet_tvm.passes.find_gates import find_gate_regions
from lcnet_tvm.passes.pipeline import PhaseOutputs, compile_pipeline
from lcnet_tvm.schedules.builder import InProcessBuilder
from lcnet_tvm.schedules.database import SCHEDULED_ATTR, TuningDatabase, kernel_module, workload_key
from lcnet_tvm.schedules.tune import TuneReport, kernel_tasks, spread_budget, tune_kernels
from lcnet_tvm.targets import TargetSpec, get_target
from lcnet_tvm.targets.remote import RemoteDevice

from . import __version__
from .errors import LcnetError
from .flops import FlopsCounter
from .gates import without_gates
from .importer import ImportedModel, import_model
from .native_stderr import quiet_native_noise
from .profiling import count_calls
from .runtime import ARTIFACT_FORMAT, CompiledModel

logger = logging.getLogger(__name__)


def describe_gates(imported: ImportedModel) -> list[dict]:
    """Each gate with what the graph analysis found it controls."""
    regions = find_gate_regions(imported.mod["main"])
    return [{**gate.to_json(), **region.to_json()} for gate, region in zip(imported.gates, regions)]


def explain_model(model: nn.Module, input_shape: tuple[int, int, int]) -> list[dict]:
    """Gate analysis only, without compiling (``lcnet-tvm compile --explain``)."""
    return describe_gates(import_model(model, (1, *input_shape)))


def _validate_options(batch_size: int, gate_form: str, channel_buckets: int) -> None:
    if batch_size < 1:
        raise LcnetError(f"batch size must be at least 1, got {batch_size}")
    if gate_form not in GATE_FORMS:
        raise LcnetError(f"unknown gate form {gate_form!r}; use one of {', '.join(GATE_FORMS)}")
    if channel_buckets < 1:
        raise LcnetError(f"channel buckets must be at least 1, got {channel_buckets}")


def model_for_form(model: nn.Module, gate_form: str) -> nn.Module:
    """What a gate form compiles: ``model``, or for the ``dense`` form its backbone without gates."""
    return without_gates(model) if gate_form == "dense" else model


def lower_to_kernels(
    imported: ImportedModel, spec: TargetSpec, target: tvm.target.Target, gate_form: str, channel_buckets: int
) -> tvm.IRModule:
    """The compilation pipeline up to its kernels phase: every op legalized and fused into unscheduled kernels."""
    pipeline = compile_pipeline(
        imported.params, target, spec.backend(), spec.default_schedules(), gate_form, channel_buckets, stop_after="kernels"
    )
    with target, quiet_native_noise():
        return pipeline(imported.mod)


def tune_model(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    target_name: str,
    trials: int,
    database_dir: str,
    batch_size: int = 1,
    gate_form: str = DEFAULT_GATE_FORM,
    channel_buckets: int = DEFAULT_CHANNEL_BUCKETS,
    show_progress: bool = True,
    remote: RemoteDevice | None = None,
    guide_inputs: torch.Tensor | None = None,
) -> TuneReport:
    """Tune every kernel of the compiled ``model`` for ``target_name``, recording into ``database_dir``.

    The budget of ``trials`` measured candidates is spread over the kernels by
    expected runtime share (calls x FLOPs, at least one trial each); re-running
    with the same database resumes. With ``guide_inputs`` the calls are those
    observed running an untuned build on them (:func:`observed_calls`), so the
    channel buckets and blocks the gates really choose get the trials;
    without, every kernel counts as always running.
    Candidates are measured on this machine, or through the RPC tracker ``remote``.
    """
    _validate_options(batch_size, gate_form, channel_buckets)
    spec = get_target(target_name)
    target_config = spec.config()
    target = spec.tvm_target(target_config)
    runner = spec.tuning_runner(target_config, remote)
    builder = InProcessBuilder(link=spec.library_compiler())
    database = TuningDatabase(database_dir, target_config, create=True)
    imported = import_model(model_for_form(model, gate_form), (batch_size, *input_shape))
    kernels = lower_to_kernels(imported, spec, target, gate_form, channel_buckets)
    tasks = kernel_tasks(kernels, target)
    if guide_inputs is not None:
        calls = observed_calls(model, input_shape, target_name, batch_size, gate_form, channel_buckets, guide_inputs)
        by_workload = _calls_by_workload(kernels, calls)
        for task in tasks:
            task.calls = by_workload.get(workload_key(task.mod), 0.0)
    spread_budget(tasks, trials)
    logger.info("tuning %d kernels for %s with %d trials", len(tasks), target_name, trials)
    return tune_kernels(tasks, target, database, runner, builder, show_progress)


def observed_calls(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    target_name: str,
    batch_size: int,
    gate_form: str,
    channel_buckets: int,
    inputs: torch.Tensor,
) -> dict[str, float]:
    """Mean calls per inference of each kernel of the untuned build, running it on ``inputs`` (whole batches)."""
    if len(inputs) < batch_size:
        raise LcnetError(f"guiding the tuning budget needs at least one batch of {batch_size} inputs, got {len(inputs)}")
    compiled = compile_model(
        model, "observed", input_shape, target_name, batch_size, gate_form=gate_form, channel_buckets=channel_buckets
    )
    batches = [inputs[start : start + batch_size].numpy() for start in range(0, len(inputs) - batch_size + 1, batch_size)]
    return count_calls(compiled, batches)


def _calls_by_workload(kernels: tvm.IRModule, calls: dict[str, float]) -> dict[int, float]:
    """Observed calls summed over the kernels MetaSchedule tunes as one workload."""
    by_workload: dict[int, float] = {}
    for gv, func in kernels.functions_items():
        if isinstance(func, tvm.tirx.PrimFunc):
            key = workload_key(kernel_module(func))
            by_workload[key] = by_workload.get(key, 0.0) + calls.get(gv.name_hint, 0.0)
    if not any(by_workload.values()):
        raise LcnetError("no kernel of the build was seen to run on the guide inputs; report this as a bug")
    return by_workload


def compile_model(
    model: nn.Module,
    model_name: str,
    input_shape: tuple[int, int, int],
    target_name: str = "x86",
    batch_size: int = 1,
    extra_metadata: dict | None = None,
    gate_form: str = DEFAULT_GATE_FORM,
    channel_buckets: int = DEFAULT_CHANNEL_BUCKETS,
    database_dir: str | None = None,
) -> CompiledModel:
    """Import ``model``, run the compilation pipeline and build it for ``target_name``.

    ``input_shape`` is one sample's (C, H, W); the artifact is compiled for
    batches of ``batch_size`` (the runtime splits and pads other batch sizes).
    ``gate_form`` and ``channel_buckets``: see :mod:`lcnet_tvm.gate_forms`.
    ``database_dir``: tuning records (``lcnet-tvm tune``) to apply; kernels
    without a record keep the target's default schedule, and the metadata says
    which kernels were tuned.
    """
    _validate_options(batch_size, gate_form, channel_buckets)
    spec = get_target(target_name)
    target_config = spec.config()
    target = spec.tvm_target(target_config)
    database = TuningDatabase(database_dir, target_config) if database_dir else None
    started = time.perf_counter()
    model = model_for_form(model, gate_form)
    imported = import_model(model, (batch_size, *input_shape))
    gates = [{**gate, "lowered": False} for gate in describe_gates(imported)]
    phases = PhaseOutputs()
    pipeline = compile_pipeline(
        imported.params, target, spec.backend(), spec.default_schedules(), gate_form, channel_buckets,
        tuned=database is not None, outputs=phases,
    )
    records = database.database if database is not None else contextlib.nullcontext()
    with target, records, quiet_native_noise():
        executable = relax.build(pipeline(imported.mod), target, relax_pipeline=None)
    for index in lowered_gates(phases.graph["main"]):
        gate = gates[index]
        gate["lowered"] = True
        if gate["kind"] == "channel":
            gate["buckets"] = gate_buckets(gate["channels"], channel_buckets)
    kernels = _kernel_records(phases, database)
    seconds = time.perf_counter() - started
    untuned = [kernel["name"] for kernel in kernels if not kernel["tuned"]]
    if database is not None and untuned:
        logger.warning(
            "%d of %d kernels have no tuning record in %s and run untuned: %s",
            len(untuned), len(kernels), database_dir, ", ".join(untuned),
        )
    logger.info("compiled %s for %s in %.1f s (%d kernels)", model_name, target_name, seconds, len(kernels))
    metadata = {
        "format": ARTIFACT_FORMAT,
        "model": model_name,
        "input_shape": [batch_size, *input_shape],
        "input_dtype": "float32",
        "target_name": spec.name,
        "target": target_config,
        "tvm_version": tvm.__version__,
        "lcnet_tvm_version": __version__,
        "gate_form": gate_form,
        "channel_buckets": channel_buckets,
        "gates": gates,
        "tuning_database": str(database_dir) if database_dir else None,
        "kernels": kernels,
        "flops": FlopsCounter.from_model(model, input_shape).to_json(),
        "compile_seconds": round(seconds, 2),
        **(extra_metadata or {}),
    }
    return CompiledModel(executable, metadata)


def _kernel_records(phases: PhaseOutputs, database: TuningDatabase | None) -> list[dict]:
    """Per kernel: tuned (a record of ``database`` was applied) and the trials measured for it."""
    kernels = phases.kernels
    names = sorted(gv.name_hint for gv, func in kernels.functions_items() if isinstance(func, tvm.tirx.PrimFunc))
    trials = database.trials_by_workload() if database is not None else {}
    records = []
    for name in names:
        tuned = bool(phases.tuned[name].attrs.get(SCHEDULED_ATTR, False))
        measured = trials.get(workload_key(kernel_module(kernels[name])), 0)
        records.append({"name": name, "tuned": tuned, "trials": measured if tuned else 0})
    return records
