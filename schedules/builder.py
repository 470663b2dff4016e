"""How MetaSchedule builds candidate kernels on this machine: in this process, one after another."""

from __future__ import annotations

import os
import tempfile

import tvm
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

from lcnet_tvm.support.native_stderr import quiet_native_noise


def build_candidate(mod: tvm.IRModule, target: tvm.target.Target) -> tvm.runtime.Module:
    """MetaSchedule's default build, minus its ``import tvm.s_tir.tensor_intrin``.

    That import takes about a minute in a fresh process; float32 schedules need
    no tensor intrinsics.
    """
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock  # noqa: PLC0415

    return tvm.tirx.build(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod), target=target)


@derived_object
class InProcessBuilder(ms.builder.PyBuilder):
    """Builds candidates in the tuning process.

    MetaSchedule's ``LocalBuilder`` starts a fresh pool of worker processes for
    every batch of candidates; each worker imports TVM (seconds) and its
    default build imports ``tvm.s_tir.tensor_intrin`` (about a minute here, past
    the builder's timeout: every candidate then "fails to build" and tuning
    silently measures nothing). Building a candidate takes well under a second,
    so building in-process is far faster for the many small kernels of a gated
    model. ``link`` is the target's ``fcompile`` (``None``: the host's g++):
    candidates are shared libraries linked here, so a device needs no compiler.
    """

    def __init__(self, link=None):
        super().__init__()
        self.link = link

    def build(self, build_inputs):
        results = []
        for build_input in build_inputs:
            try:
                with quiet_native_noise():
                    library = build_candidate(build_input.mod, build_input.target)
                path = os.path.join(tempfile.mkdtemp(prefix="lcnet-candidate-"), "candidate.so")
                library.export_library(path, fcompile=self.link)
                results.append(ms.builder.BuilderResult(path, None))
            except Exception as error:  # a candidate that fails to build is a failed trial, not a failed tune
                results.append(ms.builder.BuilderResult(None, f"{type(error).__name__}: {error}"))
        return results
