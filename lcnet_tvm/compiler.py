"""Compile a gated PyTorch model into a :class:`~lcnet_tvm.runtime.CompiledModel` for a target."""

from __future__ import annotations

import logging
import time

import tvm
from torch import nn
from tvm import relax

from lcnet_tvm.gate_forms import DEFAULT_CHANNEL_BUCKETS, DEFAULT_GATE_FORM, GATE_FORMS
from lcnet_tvm.gate_forms import channel_buckets as gate_buckets
from lcnet_tvm.passes.executed_work import lowered_gates
from lcnet_tvm.passes.find_gates import find_gate_regions
from lcnet_tvm.passes.pipeline import compile_pipeline
from lcnet_tvm.targets import get_target

from . import __version__
from .errors import LcnetError
from .flops import FlopsCounter
from .importer import ImportedModel, import_model
from .native_stderr import quiet_native_noise
from .runtime import ARTIFACT_FORMAT, CompiledModel

logger = logging.getLogger(__name__)


def describe_gates(imported: ImportedModel) -> list[dict]:
    """Each gate with what the graph analysis found it controls."""
    regions = find_gate_regions(imported.mod["main"])
    return [{**gate.to_json(), **region.to_json()} for gate, region in zip(imported.gates, regions)]


def explain_model(model: nn.Module, input_shape: tuple[int, int, int]) -> list[dict]:
    """Gate analysis only, without compiling (``lcnet-tvm compile --explain``)."""
    return describe_gates(import_model(model, (1, *input_shape)))


def compile_model(
    model: nn.Module,
    model_name: str,
    input_shape: tuple[int, int, int],
    target_name: str = "x86",
    batch_size: int = 1,
    extra_metadata: dict | None = None,
    gate_form: str = DEFAULT_GATE_FORM,
    channel_buckets: int = DEFAULT_CHANNEL_BUCKETS,
) -> CompiledModel:
    """Import ``model``, run the compilation pipeline and build it for ``target_name``.

    ``input_shape`` is one sample's (C, H, W); the artifact is compiled for
    batches of ``batch_size`` (the runtime splits and pads other batch sizes).
    ``gate_form`` and ``channel_buckets``: see :mod:`lcnet_tvm.gate_forms`.
    """
    if batch_size < 1:
        raise LcnetError(f"batch size must be at least 1, got {batch_size}")
    if gate_form not in GATE_FORMS:
        raise LcnetError(f"unknown gate form {gate_form!r}; use one of {', '.join(GATE_FORMS)}")
    if channel_buckets < 1:
        raise LcnetError(f"channel buckets must be at least 1, got {channel_buckets}")
    spec = get_target(target_name)
    target_config = spec.config()
    target = spec.tvm_target(target_config)
    started = time.perf_counter()
    imported = import_model(model, (batch_size, *input_shape))
    gates = [{**gate, "lowered": False} for gate in describe_gates(imported)]
    with target, quiet_native_noise():
        built = compile_pipeline(target, imported.params, gate_form, channel_buckets)(imported.mod)
    for index in lowered_gates(built["main"]):
        gate = gates[index]
        gate["lowered"] = True
        if gate["kind"] == "channel":
            gate["buckets"] = gate_buckets(gate["channels"], channel_buckets)
    with quiet_native_noise():
        executable = relax.build(built, target, relax_pipeline=None)
    kernels = sorted(gv.name_hint for gv, func in built.functions_items() if isinstance(func, tvm.tirx.PrimFunc))
    seconds = time.perf_counter() - started
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
        # Nothing is tuned yet: every kernel is TVM's default (untuned) loop nest.
        "kernels": [{"name": name, "tuned": False, "trials": 0} for name in kernels],
        "flops": FlopsCounter.from_model(model, input_shape).to_json(),
        "compile_seconds": round(seconds, 2),
        **(extra_metadata or {}),
    }
    return CompiledModel(executable, metadata)
