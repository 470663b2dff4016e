"""How MetaSchedule builds candidate kernels on this machine: each in a forked child with a time limit."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import tempfile

import tvm
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

from lcnet_tvm.support.native_stderr import quiet_native_noise

#: Seconds one candidate's build may take (they take well under a second; LLVM has been seen to run for minutes).
DEFAULT_BUILD_TIMEOUT = 60.0


def build_candidate(mod: tvm.IRModule, target: tvm.target.Target) -> tvm.runtime.Module:
    """MetaSchedule's default build, minus its ``import tvm.s_tir.tensor_intrin``.

    That import takes about a minute in a fresh process; float32 schedules need
    no tensor intrinsics.
    """
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock  # noqa: PLC0415

    return tvm.tirx.build(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod), target=target)


#: Characters of a failed build's message sent back (TVM's can hold a whole kernel; a pipe holds 64 KiB).
_MESSAGE_LIMIT = 4000


def _build_and_export(mod: tvm.IRModule, target: tvm.target.Target, link, path: str, errors) -> None:
    """The child's work: the candidate's shared library at ``path``, or why not sent through ``errors``."""
    # Ctrl-C is the tune's to handle (it stops after the round); a group of its own lets a timeout
    # kill the linker this child starts too.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.setpgid(0, 0)
    failure = None
    try:
        with quiet_native_noise():
            build_candidate(mod, target).export_library(path, fcompile=link)
    except BaseException as error:  # noqa: BLE001 (reported to the parent, which decides)
        failure = f"{type(error).__name__}: {error}"[:_MESSAGE_LIMIT]
    if failure is not None:  # outside the handler: the error's frames (and their temporary directories) are freed
        errors.send(failure)
    # Straight out, past multiprocessing's epilogue (finalizers, joining threads, flushing stdio): it
    # works on objects copied from a multi-threaded parent, whose locks another thread may have held at the fork.
    os._exit(0 if failure is None else 1)


@derived_object
class ForkingBuilder(ms.builder.PyBuilder):
    """Builds each candidate in a child forked from the tuning process, killed after ``timeout`` seconds.

    MetaSchedule's ``LocalBuilder`` starts a fresh pool of worker processes for
    every batch of candidates; each worker imports TVM (seconds) and its
    default build imports ``tvm.s_tir.tensor_intrin`` (about a minute here, past
    the builder's timeout: every candidate then "fails to build" and tuning
    silently measures nothing). A forked child has everything imported
    already. Building in the tuning process itself has no way to stop a build
    that does not end (a ResNet-18 tune once stalled over 9 minutes in one
    candidate's LLVM build); a child can be killed, and its candidate counts as
    a failed trial. ``link`` is the target's ``fcompile`` (``None``: the host's
    g++): candidates are shared libraries linked here, so a device needs no compiler.
    """

    def __init__(self, link=None, timeout: float = DEFAULT_BUILD_TIMEOUT):
        super().__init__()
        self.link = link
        self.timeout = timeout

    def build(self, build_inputs):
        return [ms.builder.BuilderResult(*self._build_one(build_input)) for build_input in build_inputs]

    def _build_one(self, build_input) -> tuple[str | None, str | None]:
        """(library path, None) or (None, why the build failed)."""
        directory = tempfile.mkdtemp(prefix="lcnet-candidate-")
        path = os.path.join(directory, "candidate.so")
        receive, send = multiprocessing.Pipe(duplex=False)
        context = multiprocessing.get_context("fork")
        child = context.Process(target=_build_and_export, args=(build_input.mod, build_input.target, self.link, path, send))
        try:
            child.start()
            send.close()
            child.join(self.timeout)
            if child.exitcode == 0:
                return path, None
            shutil.rmtree(directory, ignore_errors=True)
            if child.exitcode is None:
                return None, f"the build took over {self.timeout:g} s and was stopped"
            if child.exitcode < 0:
                return None, f"the build process was killed by {signal.Signals(-child.exitcode).name}"
            return None, receive.recv() if receive.poll() else f"the build process failed (exit code {child.exitcode})"
        finally:
            if child.is_alive():
                try:
                    os.killpg(child.pid, signal.SIGKILL)
                except ProcessLookupError:  # stopped before it made its group
                    child.kill()
                child.join()
            send.close()
            receive.close()
