"""What every target provides: a TVM target config, a device, and how to export and check a library."""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import tvm

from lcnet_tvm.errors import TargetError
from lcnet_tvm.support.native_stderr import quiet_native_noise


@dataclass(frozen=True)
class TargetSpec:
    """A compilation target as data.

    ``config()`` returns the TVM target as a JSON-style dict (recorded in every
    artifact); ``runnable_here(config)`` returns ``None`` when a library built
    for ``config`` can run on this machine, else the reason it cannot.
    """

    name: str
    description: str
    device_type: str
    config: Callable[[], dict]
    runnable_here: Callable[[dict], str | None]
    #: Compiler driver that links the exported shared library ("" = TVM's default, the host's).
    linker: str = ""
    #: Schedules for kernels that have no tuning record (GPU kernels need one; CPU loop nests run as they are).
    default_schedules: Callable[[], list[tvm.transform.Pass]] = list
    #: TVM's Relax backend for the target: its dispatch, lowering and finalisation passes.
    relax_backend: str = "tvm.relax.backend.cpu_generic.pipeline"
    #: ``main`` can run as one host program calling the kernels directly (passes/host_program.py,
    #: ``CompileOptions.host_program``). Only where kernels run on the host: it reads gate decisions.
    host_program: bool = True

    def backend(self) -> ModuleType:
        return importlib.import_module(self.relax_backend)

    def tvm_target(self, config: dict | None = None) -> tvm.target.Target:
        return tvm.target.Target(config or self.config())

    def device(self) -> tvm.runtime.Device:
        return tvm.device(self.device_type, 0)

    def library_compiler(self) -> Callable | None:
        """How libraries for this target are linked: ``fcompile`` for ``export_library`` (``None``: the host's)."""
        if not self.linker:
            return None
        if shutil.which(self.linker) is None:
            raise TargetError(
                f"linking for {self.name} needs {self.linker}, which is not installed "
                "(Debian/Ubuntu: apt-get install g++-aarch64-linux-gnu)"
            )
        from tvm.support import cc  # noqa: PLC0415 (only cross targets need it)

        return cc.cross_compiler(self.linker)

    def export_library(self, executable, path: str) -> None:
        compiler = self.library_compiler()
        with quiet_native_noise():
            executable.export_library(path, fcompile=compiler)

    def check_runnable(self, config: dict) -> None:
        """Raise :class:`TargetError` when a library built for ``config`` cannot run here."""
        reason = self.runnable_here(config)
        if reason is not None:
            raise TargetError(f"this artifact was built for {self.name} {config} but {reason}; recompile it here")
