"""lcnet_tvm: compile dynamic-inference CNNs (LC-Net) with TVM Relax.

The public API, importable from here whatever the sub-packages beneath it do::

    from lcnet_tvm import LayerGate, ChannelGate, WithGateScores    # gates for your own model
    from lcnet_tvm import CompileOptions, compile_model, tune_model  # compile and tune it
    from lcnet_tvm import CompiledModel, load                        # save, load and run the artifact

Names are loaded on first use, so that ``import lcnet_tvm`` (and the CLI's
help) does not wait for TVM and PyTorch.
"""

import importlib
import os

__version__ = "0.1.0"

# TVM's CPU thread pool reads TVM_NUM_THREADS when a thread first runs a kernel. Unset, it takes
# half the logical CPUs (it assumes hyper-threading): one thread on a 2-CPU machine, where the
# gated ResNet-20 then ran 2.3x slower (1.7 vs 0.74 ms) than with two. Use every CPU this process
# may run on, unless the user chose; set before any TVM code runs (tuning's measuring workers
# inherit it).
os.environ.setdefault(
    "TVM_NUM_THREADS", str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
)

#: Public name -> the module that defines it.
_PUBLIC = {
    "LayerGate": "lcnet_tvm.model.gates",
    "ChannelGate": "lcnet_tvm.model.gates",
    "WithGateScores": "lcnet_tvm.model.gates",
    "without_gates": "lcnet_tvm.model.gates",
    "CompileOptions": "lcnet_tvm.compiler.options",
    "compile_model": "lcnet_tvm.compiler.driver",
    "tune_model": "lcnet_tvm.schedules.tune",
    "TuneReport": "lcnet_tvm.schedules.tune",
    "CompiledModel": "lcnet_tvm.runtime.compiled_model",
    "RunResult": "lcnet_tvm.runtime.compiled_model",
    "LcnetError": "lcnet_tvm.errors",
}
__all__ = [*_PUBLIC, "load", "__version__"]


def load(directory, remote=None):
    """Load a compiled artifact (``lcnet-tvm compile -o DIR``) to run here, or on a TVM RPC device ``remote``."""
    from lcnet_tvm.runtime.compiled_model import CompiledModel  # noqa: PLC0415 (see the module docstring)

    return CompiledModel.load(directory, remote)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'lcnet_tvm' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
