"""User-facing errors: each says what was wrong, with the offending value, and what to do."""


class LcnetError(Exception):
    """Base class of every error the CLI reports as one line (no traceback)."""


class InputError(LcnetError):
    """An input tensor has the wrong rank, shape, dtype or values."""


class ModelError(LcnetError):
    """An unknown model name, or a missing/corrupt checkpoint."""


class ArtifactError(LcnetError):
    """A missing, corrupt or incompatible compiled artifact."""


class TargetError(LcnetError):
    """An unknown target, or a target that cannot run on this machine."""


class DatabaseError(LcnetError):
    """A tuning database that is unreadable, corrupt, or made for another target."""


class OutputError(LcnetError):
    """An output file or directory that cannot be written (read-only, missing parent, disk full)."""
