"""The compilation pipeline: one flat list of passes per stage, composed top to bottom.

1. :func:`graph_pipeline`: weights bound, batch norm folded, gates lowered (Relax).
2. :func:`kernel_pipeline`: ops legalized to TensorIR and fused into kernels; the
   module MetaSchedule extracts its tuning tasks from.
3. :func:`schedule_pipeline`: tuned schedules from a database applied, then the
   target's default schedules for the rest (DLight on GPUs; none on CPUs).
4. :func:`finalize_pipeline`: Relax lowered to what the VM runs.
"""

from __future__ import annotations

from types import ModuleType

import tvm
from tvm import relax

from lcnet_tvm.gate_forms import DEFAULT_CHANNEL_BUCKETS, DEFAULT_GATE_FORM, GATE_FORMS

from .executed_work import ExposeExecutedWork
from .fold_batch_norm import FoldBatchNorm
from .lower_channel_gates import LowerChannelGates
from .lower_layer_gates import LowerLayerGates


def graph_pipeline(
    params: dict[str, tvm.runtime.Tensor],
    gate_form: str = DEFAULT_GATE_FORM,
    channel_buckets: int = DEFAULT_CHANNEL_BUCKETS,
) -> tvm.transform.Pass:
    """From an imported LC-Net to the gated Relax graph.

    Expects the module made by :func:`lcnet_tvm.importer.import_model` (one
    dataflow ``main(x, *weights)`` whose weights are named as in ``params``).
    Produces ``main(x) -> (logits, *scores, *work_flags)`` in dataflow form,
    with understood gates lowered when ``gate_form == "lowered"``.
    """
    if gate_form not in GATE_FORMS:
        raise ValueError(f"unknown gate form {gate_form!r}; use one of {', '.join(GATE_FORMS)}")
    return tvm.transform.Sequential(
        [
            # Weights become constants, so that batch norm folds away.
            relax.transform.BindParams("main", params),
            FoldBatchNorm(),
            relax.transform.DecomposeOpsForInference(),
            relax.transform.CanonicalizeBindings(),
            relax.transform.FoldConstant(),
            # Gates skip work. Work flags report what ran; channel gates first (they
            # need the scores as outputs of main), then layer gates move whole
            # branches, channel dispatch included, into functions.
            ExposeExecutedWork(),
            *([LowerChannelGates(channel_buckets), LowerLayerGates()] if gate_form == "lowered" else []),
            # An `if` splits the dataflow block; fusion only works inside dataflow blocks.
            relax.transform.ConvertToDataflow(),
        ],
        name="lcnet_tvm.graph_pipeline",
    )


def kernel_pipeline(target: tvm.target.Target, backend: ModuleType) -> tvm.transform.Pass:
    """Legalize to TensorIR and fuse: every PrimFunc of the result is one (unscheduled) kernel.

    ``backend`` is the target's Relax backend module (``tvm.relax.backend.<name>.pipeline``).
    """
    return tvm.transform.Sequential(
        [
            *backend.library_dispatch_passes(target),
            relax.transform.LegalizeOps(),
            relax.transform.AnnotateTIROpPattern(),
            relax.transform.FoldConstant(),
            relax.transform.FuseOps(),
            relax.transform.FuseTIR(),
        ],
        name="lcnet_tvm.kernel_pipeline",
    )


def schedule_pipeline(default_schedules: list[tvm.transform.Pass], tuned: bool) -> tvm.transform.Pass:
    """Apply the records of the database in scope (``tuned``), then the target's default schedules.

    ``MetaScheduleApplyDatabase`` must see the very kernels that were tuned:
    it runs on :func:`kernel_pipeline`'s output, never after another fusion.
    """
    return tvm.transform.Sequential(
        [*([relax.transform.MetaScheduleApplyDatabase()] if tuned else []), *default_schedules],
        name="lcnet_tvm.schedule_pipeline",
    )


def finalize_pipeline(target: tvm.target.Target, backend: ModuleType) -> tvm.transform.Pass:
    """Relax dataflow to VM instructions (memory planning, builtins, shapes), the target backend's way."""
    return tvm.transform.Sequential(
        [*backend.dataflow_lower_passes(target), *backend.finalize_passes(target)],
        name="lcnet_tvm.finalize_pipeline",
    )
