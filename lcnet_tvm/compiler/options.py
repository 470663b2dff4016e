"""How to compile a model: one options object, validated once, passed from the CLI to compile, tune and bench."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import tvm

from lcnet_tvm.errors import LcnetError
from lcnet_tvm.targets import DEFAULT_TARGET, TargetSpec, get_target

from .gate_forms import DEFAULT_CHANNEL_BUCKETS, DEFAULT_GATE_FORM, GATE_FORMS


@dataclass(frozen=True)
class CompileOptions:
    """What :func:`~lcnet_tvm.compiler.driver.compile_model` builds, for which target, with which records.

    ``target``: a :class:`~lcnet_tvm.targets.TargetSpec` or its name, resolved
    once here together with its TVM configuration (for ``x86``: the host's ISA
    level). ``batch_size``: the compiled batch (the runtime splits and pads
    other sizes). ``gate_form`` and ``channel_buckets``: see
    :mod:`~lcnet_tvm.compiler.gate_forms`. ``database``: a tuning database
    directory (``lcnet-tvm tune --db``): compiling applies its records, tuning
    writes into it. ``host_program``: ``main`` runs as one host program that
    calls the kernels directly (:mod:`lcnet_tvm.passes.host_program`; ``None``:
    where the target can, which is every CPU target). ``timed``: a host program
    also gets its twin that counts and times each kernel's calls, which
    :func:`~lcnet_tvm.runtime.instrument.observe_kernels` and
    :func:`~lcnet_tvm.runtime.instrument.profile_kernels` need (it makes LLVM
    take about a quarter longer; the VM counts calls without it). Invalid values
    raise :class:`~lcnet_tvm.errors.LcnetError` naming the value.
    """

    target: TargetSpec = DEFAULT_TARGET  # type: ignore[assignment]  (a name is resolved in __post_init__)
    batch_size: int = 1
    gate_form: str = DEFAULT_GATE_FORM
    channel_buckets: int = DEFAULT_CHANNEL_BUCKETS
    database: Path | None = None
    host_program: bool | None = None
    timed: bool = False
    #: The target as TVM configures it (JSON-style dict), resolved once; recorded in artifacts.
    target_config: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if isinstance(self.target, str):
            object.__setattr__(self, "target", get_target(self.target))
        _check_count("batch size", self.batch_size)
        if self.gate_form not in GATE_FORMS:
            raise LcnetError(f"unknown gate form {self.gate_form!r}; use one of {', '.join(GATE_FORMS)}")
        _check_count("channel buckets", self.channel_buckets)
        if self.host_program and not self.target.host_program:
            raise LcnetError(
                f"a host program runs on the host CPU, but target {self.target.name} runs its kernels on a device "
                "and keeps the Relax VM: leave out --host-program (host_program=True)"
            )
        if self.database is not None:
            object.__setattr__(self, "database", Path(self.database))
        object.__setattr__(self, "target_config", self.target.config())

    @property
    def runs_host_program(self) -> bool:
        """``host_program`` as asked, or where not asked, whether the target can (kept unresolved, so that
        :meth:`replace` with another target decides again)."""
        return self.target.host_program if self.host_program is None else self.host_program

    @property
    def tvm_target(self) -> tvm.target.Target:
        return self.target.tvm_target(self.target_config)

    def replace(self, **changes) -> CompileOptions:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)


def _check_count(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise LcnetError(f"{what} must be an integer, got {value!r}")
    if value < 1:
        raise LcnetError(f"{what} must be at least 1, got {value}")
