"""Writing output files so that none is ever left half-written."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from lcnet_tvm.errors import OutputError


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write`` on a temporary file beside ``path``, then rename it to ``path``.

    Readers see the old file or the whole new one, never a part; on any error
    the temporary file is removed. An unwritable destination is an :class:`OutputError`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as stream:
            try:
                write(stream)
            except BaseException:
                stream.close()
                os.unlink(stream.name)
                raise
        os.chmod(stream.name, 0o644)  # temporary files are created private
        os.replace(stream.name, path)
    except OSError as error:
        with contextlib.suppress(NameError, OSError):
            os.unlink(stream.name)
        raise OutputError(f"cannot write {str(path)!r}: {error.strerror or error}; choose a writable location") from None
    return path


def write_json(path: str | os.PathLike, data: object) -> Path:
    """``data`` as indented JSON, written atomically."""
    return write_atomically(path, lambda stream: stream.write(json.dumps(data, indent=2).encode() + b"\n"))
