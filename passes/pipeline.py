"""The compilation pipeline, one flat list of passes grouped by phase."""

from __future__ import annotations

import tvm
from tvm import relax


def compile_pipeline(target: tvm.target.Target, params: dict[str, tvm.runtime.Tensor]) -> tvm.transform.Pass:
    """Passes from an imported LC-Net (``main(x, *weights)``) to a VM-ready module for ``target``.

    Expects the module made by :func:`lcnet_tvm.importer.import_model` (one
    dataflow ``main`` whose weights are parameters named as in ``params``).
    Produces a module with fused, lowered TensorIR kernels and ``main(x)``.
    """
    return tvm.transform.Sequential(
        [
            # Phase 1: weights become constants, so that batch norm folds away.
            relax.transform.BindParams("main", params),
            relax.transform.DecomposeOpsForInference(),
            relax.transform.CanonicalizeBindings(),
            relax.transform.FoldConstant(),
            # Phase 2: the target's own legalize / fuse / lower passes.
            relax.get_default_pipeline(target),
        ],
        name="lcnet_tvm.compile_pipeline",
    )
