"""A tuning database on disk: MetaSchedule's JSON files, for one target."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import tvm
from tvm.s_tir import meta_schedule as ms
from tvm_ffi import structural_hash

from lcnet_tvm.errors import DatabaseError

WORKLOADS_FILE = "database_workload.json"
RECORDS_FILE = "database_tuning_record.json"
TARGET_FILE = "target.json"
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
    never applied to another.
    """

    def __init__(self, directory: str | Path, target_config: dict, create: bool = False):
        self.directory = Path(directory)
        wanted = target_identity(target_config)
        marker = self.directory / TARGET_FILE
        if not marker.exists():
            if not create:
                raise DatabaseError(
                    f"{str(self.directory)!r} is not a tuning database (no {TARGET_FILE}); "
                    "make one with `lcnet-tvm tune --db DIR`"
                )
            self.directory.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps(wanted, indent=2) + "\n")
        try:
            recorded = json.loads(marker.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise DatabaseError(f"{str(marker)!r} is corrupt ({error}); delete the database and tune again") from None
        if recorded != wanted:
            raise DatabaseError(
                f"{str(self.directory)!r} holds records for target {recorded}, not {wanted}; "
                "use one --db directory per target"
            )
        try:
            self.database = ms.database.JSONDatabase(
                str(self.directory / WORKLOADS_FILE), str(self.directory / RECORDS_FILE), allow_missing=True
            )
        except Exception as error:  # TVM raises its own error types for unparsable records
            raise DatabaseError(
                f"cannot read the tuning records in {str(self.directory)!r}: {str(error).splitlines()[0]}"
            ) from None

    def trials_by_workload(self) -> Counter:
        """Measured candidates per kernel, by :func:`workload_key`."""
        return Counter(workload_key(record.workload.mod) for record in self.database.get_all_tuning_records())


def workload_key(mod: tvm.IRModule) -> int:
    """How the database tells kernels apart: the structural hash of the tuned module."""
    return structural_hash(mod)


def kernel_module(func: tvm.tirx.PrimFunc) -> tvm.IRModule:
    """A kernel as MetaSchedule keys it: a module holding it as ``main``."""
    return tvm.IRModule({"main": func.with_attr("global_symbol", "main")})
