"""Tuning records shipped with the package, made by ``lcnet-tvm tune`` (see ``tuning/README.md``).

``tuning/<target>/<architecture>/`` is a tuning database for that zoo
architecture at its own input size, batch 1, default buckets, for a fixed ISA
level (``x86-avx512``, ``x86-avx2``), never for the host-dependent ``x86``.
Records depend on kernel shapes only, so they serve every checkpoint of the
architecture. The database files are shipped gzip-compressed (MetaSchedule's
workload JSON holds every kernel's TensorIR and compresses 15x) and unpacked
into a cache directory on first use, because MetaSchedule reads plain files.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from lcnet_tvm.schedules.database import RECORDS_FILE, TARGET_FILE, WORKLOADS_FILE, target_identity
from lcnet_tvm.targets import DEFAULT_TARGET, TARGETS, TargetSpec, get_target

import lcnet_tvm

logger = logging.getLogger(__name__)

#: In the ``lcnet_tvm`` package (this module installs elsewhere: ``schedules/`` is its own folder).
SHIPPED_TUNING_DIR = Path(lcnet_tvm.__file__).parent / "tuning"
COMPRESSED_FILES = (WORKLOADS_FILE + ".gz", RECORDS_FILE + ".gz")


def cache_root() -> Path:
    """Where shipped databases are unpacked: ``$LCNET_TVM_CACHE`` or ``~/.cache/lcnet_tvm``."""
    configured = os.environ.get("LCNET_TVM_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "lcnet_tvm"


def unpacked_database(shipped: Path) -> Path:
    """A plain-file copy of the shipped database ``shipped``, unpacked once per content."""
    digest = hashlib.sha256()
    for name in (TARGET_FILE, *COMPRESSED_FILES):
        digest.update((shipped / name).read_bytes())
    destination = cache_root() / "tuning" / shipped.parent.name / f"{shipped.name}-{digest.hexdigest()[:16]}"
    if destination.is_dir():
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    # Unpack beside the destination and rename, so a concurrent or interrupted run never sees half a database.
    staging = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=destination.parent))
    try:
        shutil.copyfile(shipped / TARGET_FILE, staging / TARGET_FILE)
        for name in COMPRESSED_FILES:
            with gzip.open(shipped / name, "rb") as source, open(staging / name.removesuffix(".gz"), "wb") as target:
                shutil.copyfileobj(source, target)
        os.replace(staging, destination)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not destination.is_dir():  # another process may have won the rename
            raise
    return destination


def _runnable_records(architecture: str) -> Iterator[tuple[TargetSpec, Path]]:
    """(target, shipped directory) of each record set for ``architecture`` whose code runs here, widest ISA first."""
    if not SHIPPED_TUNING_DIR.is_dir():
        return
    for spec in TARGETS.values():
        # resolved: architectures whose kernels have the same shapes share one database through a symlink
        shipped = (SHIPPED_TUNING_DIR / spec.name / architecture).resolve()
        if (shipped / TARGET_FILE).exists() and spec.runnable_here(spec.config()) is None:
            yield spec, shipped


def shipped_records(architecture: str) -> tuple[str, Path] | None:
    """(target name, database directory) of the shipped records for ``architecture`` that run on this machine;
    of several, those for the widest ISA level."""
    spec, shipped = next(_runnable_records(architecture), (None, None))
    return None if spec is None else (spec.name, unpacked_database(shipped))


def records_for(architecture: str, target_name: str | None) -> tuple[str, Path] | None:
    """The shipped records that serve ``target_name`` (``None``: :func:`shipped_records`), as (that name, database).

    Records serve a target whose code is the same as theirs: ``x86`` on an
    AVX-512 host uses the ``x86-avx512`` records; records for another ISA level
    would not apply.
    """
    if target_name is None:
        return shipped_records(architecture)
    wanted = target_identity(get_target(target_name).config())
    for spec, shipped in _runnable_records(architecture):
        if target_identity(spec.config()) == wanted:
            return target_name, unpacked_database(shipped)
    return None


def target_and_records(architecture: str, default_target: str = DEFAULT_TARGET) -> tuple[str, str | None]:
    """The target to compile for and the shipped records to use (``None``: none run here; see :func:`warn_untuned`)."""
    shipped = shipped_records(architecture)
    if shipped is None:
        return default_target, None
    return shipped[0], str(shipped[1])


def warn_untuned(architecture: str, kernels: list[str], target_name: str | None = None) -> None:
    """Say which kernels of a build without records run untuned, and how to tune them or use shipped ones.

    ``target_name``: the target built for, when it was asked for (and no shipped records serve it);
    shipped records for another ISA level that runs here are named with the option that uses them.
    """
    shipped = shipped_records(architecture)
    if shipped is not None and target_name is not None:
        logger.warning(
            "compiled for %s without tuning records: these %d kernels run untuned: %s "
            "(shipped records for %s run on this machine with --target %s; or tune for %s with "
            "`lcnet-tvm tune --model %s --target %s --db DIR`, then pass --db DIR)",
            target_name, len(kernels), ", ".join(kernels), architecture, shipped[0], target_name,
            architecture, target_name,
        )
        return
    logger.warning(
        "no shipped tuning records for %s run on this machine; these %d kernels run untuned: %s "
        "(tune them with `lcnet-tvm tune --model %s --db DIR`, then pass --db DIR)",
        architecture, len(kernels), ", ".join(kernels), architecture,
    )
