"""A tuning database on disk: MetaSchedule's JSON files, for one target."""

from __future__ import annotations

import functools
import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import tvm
from tvm.s_tir import meta_schedule as ms
from tvm_ffi import structural_hash

from lcnet_tvm.errors import DatabaseError
from lcnet_tvm.support.files import write_atomically

logger = logging.getLogger(__name__)

WORKLOADS_FILE = "database_workload.json"
RECORDS_FILE = "database_tuning_record.json"
TARGET_FILE = "target.json"
#: Where a tune moves records MetaSchedule wrote but cannot read back (kept for inspection).
UNREPLAYABLE_FILE = "unreplayable_records.json"
#: PrimFunc attribute set on kernels that got a schedule (from a record or a default rule).
SCHEDULED_ATTR = "tirx.is_scheduled"
#: Target fields that change generated code (``num-cores`` does not).
_TARGET_IDENTITY = ("kind", "mcpu", "mtriple", "mattr", "arch")


def target_identity(config: dict) -> dict:
    return {key: config[key] for key in _TARGET_IDENTITY if key in config}


class TuningDatabase:
    """MetaSchedule's JSON database in ``directory`` plus ``target.json``, the target it was tuned for.

    MetaSchedule appends each measured candidate as one line of
    ``database_tuning_record.json`` as soon as it is measured, so an
    interrupted tune loses no finished record. Its JSON database is not
    target-aware; ``target.json`` makes sure records for one target are
    never applied to another. Opened by a tune, which makes the database if it
    is missing and drops a half-written last line left by a killed tune; a
    compile reads it through :func:`read_database`, which never modifies the files.
    """

    def __init__(self, directory: str | Path, target_config: dict):
        self.directory = Path(directory)
        _check_target(self.directory, target_config, create=True)
        _drop_half_written_lines(self.directory)
        try:
            self.database = _open(self.directory)
        except Exception as error:  # TVM raises its own error types for records it cannot read
            unreplayable = _unreplayable_lines(self.directory)
            if not unreplayable:
                raise DatabaseError(
                    f"cannot read the tuning records in {str(self.directory)!r}: {str(error).splitlines()[0]}"
                ) from None
            _set_aside(self.directory, unreplayable)
            self.database = _open(self.directory)
        #: Records read back when opened: a tune appends after them.
        self._opened_records = len(self.database)

    def set_aside_unreplayable(self) -> None:
        """Move records MetaSchedule cannot read back to the side file (a tune ends with this).

        Opening a database with such a record fails once and then parses every
        record to find it (seconds per thousand records), on every later open.
        """
        unreplayable = _unreplayable_lines(self.directory, first=self._opened_records)
        if unreplayable:
            _set_aside(self.directory, unreplayable)
            self.database = _open(self.directory)

    def trials_by_workload(self) -> Counter:
        """Measured candidates per kernel, by :func:`workload_key`."""
        return Counter(workload_key(record.workload.mod) for record in self.database.get_all_tuning_records())


def read_database(directory: str | Path, target_config: dict) -> BestRecords:
    """What a compile needs of ``directory``'s database, read once per process while its files are unchanged."""
    directory = Path(directory)
    stamp = tuple(_stamp(directory / name) for name in (TARGET_FILE, WORKLOADS_FILE, RECORDS_FILE))
    return _read_database(directory, json.dumps(target_identity(target_config), sort_keys=True), stamp)


@dataclass(frozen=True)
class BestRecords:
    """Each kernel's fastest record that MetaSchedule can replay (in ``database``, to apply), and the
    trials measured per kernel, by :func:`workload_key`.

    MetaSchedule's JSON database replays every record's trace when it opens
    (17 s for the 2,482 shipped LC-ResNet-20 records, in every process that
    compiles); a compile applies one record per kernel, so only those are replayed.
    """

    database: ms.database.Database
    trials: Counter


def _stamp(path: Path) -> tuple[int, int] | None:
    """When ``path`` last changed and its size (``None``: missing)."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_mtime_ns, status.st_size


@functools.lru_cache(maxsize=4)
def _read_database(directory: Path, target: str, _stamp: tuple) -> BestRecords:
    _check_target(directory, json.loads(target), create=False)
    workloads, by_workload = _records_by_workload(directory)
    database = ms.database.MemoryDatabase()
    trials, unreplayable = Counter(), []
    for index, records in by_workload.items():
        workload = database.commit_workload(ms.database.Workload.from_json(workloads[index]).mod)
        trials[workload_key(workload.mod)] += len(records)
        unreplayable += _commit_fastest_replayable(database, workload, records)
    if unreplayable:
        logger.warning(
            "%d records in %s cannot be replayed by MetaSchedule (lines %s); using the next fastest",
            len(unreplayable), directory / RECORDS_FILE, ", ".join(str(number + 1) for number in sorted(unreplayable)),
        )
    return BestRecords(database, trials)


def _records_by_workload(directory: Path) -> tuple[list, dict[int, list[tuple[int, list]]]]:
    """The workloads (JSON), and per workload line its records as (record line, record), in file order.

    A half-written last line (a tune is appending, or was killed while writing) is left out, the files untouched.
    """
    workloads = _read_lines(directory / WORKLOADS_FILE).documents
    by_workload = defaultdict(list)
    for number, (index, record) in enumerate(_read_lines(directory / RECORDS_FILE).documents):
        if not (isinstance(index, int) and 0 <= index < len(workloads) and isinstance(record, list) and len(record) == 4):
            raise DatabaseError(
                f"line {number + 1} of {str(directory / RECORDS_FILE)!r} is not a record of a kernel in "
                f"{WORKLOADS_FILE}; delete that line (its record is lost) or the whole database, and tune again"
            )
        by_workload[index].append((number, record))
    return workloads, by_workload


def _commit_fastest_replayable(
    database: ms.database.Database, workload: ms.database.Workload, records: list[tuple[int, list]]
) -> list[int]:
    """Commit the record MetaSchedule would apply to ``workload``: the fastest it can replay; the lines of those it could not.

    MetaSchedule's order (stable: ties in file order) and validity rule: a record that never ran is no schedule.
    """
    unreplayable = []
    for number, record in sorted(records, key=lambda numbered: _mean_run_secs(numbered[1][1])):
        if _mean_run_secs(record[1]) >= _NEVER_RAN_S:
            break
        try:
            database.commit_tuning_record(ms.database.TuningRecord.from_json(record, workload))
        except Exception:  # noqa: BLE001 (TVM's ScheduleError and friends)
            unreplayable.append(number)
            continue
        if database.get_top_k(workload, 1):  # MetaSchedule also takes a trace without scheduling steps for none
            break
    return unreplayable


#: MetaSchedule's stand-in run time for a candidate that did not run (failed to build or run).
_NEVER_RAN_S = 1e10


def _mean_run_secs(run_secs: list[float] | None) -> float:
    """A record's mean measured seconds, as MetaSchedule sorts records (never ran: :data:`_NEVER_RAN_S`)."""
    return sum(run_secs) / len(run_secs) if run_secs else _NEVER_RAN_S


def _check_target(directory: Path, target_config: dict, create: bool) -> None:
    """Make sure ``directory`` holds records for ``target_config``'s code (``create``: make it, if missing)."""
    wanted = target_identity(target_config)
    marker = directory / TARGET_FILE
    if not marker.exists():
        if not create:
            raise DatabaseError(
                f"{str(directory)!r} is not a tuning database (no {TARGET_FILE}); make one with `lcnet-tvm tune --db DIR`"
            )
        directory.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(wanted, indent=2) + "\n")
    try:
        recorded = json.loads(marker.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatabaseError(f"{str(marker)!r} is corrupt ({error}); delete the database and tune again") from None
    if recorded != wanted:
        raise DatabaseError(
            f"{str(directory)!r} holds records for target {recorded}, not {wanted}; use one --db directory per target"
        )


def _open(directory: Path) -> ms.database.JSONDatabase:
    return ms.database.JSONDatabase(str(directory / WORKLOADS_FILE), str(directory / RECORDS_FILE), allow_missing=True)


def _unreplayable_lines(directory: Path, first: int = 0) -> list[int]:
    """0-based lines, from ``first`` on, of the records file that MetaSchedule cannot replay on their kernel.

    MetaSchedule (0.27) sometimes writes a record it cannot read back: the
    trace of an rfactor'd reduction raises ScheduleError on replay, and one
    such line makes the whole database unreadable.
    """
    workloads, by_workload = _records_by_workload(directory)
    bad = []
    for index, records in by_workload.items():
        later = [(number, record) for number, record in records if number >= first]
        if not later:
            continue
        workload = ms.database.Workload.from_json(workloads[index])
        for number, record in later:
            try:
                ms.database.TuningRecord.from_json(record, workload)
            except Exception:  # noqa: BLE001 (TVM's ScheduleError and friends)
                bad.append(number)
    return sorted(bad)


def _set_aside(directory: Path, lines: list[int]) -> None:
    """Move the records at ``lines`` to the side file; the database keeps the others."""
    records = (directory / RECORDS_FILE).read_text().splitlines(keepends=True)
    dropped = set(lines)
    kept = [line for number, line in enumerate(records) if number not in dropped]
    logger.warning(
        "%d records in %s cannot be replayed by MetaSchedule (lines %s); moving them to %s",
        len(lines), directory / RECORDS_FILE, ", ".join(str(number + 1) for number in lines), UNREPLAYABLE_FILE,
    )
    with (directory / UNREPLAYABLE_FILE).open("a") as stream:
        stream.writelines(records[number] for number in lines)
    write_atomically(directory / RECORDS_FILE, lambda stream: stream.write("".join(kept).encode()))


@dataclass(frozen=True)
class _DatabaseLines:
    """One of MetaSchedule's files: a JSON document per complete line, and a half-written line's bytes after them."""

    path: Path
    documents: list
    complete_bytes: int
    half_written_bytes: int


def _read_lines(path: Path) -> _DatabaseLines:
    """``path``'s complete lines, each parsed; a corrupt one is an error naming it.

    MetaSchedule writes one JSON document per line and cannot open a file with
    a broken line at all, so one half-written record (a tune killed while
    writing it) would make the database unusable: it is kept apart here.
    """
    data = path.read_bytes() if path.exists() else b""
    complete = data.rfind(b"\n") + 1
    documents = []
    for number, line in enumerate(data[:complete].splitlines(), start=1):
        try:
            documents.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise DatabaseError(
                f"line {number} of {str(path)!r} is corrupt; delete that line (its record is lost) or the whole "
                "database, and tune again"
            ) from None
    return _DatabaseLines(path, documents, complete, len(data) - complete)


def _drop_half_written_lines(directory: Path) -> None:
    """Cut off a half-written last line in place, so that MetaSchedule can open the files (a tune does this;
    a reader must not touch files a running tune may be appending to)."""
    for name in (WORKLOADS_FILE, RECORDS_FILE):
        lines = _read_lines(directory / name)
        if not lines.half_written_bytes:
            continue
        logger.warning("%s ends in a half-written line (%d bytes; a tune was killed while writing it): dropping it",
                       lines.path, lines.half_written_bytes)
        try:
            with lines.path.open("r+b") as stream:
                stream.truncate(lines.complete_bytes)
        except OSError as error:
            raise DatabaseError(f"cannot drop the half-written line of {str(lines.path)!r}: {error}") from None


def workload_key(mod: tvm.IRModule) -> int:
    """How the database tells kernels apart: the structural hash of the tuned module."""
    return structural_hash(mod)


def kernel_module(func: tvm.tirx.PrimFunc) -> tvm.IRModule:
    """A kernel as MetaSchedule keys it: a module holding it as ``main``."""
    return tvm.IRModule({"main": func.with_attr("global_symbol", "main")})
