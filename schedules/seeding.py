"""Seeding a kernel's search with the tuned schedule of a kernel of the same form, refitted to its loop extents.

A channel bucket's convolution differs from the full convolution only in the
extent of one loop (the channels it reads or computes), and the convolutions
of a stage differ from the next stage's only in extents too. MetaSchedule
tunes each kernel from scratch, and its first candidates for a small bucket
convolution can be many times slower than the full one's tuned schedule
scaled down. Replaying the best trace of the nearest tuned kernel of the same
form on the bucket, each tile split refitted to the bucket's extent, gives the
kernel a measured first record; MetaSchedule's evolutionary search then draws
part of its first population from the database's best records of the kernel,
so the search starts from that schedule instead of from random samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tvm
from tvm.s_tir import Schedule
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.analysis import estimate_tir_flops
from tvm.s_tir.schedule import ScheduleError

from .database import workload_key


@dataclass(frozen=True)
class KernelForm:
    """What a kernel's schedule trace names, apart from loop extents: its blocks and their iterator kinds.

    Two kernels of the same form (a bucket conv and the full conv) take each other's traces
    once the tile factors are refitted; ``extents`` say how far apart their shapes are.
    """

    blocks: tuple[tuple[str, tuple[int, ...]], ...]
    extents: tuple[int, ...]

    def distance(self, other: KernelForm) -> float:
        """How different two kernels of the same form are in size: summed log ratios of their extents."""
        return sum(abs(math.log(a / b)) for a, b in zip(self.extents, other.extents))


def kernel_form(mod: tvm.IRModule) -> KernelForm | None:
    """The form of ``mod``'s kernel ``main``; ``None`` for a kernel written without a root block (a gate's decision)
    or with an extent that is not a constant: no refit possible."""
    schedule = Schedule(mod)
    blocks = []
    try:
        root = schedule.get_sblock("root", func_name="main")
    except ScheduleError:
        return None

    def collect(parent) -> None:
        for child in schedule.get_child_blocks(parent):
            blocks.append(schedule.get(child))
            collect(child)

    collect(root)
    extents = [var.dom.extent for block in blocks for var in block.iter_vars]
    if not all(isinstance(extent, tvm.tirx.IntImm) for extent in extents):
        return None
    return KernelForm(
        tuple((block.name_hint, tuple(int(var.iter_type) for var in block.iter_vars)) for block in blocks),
        tuple(int(extent) for extent in extents),
    )


def refit_tile(extent: int, factors: list[int]) -> list[int]:
    """Tile factors of ``extent`` as close to ``factors`` (outermost first) as divisibility allows.

    From the innermost in, each factor becomes the largest divisor of what is left
    that is not above the old factor; the outermost takes the rest. Inner tiles
    (the vector and register tiles) are what the old schedule tuned most finely.
    """
    refitted, left = [0] * len(factors), extent
    for index in range(len(factors) - 1, 0, -1):
        refitted[index] = max(d for d in range(1, min(factors[index], left) + 1) if left % d == 0)
        left //= refitted[index]
    refitted[0] = left
    return refitted


def refitted_schedule(mod: tvm.IRModule, trace: tvm.s_tir.schedule.Trace, postprocs) -> Schedule | None:
    """``trace`` replayed on ``mod`` with its tile splits refitted to ``mod``'s loops, then ``postprocs``.

    ``None`` when the trace does not apply to ``mod`` or a postprocessor rejects the result.
    """
    schedule = Schedule(mod)

    def refit(instruction, inputs, _attrs, decision):
        if instruction.kind.name != "SamplePerfectTile":
            return decision
        factors = [int(factor) for factor in decision]
        extent = int(schedule.get(inputs[0]).extent)
        return factors if math.prod(factors) == extent else refit_tile(extent, factors)

    try:
        trace.apply_to_schedule(schedule, remove_postproc=True, decision_provider=refit)
    except (RuntimeError, ValueError):  # ScheduleError and TVM's internal errors: not a trace for this kernel
        return None
    schedule.enter_postproc()
    return schedule if all(postproc.apply(schedule) for postproc in postprocs) else None


#: Form and FLOPs by workload key: a tune asks for every tuned kernel's before each kernel it seeds.
_FORMS: dict[int, tuple[KernelForm | None, float]] = {}


def _form_and_flops(key: int, mod: tvm.IRModule) -> tuple[KernelForm | None, float]:
    """A workload's form and FLOPs (``key``: its :func:`workload_key`)."""
    if key not in _FORMS:
        _FORMS[key] = kernel_form(mod), max(1.0, estimate_tir_flops(mod))
    return _FORMS[key]


@dataclass(frozen=True)
class Seed:
    """A tuned kernel whose best trace seeds another's search."""

    record: ms.database.TuningRecord
    form: KernelForm
    #: FLOPs per second of its best record: how well it was tuned.
    speed: float


def seeds_for(mod: tvm.IRModule, database: ms.database.Database) -> list[Seed]:
    """The tuned kernels of ``mod``'s form whose traces seed it: the nearest in shape and the fastest.

    Every other workload in ``database`` with a measured record is a candidate;
    its best record is the one that seeds. One kernel when the nearest is also the fastest.
    """
    own = workload_key(mod)
    form, _ = _form_and_flops(own, mod)
    if form is None:
        return []
    best: dict[ms.database.Workload, ms.database.TuningRecord] = {}  # the database hands out one object per workload
    for record in database.get_all_tuning_records():
        if record.run_secs and (
            record.workload not in best or mean_seconds(record.run_secs) < mean_seconds(best[record.workload].run_secs)
        ):
            best[record.workload] = record
    relatives = []
    for workload, record in best.items():
        key = workload_key(workload.mod)
        relative_form, flops = _form_and_flops(key, workload.mod)
        if key != own and relative_form is not None and relative_form.blocks == form.blocks:
            relatives.append(Seed(record, relative_form, flops / mean_seconds(record.run_secs)))
    if not relatives:
        return []
    nearest = min(relatives, key=lambda seed: seed.form.distance(form))
    fastest = max(relatives, key=lambda seed: seed.speed)
    return [nearest] if fastest is nearest else [nearest, fastest]


def mean_seconds(run_secs) -> float:
    """A measured candidate's time: the mean of its repeated runs (MetaSchedule's numbers, as floats)."""
    return sum(float(second) for second in run_secs) / len(run_secs)
