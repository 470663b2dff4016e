"""Native (C++) log lines TVM writes straight to file descriptor 2."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile

logger = logging.getLogger(__name__)

#: TVM 0.27's VM serialiser logs these (at WARNING) for every memory scope it saves or loads: noise.
_SERIALISER_NOISE = ("Warning: Scope Saving:", "Warning: Scope Loaded:")


@contextlib.contextmanager
def quiet_vm_serialiser():
    """Keep TVM's serialiser noise off the user's terminal; pass every other native message on."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if line.strip() and not any(noise in line for noise in _SERIALISER_NOISE):
                    logger.warning("%s", line)
