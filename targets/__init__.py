"""Compilation targets, as data: ``TARGETS[name]`` is a :class:`TargetSpec`."""

from __future__ import annotations

from lcnet_tvm.errors import TargetError

from .aarch64 import AARCH64
from .base import TargetSpec
from .cuda import CUDA
from .x86 import X86, X86_AVX2, X86_AVX512

#: Fixed ISA levels of one architecture are listed widest first: shipped records are preferred in this order.
TARGETS: dict[str, TargetSpec] = {spec.name: spec for spec in (X86, X86_AVX512, X86_AVX2, AARCH64, CUDA)}
#: What every command compiles, tunes and runs for unless told otherwise: this machine's CPU.
DEFAULT_TARGET = X86.name


def get_target(name: str) -> TargetSpec:
    try:
        return TARGETS[name]
    except KeyError:
        raise TargetError(f"unknown target {name!r}; use one of {', '.join(TARGETS)}") from None


__all__ = ["DEFAULT_TARGET", "TARGETS", "TargetSpec", "get_target"]
