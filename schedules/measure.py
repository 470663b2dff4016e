"""How candidates are fed when they are measured."""

from __future__ import annotations

import numpy as np
import tvm


def _fill(tensor: tvm.runtime.Tensor) -> None:
    """Random values for data, zeros for integer and boolean tensors.

    The gathered kernels read index tensors (``take`` of a gate's channel
    order, ``scatter_elements`` of its work flag): random integers would index
    out of bounds and crash the measurement. Zero is a valid index everywhere.
    """
    if tvm.DataType(str(tensor.dtype)).type_code == tvm.DataTypeCode.FLOAT:
        tvm.get_global_func("tvm.contrib.random.random_fill")(tensor)
    else:
        tensor.copyfrom(np.zeros(tensor.shape, dtype=str(tensor.dtype)))


def alloc_in_bounds_arguments(device, args_info, alloc_repeat: int):
    """MetaSchedule's ``f_alloc_argument`` with index tensors kept in bounds (see :func:`_fill`)."""
    from tvm.s_tir.meta_schedule.runner.utils import alloc_argument_common  # noqa: PLC0415 (runs in a worker)

    return alloc_argument_common(_fill, device, args_info, alloc_repeat)
