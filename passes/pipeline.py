"""The compilation pipeline, one flat list of passes grouped by phase."""

from __future__ import annotations

import tvm
from tvm import relax

from lcnet_tvm.gate_forms import GATE_FORMS

from .lower_layer_gates import LowerLayerGates


def compile_pipeline(
    target: tvm.target.Target, params: dict[str, tvm.runtime.Tensor], gate_form: str = "mask"
) -> tvm.transform.Pass:
    """Passes from an imported LC-Net (``main(x, *weights)``) to a VM-ready module for ``target``.

    Expects the module made by :func:`lcnet_tvm.importer.import_model` (one
    dataflow ``main`` whose weights are parameters named as in ``params``).
    Produces a module with fused, lowered TensorIR kernels and ``main(x)``.
    """
    if gate_form not in GATE_FORMS:
        raise ValueError(f"unknown gate form {gate_form!r}; use one of {', '.join(GATE_FORMS)}")
    return tvm.transform.Sequential(
        [
            # Phase 1: weights become constants, so that batch norm folds away.
            relax.transform.BindParams("main", params),
            relax.transform.DecomposeOpsForInference(),
            relax.transform.CanonicalizeBindings(),
            relax.transform.FoldConstant(),
            # Phase 2: gates skip work. Branches move into functions of their own,
            # taking their (folded) weights along as constants.
            LowerLayerGates() if gate_form == "lowered" else tvm.transform.Sequential([]),
            # An `if` splits the dataflow block; fusion only works inside dataflow blocks.
            relax.transform.ConvertToDataflow(),
            # Phase 3: the target's own legalize / fuse / lower passes.
            relax.get_default_pipeline(target),
        ],
        name="lcnet_tvm.compile_pipeline",
    )
