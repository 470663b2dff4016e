"""The compilation pipeline, one flat list of passes grouped by phase."""

from __future__ import annotations

import tvm
from tvm import relax

from lcnet_tvm.gate_forms import DEFAULT_CHANNEL_BUCKETS, DEFAULT_GATE_FORM, GATE_FORMS

from .executed_work import ExposeExecutedWork
from .fold_batch_norm import FoldBatchNorm
from .lower_channel_gates import LowerChannelGates
from .lower_layer_gates import LowerLayerGates


def compile_pipeline(
    target: tvm.target.Target,
    params: dict[str, tvm.runtime.Tensor],
    gate_form: str = DEFAULT_GATE_FORM,
    channel_buckets: int = DEFAULT_CHANNEL_BUCKETS,
) -> tvm.transform.Pass:
    """Passes from an imported LC-Net (``main(x, *weights)``) to a VM-ready module for ``target``.

    Expects the module made by :func:`lcnet_tvm.importer.import_model` (one
    dataflow ``main`` whose weights are parameters named as in ``params``).
    Produces a module with fused, lowered TensorIR kernels and
    ``main(x) -> (logits, *scores, *work_flags)``. ``channel_buckets`` is the
    number of static channel counts per channel gate (``gate_form="lowered"``).
    """
    if gate_form not in GATE_FORMS:
        raise ValueError(f"unknown gate form {gate_form!r}; use one of {', '.join(GATE_FORMS)}")
    return tvm.transform.Sequential(
        [
            # Phase 1: weights become constants, so that batch norm folds away.
            relax.transform.BindParams("main", params),
            FoldBatchNorm(),
            relax.transform.DecomposeOpsForInference(),
            relax.transform.CanonicalizeBindings(),
            relax.transform.FoldConstant(),
            # Phase 2: gates skip work. Work flags report what ran; channel gates
            # first (they need the scores as outputs of main), then layer gates
            # move whole branches, channel dispatch included, into functions.
            ExposeExecutedWork(),
            *([LowerChannelGates(channel_buckets), LowerLayerGates()] if gate_form == "lowered" else []),
            # An `if` splits the dataflow block; fusion only works inside dataflow blocks.
            relax.transform.ConvertToDataflow(),
            # Phase 3: the target's own legalize / fuse / lower passes.
            relax.get_default_pipeline(target),
        ],
        name="lcnet_tvm.compile_pipeline",
    )
