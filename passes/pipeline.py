"""The compilation pipeline: one flat ``Sequential``, read top to bottom, in four phases.

1. graph: weights bound, batch norm folded, gates lowered (Relax).
2. kernels: ops legalized to TensorIR and fused into kernels; the module
   MetaSchedule extracts its tuning tasks from.
3. schedules: tuned schedules from the database in scope applied, then the
   target's default schedules for the rest (DLight on GPUs; none on CPUs);
   small kernels made serial.
4. finalize: Relax lowered to what the VM runs.

:func:`compile_pipeline` returns it; a :class:`PhaseOutputs` given to it keeps
the module as each phase left it, for the compile driver to report on (which
gates were lowered, which kernels were tuned) and for tuning (the kernels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import tvm
from tvm import relax

from .drop_proven_param_checks import DropProvenParamChecks
from .executed_work import ExposeExecutedWork
from .fold_batch_norm import FoldBatchNorm
from .fuse_channel_gathers import FuseChannelGathers, InlineChannelGathers
from .host_program import LowerToHostProgram
from .lower_channel_gates import LowerChannelGates
from .lower_layer_gates import LowerLayerGates
from .remove_unused_tuples import RemoveUnusedTuples
from .serial_small_kernels import SerialSmallKernels
from .wide_accumulation import WIDE_ACCUMULATION

if TYPE_CHECKING:
    from lcnet_tvm.compiler.options import CompileOptions

#: The phases, in order; ``compile_pipeline(stop_after=...)`` ends after one of them.
PHASES = ("graph", "kernels", "schedules", "finalize")


@dataclass
class PhaseOutputs:
    """The module as each phase of :func:`compile_pipeline` left it (``None``: not reached)."""

    graph: tvm.IRModule | None = None
    kernels: tvm.IRModule | None = None
    #: the kernels once the database's records were applied, before the default schedules:
    #: those a record scheduled carry ``tirx.is_scheduled``.
    tuned: tvm.IRModule | None = None
    schedules: tvm.IRModule | None = None
    finalize: tvm.IRModule | None = None


@tvm.transform.module_pass(opt_level=0, name="lcnet_tvm.KeepPhaseOutput")
class KeepPhaseOutput:
    """Keeps the module at a phase boundary in a :class:`PhaseOutputs`; the module is not changed."""

    def __init__(self, outputs: PhaseOutputs, phase: str):
        self.outputs = outputs
        self.phase = phase

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        setattr(self.outputs, self.phase, mod)
        return mod


def compile_pipeline(
    params: dict[str, tvm.runtime.Tensor],
    options: CompileOptions,
    outputs: PhaseOutputs | None = None,
    stop_after: str = "finalize",
) -> tvm.transform.Pass:
    """From an imported LC-Net to what the VM runs, as ``options`` say.

    Expects the module made by :func:`lcnet_tvm.compiler.importer.import_model` (one
    dataflow ``main(x, *weights)`` whose weights are named as in ``params``).
    The target's Relax backend (``options.target.backend()``) gives the
    dispatch, lowering and finalisation passes, ``options.target.default_schedules()``
    the schedules of kernels without a record. With ``options.database``, the
    records of the MetaSchedule database in scope are applied (run the pipeline
    inside that database's and the target's scope). ``stop_after`` one of
    :data:`PHASES` ends the pipeline there.
    """
    if stop_after not in PHASES:
        raise ValueError(f"unknown phase {stop_after!r}; use one of {', '.join(PHASES)}")
    target = options.tvm_target
    backend = options.target.backend()
    gated = options.gate_form == "gated"

    def keep(phase: str) -> tvm.transform.Pass:
        return KeepPhaseOutput(outputs, phase) if outputs is not None else tvm.transform.Sequential([])

    if options.database is not None:
        with target:  # the pass reads the target in scope when it is made, not when it runs
            apply_database = relax.transform.MetaScheduleApplyDatabase()
    else:
        apply_database = tvm.transform.Sequential([])

    phases = {
        "graph": [
            # Weights become constants, so that batch norm folds away.
            relax.transform.BindParams("main", params),
            FoldBatchNorm(),
            relax.transform.DecomposeOpsForInference(),
            relax.transform.CanonicalizeBindings(),
            relax.transform.FoldConstant(),
            # The gates of a block pool the same input: pool it once.
            relax.transform.EliminateCommonSubexpr(),
            # Gates skip work. Work flags report what ran; channel gates first (they
            # need the scores as outputs of main), then layer gates move whole
            # branches, channel dispatch included, into functions.
            ExposeExecutedWork(),
            LowerChannelGates(options.channel_buckets) if gated else tvm.transform.Sequential([]),
            LowerLayerGates() if gated else tvm.transform.Sequential([]),
            # An `if` splits the dataflow block; fusion only works inside dataflow blocks.
            relax.transform.ConvertToDataflow(),
        ],
        "kernels": [
            # Every PrimFunc at the end of this phase is one (unscheduled) kernel: a tuning task.
            *backend.library_dispatch_passes(target),
            # Pooling and linear layers (gates, classifier) sum in float64: see wide_accumulation.
            relax.transform.LegalizeOps(WIDE_ACCUMULATION),
            relax.transform.AnnotateTIROpPattern(),
            relax.transform.FoldConstant(),
            relax.transform.FuseOps(),
            # A bucket's convolutions read the full weight through the channel order: no copy per inference.
            FuseChannelGathers(),
            relax.transform.FuseTIR(),
            InlineChannelGathers(),
        ],
        "schedules": [
            # The database must see the very kernels that were tuned: those the
            # kernels phase ends with, never after another fusion.
            apply_database,
            keep("tuned"),
            *options.target.default_schedules(),
            # Starting a thread pool costs more than a small kernel computes.
            SerialSmallKernels(),
        ],
        "finalize": [
            # One VM call per inference: main becomes a host program that calls the kernels.
            LowerToHostProgram(options.timed) if options.runs_host_program else tvm.transform.Sequential([]),
            *backend.dataflow_lower_passes(target),
            # Kernels with several outputs leave tuples of them that nothing reads.
            relax.transform.CanonicalizeBindings(),
            RemoveUnusedTuples(),
            # Memory planning, builtins and shapes, the target backend's way; branch
            # and bucket functions called with proven shapes do not check them again.
            *_inserted_after(backend.finalize_passes(target), "VMShapeLower", DropProvenParamChecks()),
        ],
    }
    passes = []
    for phase in PHASES[: PHASES.index(stop_after) + 1]:
        passes += [*phases[phase], keep(phase)]
    return tvm.transform.Sequential(passes, name="lcnet_tvm.compile_pipeline")


def _inserted_after(passes: list[tvm.transform.Pass], name: str, extra: tvm.transform.Pass) -> list[tvm.transform.Pass]:
    """``passes`` with ``extra`` right after the pass called ``name``."""
    names = [each.info.name for each in passes]
    if name not in names:
        raise RuntimeError(f"the backend's finalize passes {names} have no {name}: not the TVM lcnet_tvm was written for")
    index = names.index(name) + 1
    return [*passes[:index], extra, *passes[index:]]
