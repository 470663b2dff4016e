"""Tuning records shipped with the package, made by ``lcnet-tvm tune`` (see ``tuning/README.md``).

``tuning/<target>/<architecture>/`` is a tuning database for that zoo
architecture at its own input size, batch 1, gated form, default buckets.
Records depend on kernel shapes only, so they serve every checkpoint of the
architecture.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lcnet_tvm.schedules.database import TARGET_FILE
from lcnet_tvm.targets import get_target

logger = logging.getLogger(__name__)

SHIPPED_TUNING_DIR = Path(__file__).parent / "tuning"


def shipped_records(architecture: str) -> tuple[str, Path] | None:
    """(target name, database directory) of shipped records for ``architecture`` that run on this machine."""
    if not SHIPPED_TUNING_DIR.is_dir():
        return None
    for target_dir in sorted(path for path in SHIPPED_TUNING_DIR.iterdir() if path.is_dir()):
        database = target_dir / architecture
        spec = get_target(target_dir.name)
        if (database / TARGET_FILE).exists() and spec.runnable_here(spec.config()) is None:
            return spec.name, database
    return None


def target_and_records(architecture: str, default_target: str = "x86") -> tuple[str, str | None]:
    """The target to compile for and the shipped records to use, warning when there are none."""
    shipped = shipped_records(architecture)
    if shipped is None:
        logger.warning(
            "no shipped tuning records for %s run on this machine; kernels stay untuned "
            "(tune them with `lcnet-tvm tune --model %s --db DIR`)", architecture, architecture,
        )
        return default_target, None
    return shipped[0], str(shipped[1])
