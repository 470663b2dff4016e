"""The host x86-64 CPU through LLVM, with the instruction-set level detected from the host."""

from __future__ import annotations

import os

from tvm.target import Target, codegen

from .base import TargetSpec

#: CPU names by the widest vector ISA present; the first whose features the host has wins.
#: A named ISA level (not the exact host CPU) keeps artifacts and tuning records
#: portable across machines of the same level.
ISA_LEVELS = (
    ("skylake-avx512", ("avx512f", "avx512bw", "avx512vl", "avx512dq")),
    ("core-avx2", ("avx2", "fma")),
    ("x86-64", ()),
)
_ISA_PREFIXES = ("sse", "ssse", "avx", "fma", "f16c", "bmi")


def _host_features() -> set[str]:
    return set(codegen.llvm_get_cpu_features(Target({"kind": "llvm", "mcpu": codegen.llvm_get_system_cpu()})))


def host_mcpu() -> str:
    features = _host_features()
    return next(name for name, needed in ISA_LEVELS if set(needed) <= features)


def config(mcpu: str | None = None) -> dict:
    return {"kind": "llvm", "mcpu": mcpu or host_mcpu(), "num-cores": os.cpu_count() or 1}


def runnable_here(built_for: dict) -> str | None:
    host_triple = codegen.llvm_get_system_triple()
    if built_for.get("kind") != "llvm" or not host_triple.startswith("x86_64"):
        return f"this machine is {host_triple}"
    if "mtriple" in built_for and not built_for["mtriple"].startswith("x86_64"):
        return f"its triple {built_for['mtriple']!r} is not this machine's {host_triple!r}"
    required = codegen.llvm_get_cpu_features(Target({"kind": "llvm", "mcpu": built_for.get("mcpu", "x86-64")}))
    missing = sorted(f for f in set(required) - _host_features() if f.startswith(_ISA_PREFIXES))
    if missing:
        return f"this CPU lacks {', '.join(missing)}"
    return None


def _spec(name: str, description: str, mcpu: str | None = None) -> TargetSpec:
    return TargetSpec(
        name=name,
        description=description,
        device_type="cpu",
        config=lambda: config(mcpu),
        runnable_here=runnable_here,
    )


X86 = _spec("x86", "host x86-64 CPU (LLVM, ISA level detected: AVX-512, AVX2+FMA or baseline)")
#: Fixed ISA levels: code and tuning records that run on every x86-64 CPU with that level.
X86_AVX512 = _spec("x86-avx512", "any x86-64 CPU with AVX-512 F/BW/VL/DQ (LLVM, mcpu skylake-avx512)", "skylake-avx512")
X86_AVX2 = _spec("x86-avx2", "any x86-64 CPU with AVX2+FMA (LLVM, mcpu core-avx2)", "core-avx2")
