"""64-bit ARM (aarch64) with NEON through LLVM, cross-compiled here and linked with a cross g++."""

from __future__ import annotations

from tvm.target import codegen

from .base import TargetSpec

CROSS_COMPILER = "aarch64-linux-gnu-g++"


def config() -> dict:
    return {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"], "num-cores": 4}


def runnable_here(_built_for: dict) -> str | None:
    host_triple = codegen.llvm_get_system_triple()
    if not host_triple.startswith("aarch64"):
        return f"this machine is {host_triple}; run it on an aarch64 device (or through TVM RPC)"
    return None


AARCH64 = TargetSpec(
    name="aarch64",
    description=f"64-bit ARM with NEON (LLVM; linked with {CROSS_COMPILER}, Debian's g++-aarch64-linux-gnu)",
    device_type="cpu",
    config=config,
    runnable_here=runnable_here,
    linker=CROSS_COMPILER,
)
