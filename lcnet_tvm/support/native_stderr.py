"""Native (C++) log lines TVM writes straight to file descriptor 2."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

#: Noise: TVM 0.27's VM serialiser logs the first two for every memory scope it saves or loads;
#: LLVM codegen logs the third for every sort kernel (argsort of a channel gate's dispatch).
_NATIVE_NOISE = ("Warning: Scope Saving:", "Warning: Scope Loaded:", "Warning: Unknown pragma pragma_scope",
    # topi take in "fast" mode, used by channel gathers: their indices come from an argsort, always in bounds.
    "Warning: Fast mode segfaults when there are out-of-bounds indices",
)


@contextlib.contextmanager
def quiet_native_noise():
    """Keep TVM's known native noise off the user's terminal; pass every other line on, as it was written.

    Everything written to file descriptor 2 meanwhile (Python's own log lines
    included) is held back and replayed when the block ends.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line
                for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                if line.strip() and not any(noise in line for noise in _NATIVE_NOISE)
            ]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()
