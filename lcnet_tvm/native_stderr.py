"""Native (C++) log lines TVM writes straight to file descriptor 2."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile

logger = logging.getLogger(__name__)

#: Noise: TVM 0.27's VM serialiser logs the first two for every memory scope it saves or loads;
#: LLVM codegen logs the third for every sort kernel (argsort of a channel gate's dispatch).
_NATIVE_NOISE = ("Warning: Scope Saving:", "Warning: Scope Loaded:", "Warning: Unknown pragma pragma_scope",
    # topi take in "fast" mode, used by channel gathers: their indices come from an argsort, always in bounds.
    "Warning: Fast mode segfaults when there are out-of-bounds indices",
)


@contextlib.contextmanager
def quiet_native_noise():
    """Keep TVM's known native noise off the user's terminal; pass every other native message on."""
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
                if line.strip() and not any(noise in line for noise in _NATIVE_NOISE):
                    logger.warning("%s", line)
