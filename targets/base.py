"""What every target provides: a TVM target config, a device, and how to export and check a library."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import tvm

from lcnet_tvm.errors import TargetError

logger = logging.getLogger(__name__)

#: TVM 0.27's VM serialiser logs this (at WARNING) for every memory scope it saves: noise, not a problem.
_SERIALISER_NOISE = "Warning: Scope Saving:"


@contextlib.contextmanager
def _filtered_native_stderr():
    """Keep TVM's serialiser noise off the user's terminal; pass every other native message on."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if line.strip() and _SERIALISER_NOISE not in line:
                    logger.warning("%s", line)


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

    def tvm_target(self, config: dict | None = None) -> tvm.target.Target:
        return tvm.target.Target(config or self.config())

    def device(self) -> tvm.runtime.Device:
        return tvm.device(self.device_type, 0)

    def export_library(self, executable, path: str) -> None:
        with _filtered_native_stderr():
            if self.linker:
                from tvm.support import cc  # noqa: PLC0415 (only cross targets need it)

                executable.export_library(path, fcompile=cc.cross_compiler(self.linker))
            else:
                executable.export_library(path)

    def check_runnable(self, config: dict) -> None:
        """Raise :class:`TargetError` when a library built for ``config`` cannot run here."""
        reason = self.runnable_here(config)
        if reason is not None:
            raise TargetError(f"this artifact was built for {self.name} {config} but {reason}; recompile it here")
