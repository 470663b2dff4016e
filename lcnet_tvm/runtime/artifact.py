"""What an artifact records about itself (``metadata.json``), as typed data.

Written by the compile driver, read by the runtime, the CLI, ``demo`` and
``bench``. The JSON layout is :data:`ARTIFACT_FORMAT`; artifacts written since
that format was introduced load as they are (the gate form once called
``lowered`` reads as ``gated``); anything else is an
:class:`~lcnet_tvm.errors.ArtifactError` that says to recompile.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import tvm

from lcnet_tvm import __version__
from lcnet_tvm.errors import ArtifactError
from lcnet_tvm.model.gates import GateInfo

ARTIFACT_FORMAT = "lcnet_tvm.artifact/1"
#: Gate-form names artifacts of this format may carry for today's names.
_FORM_ALIASES = {"lowered": "gated"}


@dataclass(frozen=True)
class GateRecord:
    """One gate: what the graph analysis found it controls, and whether the compiled code skips its work."""

    name: str
    kind: str  # "layer" or "channel"
    channels: int
    #: Relax variables of the ops its decision controls.
    controls: tuple[str, ...]
    controlled_convs: int
    dense_flops: int
    #: False: the analysis did not understand it (``problem`` says why); it runs in mask form.
    understood: bool
    problem: str = ""
    #: True: a lowering pass turned it into a conditional subgraph or channel gathers.
    lowered: bool = False
    #: A lowered channel gate's static channel counts (one kernel set per bucket).
    buckets: tuple[int, ...] | None = None

    def __post_init__(self):  # sequences from JSON or the analysis compare equal as tuples
        object.__setattr__(self, "controls", tuple(self.controls))
        if self.buckets is not None:
            object.__setattr__(self, "buckets", tuple(self.buckets))

    @property
    def info(self) -> GateInfo:
        return GateInfo(self.name, self.kind, self.channels)

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["controls"] = list(self.controls)
        if self.buckets is None:
            del data["buckets"]
        else:
            data["buckets"] = list(self.buckets)
        return data

    @classmethod
    def from_json(cls, data: dict) -> GateRecord:
        return cls(**data)


@dataclass(frozen=True)
class KernelRecord:
    """One compiled kernel: did a tuning record schedule it, and how many trials were measured for it."""

    name: str
    tuned: bool
    trials: int

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TuningSummary:
    """How many kernels there are, how many got a tuning record, and the trials measured for those."""

    kernels: int
    tuned: int
    trials: int

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class ArtifactMetadata:
    """Everything an artifact says about itself besides its code."""

    model: str
    #: Compiled (batch, C, H, W).
    input_shape: tuple[int, ...]
    target_name: str
    #: The TVM target configuration it was built for (JSON-style).
    target: dict
    gate_form: str
    channel_buckets: int
    gates: list[GateRecord]
    kernels: list[KernelRecord]
    #: :meth:`~lcnet_tvm.model.flops.FlopsCounter.to_json` of the model.
    flops: dict
    tuning_database: str | None = None
    compile_seconds: float = 0.0
    #: Where the model came from: a checkpoint path, "untrained", or None.
    source: str | None = None
    input_dtype: str = "float32"
    tvm_version: str = tvm.__version__
    lcnet_tvm_version: str = __version__
    #: ``main`` runs as a host program (see :mod:`lcnet_tvm.passes.host_program`).
    host_program: bool = False
    #: The kernels ``main_timed`` counts and times, in the order of its clock; empty: no host program
    #: (see :mod:`lcnet_tvm.passes.host_program`).
    timed_kernels: list[str] = field(default_factory=list)
    #: Where ``main``'s results lie in the one tensor it returns, ``[offset, *shape]`` each; empty: it
    #: returns them as they are (see :data:`lcnet_tvm.passes.host_program.PACKED_RESULTS`).
    packed_results: list[list[int]] = field(default_factory=list)
    #: Set when the artifact is saved.
    library_sha256: str | None = None
    format: str = field(default=ARTIFACT_FORMAT)

    @property
    def tuning(self) -> TuningSummary:
        tuned = [kernel for kernel in self.kernels if kernel.tuned]
        return TuningSummary(len(self.kernels), len(tuned), sum(kernel.trials for kernel in tuned))

    @property
    def untuned_kernels(self) -> list[str]:
        return [kernel.name for kernel in self.kernels if not kernel.tuned]

    def to_json(self) -> dict:
        data = {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}
        data["input_shape"] = list(self.input_shape)
        data["gates"] = [gate.to_json() for gate in self.gates]
        data["kernels"] = [kernel.to_json() for kernel in self.kernels]
        return data

    @classmethod
    def from_json(cls, data: object, where: str) -> ArtifactMetadata:
        """Read ``metadata.json`` of the artifact at ``where``; an unreadable one says to recompile."""
        if not isinstance(data, dict) or data.get("format") != ARTIFACT_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ArtifactError(f"{where!r} has artifact format {found!r}, expected {ARTIFACT_FORMAT!r}; recompile it")
        if data.get("tvm_version") != tvm.__version__:
            raise ArtifactError(
                f"{where!r} was built with TVM {data.get('tvm_version')!r} but this is TVM "
                f"{tvm.__version__}; recompile it with `lcnet-tvm compile`"
            )
        known = {item.name for item in dataclasses.fields(cls)}
        try:
            fields = {key: value for key, value in data.items() if key in known}
            fields["input_shape"] = tuple(data["input_shape"])
            fields["gate_form"] = _FORM_ALIASES.get(data["gate_form"], data["gate_form"])
            fields["gates"] = [GateRecord.from_json(gate) for gate in data["gates"]]
            fields["kernels"] = [KernelRecord(**kernel) for kernel in data["kernels"]]
            return cls(**fields)
        except (KeyError, TypeError) as error:
            raise ArtifactError(f"{where!r} has incomplete metadata ({type(error).__name__}: {error}); recompile it") from None

    def summary(self) -> str:
        """A table of the artifact: model, target, tuning, and each gate with what the compiled code does with it."""
        tuning = self.tuning
        lines = [
            f"{self.model} ({self.source or 'in memory'}) for {self.target_name} {self.target}, input "
            f"{tuple(self.input_shape)} {self.input_dtype}, gate form {self.gate_form}, main "
            f"{'as a host program' if self.host_program else 'in the Relax VM'}",
            f"{tuning.kernels} kernels, {tuning.tuned} tuned ({tuning.trials} trials) from "
            f"{self.tuning_database or 'no tuning database'}; TVM {self.tvm_version}",
            f"{'gate':<28} {'kind':<8} {'channels':>8} {'dense MFLOPs':>12}  compiled as",
        ]
        for gate in self.gates:
            lines.append(
                f"{gate.name:<28} {gate.kind:<8} {gate.channels:>8} {gate.dense_flops / 1e6:>12.2f}  {_compiled_as(gate)}"
            )
        return "\n".join(lines)


def _compiled_as(gate: GateRecord) -> str:
    if not gate.understood:
        return f"mask form ({gate.problem})"
    if not gate.lowered:
        return "mask form"
    if gate.kind == "layer":
        return "conditional subgraph"
    return f"channel gathers, buckets {', '.join(map(str, gate.buckets or ()))}"
