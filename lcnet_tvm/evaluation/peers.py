"""Peer runtimes: the same model exported to ONNX and run in ONNX Runtime or OpenVINO, as a user could instead of us.

Each peer runs an export made by ``torch.onnx.export`` (its default, Dynamo-based exporter, which
needs ``onnx`` and ``onnxscript``) of the dense backbone or of the LC-Net in mask form, configured
as its documentation advises for latency: ONNX Runtime with every graph optimisation and the
bench's thread count for its intra-op pool; OpenVINO's CPU plugin with the latency hint, f32
inference precision and the same thread count. Importing this module imports neither runtime.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lcnet_tvm.errors import LcnetError

#: What ``torch.onnx.export`` needs besides torch, then what each runtime needs.
EXPORT_PACKAGES = ("onnx", "onnxscript")
RUNTIME_PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}


def missing_package(runtime: str) -> str | None:
    """The first package ``runtime``'s systems need that cannot be imported here, else ``None``."""
    for package in (*EXPORT_PACKAGES, RUNTIME_PACKAGES[runtime]):
        try:
            importlib.import_module(package)
        except ImportError:
            return package
    return None


def unavailable(runtime: str, device_type: str) -> str | None:
    """Why ``runtime`` cannot run the bench's target device here (``None``: it can)."""
    missing = missing_package(runtime)
    if missing is not None:
        return f"the Python package {missing!r} is not installed (pip install {missing})"
    if device_type == "cpu":
        return None
    if runtime == "onnxruntime":
        import onnxruntime  # noqa: PLC0415

        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            return None
        return "this onnxruntime has no CUDA execution provider (pip install onnxruntime-gpu)"
    return f"{runtime} has no plugin for {device_type} devices"


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter logs a line per torchvision op it cannot register and warns about deprecations: not the user's concern."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        registration.setLevel(level)


def export_onnx(module, example, path: Path) -> Path:
    """Export ``module`` (eval mode, returning logits) at ``example``'s static shape to ``path``."""
    import torch  # noqa: PLC0415 (the peers' worker processes never export)

    try:
        with _quiet_exporter():
            torch.onnx.export(module.eval(), (example,), str(path), dynamo=True, verbose=False)
    except Exception as error:  # noqa: BLE001 (the exporter raises many kinds; the user needs one line)
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise LcnetError(f"torch.onnx.export of {type(module).__name__} failed ({first_line})") from None
    return path


@dataclass(frozen=True)
class PeerRunner:
    """How a worker process builds a peer: the runtime, the ONNX file, threads, the device type."""

    runtime: str
    onnx_path: str
    threads: int
    device_type: str = "cpu"

    def build(self) -> tuple[Callable[[np.ndarray], np.ndarray], dict]:
        """A function from an input batch to logits, and what the runtime reports of its configuration."""
        return _BUILDERS[self.runtime](self)


def _onnxruntime(peer: PeerRunner) -> tuple[Callable[[np.ndarray], np.ndarray], dict]:
    import onnxruntime as ort  # noqa: PLC0415

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = peer.threads
    options.inter_op_num_threads = 1
    provider = "CUDAExecutionProvider" if peer.device_type == "cuda" else "CPUExecutionProvider"
    session = ort.InferenceSession(peer.onnx_path, options, providers=[provider])
    input_name = session.get_inputs()[0].name
    output_name = session.get_outputs()[0].name

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run([output_name], {input_name: batch})[0]

    return run, {"threads": peer.threads, "providers": session.get_providers(), "version": ort.__version__}


def _openvino(peer: PeerRunner) -> tuple[Callable[[np.ndarray], np.ndarray], dict]:
    import openvino as ov  # noqa: PLC0415
    import openvino.properties as props  # noqa: PLC0415
    import openvino.properties.hint as hints  # noqa: PLC0415

    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(peer.onnx_path),
        "CPU",
        {
            hints.performance_mode: hints.PerformanceMode.LATENCY,
            hints.inference_precision: ov.Type.f32,
            props.inference_num_threads: peer.threads,
        },
    )
    request = compiled.create_infer_request()
    output = compiled.output(0)

    def run(batch: np.ndarray) -> np.ndarray:
        return request.infer({0: batch})[output]

    threads = int(compiled.get_property(props.inference_num_threads))
    return run, {"threads": threads, "precision": str(compiled.get_property(hints.inference_precision)), "version": ov.__version__}


_BUILDERS = {"onnxruntime": _onnxruntime, "openvino": _openvino}
