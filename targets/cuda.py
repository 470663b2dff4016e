"""NVIDIA GPUs through TVM's CUDA codegen (nvcc), with the GPU architecture detected when a GPU is present."""

from __future__ import annotations

import tvm

from .base import TargetSpec
from .x86 import config as host_config

#: Architecture compiled for when this machine has no GPU (Ampere; runs on Ampere and newer).
FALLBACK_ARCH = "sm_80"


def _gpu_arch() -> str | None:
    device = tvm.cuda(0)
    if not device.exist:
        return None
    return "sm_" + device.compute_version.replace(".", "")


def config() -> dict:
    return {"kind": "cuda", "arch": _gpu_arch() or FALLBACK_ARCH, "host": host_config()}


def runnable_here(built_for: dict) -> str | None:
    arch = _gpu_arch()
    if arch is None:
        return "this machine has no CUDA GPU"
    if int(built_for.get("arch", "sm_0")[3:]) > int(arch[3:]):
        return f"this GPU is {arch}, older than the {built_for['arch']} the artifact was built for"
    return None


def default_schedules() -> list[tvm.transform.Pass]:
    """DLight's GPU rules for kernels without a tuning record (convs get ``Fallback``: correct, not fast).

    The gate decisions are serial programs, which no rule can spread over threads: they run on one thread.
    """
    # Imported here: dlight imports CUDA intrinsics, which only GPU builds need.
    from tvm.s_tir import dlight  # noqa: PLC0415

    from lcnet_tvm.passes.launch_serial_blocks import LaunchSerialBlocksOnOneThread  # noqa: PLC0415

    return [
        LaunchSerialBlocksOnOneThread(),
        dlight.ApplyDefaultSchedule(
            dlight.gpu.Matmul(), dlight.gpu.GEMV(), dlight.gpu.Reduction(), dlight.gpu.GeneralReduction(),
            dlight.gpu.Fallback(),
        )
    ]


CUDA = TargetSpec(
    name="cuda",
    description="NVIDIA GPU (CUDA codegen via nvcc; architecture detected, sm_80 without a GPU)",
    device_type="cuda",
    config=config,
    runnable_here=runnable_here,
    default_schedules=default_schedules,
    relax_backend="tvm.relax.backend.cuda.pipeline",
    host_program=False,
)
