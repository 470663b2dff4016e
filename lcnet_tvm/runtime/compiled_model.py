"""The Python runtime wrapper: load a compiled artifact, run it, save it.

An artifact is a directory holding ``model.so`` (the compiled Relax VM
executable, weights included) and ``metadata.json`` (:class:`~.artifact.ArtifactMetadata`:
model name, input shape, target, TVM version, gates, kernels and whether each
was tuned, FLOPs table). Running one needs TVM, numpy and torch (the FLOPs
accounting counts executed work with it), not the PyTorch model.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import tvm
from tvm import relax

from lcnet_tvm.errors import ArtifactError, InputError, OutputError
from lcnet_tvm.model.flops import FlopsCounter
from lcnet_tvm.model.gates import GateInfo
from lcnet_tvm.passes.host_program import unpacked
from lcnet_tvm.support.native_stderr import quiet_native_noise
from lcnet_tvm.targets import get_target
from lcnet_tvm.targets.remote import RemoteDevice

from .artifact import ArtifactMetadata, TuningSummary

LIBRARY_FILE = "model.so"
METADATA_FILE = "metadata.json"


@dataclass
class RunResult:
    """Outputs for a batch of N samples."""

    logits: np.ndarray  # (N, classes)
    batch: int
    flops: FlopsCounter
    #: per compiled batch of ``batch`` samples, what ``main`` returned: logits, then per gate its
    #: scores, then per gate its work flags (read into ``scores`` and ``work_flags`` on first use)
    outputs: list[Sequence[np.ndarray]] = field(repr=False)

    @functools.cached_property
    def scores(self) -> list[np.ndarray]:
        """Per gate: (N, 1) layer gate or (N, C) channel gate, in [0, 1]."""
        return [_joined(tuple(out[1 + gate] for out in self.outputs))[: len(self.logits)] for gate in range(self._gates)]

    @functools.cached_property
    def work_flags(self) -> list[tuple[np.ndarray, ...]]:
        """Per gate, the work flags each compiled batch reported, one array per batch."""
        return [tuple(out[1 + self._gates + gate] for out in self.outputs) for gate in range(self._gates)]

    @property
    def _gates(self) -> int:
        return (len(self.outputs[0]) - 1) // 2

    @functools.cached_property
    def computed(self) -> list[np.ndarray]:
        """Per gate, like ``scores``: True where the compiled code computed the block (channel) for the
        sample. Reported by the code that ran: everything in mask form; in gated form the blocks and
        channel buckets that were run for the sample's compiled batch. Expanded on first use."""
        count = len(self.logits)
        computed = []
        for flags, score in zip(self.work_flags, self.scores):
            # A work flag covers a whole compiled batch: repeat it for each of the batch's samples.
            per_batch = np.stack(flags).reshape(len(flags), -1) > 0
            computed.append(np.broadcast_to(np.repeat(per_batch, self.batch, axis=0)[:count], score.shape).copy())
        return computed

    @functools.cached_property
    def executed_flops(self) -> np.ndarray:
        """(N,) FLOPs the compiled code executed per sample (from ``computed``); counted on first use."""
        return self._count(self.computed)

    @functools.cached_property
    def decided_flops(self) -> np.ndarray:
        """(N,) FLOPs the sample's own gate decisions call for (what an ideal per-sample executor runs)."""
        return self._count(self.decisions)

    def _count(self, keeps: list[np.ndarray]) -> np.ndarray:
        return self.flops.executed_flops([torch.from_numpy(keep) for keep in keeps]).numpy()

    @property
    def decisions(self) -> list[np.ndarray]:
        """Per gate, bool keep decisions (score > 0)."""
        return [score > 0 for score in self.scores]

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(axis=1)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _staging_directory(directory: Path) -> Path:
    """A new directory beside ``directory`` to write an artifact into before it is renamed to ``directory``."""
    if directory.exists() and not (directory / METADATA_FILE).exists() and any(directory.iterdir()):
        raise ArtifactError(f"{str(directory)!r} exists and is not an lcnet_tvm artifact; choose another -o")
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    except OSError as error:
        raise OutputError(
            f"cannot write the artifact to {str(directory)!r}: {error.strerror or error}; choose a writable -o"
        ) from None
    staging.chmod(0o755)
    return staging


def check_artifact_destination(directory: str | os.PathLike) -> None:
    """Raise the error :meth:`CompiledModel.save` would raise for ``directory`` now, before a compile
    that takes minutes, rather than after it."""
    _staging_directory(Path(directory)).rmdir()


def _read_metadata(directory: Path) -> ArtifactMetadata:
    if not directory.is_dir():
        raise ArtifactError(f"artifact directory {str(directory)!r} does not exist; create it with `lcnet-tvm compile -o DIR`")
    try:
        data = json.loads((directory / METADATA_FILE).read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{str(directory)!r} has no {METADATA_FILE}; it is not an lcnet_tvm artifact") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{str(directory / METADATA_FILE)!r} is corrupt ({error}); recompile the artifact") from None
    return ArtifactMetadata.from_json(data, str(directory))


class CompiledModel:
    """A compiled LC-Net: call :meth:`run` on an NCHW float32 batch (numpy or CPU torch tensor)."""

    def __init__(
        self,
        executable: tvm.runtime.Module | None,
        metadata: ArtifactMetadata,
        library: Path | None = None,
        remote: RemoteDevice | None = None,
    ):
        self.metadata = metadata
        # A loaded library cannot be exported again: saving copies its file instead.
        self._library = library
        self.target = get_target(metadata.target_name)
        self._executable = executable
        #: Where it runs: this machine, or a TVM RPC device (the library is uploaded and run there).
        self.remote = remote
        self._call_instance = None
        self._flops = FlopsCounter.from_json(metadata.flops)
        # The Relax VM keeps per-call state: one caller at a time per loaded model.
        self._lock = threading.Lock()

    @property
    def _call(self):
        """``batch -> outputs``, set up on first use: an artifact for another device can be compiled and saved here."""
        if self._call_instance is None:
            if self.remote is None:
                self.target.check_runnable(self.metadata.target)
                self._call_instance = _local_call(
                    self._executable, self.target.device(), self.input_shape, self.metadata.packed_results
                )
            else:
                self._call_instance = _remote_call(
                    self._library_file(), self.target.device_type, self.remote, self.metadata.packed_results
                )
        return self._call_instance

    def close(self) -> None:
        """Release the VM (on a remote device: end the RPC session, freeing the server for others)."""
        with self._lock:
            self._call_instance = None
        # The RPC session is freed when its last reference goes, which may sit in a reference
        # cycle: collect now, or a single-session server stays busy until its timeout.
        gc.collect()

    def __enter__(self) -> CompiledModel:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def _library_file(self) -> Path:
        if self._library is None:
            staging = Path(tempfile.mkdtemp(prefix="lcnet-upload-"))
            self.target.export_library(self._executable, str(staging / LIBRARY_FILE))
            self._library = staging / LIBRARY_FILE
        return self._library

    @property
    def executable(self) -> tvm.runtime.Module:
        """The compiled Relax VM executable (its ``mod`` holds the kernels' device code)."""
        if self._executable is None:
            raise ArtifactError("this artifact was loaded to run on a remote device; load it without remote= to inspect it")
        return self._executable

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Compiled (batch, C, H, W)."""
        return tuple(self.metadata.input_shape)

    @property
    def gates(self) -> list[GateInfo]:
        return [gate.info for gate in self.metadata.gates]

    @property
    def tuning(self) -> TuningSummary:
        """How many kernels there are, how many got a tuning record, and the trials measured for those."""
        return self.metadata.tuning

    def summary(self) -> str:
        """A table of what was compiled: model, target, tuning, and what the code does with each gate."""
        return self.metadata.summary()

    def __repr__(self) -> str:
        metadata, tuning = self.metadata, self.tuning
        where = f" on {self.remote}" if self.remote is not None else ""
        return (
            f"<CompiledModel {metadata.model} for {metadata.target_name}{where}, input {self.input_shape}, "
            f"{metadata.gate_form} gates ({len(metadata.gates)}), {tuning.tuned}/{tuning.kernels} kernels tuned>"
        )

    @property
    def dense_flops(self) -> int:
        return self._flops.dense_flops

    @classmethod
    def load(cls, directory: str | os.PathLike, remote: RemoteDevice | None = None) -> CompiledModel:
        """Load an artifact to run here, or on the RPC device ``remote`` (its library is uploaded there)."""
        directory = Path(directory)
        metadata = _read_metadata(directory)
        library = directory / LIBRARY_FILE
        expected = metadata.library_sha256
        if not library.is_file():
            raise ArtifactError(f"{str(library)!r} is missing; recompile the artifact")
        if _sha256(library) != expected:
            raise ArtifactError(f"{str(library)!r} does not match its recorded checksum (corrupt or replaced); recompile it")
        if remote is not None:
            return cls(None, metadata, library, remote)
        get_target(metadata.target_name).check_runnable(metadata.target)
        try:
            with quiet_native_noise():
                executable = tvm.runtime.load_module(str(library))
        except Exception as error:  # TVM raises its own error types for bad libraries
            raise ArtifactError(f"cannot load {str(library)!r}: {str(error).splitlines()[0]}; recompile it") from None
        return cls(executable, metadata, library)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the artifact to ``directory`` atomically (a half-written artifact is never left behind)."""
        directory = Path(directory)
        staging = _staging_directory(directory)
        try:
            if self._library is None:
                self.target.export_library(self._executable, str(staging / LIBRARY_FILE))
            else:
                shutil.copyfile(self._library, staging / LIBRARY_FILE)
            metadata = dataclasses.replace(self.metadata, library_sha256=_sha256(staging / LIBRARY_FILE))
            (staging / METADATA_FILE).write_text(json.dumps(metadata.to_json(), indent=2) + "\n")
            if directory.exists():
                shutil.rmtree(directory)
            staging.rename(directory)
        except BaseException as error:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(error, OSError):
                raise OutputError(f"cannot write the artifact to {str(directory)!r}: {error.strerror or error}") from None
            raise
        self.metadata = metadata
        self._library = directory / LIBRARY_FILE
        return directory

    def _validate(self, x) -> np.ndarray:
        if isinstance(x, torch.Tensor):
            if x.device.type != "cpu":
                raise InputError(f"input is on device {x.device}; move it to the CPU with .cpu() first")
            x = x.detach().numpy()
        if not isinstance(x, np.ndarray):
            raise InputError(f"input must be a numpy array or torch tensor, got {type(x).__name__}")
        sample_shape = self.input_shape[1:]
        if x.ndim != 4 or x.shape[1:] != sample_shape:
            raise InputError(
                f"input shape {tuple(x.shape)} does not match the compiled (N, {', '.join(map(str, sample_shape))}); "
                "pass an NCHW batch of that size"
            )
        if x.dtype != np.float32:
            raise InputError(f"input dtype is {x.dtype}, expected float32; convert it with .astype(np.float32)")
        if x.shape[0] == 0:
            raise InputError("input batch is empty (N = 0); pass at least one sample")
        if not np.isfinite(x).all():
            raise InputError("input contains NaN or Inf values; clean or re-normalise it before running")
        return x

    def run(self, x) -> RunResult:
        """Run a batch of any size N; outputs are per sample."""
        x = self._validate(x)
        batch = self.input_shape[0]
        count = x.shape[0]
        if count % batch:
            # Pad the last chunk with copies of its last sample: gates are decided per compiled batch
            # (a block or channel runs if any sample keeps it), and a copy adds no decision of its own.
            x = np.concatenate([x, np.repeat(x[-1:], -count % batch, axis=0)])
        with self._lock:
            call = self._call
            chunks = [call(x[start : start + batch]) for start in range(0, len(x), batch)]
        logits = _joined(tuple(chunk[0] for chunk in chunks))[:count]
        overflowed = np.flatnonzero(~np.isfinite(logits).all(axis=1))
        if len(overflowed):
            raise InputError(
                f"samples {overflowed.tolist()[:10]} overflow float32 inside the network (non-finite logits; "
                f"largest |input| {float(np.abs(x[overflowed]).max()):.3g}); normalise the inputs as in training"
            )
        return RunResult(logits, batch, self._flops, chunks)


def _joined(parts: tuple[np.ndarray, ...]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _as_arrays(returned, packed: list[list[int]], to_numpy) -> Sequence[np.ndarray]:
    """What ``main`` returned as numpy arrays: views of the one tensor of a packed ``main``, else one per result."""
    if packed:
        return unpacked(to_numpy(returned), packed)
    return [to_numpy(output) for output in returned]


def _local_call(
    executable: tvm.runtime.Module, device: tvm.runtime.Device, input_shape: tuple[int, ...], packed: list[list[int]]
):
    main = relax.VirtualMachine(executable, device)["main"]
    # One input tensor for every call (calls are serialised per model): allocating one per call
    # cost about 0.1 ms of a 2 ms ResNet-20 call. Outputs are zero-copy views: the VM allocates them
    # afresh each call and never reuses them (tested), and a copy per output (a gated ResNet-20
    # has 37) cost 0.4 ms. A host program returns them all in one tensor (``packed``): one view of it.
    staged = tvm.runtime.empty(input_shape, "float32", device)
    staged_view = np.from_dlpack(staged)

    def call(batch: np.ndarray) -> Sequence[np.ndarray]:
        np.copyto(staged_view, batch)
        return _as_arrays(main(staged), packed, np.from_dlpack)

    return call


def _remote_call(library: Path, device_type: str, remote: RemoteDevice, packed: list[list[int]]):
    """Run on an RPC device: upload the library, drive the VM statefully (a direct call cannot cross RPC)."""
    session = remote.connect()
    remote_name = f"lcnet-{_sha256(library)[:16]}.so"
    device = session.device(device_type, 0)
    try:
        session.upload(str(library), remote_name)
        vm = relax.VirtualMachine(session.load_module(remote_name), device)
    except Exception as error:  # TVM raises its own errors for a library the device cannot load
        raise ArtifactError(
            f"RPC device {remote} cannot load {str(library)!r}: {str(error).splitlines()[0]}; "
            "compile it for that device's target"
        ) from None

    def call(batch: np.ndarray) -> Sequence[np.ndarray]:
        vm.set_input("main", tvm.runtime.tensor(batch, device))
        vm.invoke_stateful("main")
        return _as_arrays(vm.get_outputs("main"), packed, lambda output: output.numpy())

    return call


__all__ = ["CompiledModel", "RunResult"]
